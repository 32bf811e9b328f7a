//! The workloads of issues 3 and 14 and the order of their runs. Every timed run gets the same
//! preparation: `syncfs` of the scratch filesystem (no writeback of an earlier run is pending),
//! then both trees read once (a warm page cache, the same for every tool). Tools alternate:
//! odd rounds run them in reverse order.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::Sizes;
use crate::area::{Area, FsKind};
use crate::measure::{self, Sample};
use crate::trees;

mod dblike;

/// The timed runs of one tool on one workload.
#[derive(Debug, Clone)]
pub struct Row {
    pub workload: String,
    pub tool: String,
    pub samples: Vec<Sample>,
    /// The size the written bytes are compared with (workload 4), if any.
    pub changed_bytes: Option<u64>,
}

/// One `strace -f -c` run: the system calls of a tool on a case, and what they are divided by.
#[derive(Debug, Clone)]
pub struct Syscalls {
    /// `first copy` (per new file) or `no-change` (per unchanged entry of SRC).
    pub case: &'static str,
    pub tool: String,
    pub calls: u64,
    /// New files (first copy) or SRC's entries below its root (no-change).
    pub units: u64,
    pub command: String,
}

pub struct Bench {
    pub opsync: String,
    /// The harness itself, for its child modes (`create-floor`, `busy`).
    pub me: String,
    pub mem_files: Vec<usize>,
    /// The harness's command line, for the report.
    pub command: String,
    pub syscalls: Vec<Syscalls>,
    pub work: PathBuf,
    pub sizes: Sizes,
    pub only: Vec<String>,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    pub load_before: String,
}

/// What runs: a command line built from SRC and DST, or the in-process metadata floor.
#[derive(Debug, Clone)]
enum Tool {
    Opsync(&'static [&'static str]),
    OpsyncVerify,
    Rsync(&'static [&'static str]),
    Cp,
    Floor,
    CreateFloor,
    /// `opsync sync -e SSH SRC opsync-bench@127.0.0.1:DST` (the remote workloads).
    OpsyncSsh,
    /// `rsync -a --delete -e SSH SRC/ opsync-bench@127.0.0.1:DST/`.
    RsyncSsh,
}

impl Tool {
    fn name(&self) -> String {
        match self {
            Tool::Opsync([]) => "opsync".into(),
            Tool::Opsync(a) => format!("opsync {}", a.join(" ")),
            Tool::OpsyncVerify => "opsync verify".into(),
            Tool::Rsync(a) => format!("rsync -a {}", a.join(" ")),
            Tool::Cp => "cp -a".into(),
            Tool::Floor => "lstat floor".into(),
            Tool::CreateFloor => "create floor".into(),
            Tool::OpsyncSsh => "opsync over ssh".into(),
            Tool::RsyncSsh => "rsync -a --delete -e ssh".into(),
        }
    }

    fn short(&self) -> &'static str {
        match self {
            Tool::Opsync(_) | Tool::OpsyncVerify | Tool::OpsyncSsh => "opsync",
            Tool::Rsync(_) | Tool::RsyncSsh => "rsync",
            Tool::Cp => "cp",
            Tool::Floor => "floor",
            Tool::CreateFloor => "create",
        }
    }

    fn command(&self, b: &Bench, src: &Path, dst: &Path) -> Vec<String> {
        let opsync = b.opsync.as_str();
        let (s, d) = (src.display().to_string(), dst.display().to_string());
        let rsh = crate::remote::RSH.get().cloned().unwrap_or_default();
        match self {
            Tool::OpsyncSsh => {
                return [opsync, "sync", "-e", &rsh, "--remote-opsync", opsync, &s]
                    .iter()
                    .map(|x| x.to_string())
                    .chain([crate::remote::remote(dst)])
                    .collect();
            }
            Tool::RsyncSsh => {
                return ["rsync", "-a", "--delete", "-e", &rsh, &format!("{s}/")]
                    .iter()
                    .map(|x| x.to_string())
                    .chain([format!("{}/", crate::remote::remote(dst))])
                    .collect();
            }
            _ => {}
        }
        let mut v: Vec<String> = match self {
            Tool::Opsync(a) => [opsync, "sync"]
                .iter()
                .chain(a.iter())
                .map(|x| x.to_string())
                .collect(),
            Tool::OpsyncVerify => vec![opsync.into(), "verify".into()],
            Tool::Rsync(a) => ["rsync", "-a"]
                .iter()
                .chain(a.iter())
                .map(|x| x.to_string())
                .collect(),
            Tool::Cp => vec!["cp".into(), "-a".into()],
            Tool::Floor | Tool::OpsyncSsh | Tool::RsyncSsh => Vec::new(),
            Tool::CreateFloor => vec![b.me.clone(), "create-floor".into()],
        };
        if matches!(self, Tool::Rsync(_)) {
            v.push(format!("{s}/"));
            v.push(format!("{d}/"));
        } else {
            v.push(s);
            v.push(d);
        }
        v
    }
}

