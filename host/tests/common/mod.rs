//! Helpers shared by the network tests: a license service with trusted devices ([`lab`]), a
//! toxiproxy-style fault proxy ([`faults`]) and a real tinyproxy ([`tinyproxy`]), all on
//! loopback and started by the tests themselves.
#![allow(dead_code)]

pub mod faults;
pub mod lab;
pub mod tinyproxy;
