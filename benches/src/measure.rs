//! Running one tool once: flush and warm the page cache, start the child under GNU time (for
//! its peak RSS and `ru_oublock`, which Linux fills from the child's `write_bytes` I/O
//! accounting in 512-byte units), and time it from spawn to exit.

use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

/// One timed run. `written` is the child's `write_bytes` (bytes of page cache it dirtied,
/// counted per folio: one 4 KiB write into a large folio counts the whole folio).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub seconds: f64,
    pub max_rss_kib: u64,
    pub written: u64,
    /// The `syncfs` of DST's filesystem right after the run (writeback of what it left dirty).
    pub flush: f64,
    /// Bytes the DST filesystem wrote to its device during the run and its `syncfs`.
    pub dev_written: Option<u64>,
    /// The peak RSS of every process of the run summed (sampled from `/proc`), if sampled.
    pub sum_rss_kib: Option<u64>,
    /// The processes seen while sampling.
    pub procs: usize,
}

/// Flushes the dirty pages of the filesystem holding `path` (`syncfs`), so the next run does
/// not pay for the previous one's writeback.
pub fn syncfs(path: &Path) -> Result<()> {
    let st = Command::new("sync").arg("-f").arg(path).status()?;
    if !st.success() {
        bail!("sync -f {} failed", path.display());
    }
    Ok(())
}

/// Reads every file of the trees (and stats every entry), so the page cache holds both trees
/// before a timed run, whichever tool ran before.
pub fn warm(trees: &[&Path]) -> Result<()> {
    trees.par_iter().try_for_each(|t| warm_dir(t))
}

fn warm_dir(dir: &Path) -> Result<()> {
    let entries: Vec<_> = match fs::read_dir(dir) {
        Ok(rd) => rd.collect::<Result<_, _>>()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
    };
    entries.par_iter().try_for_each(|e| -> Result<()> {
        let ft = e.file_type()?;
        let p = e.path();
        if ft.is_dir() {
            warm_dir(&p)
        } else if ft.is_file() {
            let mut buf = vec![0u8; 1 << 20];
            let mut f = fs::File::open(&p)?;
            while f.read(&mut buf)? > 0 {}
            Ok(())
        } else {
            Ok(())
        }
    })
}

/// `cmd` under GNU time, its peak RSS and `ru_oublock` written to `out` (stdin and stdout
/// closed).
fn under_time(cmd: &[String], out: &Path) -> Command {
    let mut c = Command::new("/usr/bin/time");
    c.args(["-f", "%M %O", "-o"])
        .arg(out)
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    c
}

/// Runs `cmd` once under GNU time; the exit code must be 0.
pub fn run(cmd: &[String], scratch: &Path) -> Result<Sample> {
    let out = scratch.join("time.out");
    let started = Instant::now();
    let status = under_time(cmd, &out)
        .status()
        .context("start /usr/bin/time (Debian package `time`)")?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{} exited with {status}", cmd.join(" "));
    }
    Ok(parse_time(&fs::read_to_string(&out)?, seconds))
}

/// A sample from GNU time's `%M %O` line and the wall time.
fn parse_time(text: &str, seconds: f64) -> Sample {
    let mut it = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .map(|x| x.parse::<u64>().unwrap_or(0));
    let max_rss_kib = it.next().unwrap_or(0);
    let written = it.next().unwrap_or(0) * 512;
    Sample {
        seconds,
        max_rss_kib,
        written,
        ..Sample::default()
    }
}

