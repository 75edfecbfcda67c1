//! A toxiproxy-style fault proxy on loopback: it forwards TCP between the device and the
//! service and applies one toxic to one direction from one point of the stream on, so that a
//! fault lands in a chosen phase (connect, TLS handshake, request, response head, body).
//!
//! Also: a port where nothing listens (refused), and a listener whose backlog is full (SYNs
//! go unanswered: a connect timeout, the seed's "DNS works but no Internet").

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, SockRef, Socket, Type};

/// Which way the bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Device to service: the TLS ClientHello, the request.
    Up,
    /// Service to device: the TLS server flight, the response head and body.
    Down,
}

/// Where in a direction's stream a toxic starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// After this many bytes.
    Bytes(usize),
    /// This many bytes after the end of the HTTP head (`\r\n\r\n`).
    AfterHead(usize),
}

/// One fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Toxic {
    /// Forward faithfully.
    None,
    /// Wait this long before connecting to the service (the device's connect succeeded).
    ConnectDelay(Duration),
    /// Delay every byte from the mark on.
    Latency(Dir, Mark, Duration),
    /// From the mark on, forward `size` bytes at a time with a pause between (slice; with
    /// `size` 1, a slow drip).
    Slice(Dir, Mark, usize, Duration),
    /// At the mark, close both connections (FIN): a limit on the data, a close mid-body.
    Close(Dir, Mark),
    /// At the mark, reset the device's connection (RST).
    Reset(Dir, Mark),
    /// At the mark, stop forwarding but keep the connections open.
    Stall(Dir, Mark),
    /// Answer every request with these bytes instead of forwarding it, then close.
    Respond(Vec<u8>),
}

