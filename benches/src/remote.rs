//! The remote workloads of issue 15 (`--only r`): opsync and rsync over the same ssh, to an
//! sshd the harness starts on 127.0.0.1 on a high port (its own host key, a client key made
//! here, keys below /run, which StrictModes accepts). Both trees are on this machine: the
//! times include ssh's encryption and both ends' work, as on two hosts with a fast link.
//! Bytes on the wire come from one untimed `--stats` run of each tool (`sent N bytes
//! received M bytes`: opsync counts them on the ssh pipes, rsync on its socket).
//!
//! Both log in as [`USER`], a second name for root (uid 0) made for the run with `/bin/sh` as
//! its shell, the sshd's directory as its home and no password (`*`: sshd without PAM refuses
//! a locked account, `!`): root's own shell reads `~/.bashrc` at every
//! ssh login, which on these machines runs `pyenv init` (0.2 s a login, for either tool). A
//! deploy user on a server has a plain shell.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

/// The `-e` command line of the harness's sshd, once started.
pub static RSH: OnceLock<String> = OnceLock::new();

/// The login name of both tools' ssh sessions.
pub const USER: &str = "opsync-bench";

/// The harness's sshd.
pub struct Sshd {
    dir: PathBuf,
    child: Child,
}

impl Sshd {
    pub fn start() -> Result<Sshd> {
        if !Path::new("/usr/sbin/sshd").is_file() {
            bail!("/usr/sbin/sshd is missing: install openssh-server");
        }
        let dir = PathBuf::from(format!("/run/opsync-bench-ssh-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::create_dir_all("/run/sshd")?;
        for key in ["host_key", "client_key"] {
            let _ = std::fs::remove_file(dir.join(key));
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(key))
                .status()
                .context("ssh-keygen (Debian package openssh-client)")?;
            if !st.success() {
                bail!("ssh-keygen failed");
            }
        }
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys"))?;
        // Made anew for this run's directory (a run that was killed leaves it pointing at its
        // own, removed directory).
        let _ = Command::new("userdel")
            .args(["-f", USER])
            .stderr(Stdio::null())
            .status();
        let st = Command::new("useradd")
            .args([
                "-o", "-u", "0", "-g", "0", "-M", "-s", "/bin/sh", "-p", "*", "-d",
            ])
            .arg(&dir)
            .arg(USER)
            .status()
            .context("useradd (Debian package passwd)")?;
        if !st.success() {
            bail!("useradd {USER} failed");
        }
        let port = 20_000 + std::process::id() % 20_000;
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PidFile {d}/sshd.pid\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nStrictModes yes\nLogLevel ERROR\n",
            d = dir.display()
        );
        std::fs::write(dir.join("sshd_config"), config)?;
        let mut child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-o", "LogLevel=INFO", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        // sshd says when it listens.
        let stderr = child.stderr.take().context("sshd stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("Server listening") {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(std::time::Duration::from_secs(20)).is_err() {
            let _ = child.kill();
            bail!("sshd on 127.0.0.1:{port} did not start listening");
        }
        let _ = RSH.set(format!(
            "ssh -p {port} -i {}/client_key -o BatchMode=yes -o StrictHostKeyChecking=no \
             -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            dir.display()
        ));
        Ok(Sshd { dir, child })
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("userdel").args(["-f", USER]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `USER@127.0.0.1:PATH`.
pub fn remote(p: &Path) -> String {
    format!("{USER}@127.0.0.1:{}", p.display())
}

/// The sum of `sent N bytes  received M bytes` in a `--stats` output.
pub fn wire_bytes(stdout: &str) -> Option<u64> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("sent ") && l.contains(" received "))?;
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.replace(',', "").parse().ok())
        .collect();
    Some(nums.iter().take(2).sum())
}

/// Runs `cmd` plus `--stats` once (untimed) and returns the bytes on the wire.
pub fn bytes_of(cmd: &[String]) -> Result<u64> {
    let mut c = cmd.to_vec();
    c.insert(2, "--stats".into());
    let out = Command::new(&c[0]).args(&c[1..]).output()?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            c.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wire_bytes(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("no sent/received line from {}", c.join(" ")))
}

/// What any tool over this ssh pays, measured with the same sshd and login: the median seconds
/// of `rounds` logins that run `true`, and of `rounds` sessions that move `bytes` bytes through
/// `cat > /dev/null` (the cipher's cost for a tree of that size).
pub fn floors(bytes: u64, rounds: usize) -> Result<(f64, f64)> {
    let rsh = RSH.get().context("sshd not started")?;
    let host = format!("{USER}@127.0.0.1");
    let time = |script: &str| -> Result<f64> {
        let t = std::time::Instant::now();
        let st = Command::new("sh").args(["-c", script]).status()?;
        if !st.success() {
            bail!("{script} failed");
        }
        Ok(t.elapsed().as_secs_f64())
    };
    let (mut login, mut data) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        login.push(time(&format!("{rsh} {host} true"))?);
        data.push(time(&format!(
            "head -c {bytes} /dev/zero | {rsh} {host} 'cat > /dev/null'"
        ))?);
    }
    Ok((
        crate::measure::median(&login),
        crate::measure::median(&data),
    ))
}
