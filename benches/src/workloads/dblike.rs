//! Workload 7 (issue 10): the nightly job's pass 2 on a database-like tree, the time production
//! stays paused. Eight table segments of the workload-4 file size (2 GiB in all at the large
//! scale, as PostgreSQL's 1 GiB segments of a 2 GB database), four WAL segments of a sixteenth
//! of that and a `pg_control`; since the last night 1% of the segments' 8 KiB pages were
//! rewritten at random places, one WAL segment was written anew and `pg_control` changed. Each
//! run starts from a fresh copy of last night's dev copy.
//!
//! Rows: the pass 2 opsync's nightly job runs by default (`--inplace --verify=written`), the
//! atomic whole-file copy with the same verification, `--inplace` alone, rsync with and
//! without `--inplace`, and a floor: writing the changed pages and files into the dev copy
//! with `pwrite` and nothing else (no reading, no comparing, no verification). The pause target
//! of issue 10 is the floor plus 0.5 s.

use std::fs::{self, File, FileTimes};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use rayon::prelude::*;

use super::{Bench, Row, Tool};
use crate::area::{Area, FsKind};
use crate::measure::{self, Sample};
use crate::trees;

/// A database page.
const PAGE: u64 = 8192;

/// The tools of workload 7.
const TOOLS: [Tool; 5] = [
    Tool::Opsync(&["--inplace", "--verify=written"]),
    Tool::Opsync(&["--verify=written"]),
    Tool::Opsync(&["--inplace"]),
    Tool::Rsync(&["--delete"]),
    Tool::Rsync(&["--delete", "--inplace"]),
];

/// What changed since the last night: `(path below the tree, offset, length)`, each written
/// with bytes derived from the seed.
struct Changes {
    writes: Vec<(String, u64, u64)>,
    bytes: u64,
}

impl Changes {
    fn new(segments: usize, segment: u64, wal: u64, seed: u64) -> Changes {
        let mut rng = fastrand::Rng::with_seed(seed);
        let pages = segment / PAGE;
        let mut writes = Vec::new();
        for s in 0..segments {
            let mut picked: Vec<u64> = (0..(pages / 100).max(1))
                .map(|_| rng.u64(..pages))
                .collect();
            picked.sort_unstable();
            picked.dedup();
            for p in picked {
                writes.push((format!("base/16384.{s}"), p * PAGE, PAGE));
            }
        }
        writes.push(("pg_wal/000000010000000000000003".into(), 0, wal));
        writes.push(("global/pg_control".into(), 0, PAGE));
        let bytes = writes.iter().map(|w| w.2).sum();
        Changes { writes, bytes }
    }

    /// Writes the changes into the tree at `root` (files exist), then gives every changed file
    /// the new mtime, as the database's writes would.
    fn apply(&self, root: &Path, seed: u64) -> Result<()> {
        let mut by_file: Vec<(&str, Vec<(u64, u64)>)> = Vec::new();
        for (p, off, len) in &self.writes {
            match by_file.last_mut() {
                Some((q, v)) if q == p => v.push((*off, *len)),
                _ => by_file.push((p, vec![(*off, *len)])),
            }
        }
        by_file
            .par_iter()
            .enumerate()
            .try_for_each(|(i, (p, writes))| -> Result<()> {
                let path = root.join(p);
                let f = File::options()
                    .write(true)
                    .open(&path)
                    .with_context(|| format!("open {}", path.display()))?;
                let mut rng = fastrand::Rng::with_seed(seed ^ i as u64);
                let mut buf = Vec::new();
                for &(off, len) in writes {
                    buf.resize(len as usize, 0);
                    rng.fill(&mut buf);
                    f.write_all_at(&buf, off)?;
                }
                let t = SystemTime::UNIX_EPOCH + Duration::new(1_900_000_000 + i as u64, 7);
                f.set_times(FileTimes::new().set_modified(t))?;
                Ok(())
            })
    }
}

/// Last night's tree: the segments, the WAL and `pg_control`, random content.
fn old_tree(root: &Path, segments: usize, segment: u64, wal: u64) -> Result<()> {
    for d in ["base", "pg_wal", "global"] {
        fs::create_dir_all(root.join(d))?;
    }
    let mut files: Vec<(String, u64)> = (0..segments)
        .map(|s| (format!("base/16384.{s}"), segment))
        .collect();
    files.extend((0..4).map(|w| (format!("pg_wal/00000001000000000000000{w}"), wal)));
    files.push(("global/pg_control".into(), PAGE));
    files
        .par_iter()
        .enumerate()
        .try_for_each(|(i, (p, len))| -> Result<()> {
            let mut rng = fastrand::Rng::with_seed(70 + i as u64);
            let mut data = vec![0u8; *len as usize];
            rng.fill(&mut data);
            trees::write_file(&root.join(p), &data, 700 + i as u64)
        })
}

impl Bench {
    /// Workload 7: pass 2 of the nightly job on a database-like tree (see the module docs).
    pub(super) fn database_like(&mut self) -> Result<()> {
        let s = self.sizes;
        let segments = s.big.in_place;
        let segment = s.big.size as u64;
        let wal = (segment / 16).max(1 << 20);
        let total = segments as u64 * segment + 4 * wal + PAGE;
        // SRC, last night's copy, one dev copy at a time and a whole-file copy's temporary file.
        let area = Area::new(
            &self.work,
            "db-like",
            FsKind::Ext4,
            total * 3 + segment * 2,
            1000,
        )?;
        self.notes.push(format!("workload 7: {}", area.label));
        let root = area.dir.clone();
        let (src, old) = (root.join("src"), root.join("old"));
        old_tree(&old, segments, segment, wal)?;
        measure::prepare_copy(&old, &src, false)?;
        let changes = Changes::new(segments, segment, wal, 77);
        changes.apply(&src, 77)?;
        let w = format!(
            "7 database-like pass 2 ({} MiB, {:.1} MiB changed)",
            total >> 20,
            changes.bytes as f64 / (1 << 20) as f64
        );
        let dev = root.join("dev");
        self.rounds(
            &w,
            &area,
            &src,
            &TOOLS,
            s.big_rounds,
            Some(changes.bytes),
            |_, _| {
                measure::prepare_copy(&old, &dev, false)?;
                Ok(dev.clone())
            },
            |d| Ok(fs::remove_dir_all(d)?),
        )?;
        // The floor: the changed bytes written into the dev copy, nothing else.
        let mut row = Row {
            workload: w,
            tool: "pwrite floor".into(),
            samples: Vec::new(),
            changed_bytes: Some(changes.bytes),
        };
        for r in 0..s.big_rounds {
            measure::prepare_copy(&old, &dev, false)?;
            measure::syncfs(&area.dir)?;
            measure::warm(&[&src, &dev])?;
            let dev_before = area.sectors_written();
            let t = Instant::now();
            changes.apply(&dev, 77)?;
            let seconds = t.elapsed().as_secs_f64();
            let t = Instant::now();
            measure::syncfs(&area.dir)?;
            let flush = t.elapsed().as_secs_f64();
            let dev_written = area
                .sectors_written()
                .zip(dev_before)
                .map(|(a, b)| a.saturating_sub(b) * 512);
            eprintln!(
                "benches: {:<28} round {r} {:<28} {seconds:>8.3} s",
                row.workload, row.tool
            );
            row.samples.push(Sample {
                seconds,
                flush,
                dev_written,
                ..Sample::default()
            });
            fs::remove_dir_all(&dev)?;
        }
        self.rows.push(row);
        Ok(())
    }
}
