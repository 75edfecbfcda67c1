//! # slup-core
//!
//! The allocation-free heart of **slup**, an embeddable agent for Smart Licensing Using Policy.
//!
//! This crate holds what every other part of slup stands on:
//!
//! - [`json`]: a strict, bounded, non-recursive JSON scanner that validates input before any
//!   typed decoding and locates the exact byte span of signed members;
//! - [`types`]: validated newtypes (UDI, timestamps, UUIDs, tokens, report ids, ...): once a
//!   value has one of these types it has been checked;
//! - [`msg`]: zero-copy decoders and encode-into-caller-buffer encoders for every message of
//!   `docs/PROTOCOL.md`;
//! - [`envelope`]: signing and verifying the exact wire bytes of signed members;
//! - [`crypto`]: ECDSA P-256 / SHA-256 with low-S enforcement behind [`crypto::Signer`] and
//!   [`crypto::Verifier`] so a secure element can replace the software key;
//! - [`nonce`]: nonce generation and an outstanding-nonce tracker that survives reboots;
//! - [`error`]: stable numeric error codes shared with C and Python;
//! - [`engine`]: the sans-IO agent (trust, usage, reporting, polling, offline, CSLU pull);
//! - [`diag`]: event log, message history, communication statistics, time formatting;
//! - [`storage`]: power-loss-safe storage of the engine's records (NOR flash, files, RAM);
//! - `server` (feature): the service side of the protocol, for the reference service and tests.
//!
//! `#![no_std]`, no `alloc` anywhere in the dependency graph, `forbid(unsafe_code)`, and no panic
//! reachable from input.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

#[cfg(any(feature = "std", test))]
extern crate std;

pub mod crypto;
pub mod diag;
pub mod engine;
pub mod envelope;
pub mod error;
pub mod json;
pub mod msg;
#[cfg(feature = "net")]
pub mod net;
pub mod nonce;
pub mod storage;
pub mod types;
pub mod url;

#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use error::{Code, DecodeError, EncodeError, Error};
