//! Wall-clock time as the table stores it: Unix seconds (the TTL attribute's
//! unit) and milliseconds where sub-second order matters.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since the Unix epoch.
pub fn since_epoch() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

pub fn now_secs() -> u64 {
    since_epoch().as_secs()
}

pub fn now_millis() -> u64 {
    u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX)
}

/// RFC 3339 in UTC, e.g. `2026-11-23T12:00:00Z`.
pub fn rfc3339(unix_secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix_secs)).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_rfc3339_in_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }
}
