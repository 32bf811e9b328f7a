//! A fresh filesystem per workload: a sparse image file on a loop device (`losetup --direct-io`,
//! so the image's pages are not cached twice), formatted with ext4 or XFS and mounted under the
//! work directory. Every tree of a workload (SRC and all destinations) lives on it, nothing is
//! deleted on it between timed runs, and it is unmounted and removed afterwards. So no run
//! inherits the slow inode allocation that ext4 shows right after 100,000 files were deleted
//! (`recently_deleted` in a kernel profile), and no run pays for another's deletions.
//!
//! Without root, or when loop devices are unavailable, the workload uses a plain directory
//! under the work directory instead (and the report says so).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The filesystem a workload runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    Ext4,
    Xfs,
}

impl FsKind {
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Ext4 => "ext4",
            FsKind::Xfs => "xfs",
        }
    }
}

/// A mounted scratch filesystem (or a plain directory), cleaned up on drop.
pub struct Area {
    pub dir: PathBuf,
    /// What the workload really ran on, for the report.
    pub label: String,
    image: Option<PathBuf>,
    device: Option<String>,
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("start {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            cmd,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Area {
    /// A fresh filesystem of `kind` with room for `bytes` of data and `inodes` entries.
    pub fn new(work: &Path, name: &str, kind: FsKind, bytes: u64, inodes: u64) -> Result<Area> {
        let dir = work.join(name);
        let image = work.join(format!("{name}.img"));
        Self::clean_leftovers(&dir, &image);
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        match Self::mount(&dir, &image, kind, bytes, inodes) {
            Ok(device) => Ok(Area {
                dir,
                label: format!("fresh {} on a loop device", kind.name()),
                image: Some(image),
                device: Some(device),
            }),
            Err(e) => {
                eprintln!(
                    "benches: no loop filesystem for {name} ({e:#}); using a plain directory"
                );
                let _ = fs::remove_file(&image);
                Ok(Area {
                    dir,
                    label: "plain directory on the host filesystem".into(),
                    image: None,
                    device: None,
                })
            }
        }
    }

    /// What a killed earlier run left at `dir` and `image`: every mount on `dir` unmounted,
    /// every loop device still attached to the image detached, the image and the directory's
    /// contents (when it is no mount point any more) removed.
    fn clean_leftovers(dir: &Path, image: &Path) {
        for _ in 0..8 {
            let mounted = Command::new("mountpoint")
                .arg("-q")
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success());
            if !mounted {
                break;
            }
            if !Command::new("umount")
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success())
            {
                // Busy: detach it lazily so the image can go.
                let _ = Command::new("umount").arg("-l").arg(dir).status();
            }
        }
        if image.exists() {
            if let Ok(list) = run(Command::new("losetup").arg("-j").arg(image)) {
                for dev in list.lines().filter_map(|l| l.split(':').next()) {
                    let _ = Command::new("losetup").args(["-d", dev.trim()]).status();
                }
            }
            let _ = fs::remove_file(image);
        }
        let mounted = Command::new("mountpoint")
            .arg("-q")
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            let _ = fs::remove_dir_all(dir);
        }
    }

    fn mount(dir: &Path, image: &Path, kind: FsKind, bytes: u64, inodes: u64) -> Result<String> {
        // ext4 holds at most one inode per 4 KiB block: the image is big enough for `inodes`
        // (sparse, so only the inode tables and what is written take space).
        let for_inodes = inodes.max(100_000) * 4096 * 21 / 20 + (256 << 20);
        let size = (bytes + bytes / 3 + (1 << 30))
            .max(for_inodes)
            .div_ceil(1 << 20);
        fs::File::create(image)?.set_len(size << 20)?;
        match kind {
            // Inode tables written now, not by the lazy-init thread during the measurements.
            FsKind::Ext4 => run(Command::new("mkfs.ext4")
                .args(["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"])
                .args(["-N", &inodes.max(100_000).to_string()])
                .arg(image))?,
            FsKind::Xfs => run(Command::new("mkfs.xfs")
                .args(["-q", "-f", "-m", "reflink=1"])
                .arg(image))?,
        };
        let device = run(Command::new("losetup")
            .args(["--direct-io=on", "--show", "-f"])
            .arg(image))?;
        if let Err(e) = run(Command::new("mount").arg(&device).arg(dir)) {
            let _ = Command::new("losetup").args(["-d", &device]).output();
            return Err(e);
        }
        Ok(device)
    }
}

impl Area {
    /// Sectors written to the loop device so far (`/sys/block/loopN/stat`): what the
    /// filesystem really wrote, data, metadata and journal.
    pub fn sectors_written(&self) -> Option<u64> {
        let dev = self.device.as_ref()?.rsplit('/').next()?.to_owned();
        let stat = fs::read_to_string(format!("/sys/block/{dev}/stat")).ok()?;
        stat.split_whitespace().nth(6)?.parse().ok()
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        if let Some(dev) = &self.device {
            let _ = Command::new("umount").arg(&self.dir).output();
            let _ = Command::new("losetup").args(["-d", dev]).output();
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
        if let Some(img) = &self.image {
            let _ = fs::remove_file(img);
        }
        let _ = fs::remove_dir(&self.dir);
    }
}
