//! Networking for the device side, without heap and without an OS (feature `net`).
//!
//! - [`http`]: the request head and a response reader fed bytes as they arrive, shared by the
//!   firmware and the host runtime so every peer fault maps to the same stable code;
//! - [`io`]: one exchange over any blocking `embedded-io` stream, and proxy tunnels;
//! - `tls` (feature `tls`): HTTPS with `embedded-tls`, the server always checked.
//!
//! The engine itself stays sans-IO: it hands out request bodies and takes answers. These
//! modules are what a driver uses to move them.

pub mod http;
pub mod io;
#[cfg(feature = "tls")]
pub mod tls;
