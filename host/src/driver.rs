//! The blocking driver: pumps an [`Engine`] with a [`Transport`] and a [`Clock`].
//!
//! The engine decides what to send and when; the driver only moves bytes and time. For each
//! exchange it takes the request from `poll_transmit`, POSTs it to the configured URL, and
//! hands back either the answer (`handle_response`) or the precise reason none came
//! (`handle_transport_failure`). An HTTP error status is classified here: an unsigned error body
//! from the service is `ServiceError` (its own code and message go to the sink) unless the
//! status is 404 or 405 (a wrong URL: `HttpClientError`, the body still quoted), 407 is
//! `ProxyAuthRequired`, other 4xx `HttpClientError`, 5xx `HttpServerError`, each with the
//! status line and an excerpt of the body. Events go to a [`Sink`] as they happen.
//!
//! A transport failure goes to the engine with its specifics (`handle_transport_failure`: the
//! host name, the address tried, the presented issuer, the status and body excerpt), so the
//! engine's own event log and statistics carry them. An answer the engine refuses is only bytes
//! to it: the driver adds what it knows (status, body excerpt) to the `COMM_FAILED` (or
//! `TRUST_CODE_INSTALL_FAILED`) events the refusal caused, when they have no detail of their
//! own, cut to the event's detail size.

use std::time::Duration;

use rand_core::{CryptoRng, RngCore};
use slup_core::diag::event::{Event, EventKind};
use slup_core::diag::MessageKind;
use slup_core::engine::trust::KeyProvider;
use slup_core::engine::Engine;
use slup_core::msg::response::ErrorBody;
use slup_core::types::Timestamp;
use slup_core::Code;

use crate::clock::Clock;
use crate::error::HostError;
use crate::http::Head;
use crate::store::FileStore;
use crate::transport::Transport;

/// Size of the request buffer: room for a full `LICENSE_USAGE` of signed reports.
pub const REQUEST_BUFFER: usize = 128 * 1024;
/// Most exchanges one [`Driver::pump`] carries out, so that a misbehaving peer cannot keep the
/// caller in a loop.
pub const MAX_EXCHANGES_PER_PUMP: usize = 32;

/// How one exchange ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An answer arrived and the engine applied it (a `FAILED` status is applied too: the
    /// events say what the service refused).
    Applied,
    /// An answer arrived and the engine refused it (bad signature, nonce, …): the engine's
    /// code, and what the answer looked like.
    Refused(HostError),
    /// No usable answer: why.
    Failed(HostError),
}

/// One request and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// Which kind of request it was.
    pub kind: MessageKind,
    /// Where it went.
    pub url: String,
    /// Request bytes.
    pub sent: usize,
    /// HTTP status, when one arrived.
    pub http_status: Option<u16>,
    /// The result.
    pub outcome: Outcome,
}

/// Where events and exchanges go: a log, a terminal, a test's vector.
pub trait Sink {
    /// An engine event, as it happens.
    fn event(&mut self, event: &Event);
    /// An exchange, once it is over.
    fn exchange(&mut self, _exchange: &Exchange) {}
    /// Saving the engine's records failed.
    fn storage_error(&mut self, _error: &HostError) {}
}

/// A sink that keeps everything, for tests and for callers that look afterwards.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    /// Events, oldest first.
    pub events: Vec<Event>,
    /// Exchanges, oldest first.
    pub exchanges: Vec<Exchange>,
    /// Storage failures, oldest first.
    pub storage_errors: Vec<HostError>,
}

impl Sink for Recorder {
    fn event(&mut self, event: &Event) {
        self.events.push(*event);
    }
    fn exchange(&mut self, exchange: &Exchange) {
        self.exchanges.push(exchange.clone());
    }
    fn storage_error(&mut self, error: &HostError) {
        self.storage_errors.push(error.clone());
    }
}

/// The classification of a non-2xx answer.
pub fn classify_status(head: &Head, body: &[u8]) -> HostError {
    if let Ok(err) = ErrorBody::decode(body) {
        let mut buf = [0u8; slup_core::types::MAX_TEXT_LEN];
        let message = err.message.unescape_into(&mut buf).unwrap_or("");
        // The body's number is kept exactly as received (ERRORS.md rules).
        let named = Code::from_number(err.code).map_or(String::new(), |c| format!(" {}", c.name()));
        // No such endpoint or method: the URL is wrong, whoever says so.
        let code = match head.status {
            404 | 405 => Code::HttpClientError,
            _ => Code::ServiceError,
        };
        return HostError::new(
            code,
            format!(
                "HTTP {}: service error E{}{named}: {message}",
                head.status, err.code
            ),
        );
    }
    let code = match head.status {
        407 => Code::ProxyAuthRequired,
        500..=599 => Code::HttpServerError,
        _ => Code::HttpClientError,
    };
    HostError::new(code, crate::transport::status_text(head, body))
}

/// What an answer the engine refused looked like: its status, type and start.
fn refused(code: Code, head: &Head, body: &[u8]) -> HostError {
    let kind = head.content_type.as_deref().unwrap_or("no Content-Type");
    HostError::new(
        code,
        format!(
            "HTTP {} {kind}, {} bytes: {}",
            head.status,
            body.len(),
            crate::http::excerpt(body, 80)
        ),
    )
}

/// Pumps an engine: see the module documentation.
#[derive(Debug)]
pub struct Driver<T, C> {
    /// The transport.
    pub transport: T,
    /// The clock.
    pub clock: C,
    store: Option<FileStore>,
    tx: Vec<u8>,
    rx: Vec<u8>,
}

