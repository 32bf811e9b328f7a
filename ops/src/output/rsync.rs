//! The text rsync users read, in rsync's layout: numbers with thousands separators or `-h`
//! units, the `--stats` block, the `-v` summary lines, progress lines (`--progress`,
//! `--info=progress2`) and `--log-file` lines.

use std::time::Duration;

use sync_engine::{Kind, Report};

/// Counts by rsync's five types: reg, dir, link, dev, special.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypeCounts(pub [u64; 5]);

impl TypeCounts {
    pub fn add(&mut self, kind: Kind) {
        let i = match kind {
            Kind::File => 0,
            Kind::Dir => 1,
            Kind::Symlink => 2,
            Kind::CharDev | Kind::BlockDev => 3,
            Kind::Fifo | Kind::Socket => 4,
        };
        self.0[i] += 1;
    }

    /// rsync's `N (reg: A, dir: B, ...)`, nonzero types only.
    fn render(&self, h: u8) -> String {
        const LABELS: [&str; 5] = ["reg", "dir", "link", "dev", "special"];
        let total: u64 = self.0.iter().sum();
        let mut out = comma(total, h.min(1));
        if total > 0 {
            let parts: Vec<String> = LABELS
                .iter()
                .zip(self.0)
                .filter(|(_, n)| *n > 0)
                .map(|(l, n)| format!("{l}: {}", comma(n, h.min(1))))
                .collect();
            out.push_str(&format!(" ({})", parts.join(", ")));
        }
        out
    }
}

/// rsync's `do_big_num`: `h` 0 plain digits, 1 thousands separators (rsync's default), 2 units
/// of 1000 (`-h`), 3 units of 1024 (`-hh`).
pub fn human(n: u64, h: u8) -> String {
    if h >= 2 {
        let mult = if h == 2 { 1000.0 } else { 1024.0 };
        let mut d = n as f64;
        if d >= mult {
            for unit in ['K', 'M', 'G', 'T', 'P'] {
                d /= mult;
                if d < mult || unit == 'P' {
                    return format!("{d:.2}{unit}");
                }
            }
        }
    }
    comma(n, h.min(1))
}

/// Digits with `,` every three (or plain with `h` 0).
pub fn comma(n: u64, h: u8) -> String {
    let digits = n.to_string();
    if h == 0 {
        return digits;
    }
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// rsync's `do_big_dnum`: a fraction with `decimals` digits, the integer part as [`human`].
pub fn human_f(x: f64, h: u8, decimals: usize) -> String {
    let plain = format!("{x:.decimals$}");
    if h == 0 || x.abs() < 1000.0 {
        return plain;
    }
    if h >= 2 {
        return human(x as u64, h);
    }
    let frac = plain.find('.').map_or("", |i| &plain[i..]);
    format!("{}{frac}", comma(x as u64, h))
}

/// What rsync's summary shows beyond the engine's [`Report`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Extra {
    /// Entries created in DST and deleted from it, by type (from the run's items).
    pub created: TypeCounts,
    pub deleted: TypeCounts,
    /// DST was created by the run (rsync counts its root as a created directory).
    pub created_root: bool,
}

/// The size rsync calls "total size": regular files and symlink targets.
fn total_size(r: &Report) -> u64 {
    r.src_bytes + r.src_link_bytes
}

/// The bytes a transfer "sent": opsync has no protocol, so the file data written (rsync's
/// literal data) stands for it; nothing is received.
fn sent(r: &Report) -> u64 {
    r.bytes_written
}

/// `--stats` (`level` 2 and 3) and the two summary lines (`-v`, `level` 1), as rsync prints
/// them; `h` as for [`human`]. `wire`: a remote run's bytes sent and received on the
/// connection, which then stand for rsync's.
pub fn summary(
    r: &Report,
    x: &Extra,
    elapsed: Duration,
    level: u8,
    h: u8,
    wire: Option<(u64, u64)>,
) -> Vec<String> {
    let mut out = Vec::new();
    let total = total_size(r);
    let (sent, received) = wire.unwrap_or((sent(r), 0));
    if level >= 2 {
        let mut files = TypeCounts([
            r.src_files,
            r.src_dirs + 1,
            r.src_symlinks,
            r.src_devices,
            r.src_specials,
        ]);
        if files.0.iter().sum::<u64>() == 0 {
            files.0[1] = 1;
        }
        out.push(String::new());
        out.push(format!("Number of files: {}", files.render(h)));
        out.push(format!("Number of created files: {}", x.created.render(h)));
        out.push(format!("Number of deleted files: {}", x.deleted.render(h)));
        out.push(format!(
            "Number of regular files transferred: {}",
            comma(r.files_copied, h.min(1))
        ));
        out.push(format!("Total file size: {} bytes", human(total, h)));
        out.push(format!(
            "Total transferred file size: {} bytes",
            human(r.bytes_copied, h)
        ));
        out.push(format!("Literal data: {} bytes", human(r.bytes_written, h)));
        let matched = if r.dry_run {
            0
        } else {
            r.bytes_copied.saturating_sub(r.bytes_written)
        };
        out.push(format!("Matched data: {} bytes", human(matched, h)));
        out.push("File list size: 0".to_string());
        out.push(format!("Total bytes sent: {}", human(sent, h)));
        out.push(format!("Total bytes received: {}", human(received, h)));
    }
    if level >= 1 {
        let secs = elapsed.as_secs_f64().max(1e-3);
        let rate = (sent + received) as f64 / secs;
        let moved = sent + received;
        let speedup = if moved == 0 {
            0.0
        } else {
            total as f64 / moved as f64
        };
        out.push(String::new());
        out.push(format!(
            "sent {} bytes  received {} bytes  {} bytes/sec",
            human(sent, h),
            human(received, h),
            human_f(rate, h, 2)
        ));
        out.push(format!(
            "total size is {}  speedup is {}{}",
            human(total, h),
            human_f(speedup, h.min(1), 2),
            if r.dry_run { " (DRY RUN)" } else { "" }
        ));
    }
    out
}

