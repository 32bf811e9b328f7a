//! Two hosts on one machine for the remote tests: network namespaces "dev" and "prod" made by
//! the test (a veth pair with addresses inside them only), Debian's OpenSSH server started in
//! "dev" with its own host key and a client key made by the test, the client commands run in
//! "prod" with `ip netns exec`. Both namespaces share the filesystem, so a test compares the
//! trees directly. Dropping the [`Hosts`] stops sshd and deletes both namespaces.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::require_program;

/// The dev host's sshd and the namespaces around it.
pub struct Hosts {
    pub dir: tempfile::TempDir,
    pub dev_ns: String,
    pub prod_ns: String,
    /// The dev host's address, as seen from prod.
    pub dev_addr: String,
    sshd: Option<Child>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn ok(cmd: &mut Command) {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Hosts {
    /// Makes the namespaces and starts sshd in "dev"; fails the test with a message when a
    /// piece is missing.
    pub fn start() -> Hosts {
        require_program("ip", "iproute2");
        require_program("ssh", "openssh-client");
        require_program("ssh-keygen", "openssh-client");
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "/usr/sbin/sshd is missing: install openssh-server (scripts/test-packages.txt)"
        );
        assert!(
            rustix::process::geteuid().is_root(),
            "the remote tests need root (network namespaces, sshd)"
        );
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n}", std::process::id() % 100_000);
        let dev_ns = format!("opsync-dev-{id}");
        let prod_ns = format!("opsync-prod-{id}");
        // sshd's StrictModes refuses keys below a group- or world-writable directory (/tmp):
        // the keys live below /run, which only root may write.
        let base = Path::new("/run/opsync-tests");
        std::fs::create_dir_all(base).unwrap();
        std::fs::set_permissions(base, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let dir = tempfile::Builder::new()
            .prefix("ssh-")
            .tempdir_in(base)
            .unwrap();
        let mut hosts = Hosts {
            dir,
            dev_ns: dev_ns.clone(),
            prod_ns: prod_ns.clone(),
            dev_addr: String::new(),
            sshd: None,
        };
        // Subnet 10.231.N.0/30 per pair within this process (pid in the names keeps processes apart).
        let net = (std::process::id() % 60) * 4 + n % 4;
        let (dev_ip, prod_ip) = (format!("10.231.{net}.1"), format!("10.231.{net}.2"));
        hosts.dev_addr = dev_ip.clone();
        let (vd, vp) = (format!("od{id}"), format!("op{id}"));
        ok(Command::new("ip").args(["netns", "add", &dev_ns]));
        ok(Command::new("ip").args(["netns", "add", &prod_ns]));
        ok(Command::new("ip").args(["link", "add", &vd, "type", "veth", "peer", "name", &vp]));
        ok(Command::new("ip").args(["link", "set", &vd, "netns", &dev_ns]));
        ok(Command::new("ip").args(["link", "set", &vp, "netns", &prod_ns]));
        for (ns, dev, ip) in [(&dev_ns, &vd, &dev_ip), (&prod_ns, &vp, &prod_ip)] {
            ok(Command::new("ip").args(["-n", ns, "addr", "add", &format!("{ip}/30"), "dev", dev]));
            ok(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]));
            ok(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]));
        }
        let d = hosts.dir.path().to_owned();
        for key in ["host_key", "client_key"] {
            ok(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", ""])
                .arg("-f")
                .arg(d.join(key)));
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let config = format!(
            "Port 22\nListenAddress {dev_ip}\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {pid}\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nStrictModes yes\nLogLevel ERROR\n",
            hk = d.join("host_key").display(),
            ak = d.join("authorized_keys").display(),
            pid = d.join("sshd.pid").display(),
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let mut sshd = Command::new("ip")
            .args([
                "netns",
                "exec",
                &dev_ns,
                "/usr/sbin/sshd",
                "-D",
                "-e",
                "-o",
                "LogLevel=INFO",
                "-f",
            ])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sshd");
        // sshd says when it listens; wait for that line (at most 20 s).
        let stderr = sshd.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Server listening") {
                    let _ = tx.send(());
                }
            }
        });
        hosts.sshd = Some(sshd);
        assert!(
            rx.recv_timeout(Duration::from_secs(20)).is_ok(),
            "sshd in namespace {dev_ns} did not start listening within 20 s"
        );
        hosts
    }

    /// The `-e` command line for opsync and rsync: the test's key, no host key prompts.
    pub fn rsh(&self) -> String {
        format!(
            "ssh -i {} -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5",
            self.key().display()
        )
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// `root@DEV:path`.
    pub fn remote(&self, path: &Path) -> String {
        format!("root@{}:{}", self.dev_addr, path.display())
    }

    /// A command run in the "prod" namespace.
    pub fn in_prod(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.prod_ns]).arg(program);
        c
    }

    /// True while a process named `name` runs in the "dev" namespace (the remote opsync).
    pub fn dev_runs(&self, name: &str) -> bool {
        let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.dev_ns])
            .output()
        else {
            return false;
        };
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .any(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
            })
    }

    /// Waits until `f` holds, for at most `limit`.
    pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if f() {
                return true;
            }
            std::thread::yield_now();
        }
        f()
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        if let Some(mut s) = self.sshd.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        // sshd forks a child per connection: kill what is left in the namespace.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.dev_ns])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").arg("-9").arg(pid).status();
            }
        }
        for ns in [&self.dev_ns, &self.prod_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
