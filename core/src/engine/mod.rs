//! The sans-IO agent engine (work in progress: the building blocks come first).
//!
//! - [`clock`]: effective time and clock-change detection;
//! - [`config`]: who the product is, how it reaches the service, cadences;
//! - [`trust`]: pending and installed device keys and trust codes;
//! - [`usage`]: counts, samples, open reports and closing them into signed RUM reports.

pub mod clock;
pub mod config;
pub mod trust;
pub mod usage;
