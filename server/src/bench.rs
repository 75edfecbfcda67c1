//! `slup-server bench`: how many signed usage reports per second the server verifies and
//! durably stores, measured end to end over loopback HTTP.
//!
//! Set-up (not timed): a server on a temporary database; `devices` simulated units, each with
//! its own P-256 key, trusted through a real `ID_TOKEN_TRUST`; then every `LICENSE_USAGE`
//! message is built and signed in advance (`per_message` fresh RUM reports each, signed with
//! the unit's key). Timed: `threads` clients, each on one keep-alive connection, send their
//! share of the messages and check that every answer is a signed `OK` acknowledging every
//! report. A report counts once the answer acknowledging it has arrived, which the server only
//! sends after the request's transaction is committed (`synchronous=FULL` by default).

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use slup_core::crypto::{PublicKey, Signer, SoftwareSigner};
use slup_core::msg::request::{self, CertSerial, Request, RequestData, RequestHeader};
use slup_core::msg::response::{self, ResponseData};
use slup_core::msg::rum::{
    self, MeasuredValue, Measurement, MeasurementMeta, RumPayload, RumVersion, ValueType,
};
use slup_core::msg::trust::{PublicKeyB64, TrustCode, TrustMember, TrustRequest};
use slup_core::msg::{ConnectInfo, HaUdi, SignedList, Version, CAPABILITIES};
use slup_core::nonce::Nonce;
use slup_core::types::{
    Count, Delta, IdToken, Ident, InstanceId, ReportId, RequestType, Role, Scope, StatusCode,
    TrustId, Udi, Uuid,
};
use slup_core::Code;

use crate::backend::now;
use crate::error::Error;
use crate::store::Durability;
use crate::{Server, ServerConfig};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Client threads (one keep-alive connection each).
    pub threads: usize,
    /// Simulated units.
    pub devices: usize,
    /// Reports per `LICENSE_USAGE` message (1–64).
    pub per_message: usize,
    /// Messages per unit.
    pub messages: usize,
    /// Commit durability of the server's database.
    pub durability: Durability,
}

/// The measurement.
#[derive(Clone, Debug)]
pub struct BenchResult {
    /// The options measured.
    pub options: BenchOptions,
    /// Reports acknowledged (all of them, or the run fails).
    pub reports: u64,
    /// Messages sent.
    pub messages: u64,
    /// Wall time of the timed phase.
    pub elapsed: Duration,
    /// CPU time the whole process (server and clients) used in the timed phase, where the
    /// platform tells (Linux `/proc/self/stat`).
    pub cpu: Option<Duration>,
}

/// CPU time used by this process so far (user + system), from `/proc/self/stat` (Linux).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(
        utime.saturating_add(stime).saturating_mul(10),
    ))
}

impl BenchResult {
    /// Acknowledged reports per second.
    pub fn reports_per_second(&self) -> f64 {
        self.reports as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for BenchResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "{} reports in {} messages ({} per message) from {} devices over {} client threads, {:?} durability",
            self.reports, self.messages, o.per_message, o.devices, o.threads, o.durability
        )?;
        writeln!(f, "elapsed {:.3} s", self.elapsed.as_secs_f64())?;
        if let Some(cpu) = self.cpu {
            writeln!(
                f,
                "CPU {:.3} s (server and clients): {:.0} reports per CPU-second",
                cpu.as_secs_f64(),
                self.reports as f64 / cpu.as_secs_f64().max(1e-9)
            )?;
        }
        write!(
            f,
            "{:.0} reports/s verified and durably stored ({:.0} messages/s)",
            self.reports_per_second(),
            self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
        )
    }
}

const TAG: &str = "regid.2017-08.com.cisco.AIR-DNA-A,1.0_b6308627-3ab0-4a11-a3d9-586911a0d790";
const PID: &str = "C9800-CL-K9";

fn bench_err(what: &str, e: impl fmt::Display) -> Error {
    Error::other(format!("bench: {what}: {e}"))
}

