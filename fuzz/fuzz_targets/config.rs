//! The configuration parser on arbitrary text: never panics; a configuration it accepts has
//! schedules whose next fire time lies after the time asked about.
#![no_main]

use std::path::Path;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use opsync_core::config::Config;
use opsync_core::scheduler::Timing;

fuzz_target!(|text: &str| {
    let Ok(cfg) = Config::parse(Path::new("/nonexistent/opsync.toml"), text) else {
        return;
    };
    let _ = cfg.check_paths();
    let t = Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0).unwrap();
    for job in cfg.jobs.values() {
        let timing = Timing::of(&cfg, job);
        if let Some(next) = timing.next_after(t) {
            assert!(next > t, "next fire time {next} not after {t}");
        }
    }
});
