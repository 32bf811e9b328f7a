//! Deterministic workload trees: every byte, size, name and mtime comes from a seeded
//! generator, so two runs of the harness measure the same data.

use std::fs::{self, File, FileTimes};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use rayon::prelude::*;

/// The mtime base of generated files (2024-01-01), plus a per-file offset with nanoseconds.
const EPOCH: u64 = 1_704_067_200;

fn mtime(seed: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(EPOCH + seed % 10_000_000, (seed % 999_999_937) as u32)
}

/// Writes `data` to `path` and gives it the mtime derived from `stamp`.
pub fn write_file(path: &Path, data: &[u8], stamp: u64) -> Result<()> {
    let mut f = File::create(path).with_context(|| format!("create {}", path.display()))?;
    f.write_all(data)
        .with_context(|| format!("write {}", path.display()))?;
    f.set_times(FileTimes::new().set_modified(mtime(stamp)))
        .with_context(|| format!("set mtime of {}", path.display()))?;
    Ok(())
}

fn random_bytes(rng: &mut fastrand::Rng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    v
}

/// The leaf directory of file `i` in a tree of `dirs` directories: two levels, 32 wide at the
/// top.
fn dir_of(root: &Path, d: usize) -> PathBuf {
    root.join(format!("t{:03}", d / 32))
        .join(format!("s{:02}", d % 32))
}

/// Workload 1's tree: `files` files of 0 to 8 KiB spread over `dirs` leaf directories.
pub fn small_files(root: &Path, files: usize, dirs: usize, seed: u64) -> Result<()> {
    small_files_sized(root, files, dirs, seed, 8192)
}

/// Like [`small_files`], with files of 0 to `max_len` bytes (0: all empty).
pub fn small_files_sized(
    root: &Path,
    files: usize,
    dirs: usize,
    seed: u64,
    max_len: usize,
) -> Result<()> {
    for d in 0..dirs {
        fs::create_dir_all(dir_of(root, d))?;
    }
    (0..dirs).into_par_iter().try_for_each(|d| -> Result<()> {
        let mut rng = fastrand::Rng::with_seed(seed ^ (d as u64).wrapping_mul(0x9e37_79b9));
        let dir = dir_of(root, d);
        for i in (d..files).step_by(dirs) {
            let len = rng.usize(0..=max_len);
            write_file(
                &dir.join(format!("f{i:06}")),
                &random_bytes(&mut rng, len),
                i as u64,
            )?;
        }
        Ok(())
    })
}

/// Workload 3's edits on a copy of workload 1's tree: 1% of the files rewritten (content, size
/// and mtime), 1% new files, 1% deleted.
pub fn mutate(root: &Path, files: usize, dirs: usize, seed: u64) -> Result<()> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let pct = (files / 100).max(1);
    let mut order: Vec<usize> = (0..files).collect();
    rng.shuffle(&mut order);
    for &i in &order[..pct] {
        let len = rng.usize(0..=8192);
        let path = dir_of(root, i % dirs).join(format!("f{i:06}"));
        write_file(&path, &random_bytes(&mut rng, len), i as u64 + 77)?;
    }
    for &i in &order[pct..2 * pct] {
        let path = dir_of(root, i % dirs).join(format!("f{i:06}"));
        fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
    }
    for k in 0..pct {
        let i = files + k;
        let len = rng.usize(0..=8192);
        let path = dir_of(root, i % dirs).join(format!("n{i:06}"));
        write_file(&path, &random_bytes(&mut rng, len), i as u64)?;
    }
    Ok(())
}

/// The shape of workload 4.
#[derive(Debug, Clone, Copy)]
pub struct BigFiles {
    /// Files with 1% of their 4 KiB blocks changed in place.
    pub in_place: usize,
    /// Size of every file.
    pub size: usize,
}

/// Workload 4: old versions under `old_*`, new ones under `new_*`; the in-place changed files
/// go to `*_in`, the appended and the inserted-into file to `*_sh`. Returns the total size of
/// the in-place changed files and of all changed files (new sizes).
pub fn big_files(
    old_in: &Path,
    new_in: &Path,
    old_sh: &Path,
    new_sh: &Path,
    spec: BigFiles,
    seed: u64,
) -> Result<(u64, u64)> {
    for d in [old_in, new_in, old_sh, new_sh] {
        fs::create_dir_all(d)?;
    }
    let n = spec.in_place + 2;
    (0..n).into_par_iter().try_for_each(|k| -> Result<()> {
        let mut rng = fastrand::Rng::with_seed(seed + k as u64);
        let base = random_bytes(&mut rng, spec.size);
        let name = format!("big{k:02}");
        let (old, new) = if k < spec.in_place {
            (old_in, new_in)
        } else {
            (old_sh, new_sh)
        };
        write_file(&old.join(&name), &base, k as u64)?;
        let mut data = base;
        if k < spec.in_place {
            let blocks = spec.size / 4096;
            for _ in 0..(blocks / 100).max(1) {
                let b = rng.usize(..blocks);
                rng.fill(&mut data[b * 4096..b * 4096 + 4096]);
            }
        } else if k == spec.in_place {
            data.extend(random_bytes(&mut rng, 1 << 20));
        } else {
            let mid = spec.size / 2;
            data.splice(mid..mid, random_bytes(&mut rng, 64 << 10));
        }
        write_file(&new.join(&name), &data, k as u64 + 1000)
    })?;
    let in_place = (spec.in_place * spec.size) as u64;
    let changed = in_place + 2 * spec.size as u64 + (1 << 20) + (64 << 10);
    Ok((in_place, changed))
}

/// Workload 6: `dirs` directories in a tree of fan-out 3 (about 9 levels for 20,000), plus a
/// chain 40 levels deep every 1,000 directories, with 0 to 3 files of up to 1 KiB each.
pub fn deep_wide(root: &Path, dirs: usize, seed: u64) -> Result<()> {
    let mut paths: Vec<PathBuf> = Vec::with_capacity(dirs);
    paths.push(root.to_owned());
    let mut i = 1;
    while paths.len() < dirs {
        let parent = paths[(i - 1) / 3].clone();
        let p = parent.join(format!("d{i}"));
        paths.push(p.clone());
        if i % 1000 == 0 {
            let mut deep = p;
            for level in 0..40 {
                if paths.len() >= dirs {
                    break;
                }
                deep = deep.join(format!("deep{level}"));
                paths.push(deep.clone());
            }
        }
        i += 1;
    }
    for p in &paths {
        fs::create_dir_all(p)?;
    }
    paths
        .par_iter()
        .enumerate()
        .try_for_each(|(k, p)| -> Result<()> {
            let mut rng = fastrand::Rng::with_seed(seed ^ k as u64);
            for f in 0..rng.usize(0..=3) {
                let len = rng.usize(0..=1024);
                write_file(
                    &p.join(format!("f{f}")),
                    &random_bytes(&mut rng, len),
                    k as u64,
                )?;
            }
            Ok(())
        })
}
