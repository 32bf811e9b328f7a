//! The value types keys parse into: crontab schedules, time zones, durations, and the engine's
//! `MaxDelete` for `max-delete`. Parsing a value reports mistakes at the value's place in the
//! file (`max-delete` at its key).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use sync_engine::MaxDelete;

/// `max-delete = "500"` or `"5%"`, read by the engine's parser.
pub(super) fn max_delete<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<MaxDelete>, D::Error> {
    /// What a `max-delete` value may be written as: a string, or by mistake a bare number.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Int(i64),
        Float(f64),
    }
    let number = |n: String| {
        serde::de::Error::custom(super::validate::at_key(format!(
            "max-delete = {n} is a bare number: write \"{n}\" (at most {n} deletions) or \
             \"{n}%\" (at most {n}% of the target), in quotes"
        )))
    };
    let s = match Raw::deserialize(d)? {
        Raw::Text(s) => s,
        Raw::Int(n) => return Err(number(n.to_string())),
        Raw::Float(f) => return Err(number(f.to_string())),
    };
    s.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(super::validate::at_key(format!(
            "max-delete \"{s}\" is neither a count nor a percentage: write for example \"500\" \
             or \"5%\""
        )))
    })
}

/// A crontab schedule (5 fields: minute hour day-of-month month day-of-week; Sunday is 0 or 7;
/// day-of-month and day-of-week combine by OR as in crontab).
#[derive(Clone)]
pub struct ScheduleValue {
    pub text: String,
    pub cron: croner::Cron,
}

impl ScheduleValue {
    pub(super) fn daily_2am() -> ScheduleValue {
        ScheduleValue {
            text: "0 2 * * *".into(),
            cron: parser()
                .parse("0 2 * * *")
                .unwrap_or_else(|_| unreachable_schedule()),
        }
    }
}

#[allow(clippy::panic)]
fn unreachable_schedule() -> croner::Cron {
    panic!("the built-in schedule `0 2 * * *` must parse")
}

fn parser() -> croner::parser::CronParser {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build()
}

impl fmt::Debug for ScheduleValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl fmt::Display for ScheduleValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for ScheduleValue {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim().to_string();
        let fields = text.split_whitespace().count();
        if !text.starts_with('@') && fields != 5 {
            return Err(format!(
                "schedule \"{text}\" has {fields} fields, crontab needs 5 (minute hour \
                 day-of-month month day-of-week): write for example \"0 2 * * *\" for 02:00 daily"
            ));
        }
        // croner takes a field of only commas (`,`) as an empty set: a schedule that never
        // fires, whose next fire time takes seconds of searching to not find.
        if let Some(field) = text
            .split_whitespace()
            .find(|f| !f.starts_with('@') && f.split(',').any(str::is_empty))
        {
            return Err(format!(
                "schedule \"{text}\" has an empty item in the field \"{field}\": write values \
                 separated by single commas, for example \"0 2,14 * * *\""
            ));
        }
        match parser().parse(&text) {
            Ok(cron) => Ok(ScheduleValue { text, cron }),
            Err(e) => Err(format!(
                "schedule \"{text}\" is not a valid crontab line ({}): write for example \
                 \"0 2 * * *\", \"*/15 * * * *\" or \"30 6 * * MON-FRI\"",
                e.to_string().trim_end_matches('.').to_lowercase()
            )),
        }
    }
}

impl<'de> Deserialize<'de> for ScheduleValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An IANA time zone name such as `Europe/Berlin`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZoneValue(pub chrono_tz::Tz);

impl FromStr for ZoneValue {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<chrono_tz::Tz>().map(ZoneValue).map_err(|_| {
            format!(
                "unknown time zone \"{s}\": write an IANA name such as \"Europe/Berlin\" or \"UTC\" \
                 (list: timedatectl list-timezones)"
            )
        })
    }
}

impl<'de> Deserialize<'de> for ZoneValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A duration written as `90s`, `5m`, `2h` or `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationValue(pub Duration);

impl DurationValue {
    pub const fn from_secs(s: u64) -> DurationValue {
        DurationValue(Duration::from_secs(s))
    }
}

impl FromStr for DurationValue {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid duration \"{s}\": write a number with a unit, for example \"90s\", \"5m\" or \"1h30m\""
            )
        };
        let mut total = 0u64;
        let mut num = String::new();
        let mut any = false;
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: u64 = num.parse().map_err(|_| bad())?;
            num.clear();
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86400,
                _ => return Err(bad()),
            };
            total = total.saturating_add(n.saturating_mul(unit));
            any = true;
        }
        if !num.is_empty() || !any {
            return Err(bad());
        }
        Ok(DurationValue(Duration::from_secs(total)))
    }
}

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for DurationValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn durations() {
        assert_eq!("90s".parse::<DurationValue>().unwrap().0.as_secs(), 90);
        assert_eq!("1h30m".parse::<DurationValue>().unwrap().0.as_secs(), 5400);
        assert!("5".parse::<DurationValue>().is_err());
        assert!("5x".parse::<DurationValue>().is_err());
        assert!("".parse::<DurationValue>().is_err());
    }

    #[test]
    fn schedules() {
        for ok in [
            "0 2 * * *",
            "*/15 * * * *",
            "0 6 * * MON-FRI",
            "0 0 * * 7",
            "0 0 * * 0",
        ] {
            ok.parse::<ScheduleValue>().unwrap();
        }
        for bad in [
            "0 2 * *",
            "0 0 2 * * *",
            "61 * * * *",
            "0 25 * * *",
            "x * * * *",
        ] {
            assert!(bad.parse::<ScheduleValue>().is_err(), "{bad}");
        }
    }

    #[test]
    fn max_delete_values_are_read_by_the_engines_parser() {
        let parse = |v: &str| {
            Config::parse(
                std::path::Path::new("opsync.toml"),
                &format!("[sync]\nmax-delete = {v}\n"),
            )
            .map(|c| c.sync.max_delete)
        };
        assert_eq!(parse("\"500\"").unwrap(), Some(MaxDelete::Count(500)));
        assert_eq!(parse("\"2.5%\"").unwrap(), Some(MaxDelete::Percent(2.5)));
        for bad in ["\"\"", "\"x\"", "\"-1\"", "\"150%\""] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("opsync.toml:2:1: max-delete "), "{bad}: {e}");
            assert!(
                e.ends_with("write for example \"500\" or \"5%\""),
                "{bad}: {e}"
            );
        }
        // The value goes to `opsync sync --max-delete` as it was written.
        assert_eq!(MaxDelete::Percent(5.0).to_string(), "5%");
    }

    /// Regression (found by the `cron` fuzz target): a field of only commas parsed as an empty
    /// set, so the job never fired and computing its next fire time took seconds.
    #[test]
    fn schedule_with_an_empty_list_item_is_rejected() {
        for bad in [
            ", 3 * * *",
            "0 , * * *",
            "0 0 , * *",
            "0 0 * * ,",
            "1,,2 * * * *",
            "0,1, * * * *",
        ] {
            let err = bad.parse::<ScheduleValue>().err();
            assert!(err.is_some_and(|e| e.contains("empty item")), "{bad}");
        }
        "0 2,14 * * *".parse::<ScheduleValue>().unwrap();
    }
}
