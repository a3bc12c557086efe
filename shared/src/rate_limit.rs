//! Per-plan rate limits: fixed hourly windows aligned to the hour (UTC). A
//! window's requests are counted in one DynamoDB item (see
//! [`crate::store::rate_limits`]); when the hour turns, a new window starts
//! at zero. A client can therefore make up to twice its limit across the
//! turn of an hour, the usual trade of fixed windows for one write per
//! request and an exact, race-free count.

use lambda_http::http::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;

use crate::time::now_secs;

/// Length of a rate-limit window.
pub const WINDOW_SECS: u64 = 60 * 60;

pub const LIMIT_HEADER: &str = "x-ratelimit-limit";
pub const REMAINING_HEADER: &str = "x-ratelimit-remaining";
pub const RESET_HEADER: &str = "x-ratelimit-reset";

/// The window holding `now`: `(start, end)` in Unix seconds.
pub fn window(now_secs: u64) -> (u64, u64) {
    let start = now_secs - now_secs % WINDOW_SECS;
    (start, start + WINDOW_SECS)
}

/// Where a counted request left its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimitStatus {
    /// Requests allowed per window.
    pub limit: u32,
    /// Requests left in this window after this one.
    pub remaining: u32,
    /// When the window ends and the count starts over (Unix seconds).
    pub reset: u64,
}

impl RateLimitStatus {
    /// Seconds until the window ends, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.reset.saturating_sub(now_secs()).max(1)
    }

    /// Sets `X-RateLimit-Limit`, `-Remaining` and `-Reset` (Unix seconds, as
    /// GitHub's API does).
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert(HeaderName::from_static(LIMIT_HEADER), HeaderValue::from(self.limit));
        headers.insert(HeaderName::from_static(REMAINING_HEADER), HeaderValue::from(self.remaining));
        headers.insert(HeaderName::from_static(RESET_HEADER), HeaderValue::from(self.reset));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_whole_utc_hours() {
        assert_eq!(window(1_795_000_000), (1_794_999_600, 1_795_003_200));
        assert_eq!(window(1_794_999_600), (1_794_999_600, 1_795_003_200), "the first second opens a window");
        assert_eq!(window(1_795_003_199).1, 1_795_003_200);
    }

    #[test]
    fn headers_carry_the_numbers() {
        let status = RateLimitStatus { limit: 100, remaining: 7, reset: 1_795_003_200 };
        let mut headers = HeaderMap::new();
        status.write_headers(&mut headers);
        assert_eq!(headers[LIMIT_HEADER], "100");
        assert_eq!(headers[REMAINING_HEADER], "7");
        assert_eq!(headers[RESET_HEADER], "1795003200");
        let past = RateLimitStatus { reset: 0, ..status };
        assert_eq!(past.retry_after_secs(), 1, "never asks for a zero wait");
    }
}