/// The metadata floor: a parallel walk of both trees that reads every directory and `lstat`s
/// every entry relative to its directory's handle (`fstatat` with `AT_SYMLINK_NOFOLLOW`, the
/// cheapest form), one rayon task per directory and per entry. Returns the entries seen.
pub fn lstat_walk(trees: &[&Path]) -> Result<u64> {
    Ok(trees
        .par_iter()
        .map(|t| -> Result<u64> {
            let fd = rfs::open(*t, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
            walk(fd)
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .sum())
}

fn walk(dir: OwnedFd) -> Result<u64> {
    let mut names: Vec<CString> = Vec::new();
    for e in rfs::Dir::read_from(&dir)? {
        let e = e?;
        let n = e.file_name();
        if n != c"." && n != c".." {
            names.push(n.to_owned());
        }
    }
    names
        .par_iter()
        .map(|n| -> Result<u64> {
            let st = rfs::statat(&dir, n.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)?;
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
                Ok(1 + walk(rfs::openat(&dir, n.as_c_str(), flags, Mode::empty())?)?)
            } else {
                Ok(1)
            }
        })
        .sum()
}

/// The bytes of the regular files below `root` (symlinks not followed).
pub fn tree_bytes(root: &Path) -> Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(root)? {
        let e = e?;
        let m = e.metadata()?;
        if m.is_dir() {
            n += tree_bytes(&e.path())?;
        } else if m.is_file() {
            n += m.len();
        }
    }
    Ok(n)
}

/// Runs `cmd` once like [`run`], and while it runs samples `/proc` every few milliseconds for
/// the peak RSS (`VmHWM`) of every process under it (the GNU time process excluded): their sum
/// (each process's last seen peak, summed) and their count go into the sample. The max per
/// process stays the exact `ru_maxrss` of `wait4`.
pub fn run_sampled(cmd: &[String], scratch: &Path) -> Result<Sample> {
    let out = scratch.join("time.out");
    let started = Instant::now();
    let mut child = under_time(cmd, &out)
        .spawn()
        .context("start /usr/bin/time (Debian package `time`)")?;
    let mut peaks: std::collections::BTreeMap<u32, u64> = Default::default();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        for pid in descendants(child.id()) {
            if let Some(hwm) = vm_hwm_kib(pid) {
                let e = peaks.entry(pid).or_default();
                *e = (*e).max(hwm);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{} exited with {status}", cmd.join(" "));
    }
    let mut s = parse_time(&fs::read_to_string(&out)?, seconds);
    s.sum_rss_kib = Some(peaks.values().sum());
    s.procs = peaks.len();
    Ok(s)
}

/// Every process below `pid` (`/proc/PID/task/TID/children`), not `pid` itself.
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Ok(text) = fs::read_to_string(t.path().join("children")) else {
                continue;
            };
            for c in text.split_whitespace().filter_map(|x| x.parse().ok()) {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `cmd` once under `strace -f -c` (all threads and processes) and returns the total
/// number of system calls it made.
pub fn syscalls(cmd: &[String], scratch: &Path) -> Result<u64> {
    let out = scratch.join("strace.out");
    let status = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&out)
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .context("start strace (Debian package strace)")?;
    if !status.success() {
        bail!("strace -f -c {} exited with {status}", cmd.join(" "));
    }
    let text = fs::read_to_string(&out)?;
    parse_strace_total(&text)
        .with_context(|| format!("no total line in strace -c's output:\n{text}"))
}

/// The calls column of `strace -c`'s `total` line.
fn parse_strace_total(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_end().ends_with("total"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The creation floor (`benches create-floor SRC DST`, run as a child like the tools): the
/// directories of SRC made again under DST and every regular file's data copied into a new
/// file (`openat` with `O_CREAT|O_EXCL`, `copy_file_range` until it returns 0, `close`), on
/// rayon's default pool (one thread per core, as opsync), one task per directory and per file.
/// No metadata (owners, modes, times), no symlinks, no temporary names, no rename.
///
/// For the explanation of the gap to opsync, `BENCHES_FLOOR_ADD` (comma-separated) adds what
/// opsync does per file on top: `lstat` (the scan's `lstat` of SRC's file), `temp` (create
/// under a temporary name and `renameat` it into place), `fstat` (SRC's `fstat` after the copy,
/// opsync's change detection), `utime` (`futimens` of the mtime).
pub fn create_floor(src: &Path, dst: &Path) -> Result<u64> {
    let add = std::env::var("BENCHES_FLOOR_ADD").unwrap_or_default();
    let steps = Steps {
        lstat: add.contains("lstat"),
        temp: add.contains("temp"),
        fstat: add.contains("fstat"),
        utime: add.contains("utime"),
    };
    let s = rfs::open(src, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
    fs::create_dir(dst).with_context(|| format!("create {}", dst.display()))?;
    let d = rfs::open(dst, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
    create_dir(s, d, steps)
}

#[derive(Debug, Clone, Copy)]
struct Steps {
    lstat: bool,
    temp: bool,
    fstat: bool,
    utime: bool,
}

fn create_file(src: &OwnedFd, dst: &OwnedFd, n: &std::ffi::CStr, steps: Steps) -> Result<()> {
    if steps.lstat {
        rfs::statat(src, n, AtFlags::SYMLINK_NOFOLLOW)?;
    }
    let from = rfs::openat(src, n, OFlags::RDONLY, Mode::empty())?;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL;
    let mut tmp = b".".to_vec();
    tmp.extend_from_slice(n.to_bytes());
    tmp.extend_from_slice(b".tmp");
    let tmp = CString::new(tmp)?;
    let target = if steps.temp { tmp.as_c_str() } else { n };
    let to = rfs::openat(dst, target, flags, Mode::from_raw_mode(0o644))?;
    while rfs::copy_file_range(&from, None, &to, None, 1 << 30)? > 0 {}
    if steps.fstat {
        rfs::fstat(&from)?;
    }
    if steps.utime {
        let t = rfs::Timespec {
            tv_sec: 1_704_067_200,
            tv_nsec: 0,
        };
        rfs::futimens(
            &to,
            &rfs::Timestamps {
                last_access: t,
                last_modification: t,
            },
        )?;
    }
    if steps.temp {
        rfs::renameat(dst, tmp.as_c_str(), dst, n)?;
    }
    Ok(())
}

fn create_dir(src: OwnedFd, dst: OwnedFd, steps: Steps) -> Result<u64> {
    let mut names: Vec<(CString, FileType)> = Vec::new();
    for e in rfs::Dir::read_from(&src)? {
        let e = e?;
        let n = e.file_name();
        if n != c"." && n != c".." {
            names.push((n.to_owned(), e.file_type()));
        }
    }
    names
        .par_iter()
        .map(|(n, ft)| -> Result<u64> {
            let n = n.as_c_str();
            match ft {
                FileType::Directory => {
                    rfs::mkdirat(&dst, n, Mode::from_raw_mode(0o755))?;
                    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
                    let s = rfs::openat(&src, n, flags, Mode::empty())?;
                    let d = rfs::openat(&dst, n, flags, Mode::empty())?;
                    Ok(1 + create_dir(s, d, steps)?)
                }
                FileType::RegularFile => {
                    create_file(&src, &dst, n, steps)?;
                    Ok(1)
                }
                _ => Ok(0),
            }
        })
        .sum()
}

/// A busy loop on one core until killed (`benches busy`): the load of workload 5's
/// second half.
pub fn busy() -> ! {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
}

/// The median of `v` (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Copies a tree untimed (preparing a destination): `cp -a`, with `--reflink=always` where the
/// filesystem shares blocks.
pub fn prepare_copy(from: &Path, to: &Path, reflink: bool) -> Result<()> {
    let mut c = Command::new("cp");
    c.arg("-a");
    if reflink {
        c.arg("--reflink=always");
    }
    let st = c.arg(from).arg(to).status()?;
    if !st.success() {
        bail!("cp -a {} {} failed", from.display(), to.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{median, parse_strace_total};

    #[test]
    fn strace_total_line() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n\
            ------ ----------- ----------- --------- --------- ----------------\n\
             60.00    0.000600           3       200         5 newfstatat\n\
            ------ ----------- ----------- --------- --------- ----------------\n\
            100.00    0.001000           2       345         5 total\n";
        assert_eq!(parse_strace_total(text), Some(345));
        assert_eq!(parse_strace_total("100.00 0.1 1 77 total\n"), Some(77));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