/// One POST on a keep-alive connection; the answer's status and body.
fn post(s: &mut TcpStream, body: &[u8]) -> Result<(u16, Vec<u8>), Error> {
    let mut req = format!(
        "POST /licservice/license HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req).map_err(|e| bench_err("send", e))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut chunk).map_err(|e| bench_err("receive", e))?;
        if n == 0 {
            return Err(bench_err("receive", "connection closed"));
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(head)) = resp.parse(&buf) else {
            continue;
        };
        let status = resp.code.unwrap_or(0);
        let len = resp
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
            .ok_or_else(|| bench_err("receive", "no Content-Length"))?;
        while buf.len() < head.saturating_add(len) {
            let n = s.read(&mut chunk).map_err(|e| bench_err("receive", e))?;
            if n == 0 {
                return Err(bench_err("receive", "body truncated"));
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
        let body = buf.get(head..head.saturating_add(len)).unwrap_or_default();
        return Ok((status, body.to_vec()));
    }
}

fn connect(addr: SocketAddr) -> Result<TcpStream, Error> {
    let s = TcpStream::connect(addr).map_err(|e| bench_err("connect", e))?;
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| bench_err("connect", e))?;
    Ok(s)
}

/// A simulated unit after trust.
struct Unit {
    serial: String,
    key: SoftwareSigner,
    uuid: String,
    trust_id: TrustId,
}

fn header<'a>(
    t: RequestType,
    udi: Udi<'a>,
    nonce: Nonce,
    pii: InstanceId<'a>,
    serial: CertSerial,
) -> Result<RequestHeader<'a>, Code> {
    Ok(RequestHeader {
        version: Version,
        request_type: t,
        locale: Ident::new("en_US.UTF-8")?,
        sudi: udi,
        timestamp: now(),
        nonce,
        product_instance_identifier: pii,
        signing_cert_serial_number: serial,
        id_cert_serial_number: Ident::new("")?,
        connect_info: ConnectInfo::new("slup-bench", "0.1.0", None, CAPABILITIES)?,
    })
}

/// Trusts one unit with `token` over `s`.
fn trust(
    s: &mut TcpStream,
    rng: &mut ChaCha20Rng,
    serial: String,
    token: &str,
    anchor: &PublicKey,
) -> Result<Unit, Error> {
    let key = SoftwareSigner::generate(rng);
    let udi = Udi::new(PID, &serial)?;
    let mut members = heapless::Vec::new();
    members
        .push(TrustMember {
            role: Role::Active,
            sudi: udi,
            public_key: PublicKeyB64(key.public_key().clone()),
        })
        .map_err(|_| Error::from(Code::CapacityExceeded))?;
    let req = Request {
        header: header(
            RequestType::ID_TOKEN_TRUST,
            udi,
            Nonce::generate(rng),
            InstanceId::NONE,
            CertSerial(None),
        )?,
        data: RequestData::IdTokenTrust(TrustRequest {
            id_token: IdToken::new(token)?,
            scope: Scope::Local,
            force: false,
            members,
        }),
    };
    let mut buf = vec![0u8; 16 * 1024];
    let n = request::encode(&mut buf, &req, &key)?;
    let (status, body) = post(s, buf.get(..n).unwrap_or_default())?;
    let resp =
        response::decode(&body).map_err(|e| bench_err(&format!("trust answer ({status})"), e))?;
    resp.verify(anchor)?;
    let ResponseData::Trust { trust_codes, .. } = &resp.response.data else {
        return Err(bench_err(
            "trust",
            format!(
                "answered {:?}: {}",
                resp.response.header.status_code, resp.response.header.message
            ),
        ));
    };
    let code_bytes = trust_codes
        .iter()
        .next()
        .ok_or_else(|| bench_err("trust", "no trust code"))?;
    let code = TrustCode::decode(code_bytes)?;
    Ok(Unit {
        uuid: code.payload.product_instance_identifier.as_str().to_owned(),
        trust_id: code.payload.trust_id,
        key,
        serial: serial.clone(),
    })
}

/// One signed `LICENSE_USAGE` message with `n` reports starting at `first_id`.
fn usage_message(
    unit: &Unit,
    rng: &mut ChaCha20Rng,
    first_id: u64,
    n: usize,
) -> Result<Vec<u8>, Error> {
    let udi = Udi::new(PID, &unit.serial)?;
    let pii = InstanceId(Some(Uuid::new(&unit.uuid)?));
    let mut reports: Vec<Vec<u8>> = Vec::with_capacity(n);
    let start = now().secs();
    for i in 0..n as u64 {
        let mut ha = heapless::Vec::new();
        ha.push(HaUdi {
            role: Role::Active,
            sudi: udi,
        })
        .map_err(|_| Error::from(Code::CapacityExceeded))?;
        let mut measurements = heapless::Vec::new();
        measurements
            .push(Measurement {
                log_time: start,
                metric_name: Ident::new("ENTITLEMENT")?,
                start_time: start.saturating_sub(900),
                end_time: start,
                sample_interval: 900,
                num_samples: 1,
                value: MeasuredValue {
                    kind: ValueType::COUNT,
                    value: Count(i + 1),
                },
                meta: MeasurementMeta {
                    added_sudi_list: heapless::Vec::new(),
                    removed_sudi_list: heapless::Vec::new(),
                    sudi_list_overflow: 0,
                    termination_reason: Ident::new("ReportTime")?,
                    clock_change_delta: Delta(0),
                },
            })
            .map_err(|_| Error::from(Code::CapacityExceeded))?;
        let payload = RumPayload {
            version: RumVersion,
            report_id: ReportId(first_id + i),
            sudi: udi,
            product_instance_identifier: pii,
            software_tag: Ident::new("regid.2018-05.com.cisco.WLC_9500C,1.0")?,
            entitlement_tag: Ident::new(TAG)?,
            software_version: Ident::new("17.09.02")?,
            ha_udi: ha,
            measurements,
        };
        let mut buf = vec![0u8; 8 * 1024];
        let len = rum::encode(&mut buf, &payload, &unit.key)?;
        buf.truncate(len);
        reports.push(buf);
    }
    let refs: Vec<&[u8]> = reports.iter().map(Vec::as_slice).collect();
    let req = Request {
        header: header(
            RequestType::LICENSE_USAGE,
            udi,
            Nonce::generate(rng),
            pii,
            CertSerial(Some(unit.trust_id)),
        )?,
        data: RequestData::LicenseUsage(SignedList::Items(&refs)),
    };
    let mut buf = vec![0u8; 256 * 1024];
    let len = request::encode(&mut buf, &req, &unit.key)?;
    buf.truncate(len);
    Ok(buf)
}