const RSYNC: Tool = Tool::Rsync(&["--delete"]);
const OPSYNC: Tool = Tool::Opsync(&[]);

impl Bench {
    fn wants(&self, w: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == w)
    }

    pub fn run_all(&mut self) -> Result<()> {
        if ["1", "2", "3", "5", "v"].iter().any(|w| self.wants(w)) {
            self.small_files()?;
        }
        if self.wants("4") {
            self.big_files(FsKind::Ext4)?;
            if which_mkfs_xfs() {
                self.big_files(FsKind::Xfs)?;
            } else {
                self.notes
                    .push("workload 4 on XFS skipped: mkfs.xfs (xfsprogs) is missing".into());
            }
        }
        if self.wants("6") {
            self.deep_wide()?;
        }
        if self.wants("7") {
            self.database_like()?;
        }
        if self.wants("m") {
            for n in self.mem_files.clone() {
                self.memory(n)?;
            }
        }
        // Only when asked for (`--only r`): they need sshd.
        if self.only.iter().any(|o| o == "r") {
            self.remote()?;
        }
        Ok(())
    }

    /// The remote workloads: first copy and no-change run of the small-files tree, the
    /// large-file delta of workload 4, over ssh to 127.0.0.1 (see `remote`).
    fn remote(&mut self) -> Result<()> {
        let _sshd = crate::remote::Sshd::start()?;
        let s = self.sizes;
        let tools = [Tool::OpsyncSsh, Tool::RsyncSsh];
        let (area, root, src) =
            self.small_files_area("remote-small", "remote workloads R1, R2", 2 * s.rounds + 2)?;
        self.rounds(
            &format!("R1 remote first copy ({} files)", s.files),
            &area,
            &src,
            &tools,
            s.rounds,
            None,
            |r, t| Ok(root.join(format!("r1-r{r}-{}", t.short()))),
            |_| Ok(()),
        )?;
        let same = root.join("same");
        measure::prepare_copy(&src, &same, false)?;
        for t in &tools {
            measure::run(&t.command(self, &src, &same), &self.work)?;
        }
        self.rounds(
            "R2 remote no-change",
            &area,
            &src,
            &tools,
            s.rounds,
            None,
            |_, _| Ok(same.clone()),
            |_| Ok(()),
        )?;
        for t in &tools {
            let b = crate::remote::bytes_of(&t.command(self, &src, &same))?;
            self.notes
                .push(format!("R2 bytes on the wire, {}: {b}", t.name()));
        }
        let bytes = crate::measure::tree_bytes(&src)?;
        let (login, data) = crate::remote::floors(bytes, s.rounds)?;
        self.notes.push(format!(
            "ssh floors (same sshd, medians of {}): a login running `true` {login:.3} s; \
             the small-files tree's {bytes} bytes through `cat > /dev/null` {data:.3} s",
            s.rounds
        ));
        drop(area);

        let total = (s.big.size as u64) * (s.big.in_place as u64 + 2) + (2 << 20);
        let area = Area::new(&self.work, "remote-big", FsKind::Ext4, total * 5, 1000)?;
        self.notes
            .push(format!("remote workload R4: {}", area.label));
        let root = area.dir.clone();
        let (src, old) = (root.join("src"), root.join("old"));
        let (_, changed) = trees::big_files(
            &old.join("inplace"),
            &src.join("inplace"),
            &old.join("shifted"),
            &src.join("shifted"),
            s.big,
            4,
        )?;
        let w = format!(
            "R4 remote large files ({}x{} MiB)",
            s.big.in_place + 2,
            s.big.size >> 20
        );
        self.rounds(
            &w,
            &area,
            &src,
            &tools,
            s.big_rounds,
            Some(changed),
            |r, t| {
                let d = root.join(format!("r4-r{r}-{}", t.short()));
                measure::prepare_copy(&old, &d, false)?;
                Ok(d)
            },
            |d| Ok(std::fs::remove_dir_all(d)?),
        )?;
        for t in &tools {
            let d = root.join(format!("r4-bytes-{}", t.short()));
            measure::prepare_copy(&old, &d, false)?;
            let b = crate::remote::bytes_of(&t.command(self, &src, &d))?;
            self.notes
                .push(format!("R4 bytes on the wire, {}: {b}", t.name()));
            std::fs::remove_dir_all(&d)?;
        }
        Ok(())
    }

    /// Runs `tools` for `rounds` rounds; `dst_for(round, tool)` prepares and returns the
    /// destination of one run, `after` cleans up after it.
    #[allow(clippy::too_many_arguments)]
    fn rounds(
        &mut self,
        workload: &str,
        area: &Area,
        src: &Path,
        tools: &[Tool],
        rounds: usize,
        changed_bytes: Option<u64>,
        mut dst_for: impl FnMut(usize, &Tool) -> Result<PathBuf>,
        mut after: impl FnMut(&Path) -> Result<()>,
    ) -> Result<()> {
        let first = self.rows.len();
        for t in tools {
            self.rows.push(Row {
                workload: workload.into(),
                tool: t.name(),
                samples: Vec::new(),
                changed_bytes,
            });
        }
        for r in 0..rounds {
            let mut order: Vec<usize> = (0..tools.len()).collect();
            if r % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let tool = &tools[i];
                let dst = dst_for(r, tool)?;
                measure::syncfs(&area.dir)?;
                // The memory workload's trees are warmed once (they are millions of entries).
                if !workload.starts_with("m ") {
                    measure::warm(&[src, &dst])?;
                }
                let dev_before = area.sectors_written();
                let mut sample = if let Tool::Floor = tool {
                    let t = Instant::now();
                    measure::lstat_walk(&[src, &dst])?;
                    Sample {
                        seconds: t.elapsed().as_secs_f64(),
                        ..Sample::default()
                    }
                } else if workload.starts_with("m ") {
                    measure::run_sampled(&tool.command(self, src, &dst), &self.work)?
                } else {
                    measure::run(&tool.command(self, src, &dst), &self.work)?
                };
                let t = Instant::now();
                measure::syncfs(&area.dir)?;
                sample.flush = t.elapsed().as_secs_f64();
                sample.dev_written = area
                    .sectors_written()
                    .zip(dev_before)
                    .map(|(a, b)| a.saturating_sub(b) * 512);
                eprintln!(
                    "benches: {workload:<28} round {r} {:<28} {:>8.3} s",
                    tool.name(),
                    sample.seconds
                );
                self.rows[first + i].samples.push(sample);
                after(&dst)?;
            }
        }
        Ok(())
    }

    /// A fresh ext4 filesystem with room for `copies` copies of the small-files tree (noted
    /// in the report as `what`), and that tree made in its `src`; returns the area, its root
    /// and `src`.
    fn small_files_area(
        &mut self,
        name: &str,
        what: &str,
        copies: usize,
    ) -> Result<(Area, PathBuf, PathBuf)> {
        let s = self.sizes;
        let copies = copies as u64;
        let entries = (s.files + s.dirs + s.dirs / 32 + 2) as u64;
        let area = Area::new(
            &self.work,
            name,
            FsKind::Ext4,
            copies * s.files as u64 * 8192,
            copies * entries * 11 / 10,
        )?;
        self.notes.push(format!("{what}: {}", area.label));
        let root = area.dir.clone();
        let src = root.join("src");
        trees::small_files(&src, s.files, s.dirs, 1)?;
        Ok((area, root, src))
    }

    /// Workloads 1, 2, 3, 5 and verify, on one fresh filesystem.
    fn small_files(&mut self) -> Result<()> {
        let s = self.sizes;
        // Workload 1: four tools a round; 3: two; the no-change copy, src3, two strace copies.
        let (area, root, src) = self.small_files_area(
            "small-files",
            "workloads 1, 2, 3, 5, verify",
            4 * s.rounds + 2 * s.rounds + 5,
        )?;
        let w1 = format!("1 first copy ({} files)", s.files);
        let tools = [OPSYNC, RSYNC, Tool::Cp, Tool::CreateFloor];
        let name = |r: usize, t: &Tool| root.join(format!("w1-r{r}-{}", t.short()));
        if self.wants("1") {
            self.rounds(
                &w1,
                &area,
                &src,
                &tools,
                s.rounds,
                None,
                |r, t| Ok(name(r, t)),
                |_| Ok(()),
            )?;
            for t in [OPSYNC, RSYNC, Tool::CreateFloor] {
                let dst = root.join(format!("w1-strace-{}", t.short()));
                self.count_syscalls("first copy", &t, &src, &dst, s.files as u64)?;
            }
        }
        if self.wants("3") {
            let src3 = root.join("src3");
            measure::prepare_copy(&src, &src3, false)?;
            trees::mutate(&src3, s.files, s.dirs, 3)?;
            let tools = [OPSYNC, RSYNC];
            let base = src.clone();
            self.rounds(
                "3 1% changed/new/deleted",
                &area,
                &src3,
                &tools,
                s.rounds,
                None,
                |r, t| {
                    let d = root.join(format!("w3-r{r}-{}", t.short()));
                    measure::prepare_copy(&base, &d, false)?;
                    Ok(d)
                },
                |_| Ok(()),
            )?;
        }
        // The no-change destination: a synced copy, settled by one untimed run of each tool.
        let same = root.join("same");
        measure::prepare_copy(&src, &same, false)?;
        for t in [OPSYNC, RSYNC] {
            measure::run(&t.command(self, &src, &same), &self.work)?;
        }
        let fixed = |_: usize, _: &Tool| Ok(same.clone());
        if self.wants("2") {
            let entries = measure::lstat_walk(&[&src])?;
            for t in [OPSYNC, RSYNC] {
                self.count_syscalls("no-change", &t, &src, &same, entries)?;
            }
            let tools = [OPSYNC, RSYNC, Tool::Floor];
            self.rounds(
                "2 no-change resync",
                &area,
                &src,
                &tools,
                s.rounds,
                None,
                fixed,
                |_| Ok(()),
            )?;
        }
        if self.wants("5") {
            let tools = [Tool::Opsync(&["-c"]), Tool::Rsync(&["--delete", "-c"])];
            self.rounds(
                "5 --checksum no-change",
                &area,
                &src,
                &tools,
                s.rounds,
                None,
                fixed,
                |_| Ok(()),
            )?;
            // The same with one core taken by a busy loop of normal priority.
            let mut busy = std::process::Command::new(&self.me)
                .arg("busy")
                .spawn()
                .context("start the busy loop")?;
            let res = self.rounds(
                "5b --checksum no-change, other core busy",
                &area,
                &src,
                &tools,
                s.rounds,
                None,
                fixed,
                |_| Ok(()),
            );
            let _ = busy.kill();
            let _ = busy.wait();
            res?;
        }
        if self.wants("v") {
            let tools = [Tool::OpsyncVerify, Tool::Rsync(&["-c", "-n", "--delete"])];
            self.rounds(
                "verify (tree of workload 1)",
                &area,
                &src,
                &tools,
                s.rounds,
                None,
                fixed,
                |_| Ok(()),
            )?;
        }
        Ok(())
    }

    /// Workload 4: SRC (the new versions) on its own ext4 filesystem, DST on a filesystem of
    /// `kind` holding the old versions, so no tool can reflink from SRC and every byte that
    /// differs must be written into DST.
    fn big_files(&mut self, kind: FsKind) -> Result<()> {
        let s = self.sizes;
        let total = (s.big.size as u64) * (s.big.in_place as u64 + 2) + (2 << 20);
        let src_area = Area::new(&self.work, "big-src", FsKind::Ext4, total, 1000)?;
        let dst_area = Area::new(&self.work, "big-dst", kind, total * 3, 1000)?;
        self.notes.push(format!(
            "workload 4 ({}): SRC on a {}, DST on a {}",
            kind.name(),
            src_area.label,
            dst_area.label
        ));
        let src = src_area.dir.join("src");
        let old = dst_area.dir.join("old");
        let inplace_src = src.join("inplace");
        let shifted_src = src.join("shifted");
        let (in_place, changed) = trees::big_files(
            &old.join("inplace"),
            &inplace_src,
            &old.join("shifted"),
            &shifted_src,
            s.big,
            4,
        )?;
        let reflink = kind == FsKind::Xfs;
        let tools = match kind {
            FsKind::Ext4 => vec![OPSYNC, Tool::Opsync(&["--delta=always"]), RSYNC],
            FsKind::Xfs => vec![OPSYNC, Tool::Opsync(&["--delta=never"]), RSYNC],
        };
        let root = dst_area.dir.clone();
        let w = format!(
            "4 large files ({}x{} MiB, DST {})",
            s.big.in_place + 2,
            s.big.size >> 20,
            kind.name()
        );
        self.rounds(
            &w,
            &dst_area,
            &src,
            &tools,
            s.big_rounds,
            Some(changed),
            |r, t| {
                let d = root.join(format!("w4-r{r}-{}", t.name().replace([' ', '='], "_")));
                measure::prepare_copy(&old, &d, reflink)?;
                Ok(d)
            },
            |d| Ok(std::fs::remove_dir_all(d)?),
        )?;
        // The in-place files alone, for the written-bytes target.
        let w = format!("4 in-place files only (DST {})", kind.name());
        let old_in = old.join("inplace");
        self.rounds(
            &w,
            &dst_area,
            &inplace_src,
            &tools[..1],
            1,
            Some(in_place),
            |_, _| {
                let d = root.join("w4-inplace");
                measure::prepare_copy(&old_in, &d, reflink)?;
                Ok(d)
            },
            |d| Ok(std::fs::remove_dir_all(d)?),
        )?;
        drop(dst_area);
        drop(src_area);
        Ok(())
    }

    /// One untimed run of `tool` under `strace -f -c`, recorded per `units`.
    fn count_syscalls(
        &mut self,
        case: &'static str,
        tool: &Tool,
        src: &Path,
        dst: &Path,
        units: u64,
    ) -> Result<()> {
        let cmd = tool.command(self, src, dst);
        let calls = measure::syscalls(&cmd, &self.work)?;
        eprintln!(
            "benches: strace -f -c {case:<12} {:<20} {calls} calls, {:.2} per unit",
            tool.name(),
            calls as f64 / units as f64
        );
        self.syscalls.push(Syscalls {
            case,
            tool: tool.name(),
            calls,
            units,
            command: format!("strace -f -c {}", cmd.join(" ")),
        });
        Ok(())
    }

    /// Workload m: peak RSS of a no-change run over `files` empty files in directories of
    /// 1,000 (two levels, 32 wide at the top), on a filesystem with inodes for both trees.
    /// DST is made by an untimed opsync run; the trees are warmed once, not before every round.
    fn memory(&mut self, files: usize) -> Result<()> {
        let dirs = files.div_ceil(1000).max(1);
        let inodes = (2 * (files + dirs + dirs / 32 + 2) as u64) * 11 / 10;
        let dir_bytes = 2 * dirs as u64 * (64 << 10);
        let area = Area::new(&self.work, "memory", FsKind::Ext4, dir_bytes, inodes)?;
        self.notes
            .push(format!("workload m ({files} files): {}", area.label));
        let src = area.dir.join("src");
        let dst = area.dir.join("dst");
        let t = Instant::now();
        trees::small_files_sized(&src, files, dirs, 7, 0)?;
        eprintln!(
            "benches: m: {files} files made in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        measure::run(&OPSYNC.command(self, &src, &dst), &self.work)?;
        eprintln!(
            "benches: m: DST made by opsync in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        measure::syncfs(&area.dir)?;
        measure::warm(&[&src, &dst])?;
        let rounds = self.sizes.rounds.min(3);
        self.rounds(
            &format!("m no-change ({files} files)"),
            &area,
            &src,
            &[OPSYNC, RSYNC],
            rounds,
            None,
            |_, _| Ok(dst.clone()),
            |_| Ok(()),
        )?;
        Ok(())
    }

    /// Workload 6: a deep and wide tree, first copy and no-change resync.
    fn deep_wide(&mut self) -> Result<()> {
        let s = self.sizes;
        let copies = (3 * s.rounds + 1) as u64;
        let entries = (s.deep_dirs * 3) as u64;
        let area = Area::new(
            &self.work,
            "deep-wide",
            FsKind::Ext4,
            copies * entries * 4096,
            copies * entries * 11 / 10,
        )?;
        self.notes.push(format!("workload 6: {}", area.label));
        let root = area.dir.clone();
        let src = root.join("src");
        trees::deep_wide(&src, s.deep_dirs, 6)?;
        let tools = [OPSYNC, RSYNC, Tool::Cp];
        let w = format!("6 deep+wide first copy ({} dirs)", s.deep_dirs);
        self.rounds(
            &w,
            &area,
            &src,
            &tools,
            s.rounds,
            None,
            |r, t| Ok(root.join(format!("w6-r{r}-{}", t.short()))),
            |_| Ok(()),
        )?;
        let same = root.join("w6-r0-cp");
        for t in [OPSYNC, RSYNC] {
            measure::run(&t.command(self, &src, &same), &self.work)?;
        }
        let tools = [OPSYNC, RSYNC, Tool::Floor];
        self.rounds(
            "6 deep+wide no-change",
            &area,
            &src,
            &tools,
            s.rounds,
            None,
            |_, _| Ok(same.clone()),
            |_| Ok(()),
        )?;
        Ok(())
    }
}

fn which_mkfs_xfs() -> bool {
    ["/usr/sbin/mkfs.xfs", "/sbin/mkfs.xfs"]
        .iter()
        .any(|p| Path::new(p).is_file())
}
