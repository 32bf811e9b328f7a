//! The Markdown report: machine, load, method notes, the table of medians, system calls per
//! file, the memory workload, and the targets of issues 3 and 14 checked against them.

use std::fmt::Write;

use crate::Scale;
use crate::measure::median;
use crate::workloads::{Bench, Row};

/// `/proc/loadavg`'s first three fields.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn mem_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| format!("{:.1} GiB", kib as f64 / (1 << 20) as f64))
        .unwrap_or_default()
}

fn seconds(r: &Row) -> Vec<f64> {
    r.samples.iter().map(|s| s.seconds).collect()
}

/// The median time of the row whose workload and tool start with the given prefixes.
fn med(rows: &[Row], wl: &str, tool: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.workload.starts_with(wl) && r.tool == tool && !r.samples.is_empty())
        .map(|r| median(&seconds(r)))
}

fn rsync_of<'a>(rows: &'a [Row], wl: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.workload == wl && r.tool.starts_with("rsync"))
}

pub fn markdown(b: &Bench, scale: Scale, total: f64) -> String {
    let mut o = String::new();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        o,
        "Command: `{}` (scale {}, {} rounds, {} for workload 4; {total:.0} s in all)\n",
        b.command,
        format!("{scale:?}").to_lowercase(),
        b.sizes.rounds,
        b.sizes.big_rounds
    );
    let _ = writeln!(
        o,
        "Machine: {cores} cores, {} RAM, kernel {}; load average before {}, after {}\n",
        mem_total(),
        kernel.trim(),
        b.load_before,
        loadavg()
    );
    for n in &b.notes {
        let _ = writeln!(o, "- {n}");
    }
    let _ = writeln!(
        o,
        "\n| workload | tool | median s | min..max s | rsync / tool | + syncfs s | max RSS MiB | write_bytes MiB | device MiB | device / changed |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &b.rows {
        if r.samples.is_empty() {
            continue;
        }
        let t = seconds(r);
        let m = median(&t);
        let (lo, hi) = t
            .iter()
            .fold((f64::MAX, 0f64), |(a, z), &x| (a.min(x), z.max(x)));
        let ratio = rsync_of(&b.rows, &r.workload)
            .filter(|x| !x.samples.is_empty())
            .map_or("-".into(), |x| format!("{:.2}", median(&seconds(x)) / m));
        let durable = median(
            &r.samples
                .iter()
                .map(|s| s.seconds + s.flush)
                .collect::<Vec<_>>(),
        );
        let rss = r.samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0);
        let mut wr: Vec<f64> = r.samples.iter().map(|s| s.written as f64).collect();
        wr.retain(|_| r.tool != "lstat floor");
        let written = median(&wr);
        let (rss_s, wr_s) = if r.tool == "lstat floor" {
            ("-".to_string(), "-".to_string())
        } else {
            (
                format!("{:.1}", rss as f64 / 1024.0),
                format!("{:.1}", written / (1 << 20) as f64),
            )
        };
        let dev = dev_written(r);
        let dev_s = dev.map_or("-".into(), |d| format!("{:.1}", d / (1 << 20) as f64));
        let share = match (r.changed_bytes, dev) {
            (Some(c), Some(d)) => format!("{:.1}%", 100.0 * d / c as f64),
            _ => "-".into(),
        };
        let _ = writeln!(
            o,
            "| {} | {} | {m:.3} | {lo:.3}..{hi:.3} | {ratio} | {durable:.3} | {rss_s} | {wr_s} | {dev_s} | {share} |",
            r.workload, r.tool
        );
    }
    syscalls(b, &mut o);
    memory(&b.rows, &mut o);
    o.push_str("\nTargets of issue 3 (opsync's median as a fraction of rsync's):\n\n");
    targets(&b.rows, &mut o);
    o.push_str("\nTargets of issue 14:\n\n");
    targets14(b, &mut o);
    if let Some(r) = b
        .rows
        .iter()
        .find(|r| r.workload.starts_with("2 ") && r.tool == "opsync" && !r.samples.is_empty())
    {
        let rss = r.samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0) * 1024;
        let entries = (b.sizes.files + b.sizes.dirs) as f64;
        let _ = writeln!(
            o,
            "- memory, 2 no-change: opsync's peak RSS {:.1} MiB for {} entries = {:.0} bytes per \
             entry, fixed overhead included (the target, 250 bytes per file, is for 1,000,000 files)",
            rss as f64 / (1 << 20) as f64,
            entries,
            rss as f64 / entries
        );
    }
    o
}

/// System calls per new file and per unchanged entry, from `strace -f -c`.
fn syscalls(b: &Bench, o: &mut String) {
    if b.syscalls.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\nSystem calls (`strace -f -c`, one untimed run each; first copy: per new file, \
         no-change: per entry of SRC below its root):\n"
    );
    let _ = writeln!(o, "| case | tool | calls | units | per unit | command |");
    let _ = writeln!(o, "|---|---|---:|---:|---:|---|");
    for s in &b.syscalls {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {:.2} | `{}` |",
            s.case,
            s.tool,
            s.calls,
            s.units,
            s.calls as f64 / s.units as f64,
            s.command
        );
    }
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