impl<T: Transport, C: Clock> Driver<T, C> {
    /// A driver over `transport` and `clock`.
    pub fn new(transport: T, clock: C) -> Self {
        Driver {
            transport,
            clock,
            store: None,
            tx: vec![0u8; REQUEST_BUFFER],
            rx: Vec::new(),
        }
    }

    /// Saves the engine's changed records to `store` after every step: before a request
    /// leaves (its nonce must survive a reboot) and after every answer or timer.
    pub fn with_store(mut self, store: FileStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Forwards the engine's events and saves what changed; `false` when saving failed.
    fn settle<K: KeyProvider, R: RngCore + CryptoRng, const M: usize>(
        &self,
        engine: &mut Engine<K, R, M>,
        sink: &mut impl Sink,
    ) -> bool {
        self.settle_with(engine, sink, None)
    }

    /// [`Self::settle`], giving the failure `cause` to the failure events it caused.
    fn settle_with<K: KeyProvider, R: RngCore + CryptoRng, const M: usize>(
        &self,
        engine: &mut Engine<K, R, M>,
        sink: &mut impl Sink,
        cause: Option<&HostError>,
    ) -> bool {
        while let Some(mut e) = engine.poll_event() {
            if let Some(c) = cause {
                let ours = matches!(
                    e.kind,
                    EventKind::CommFailed { cause, .. } | EventKind::TrustCodeInstallFailed { cause }
                        if cause == c.code
                );
                if ours && e.detail.is_empty() && !c.detail.is_empty() {
                    e = Event::with_detail(e.at, e.kind, &c.detail);
                }
            }
            sink.event(&e);
        }
        match &self.store {
            Some(store) => match crate::persist::save(engine, store) {
                Ok(_) => true,
                Err(e) => {
                    sink.storage_error(&e);
                    false
                }
            },
            None => true,
        }
    }

    /// Carries out one exchange if the engine has a request due; returns it.
    pub fn exchange<K: KeyProvider, R: RngCore + CryptoRng, const M: usize>(
        &mut self,
        engine: &mut Engine<K, R, M>,
        sink: &mut impl Sink,
    ) -> Option<Exchange> {
        let now = self.clock.now();
        let t = engine.poll_transmit(now, &mut self.tx);
        let saved = self.settle(engine, sink);
        let t = t?;
        let url = engine.config().effective_url().map(str::to_string);
        let mut x = Exchange {
            kind: t.kind,
            url: url.clone().unwrap_or_default(),
            sent: t.len,
            http_status: None,
            outcome: Outcome::Applied,
        };
        let result = match url {
            // A request whose nonce is not on the medium must not leave: after a reboot its
            // answer would be refused, and the exchange wasted.
            _ if !saved => Err(HostError::new(
                crate::persist::SAVE_FAILED,
                "the engine state could not be saved before sending",
            )),
            None => Err(HostError::new(
                Code::InvalidArgument,
                "no service URL configured for this transport",
            )),
            Some(url) => {
                let body = self.tx.get(..t.len).unwrap_or_default();
                self.transport.post(&url, body, &mut self.rx)
            }
        };
        let now = self.clock.now();
        let mut cause = None;
        let failure = match result {
            Ok(head) if (200..300).contains(&head.status) => {
                x.http_status = Some(head.status);
                match engine.handle_response(now, &self.rx) {
                    Ok(()) => None,
                    Err(e) => {
                        let why = refused(e.code(), &head, &self.rx);
                        cause = Some(why.clone());
                        x.outcome = Outcome::Refused(why);
                        None
                    }
                }
            }
            Ok(head) => {
                x.http_status = Some(head.status);
                Some(classify_status(&head, &self.rx))
            }
            Err(e) => Some(e),
        };
        if let Some(f) = failure {
            engine.handle_transport_failure(now, f.code, &f.detail);
            x.outcome = Outcome::Failed(f);
        }
        // The exchange first, then the events its answer caused.
        sink.exchange(&x);
        self.settle_with(engine, sink, cause.as_ref());
        Some(x)
    }

    /// Fires the timers that are due and carries out every exchange due now; returns how many
    /// exchanges ran (at most [`MAX_EXCHANGES_PER_PUMP`]).
    pub fn pump<K: KeyProvider, R: RngCore + CryptoRng, const M: usize>(
        &mut self,
        engine: &mut Engine<K, R, M>,
        sink: &mut impl Sink,
    ) -> usize {
        let mut n = 0;
        while n < MAX_EXCHANGES_PER_PUMP {
            let now = self.clock.now();
            if engine.poll_timeout().is_some_and(|t| t <= now) {
                engine.handle_timeout(now);
                self.settle(engine, sink);
            }
            if self.exchange(engine, sink).is_none() {
                break;
            }
            n += 1;
        }
        n
    }

    /// Runs the engine until `until`, sleeping between its deadlines, or until `done` says the
    /// caller has what it waited for (checked after each pump). Returns `true` when `done` was.
    pub fn run_until<K: KeyProvider, R: RngCore + CryptoRng, const M: usize>(
        &mut self,
        engine: &mut Engine<K, R, M>,
        until: Timestamp,
        sink: &mut impl Sink,
        mut done: impl FnMut(&Engine<K, R, M>) -> bool,
    ) -> bool {
        loop {
            self.pump(engine, sink);
            if done(engine) {
                return true;
            }
            let now = self.clock.now();
            if now >= until {
                return false;
            }
            let next = engine.poll_timeout().unwrap_or(until).min(until);
            // A deadline that stays due after it was handled must not make us spin.
            let wait = next.0.saturating_sub(now.0).max(10);
            self.clock.sleep(Duration::from_millis(wait));
        }
    }
}
