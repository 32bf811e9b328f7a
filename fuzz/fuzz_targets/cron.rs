//! Crontab schedules: parsing arbitrary text never panics; for a schedule that parses, in any
//! of a few time zones (with and without daylight saving) and at an arbitrary time, the next
//! fire time lies after that time, the previous one at or before it, and upcoming fire times
//! strictly increase.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use opsync_core::config::ScheduleValue;
use opsync_core::scheduler::{Timing, Zone};

/// The input: one byte choosing the zone, four (little-endian) giving seconds after
/// 2000-01-01 (up to about 2100), then the schedule's text, so seed files stay readable.
struct Input<'a> {
    text: &'a str,
    zone: u8,
    secs: u32,
}

fn input(data: &[u8]) -> Option<Input<'_>> {
    let (head, text) = data.split_at_checked(5)?;
    Some(Input {
        text: std::str::from_utf8(text).ok()?,
        zone: head[0],
        secs: u32::from_le_bytes([head[1], head[2], head[3], head[4]]),
    })
}

const ZONES: [chrono_tz::Tz; 5] = [
    chrono_tz::UTC,
    chrono_tz::Europe::Berlin,
    chrono_tz::America::New_York,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Asia::Kolkata,
];

fuzz_target!(|data: &[u8]| {
    let Some(input) = input(data) else { return };
    let Ok(schedule) = input.text.parse::<ScheduleValue>() else {
        return;
    };
    let timing = Timing {
        cron: schedule.cron,
        zone: Zone::Named(ZONES[usize::from(input.zone) % ZONES.len()]),
    };
    let base = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
    let t = base + chrono::Duration::seconds(i64::from(input.secs % 3_155_760_000));
    if let Some(next) = timing.next_after(t) {
        assert!(next > t, "next {next} not after {t}");
    }
    if let Some(prev) = timing.prev_at_or_before(t) {
        assert!(prev <= t, "previous {prev} after {t}");
    }
    let up = timing.upcoming(t, 4);
    assert!(
        up.windows(2).all(|w| w[0] < w[1]),
        "upcoming not increasing: {up:?}"
    );
    let _ = timing.display(t);
});