/// Sends `messages` on one connection; returns the reports acknowledged.
fn client(addr: SocketAddr, messages: Vec<(Vec<u8>, usize)>) -> Result<u64, Error> {
    let mut s = connect(addr)?;
    let mut acked = 0u64;
    for (body, n) in messages {
        let (status, answer) = post(&mut s, &body)?;
        let resp = response::decode(&answer)
            .map_err(|e| bench_err(&format!("usage answer ({status})"), e))?;
        let h = &resp.response.header;
        let ResponseData::Usage { ack, .. } = &resp.response.data else {
            return Err(bench_err(
                "usage",
                format!("answered {:?}: {}", h.status_code, h.message),
            ));
        };
        if h.status_code != StatusCode::OK || ack.acked.len() != n || !ack.rejected.is_empty() {
            return Err(bench_err(
                "usage",
                format!(
                    "{} of {n} acknowledged, {} rejected",
                    ack.acked.len(),
                    ack.rejected.len()
                ),
            ));
        }
        acked = acked.saturating_add(n as u64);
    }
    Ok(acked)
}

/// Runs the benchmark on a fresh server over a temporary database.
pub fn run(o: &BenchOptions) -> Result<BenchResult, Error> {
    if o.threads == 0 || o.devices == 0 || o.messages == 0 || !(1..=64).contains(&o.per_message) {
        return Err(Error::new(
            Code::InvalidArgument,
            "threads, devices and messages must be at least 1, per-message 1..=64",
        ));
    }
    let dir = std::env::temp_dir().join(format!(
        "slup-bench-{}-{}",
        std::process::id(),
        OsRng.next_u32()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| bench_err("temporary directory", e))?;
    let result = run_in(o, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(o: &BenchOptions, dir: &std::path::Path) -> Result<BenchResult, Error> {
    let mut cfg = ServerConfig::ephemeral(dir.join("bench.db"));
    cfg.durability = o.durability;
    cfg.log = false;
    let srv = Server::start(cfg)?;
    let addr = srv
        .http_addr()
        .ok_or_else(|| bench_err("server", "no HTTP listener"))?;
    let anchor = PublicKey::from_sec1(&srv.trust_anchor_sec1())?;
    let uses = u32::try_from(o.devices).map_err(|_| Error::from(Code::InvalidArgument))?;
    let token = srv.mint_token("Bench", uses, 1)?;

    // Untimed: trust every unit and sign every message.
    let mut rng = ChaCha20Rng::from_rng(OsRng).map_err(|e| bench_err("randomness", e))?;
    let mut s = connect(addr)?;
    let mut per_thread: Vec<Vec<(Vec<u8>, usize)>> = (0..o.threads).map(|_| Vec::new()).collect();
    for d in 0..o.devices {
        let unit = trust(&mut s, &mut rng, format!("BENCH{d:06}"), &token, &anchor)?;
        for m in 0..o.messages {
            let first = 1 + (m * o.per_message) as u64;
            let msg = usage_message(&unit, &mut rng, first, o.per_message)?;
            if let Some(list) = per_thread.get_mut((d * o.messages + m) % o.threads) {
                list.push((msg, o.per_message));
            }
        }
    }
    drop(s);

    let cpu0 = process_cpu();
    let start = Instant::now();
    let handles: Vec<_> = per_thread
        .into_iter()
        .map(|msgs| std::thread::spawn(move || client(addr, msgs)))
        .collect();
    let mut reports = 0u64;
    for h in handles {
        reports = reports.saturating_add(
            h.join()
                .map_err(|_| bench_err("client", "thread panicked"))??,
        );
    }
    let elapsed = start.elapsed();
    let cpu = process_cpu().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    let (stored, _) = srv.with_backend(|b| b.store().totals())?;
    srv.shutdown();
    if stored != reports {
        return Err(bench_err(
            "check",
            format!("{reports} acknowledged but {stored} stored"),
        ));
    }
    Ok(BenchResult {
        options: o.clone(),
        reports,
        messages: (o.devices * o.messages) as u64,
        elapsed,
        cpu,
    })
}