/// The memory workload: peak RSS per tool and tree size.
fn memory(rows: &[Row], o: &mut String) {
    let mem: Vec<&Row> = rows
        .iter()
        .filter(|r| r.workload.starts_with("m ") && !r.samples.is_empty())
        .collect();
    if mem.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\nMemory, no-change runs (MB = 10^6 bytes; max per process: `wait4`'s `ru_maxrss`, the \
         largest of the rounds; summed: every process's `VmHWM`, sampled from `/proc` every 2 ms, \
         added up):\n"
    );
    let _ = writeln!(
        o,
        "| workload | tool | median s | peak RSS, max per process MB | summed over processes MB | processes |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|");
    for r in mem {
        let rss = r.samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0);
        let sum = r
            .samples
            .iter()
            .filter_map(|s| s.sum_rss_kib)
            .max()
            .unwrap_or(0);
        let procs = r.samples.iter().map(|s| s.procs).max().unwrap_or(0);
        let _ = writeln!(
            o,
            "| {} | {} | {:.3} | {:.1} | {:.1} | {procs} |",
            r.workload,
            r.tool,
            median(&seconds(r)),
            mb(rss),
            mb(sum)
        );
    }
}

fn per_unit(b: &Bench, case: &str, tool: &str) -> Option<f64> {
    b.syscalls
        .iter()
        .find(|s| s.case == case && s.tool == tool)
        .map(|s| s.calls as f64 / s.units as f64)
}

fn targets14(b: &Bench, o: &mut String) {
    let rows = &b.rows;
    let frac = |wl: &str, tool: &str, base: &str| Some(med(rows, wl, tool)? / med(rows, wl, base)?);
    check(
        o,
        "1 first copy vs create floor",
        frac("1 ", "opsync", "create floor"),
        1.2,
    );
    check(
        o,
        "syscalls per new file (first copy)",
        per_unit(b, "first copy", "opsync"),
        10.0,
    );
    check(
        o,
        "syscalls per unchanged entry (no-change)",
        per_unit(b, "no-change", "opsync"),
        2.0,
    );
    let peaks: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r.workload.starts_with("m ") && r.tool == "opsync" && !r.samples.is_empty())
        .map(|r| {
            let rss = r.samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0);
            (r.workload.clone(), mb(rss))
        })
        .collect();
    for (w, p) in &peaks {
        check(o, &format!("peak RSS MB, {w}"), Some(*p), 32.0);
    }
    if peaks.len() > 1 {
        let lo = peaks.iter().map(|p| p.1).fold(f64::MAX, f64::min);
        let hi = peaks.iter().map(|p| p.1).fold(0f64, f64::max);
        check(
            o,
            "peak RSS flat: largest / smallest over the tree sizes",
            Some(hi / lo),
            1.1,
        );
    }
    check(
        o,
        "5 --checksum no-change vs rsync -c, other core busy",
        frac("5b ", "opsync -c", "rsync -a --delete -c"),
        0.5,
    );
}

/// The median of the bytes written to DST's device, when known.
fn dev_written(r: &Row) -> Option<f64> {
    let v: Vec<f64> = r
        .samples
        .iter()
        .filter_map(|s| s.dev_written.map(|d| d as f64))
        .collect();
    (!v.is_empty()).then(|| median(&v))
}

fn check(o: &mut String, what: &str, value: Option<f64>, limit: f64) {
    match value {
        None => {
            let _ = writeln!(o, "- {what}: not measured");
        }
        Some(v) => {
            let verdict = if v <= limit {
                "met".to_string()
            } else {
                format!("MISSED by {:.0}%", 100.0 * (v / limit - 1.0))
            };
            let _ = writeln!(o, "- {what}: {v:.2} (limit {limit}) {verdict}");
        }
    }
}

fn targets(rows: &[Row], o: &mut String) {
    let frac = |wl: &str, tool: &str, base: &str| Some(med(rows, wl, tool)? / med(rows, wl, base)?);
    let rs = "rsync -a --delete";
    check(o, "1 first copy vs rsync", frac("1 ", "opsync", rs), 0.5);
    check(
        o,
        "1 first copy vs cp -a",
        frac("1 ", "opsync", "cp -a"),
        1.0,
    );
    check(o, "2 no-change vs rsync", frac("2 ", "opsync", rs), 0.6);
    check(
        o,
        "2 no-change vs lstat floor",
        frac("2 ", "opsync", "lstat floor"),
        1.3,
    );
    check(o, "3 1% changed vs rsync", frac("3 ", "opsync", rs), 0.5);
    for fs in ["ext4", "xfs"] {
        let wl = "4 large files (";
        let row = rows
            .iter()
            .find(|r| r.workload.starts_with(wl) && r.workload.ends_with(&format!("{fs})")));
        if let Some(r) = row {
            let f = frac(&r.workload, "opsync", rs);
            check(o, &format!("4 large files, DST {fs}, vs rsync"), f, 0.5);
        }
        let inplace = rows.iter().find(|r| {
            r.workload == format!("4 in-place files only (DST {fs})") && !r.samples.is_empty()
        });
        if let Some(r) = inplace {
            let share = r
                .changed_bytes
                .zip(dev_written(r))
                .map(|(c, w)| w / c as f64);
            check(
                o,
                &format!(
                    "4 bytes written to DST's device for in-place changes, DST {fs} (share of their size)"
                ),
                share,
                0.05,
            );
        }
    }
    check(
        o,
        "5 --checksum no-change vs rsync -c",
        frac("5 ", "opsync -c", "rsync -a --delete -c"),
        0.5,
    );
    check(
        o,
        "verify vs rsync -a -c -n",
        frac("verify", "opsync verify", "rsync -a -c -n --delete"),
        1.0,
    );
}
