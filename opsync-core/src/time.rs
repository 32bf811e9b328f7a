//! Unix seconds and their UTC text, for what opsync records and names (certificate dates, the
//! deployments of the stack history and their rollback tags). The time is read at the edge
//! ([`now`]) and passed into the policies that use it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch of `t` (0 before it).
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, now.
pub fn now() -> i64 {
    i64::try_from(unix(SystemTime::now())).unwrap_or(i64::MAX)
}

/// `unix` as UTC in chrono's `format` (`@UNIX` when it lies outside what chrono represents).
pub fn utc(unix: i64, format: &str) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format(format).to_string())
        .unwrap_or_else(|| format!("@{unix}"))
}

/// RFC 3339 UTC: `2026-11-29T23:01:02Z`.
pub fn rfc3339(unix: i64) -> String {
    utc(unix, "%Y-%m-%dT%H:%M:%SZ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_597_987), "2026-12-06T22:59:47Z");
        assert_eq!(utc(1_795_993_262, "%Y%m%dT%H%M%SZ"), "20261129T230102Z");
        assert_eq!(rfc3339(i64::MAX), format!("@{}", i64::MAX));
        assert_eq!(unix(UNIX_EPOCH - std::time::Duration::from_secs(1)), 0);
    }
}
