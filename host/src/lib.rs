//! `slup-host`: what a slup device needs on a host with an operating system.
//!
//! - [`transport`]: HTTP/1.1 over TCP (with `httparse`), HTTPS with rustls, HTTP proxies, every
//!   failure classified with a stable code;
//! - [`http`]: the HTTP framing itself (lengths, chunks, caps, deadlines);
//! - [`resolve`]: host entries and DNS;
//! - [`connect`]: TCP connects over every resolved address, from a chosen source address;
//! - [`tls`]: certificate authorities and TLS failure codes;
//! - [`tlsio`]: TLS over TCP with every socket operation under the deadline;
//! - [`cert`]: summaries of presented certificates;
//! - [`probe`]: reachability step by step (DNS, TCP, proxy, TLS, HTTP);
//! - [`url`]: service URLs;
//! - [`clock`]: the system clock;
//! - [`store`]: atomic, checked record files;
//! - [`persist`]: the engine's persistence records on those files;
//! - [`driver`]: the blocking loop that pumps a `slup_core` engine.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod cert;
pub mod clock;
pub mod connect;
pub mod driver;
pub mod error;
pub mod http;
pub mod persist;
pub mod probe;
pub mod resolve;
pub mod store;
pub mod tls;
pub mod tlsio;
pub mod transport;
pub mod url;

pub use clock::{Clock, SystemClock};
pub use connect::Source;
pub use driver::{Driver, Exchange, Outcome, Recorder, Sink};
pub use error::HostError;
pub use resolve::Resolver;
pub use store::FileStore;
pub use tls::Roots;
pub use transport::{HttpConfig, HttpTransport, Proxy, Transport};