/// One progress line as rsync's `rprint_progress`: bytes, percent, rate, time (the ETA while
/// running, the time taken on the last line), and `(xfr#N, to-chk=LEFT/TOTAL)` on the last.
pub fn progress_line(
    bytes: u64,
    size: u64,
    rate_per_sec: f64,
    time: Duration,
    h: u8,
    tail: Option<(u64, u64, u64, bool)>,
) -> String {
    let pct = if bytes >= size || size == 0 {
        100
    } else {
        (100.0 * bytes as f64 / size as f64) as u64
    };
    let mut rate = rate_per_sec / 1024.0;
    let units = if rate > 1024.0 * 1024.0 {
        rate /= 1024.0 * 1024.0;
        "GB/s"
    } else if rate > 1024.0 {
        rate /= 1024.0;
        "MB/s"
    } else {
        "kB/s"
    };
    let t = time.as_secs();
    let clock = if t > 9999 * 3600 {
        "  ??:??:??".to_string()
    } else {
        format!("{:4}:{:02}:{:02}", t / 3600, (t / 60) % 60, t % 60)
    };
    let eol = match tail {
        Some((xfr, left, total, done)) => format!(
            " (xfr#{xfr}, {}-chk={left}/{total})",
            if done { "to" } else { "ir" }
        ),
        None => "  ".to_string(),
    };
    format!(
        "{:>15} {pct:3}% {rate:7.2}{units} {clock}{eol}",
        human(bytes, h)
    )
}

/// The last line rsync writes to its log file: `sent N bytes  received N bytes  total size N`.
pub fn log_summary(r: &Report) -> String {
    format!(
        "sent {} bytes  received 0 bytes  total size {}",
        sent(r),
        total_size(r)
    )
}

/// rsync's log-file line prefix: `YYYY/MM/DD HH:MM:SS [PID] `, local time.
pub fn log_prefix(now: chrono::DateTime<chrono::Local>, pid: u32) -> String {
    format!("{} [{pid}] ", now.format("%Y/%m/%d %H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_rsync_prints_them() {
        assert_eq!(comma(0, 1), "0");
        assert_eq!(comma(123, 1), "123");
        assert_eq!(comma(1234, 1), "1,234");
        assert_eq!(comma(123_463, 1), "123,463");
        assert_eq!(comma(1_234_567, 1), "1,234,567");
        assert_eq!(human(123_463, 3), "120.57K");
        assert_eq!(human(123_760, 2), "123.76K");
        assert_eq!(human(999, 2), "999");
        assert_eq!(human(5_000_000, 2), "5.00M");
        assert_eq!(human_f(247_740.0, 2, 2), "247.74K");
        assert_eq!(human_f(492.0, 1, 2), "492.00");
        assert_eq!(human_f(1088.5, 1, 2), "1,088.50");
    }

    #[test]
    fn type_breakdown_lists_nonzero_types() {
        let t = TypeCounts([2, 3, 1, 0, 1]);
        assert_eq!(t.render(1), "7 (reg: 2, dir: 3, link: 1, special: 1)");
        assert_eq!(TypeCounts::default().render(1), "0");
    }

    #[test]
    fn progress_line_layout() {
        let l = progress_line(
            123_462,
            123_462,
            117.74 * 1024.0 * 1024.0,
            Duration::ZERO,
            1,
            Some((2, 0, 7, true)),
        );
        assert_eq!(
            l,
            "        123,462 100%  117.74MB/s    0:00:00 (xfr#2, to-chk=0/7)"
        );
    }
}