/// A running fault proxy; stops when dropped.
pub struct FaultProxy {
    /// Its port on 127.0.0.1.
    pub port: u16,
    toxic: Arc<Mutex<Toxic>>,
    up_bytes: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Forwards connections on an ephemeral loopback port to `upstream`, applying `toxic`.
    pub fn start(upstream: SocketAddr, toxic: Toxic) -> FaultProxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let up_bytes = Arc::new(AtomicUsize::new(0));
        let toxic = Arc::new(Mutex::new(toxic));
        let (s, u, tx) = (stop.clone(), up_bytes.clone(), toxic.clone());
        let acceptor = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((c, _)) => {
                        // Each connection gets the toxic in force when it arrives.
                        let t = tx.lock().unwrap().clone();
                        let (s2, u2) = (s.clone(), u.clone());
                        conns.push(std::thread::spawn(move || {
                            serve(c, upstream, &t, &s2, &u2);
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        FaultProxy {
            port,
            toxic,
            up_bytes,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Replaces the toxic for the connections that come next.
    pub fn set_toxic(&self, toxic: Toxic) {
        *self.toxic.lock().unwrap() = toxic;
    }

    /// Bytes received from devices so far.
    pub fn up_bytes(&self) -> usize {
        self.up_bytes.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

/// One direction of a connection.
struct Lane {
    dir: Dir,
    /// Bytes read so far.
    read: usize,
    /// What was read before the head ended (to find `\r\n\r\n`).
    head: Vec<u8>,
    head_end: Option<usize>,
    /// (release time, bytes, past the mark).
    queue: VecDeque<(Instant, Vec<u8>, bool)>,
    /// No writes before this (slicing).
    next_write: Instant,
    eof: bool,
    shut: bool,
    stalled: bool,
}

enum Verdict {
    Go,
    Close,
    Reset,
}

impl Lane {
    fn new(dir: Dir) -> Lane {
        Lane {
            dir,
            read: 0,
            head: Vec::new(),
            head_end: None,
            queue: VecDeque::new(),
            next_write: Instant::now(),
            eof: false,
            shut: false,
            stalled: false,
        }
    }

    /// The stream offset of `mark`, once known.
    fn mark_at(&self, mark: Mark) -> Option<usize> {
        match mark {
            Mark::Bytes(n) => Some(n),
            Mark::AfterHead(n) => self.head_end.map(|h| h + n),
        }
    }

    /// Takes `data`, just read, splitting it at the toxic's mark.
    fn take(&mut self, data: &[u8], toxic: &Toxic) {
        let start = self.read;
        self.read += data.len();
        if self.head_end.is_none() {
            self.head.extend_from_slice(data);
            if let Some(i) = self.head.windows(4).position(|w| w == b"\r\n\r\n") {
                self.head_end = Some(i + 4);
            }
        }
        let now = Instant::now();
        let (mark, delay) = match toxic {
            Toxic::Latency(d, m, t) if *d == self.dir => (self.mark_at(*m), *t),
            Toxic::Slice(d, m, ..)
            | Toxic::Close(d, m)
            | Toxic::Reset(d, m)
            | Toxic::Stall(d, m)
                if *d == self.dir =>
            {
                (self.mark_at(*m), Duration::ZERO)
            }
            _ => (None, Duration::ZERO),
        };
        match mark {
            None => self.queue.push_back((now, data.to_vec(), false)),
            Some(m) => {
                let cut = m.saturating_sub(start).min(data.len());
                if cut > 0 {
                    self.queue.push_back((now, data[..cut].to_vec(), false));
                }
                if cut < data.len() {
                    self.queue
                        .push_back((now + delay, data[cut..].to_vec(), true));
                }
            }
        }
    }

    /// Writes what is due to `dst`; says whether the connection must now end.
    fn flush(&mut self, dst: &mut TcpStream, toxic: &Toxic) -> (bool, Verdict) {
        let mut wrote = false;
        let now = Instant::now();
        while let Some(front) = self.queue.front_mut() {
            let (at, past) = (front.0, front.2);
            if at > now || self.next_write > now {
                break;
            }
            let mut limit = front.1.len();
            if past {
                match toxic {
                    Toxic::Close(d, _) if *d == self.dir => return (wrote, Verdict::Close),
                    Toxic::Reset(d, _) if *d == self.dir => return (wrote, Verdict::Reset),
                    Toxic::Stall(d, _) if *d == self.dir => {
                        // Silence from here on: not even the end of the stream.
                        self.queue.clear();
                        self.stalled = true;
                        break;
                    }
                    Toxic::Slice(d, _, size, _) if *d == self.dir => limit = limit.min(*size),
                    _ => {}
                }
            }
            match dst.write(&front.1[..limit]) {
                Ok(n) => {
                    wrote = true;
                    front.1.drain(..n);
                    if front.1.is_empty() {
                        self.queue.pop_front();
                    }
                    if let (true, Toxic::Slice(d, _, _, gap)) = (past, toxic) {
                        if *d == self.dir {
                            self.next_write = Instant::now() + *gap;
                            break;
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return (wrote, Verdict::Close),
            }
        }
        if self.eof && self.queue.is_empty() && !self.shut && !self.stalled {
            let _ = dst.shutdown(Shutdown::Write);
            self.shut = true;
        }
        (wrote, Verdict::Go)
    }
}

/// Reads what `s` has now: `Some(0)` at its end, `None` when nothing is waiting.
fn read_now(s: &mut TcpStream, buf: &mut [u8]) -> Option<usize> {
    match s.read(buf) {
        Ok(n) => Some(n),
        Err(e) if e.kind() == ErrorKind::WouldBlock => None,
        Err(_) => Some(0),
    }
}

/// Reads and drops what the device still sends (so a close is a FIN, not a reset for unread
/// data), for a short while.
fn drain(c: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let until = Instant::now() + Duration::from_millis(30);
    while Instant::now() < until {
        match read_now(c, &mut buf) {
            Some(0) => return,
            Some(_) => {}
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Serves one device connection.
fn serve(
    mut c: TcpStream,
    upstream: SocketAddr,
    toxic: &Toxic,
    stop: &AtomicBool,
    up: &AtomicUsize,
) {
    c.set_nodelay(true).unwrap();
    if let Toxic::Respond(bytes) = toxic {
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    up.fetch_add(n, Ordering::SeqCst);
                    req.extend_from_slice(&buf[..n]);
                    if request_complete(&req) {
                        break;
                    }
                }
            }
        }
        let _ = c.write_all(bytes);
        let _ = c.shutdown(Shutdown::Write);
        c.set_nonblocking(true).unwrap();
        drain(&mut c);
        return;
    }
    if let Toxic::ConnectDelay(d) = toxic {
        let until = Instant::now() + *d;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let Ok(mut s) = TcpStream::connect(upstream) else {
        return;
    };
    s.set_nodelay(true).unwrap();
    c.set_nonblocking(true).unwrap();
    s.set_nonblocking(true).unwrap();
    let mut up_lane = Lane::new(Dir::Up);
    let mut down_lane = Lane::new(Dir::Down);
    let mut buf = [0u8; 16 * 1024];
    while !stop.load(Ordering::SeqCst) {
        let mut busy = false;
        if !up_lane.eof {
            match read_now(&mut c, &mut buf) {
                Some(0) => up_lane.eof = true,
                Some(n) => {
                    up.fetch_add(n, Ordering::SeqCst);
                    up_lane.take(&buf[..n], toxic);
                    busy = true;
                }
                None => {}
            }
        }
        if !down_lane.eof {
            match read_now(&mut s, &mut buf) {
                Some(0) => down_lane.eof = true,
                Some(n) => {
                    down_lane.take(&buf[..n], toxic);
                    busy = true;
                }
                None => {}
            }
        }
        let (w1, v1) = up_lane.flush(&mut s, toxic);
        let (w2, v2) = down_lane.flush(&mut c, toxic);
        for v in [v1, v2] {
            match v {
                Verdict::Go => {}
                Verdict::Close => {
                    drain(&mut c);
                    let _ = c.shutdown(Shutdown::Both);
                    let _ = s.shutdown(Shutdown::Both);
                    return;
                }
                Verdict::Reset => {
                    // Linger zero: closing sends RST instead of FIN.
                    let _ = SockRef::from(&c).set_linger(Some(Duration::ZERO));
                    return;
                }
            }
        }
        if up_lane.shut && down_lane.shut {
            return;
        }
        if !(busy || w1 || w2) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// `true` once `req` holds a whole HTTP request (head and Content-Length body).
fn request_complete(req: &[u8]) -> bool {
    let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&req[..end]).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap_or(0));
    req.len() >= end + 4 + len
}

/// A loopback port where nothing listens.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A listener that never accepts, its backlog already full: further connects get no answer.
pub struct Blackhole {
    /// Its port on 127.0.0.1.
    pub port: u16,
    _listener: Socket,
    _fillers: Vec<Socket>,
}

impl Blackhole {
    /// Binds it and fills its backlog.
    pub fn start() -> Blackhole {
        let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        l.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        l.listen(0).unwrap();
        let addr = l.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        // Fill the queue until a connect goes unanswered.
        for _ in 0..8 {
            let f = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            let ok = f
                .connect_timeout(&addr.into(), Duration::from_millis(100))
                .is_ok();
            fillers.push(f);
            if !ok {
                break;
            }
        }
        Blackhole {
            port: addr.port(),
            _listener: l,
            _fillers: fillers,
        }
    }
}
