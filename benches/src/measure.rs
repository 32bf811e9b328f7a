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

/// Runs `cmd` once under GNU time; the exit code must be 0.
pub fn run(cmd: &[String], scratch: &Path) -> Result<Sample> {
    let out = scratch.join("time.out");
    let started = Instant::now();
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M %O")
        .arg("-o")
        .arg(&out)
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .context("start /usr/bin/time (Debian package `time`)")?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{} exited with {status}", cmd.join(" "));
    }
    let text = fs::read_to_string(&out)?;
    let mut it = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .map(|x| x.parse::<u64>().unwrap_or(0));
    let max_rss_kib = it.next().unwrap_or(0);
    let written = it.next().unwrap_or(0) * 512;
    Ok(Sample {
        seconds,
        max_rss_kib,
        written,
        flush: 0.0,
        dev_written: None,
    })
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
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
