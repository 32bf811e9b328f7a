//! Debian's PostgreSQL for tests: the installed server binaries, clusters made with `initdb` and
//! run as the `postgres` user (PostgreSQL refuses to run as root) on a private unix socket and a
//! free loopback port, a write load (pgbench and an insert ledger) and the consistency checks of a
//! copied data directory.
//!
//! A missing installation is a test failure that names the Debian package, never a skip.

pub mod checks;
pub mod ledger;
pub mod server;

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

pub use server::PgServer;

/// The installed PostgreSQL: its binary folder and the system user that runs it.
#[derive(Clone, Debug)]
pub struct Postgres {
    pub bin: PathBuf,
    pub version: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Postgres {
    /// The newest `/usr/lib/postgresql/N/bin` with a server, and the `postgres` user.
    pub fn find() -> Postgres {
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                bin.join("postgres").is_file().then_some((version, bin))
            })
            .collect();
        found.sort();
        let Some((version, bin)) = found.pop() else {
            panic!(
                "no PostgreSQL server in /usr/lib/postgresql/*/bin: this test needs Debian's \
                 `postgresql` package (scripts/test installs it when run as root)"
            );
        };
        let (uid, gid) = system_user("postgres").unwrap_or_else(|| {
            panic!(
                "no `postgres` user in /etc/passwd: it comes with Debian's `postgresql` package \
                 (PostgreSQL refuses to run as root)"
            )
        });
        assert!(
            rustix::process::geteuid().is_root(),
            "this test runs PostgreSQL as the `postgres` user and freezes it through a cgroup: \
             run it as root"
        );
        Postgres {
            bin,
            version,
            uid,
            gid,
        }
    }

    /// The path of `program` in the binary folder; fails naming the package when it is missing.
    pub fn program(&self, program: &str) -> PathBuf {
        let p = self.bin.join(program);
        assert!(
            p.is_file(),
            "{} is missing: it comes with Debian's postgresql-{v} or postgresql-client-{v}",
            p.display(),
            v = self.version
        );
        p
    }

    /// The argv that runs `program` of the binary folder as the `postgres` user.
    pub fn argv_as_postgres<I, S>(&self, program: &str, args: I) -> Vec<std::ffi::OsString>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let setpriv = crate::require_program("setpriv", "util-linux");
        let mut argv = vec![
            setpriv.into_os_string(),
            format!("--reuid={}", self.uid).into(),
            format!("--regid={}", self.gid).into(),
            "--init-groups".into(),
            "--".into(),
            self.program(program).into_os_string(),
        ];
        argv.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        argv
    }

    /// A `Command` running `program` as the `postgres` user, with messages in English.
    pub fn as_postgres<I, S>(&self, program: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let argv = self.argv_as_postgres(program, args);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        c_locale(&mut cmd);
        cmd
    }

    /// Gives `path` to the `postgres` user with `mode`.
    pub fn own(&self, path: &Path, mode: u32) {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    }

    /// Creates a cluster in `datadir` (made and given to the `postgres` user, mode 0700):
    /// superuser `postgres`, trust authentication (only a private socket and 127.0.0.1), C
    /// locale, UTF-8.
    pub fn initdb(&self, datadir: &Path) {
        std::fs::create_dir_all(datadir).unwrap();
        self.own(datadir, 0o700);
        let out = self
            .as_postgres(
                "initdb",
                [
                    OsStr::new("-D"),
                    datadir.as_os_str(),
                    OsStr::new("-U"),
                    OsStr::new("postgres"),
                    OsStr::new("--auth=trust"),
                    OsStr::new("--no-locale"),
                    OsStr::new("-E"),
                    OsStr::new("UTF8"),
                ],
            )
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb -D {} failed ({}):\n{}{}",
            datadir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let md = std::fs::metadata(datadir).unwrap();
        assert_eq!((md.uid(), md.gid()), (self.uid, self.gid));
    }
}

/// Client programs and the server print English, whatever the machine's locale: the tests read
/// their messages.
pub(crate) fn c_locale(cmd: &mut Command) {
    cmd.env("LC_ALL", "C").env_remove("LANGUAGE");
    for var in [
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGOPTIONS",
        "PGPASSWORD",
    ] {
        cmd.env_remove(var);
    }
}

/// Uid and gid of `name` from /etc/passwd.
fn system_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}
