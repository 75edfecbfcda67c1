//! How the service presents itself and answers: [`Config`] and [`UsageMode`].

use heapless::String;

/// How `LICENSE_USAGE` is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageMode {
    /// `OK` with the ACK at once.
    Immediate,
    /// `OK_POLL` with a `poll_id`; the ACK comes with the device's `POLL_REQ`, as CSSM does.
    Poll {
        /// Seconds the device should wait before polling (CSSM: 300).
        retry_time_seconds: u32,
    },
}

/// Default largest accepted distance between a request's `timestamp` and the service clock:
/// one hour, CSSM's tolerance.
pub const DEFAULT_MAX_CLOCK_SKEW_MS: u64 = 3_600_000;
/// Default `retry_time_seconds` of an `OK_TRY_AGAIN` answer (storage full or failing).
pub const DEFAULT_TRY_AGAIN_SECONDS: u32 = 300;
/// Longest `connect_info` name or version the service announces.
pub const CONNECT_INFO_LEN: usize = 32;

/// The service's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `connect_info.name` (default `SSM`, as the cloud service).
    pub name: String<CONNECT_INFO_LEN>,
    /// `connect_info.version` (default `1.3`).
    pub version: String<CONNECT_INFO_LEN>,
    /// `connect_info.prod` (default `true`).
    pub prod: bool,
    /// How usage is acknowledged (default [`UsageMode::Immediate`]).
    pub usage_mode: UsageMode,
    /// Requests whose `timestamp` is further than this from the service clock, in ms, are
    /// answered `FAILED` (default [`DEFAULT_MAX_CLOCK_SKEW_MS`]; `u64::MAX` disables the
    /// check). Offline usage files are never checked: they are old by nature.
    pub max_clock_skew_ms: u64,
    /// `retry_time_seconds` sent with `OK_TRY_AGAIN` (default [`DEFAULT_TRY_AGAIN_SECONDS`]).
    pub try_again_seconds: u32,
    /// Answer `FAILED` to an `ID_TOKEN_TRUST` with `force: false` from an instance that is
    /// already trusted (default `false`: the device enforces `force`, and the service refreshes
    /// trust either way, as a re-sent request after a lost answer must succeed).
    pub retrust_requires_force: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: String::try_from("SSM").unwrap_or_default(),
            version: String::try_from("1.3").unwrap_or_default(),
            prod: true,
            usage_mode: UsageMode::Immediate,
            max_clock_skew_ms: DEFAULT_MAX_CLOCK_SKEW_MS,
            try_again_seconds: DEFAULT_TRY_AGAIN_SECONDS,
            retrust_requires_force: false,
        }
    }
}
