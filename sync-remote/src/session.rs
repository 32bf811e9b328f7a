//! One connection: the remote shell started as a child, the hello, the options handed to the
//! server, the errors of a remote run and their exit codes (rsync's where they mean the same:
//! 12 for a broken or foreign data stream, 14 when the remote shell cannot be started, 255 when
//! ssh itself fails).

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use opsync_core::exit::{Exit, ToExit};
use sync_engine::{MaxDelete, Observer, Options, Report};

use crate::wire::{self, Counter, Dec, Enc, FrameReader, FrameWriter, tag};
use crate::{receiver, sender};

/// `[USER@]HOST:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// What the remote shell is given as the host (`user@host` or `host`).
    pub host: String,
    /// The path on that host (`.` for `HOST:`, the login directory).
    pub path: PathBuf,
}

/// `Some` when `arg` names a remote path as rsync reads it: a `:` before any `/`.
pub fn parse_location(arg: &OsStr) -> Option<Location> {
    let b = arg.as_bytes();
    let colon = b.iter().position(|&c| c == b':')?;
    if b[..colon].contains(&b'/') || colon == 0 {
        return None;
    }
    let host = String::from_utf8_lossy(&b[..colon]).into_owned();
    let rest = &b[colon + 1..];
    let path = if rest.is_empty() {
        PathBuf::from(".")
    } else {
        PathBuf::from(OsStr::from_bytes(rest))
    };
    Some(Location { host, path })
}

/// The words of a remote shell command line (`-e`), split like a shell would; `None` for
/// unbalanced quotes.
pub fn rsh_argv(rsh: &str) -> Option<Vec<String>> {
    shlex::split(rsh).filter(|v| !v.is_empty())
}

/// How to reach the other end, and the run's options.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// The remote shell's whole command line (`-e`), split like a shell would.
    pub rsh: String,
    /// The opsync program on the remote host (`--remote-opsync`), given to its shell as is.
    pub remote_opsync: String,
    pub engine: Options,
    /// The client prints itemize lines: the remote sender sends them.
    pub items: bool,
    /// Compress the stream with zstd after the hello (`-z`).
    pub compress: bool,
    /// Bytes per second each end writes at most (`--bwlimit`; 0: no limit).
    pub bwlimit: u64,
}

/// Parses `--bwlimit=RATE` as rsync does: KiB per second, or with a suffix `K`, `M`, `G`
/// (powers of 1024) or `KB`, `MB`, `GB` (powers of 1000), `B` for bytes; 0 for no limit.
/// Returns bytes per second.
pub fn parse_bwlimit(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let mult = match unit.to_ascii_uppercase().as_str() {
        "" | "K" | "KIB" => 1024.0,
        "B" => 1.0,
        "KB" => 1000.0,
        "M" | "MIB" => 1024.0 * 1024.0,
        "MB" => 1e6,
        "G" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        "GB" => 1e9,
        _ => return None,
    };
    (v >= 0.0).then_some((v * mult) as u64)
}

impl Default for RemoteOptions {
    fn default() -> RemoteOptions {
        RemoteOptions {
            rsh: "ssh".into(),
            remote_opsync: "opsync".into(),
            engine: Options::default(),
            items: false,
            compress: false,
            bwlimit: 0,
        }
    }
}

/// What a remote run did, with the bytes the client moved on the connection.
#[derive(Debug, Clone, Default)]
pub struct RemoteReport {
    pub report: Report,
    /// Bytes the client wrote to the remote shell.
    pub sent: u64,
    /// Bytes the client read from the remote shell.
    pub received: u64,
}

/// A problem that stops a remote run.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(transparent)]
    Engine(#[from] sync_engine::Error),
    #[error("bad --rsh command {command:?}: {why}")]
    Rsh { command: String, why: &'static str },
    #[error("cannot start the remote shell {program:?}: {source}; check -e/--rsh")]
    Spawn { program: String, source: io::Error },
    #[error(
        "protocol version mismatch: this opsync {ours} speaks protocol {ours_proto}, the remote opsync {theirs} speaks protocol {theirs_proto}; install the same opsync on both hosts"
    )]
    Version {
        ours: String,
        ours_proto: u32,
        theirs: String,
        theirs_proto: u32,
    },
    #[error(
        "the remote end did not answer as opsync ({what}): check --remote-opsync (now {program:?}) and that the remote login prints nothing"
    )]
    NotOpsync { what: String, program: String },
    #[error(
        "{command} failed (exit {code}) before or while talking to the remote opsync: see its message above"
    )]
    Ssh { command: String, code: i32 },
    #[error(
        "connection to the remote opsync broke: {detail} (protocol data stream error); rerun to finish the mirror"
    )]
    Stream { detail: String },
    #[error("remote opsync: {message}")]
    Remote { code: u8, message: String },
}

impl ToExit for RemoteError {
    fn exit(&self) -> Exit {
        match self {
            RemoteError::Engine(e) => e.exit(),
            RemoteError::Rsh { .. } => Exit::Usage,
            RemoteError::Spawn { .. } => Exit::Ipc,
            RemoteError::Ssh { .. } => Exit::RemoteShell,
            RemoteError::Version { .. }
            | RemoteError::NotOpsync { .. }
            | RemoteError::Stream { .. } => Exit::Protocol,
            RemoteError::Remote { code, .. } => Exit::from_code(*code).unwrap_or(Exit::Protocol),
        }
    }
}

/// An I/O error on the connection.
pub(crate) fn stream(e: io::Error) -> RemoteError {
    let detail = if e.kind() == io::ErrorKind::UnexpectedEof {
        "the other end closed the connection".to_string()
    } else {
        e.to_string()
    };
    RemoteError::Stream { detail }
}

/// The writing half, shared by the threads of one end.
pub(crate) type Out = Arc<Mutex<FrameWriter>>;

pub(crate) fn send(out: &Out, t: u8, payload: &[u8]) -> Result<(), RemoteError> {
    out.lock()
        .unwrap_or_else(|p| p.into_inner())
        .frame(t, payload)
        .map_err(stream)
}

pub(crate) fn flush(out: &Out) -> Result<(), RemoteError> {
    out.lock()
        .unwrap_or_else(|p| p.into_inner())
        .flush()
        .map_err(stream)
}

/// Sends a fatal error to the other end (best effort: it may be gone already).
pub(crate) fn send_fatal(out: &Out, e: &RemoteError) {
    let code = e.exit().code();
    let msg = match e {
        RemoteError::Remote { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let _ = send(out, tag::FATAL, &Enc::new().u8(code).str(&msg).take());
    let _ = flush(out);
}

pub(crate) fn parse_fatal(p: &[u8]) -> RemoteError {
    let mut d = Dec::new(p, "fatal");
    let code = d.u8().unwrap_or(Exit::Protocol.code());
    let message = d.string().unwrap_or_else(|_| "unknown error".into());
    RemoteError::Remote { code, message }
}

/// Which end does what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Sender,
    Receiver,
}

fn encode_start(role: Role, path: &Path, o: &RemoteOptions) -> Vec<u8> {
    let e = &o.engine;
    let mut enc = Enc::new();
    enc.u8(match role {
        Role::Sender => 1,
        Role::Receiver => 0,
    })
    .bytes(path.as_os_str().as_bytes())
    .bool(e.delete)
    .bool(e.checksum)
    .bool(e.dry_run)
    .u32(e.modify_window)
    .bool(e.delete_excluded)
    .bool(e.allow_empty_source)
    .bool(e.insecure_links)
    .u8(e.one_file_system)
    .u32(e.threads.map_or(0, |n| n as u32))
    // 2: unchanged entries too (`-ii`); an older opsync reads any non-zero byte as true.
    .u8(match (o.items, e.itemize_unchanged) {
        (false, _) => 0,
        (true, false) => 1,
        (true, true) => 2,
    })
    .bool(o.compress)
    .u64(o.bwlimit);
    // 3 and 4: all or nothing (the half-of-DST guard); an older opsync reads 3 as 2.
    match (e.max_delete, e.max_delete_all_or_nothing) {
        (None, _) => enc.u8(0).u64(0),
        (Some(MaxDelete::Count(n)), false) => enc.u8(1).u64(n),
        (Some(MaxDelete::Percent(p)), false) => enc.u8(2).u64(p.to_bits()),
        (Some(MaxDelete::Percent(p)), true) => enc.u8(3).u64(p.to_bits()),
        (Some(MaxDelete::Count(n)), true) => enc.u8(4).u64(n),
    };
    enc.u32(e.excludes.len() as u32);
    for x in &e.excludes {
        enc.str(x);
    }
    enc.u32(e.filters.len() as u32);
    for x in &e.filters {
        enc.str(x);
    }
    // `--recheck-from`, for the sender of a pull; within half a
    // frame: a longer list (the files a check found with other content) goes in part, the
    // next check finds the rest again.
    let mut recheck: &[Vec<u8>] = if role == Role::Sender {
        &e.recheck
    } else {
        &[]
    };
    let mut room = wire::MAX_FRAME / 2;
    for (i, p) in recheck.iter().enumerate() {
        match room.checked_sub(p.len() + 4) {
            Some(r) => room = r,
            None => {
                recheck = &recheck[..i];
                break;
            }
        }
    }
    enc.u32(recheck.len() as u32);
    for p in recheck {
        enc.bytes(p);
    }
    enc.u8(u8::from(e.xattrs) | u8::from(e.acls) << 1 | u8::from(e.hard_links) << 2);
    enc.take()
}

fn decode_start(p: &[u8]) -> io::Result<(Role, PathBuf, RemoteOptions)> {
    let mut d = Dec::new(p, "start");
    let role = match d.u8()? {
        0 => Role::Receiver,
        1 => Role::Sender,
        _ => return Err(wire::malformed("start")),
    };
    let path = PathBuf::from(OsStr::from_bytes(d.bytes()?));
    let mut e = Options::default();
    e.delete = d.bool()?;
    e.checksum = d.bool()?;
    e.dry_run = d.bool()?;
    e.modify_window = d.u32()?;
    e.delete_excluded = d.bool()?;
    e.allow_empty_source = d.bool()?;
    e.insecure_links = d.bool()?;
    e.one_file_system = d.u8()?;
    e.threads = match d.u32()? {
        0 => None,
        n => Some(n as usize),
    };
    let items = d.u8()?;
    e.itemize_unchanged = items > 1;
    let items = items != 0;
    let compress = d.bool()?;
    let bwlimit = d.u64()?;
    let (k, v) = (d.u8()?, d.u64()?);
    e.max_delete = match k {
        0 => None,
        1 | 4 => Some(MaxDelete::Count(v)),
        _ => Some(MaxDelete::Percent(f64::from_bits(v))),
    };
    e.max_delete_all_or_nothing = matches!(k, 3 | 4);
    for _ in 0..d.u32()? {
        e.excludes.push(d.string()?);
    }
    for _ in 0..d.u32()? {
        e.filters.push(d.string()?);
    }
    for _ in 0..d.u32()? {
        e.recheck.push(d.bytes()?.to_vec());
    }
    let attrs = d.u8()?;
    e.xattrs = attrs & 1 != 0;
    e.acls = attrs & 2 != 0;
    e.hard_links = attrs & 4 != 0;
    Ok((
        role,
        path,
        RemoteOptions {
            engine: e,
            items,
            compress,
            bwlimit,
            ..RemoteOptions::default()
        },
    ))
}

/// The client's end of a connection.
struct Client {
    child: Child,
    command: String,
    program: String,
    reader: Option<FrameReader>,
    out: Out,
    sent: Counter,
    received: Counter,
}

impl Client {
    fn connect(loc: &Location, o: &RemoteOptions) -> Result<Client, RemoteError> {
        let argv = shlex::split(&o.rsh).ok_or(RemoteError::Rsh {
            command: o.rsh.clone(),
            why: "unbalanced quotes",
        })?;
        let Some((prog, args)) = argv.split_first() else {
            return Err(RemoteError::Rsh {
                command: o.rsh.clone(),
                why: "empty command",
            });
        };
        if loc.host.starts_with('-') {
            return Err(RemoteError::Rsh {
                command: loc.host.clone(),
                why: "a host name cannot start with '-'",
            });
        }
        let remote_cmd = format!("{} serve", o.remote_opsync);
        let mut child = Command::new(prog)
            .args(args)
            .arg(&loc.host)
            .arg(&remote_cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| RemoteError::Spawn {
                program: prog.clone(),
                source,
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RemoteError::Stream {
                detail: "the remote shell has no pipes".into(),
            });
        };
        widen_pipe(std::os::fd::AsFd::as_fd(&stdin));
        widen_pipe(std::os::fd::AsFd::as_fd(&stdout));
        let sent = Counter::default();
        let received = Counter::default();
        Ok(Client {
            child,
            command: format!("{} {} {}", o.rsh, loc.host, remote_cmd),
            program: o.remote_opsync.clone(),
            reader: Some(FrameReader::new(Box::new(stdout), received.clone())),
            out: Arc::new(Mutex::new(FrameWriter::new(Box::new(stdin), sent.clone()))),
            sent,
            received,
        })
    }

    /// Hellos both ways, then the server's role and the options.
    fn handshake(&mut self, role: Role, path: &Path, o: &RemoteOptions) -> Result<(), RemoteError> {
        send(&self.out, tag::HELLO, &wire::hello())?;
        flush(&self.out)?;
        let reader = self
            .reader
            .as_mut()
            .ok_or_else(|| stream(io::ErrorKind::BrokenPipe.into()))?;
        let (t, p) = reader.frame().map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => RemoteError::NotOpsync {
                what: e.to_string(),
                program: self.program.clone(),
            },
            _ => stream(e),
        })?;
        let hello = (t == tag::HELLO).then(|| wire::parse_hello(p)).flatten();
        let Some((proto, version)) = hello else {
            return Err(RemoteError::NotOpsync {
                what: format!("first frame tag {t}"),
                program: self.program.clone(),
            });
        };
        if proto != wire::PROTOCOL {
            return Err(RemoteError::Version {
                ours: env!("CARGO_PKG_VERSION").into(),
                ours_proto: wire::PROTOCOL,
                theirs: version,
                theirs_proto: proto,
            });
        }
        send(&self.out, tag::START, &encode_start(role, path, o))?;
        flush(&self.out)?;
        let mut w = self.out.lock().unwrap_or_else(|p| p.into_inner());
        w.limit(o.bwlimit);
        if o.compress {
            w.compress().map_err(stream)?;
            reader.decompress().map_err(stream)?;
        }
        Ok(())
    }

    /// Turns a failed run into the error that explains it best: ssh's own failure (255),
    /// a remote shell that could not run opsync, or a broken stream.
    fn explain(&mut self, e: RemoteError) -> RemoteError {
        if !matches!(
            e,
            RemoteError::Stream { .. } | RemoteError::NotOpsync { .. }
        ) {
            return e;
        }
        // Closing our end lets a remote shell still running notice and exit.
        drop(self.reader.take());
        if let Ok(mut w) = self.out.lock() {
            *w = FrameWriter::new(Box::new(io::sink()), Counter::default());
        }
        match self.child.wait() {
            Ok(st) => match st.code() {
                Some(255) => RemoteError::Ssh {
                    command: self.command.clone(),
                    code: 255,
                },
                Some(126 | 127) => RemoteError::NotOpsync {
                    what: format!("the remote shell could not run {:?}", self.program),
                    program: self.program.clone(),
                },
                _ => e,
            },
            Err(_) => e,
        }
    }

    fn finish(mut self, report: Report) -> RemoteReport {
        drop(self.reader.take());
        if let Ok(mut w) = self.out.lock() {
            let _ = w.flush();
            *w = FrameWriter::new(Box::new(io::sink()), Counter::default());
        }
        let _ = self.child.wait();
        RemoteReport {
            report,
            sent: self.sent.load(std::sync::atomic::Ordering::Relaxed),
            received: self.received.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Mirrors the local `src` into `dst` on another host.
pub fn push(
    src: &Path,
    dst: &Location,
    o: &RemoteOptions,
    obs: &dyn Observer,
) -> Result<RemoteReport, RemoteError> {
    // Scan while ssh connects and logs in.
    let eng = o.engine.clone();
    let src_owned = src.to_owned();
    let scan = std::thread::spawn(move || sync_engine::remote::scan_source(&src_owned, &eng));
    let mut c = Client::connect(dst, o)?;
    let r = c.handshake(Role::Receiver, &dst.path, o).and_then(|()| {
        let tree = scan
            .join()
            .map_err(|_| RemoteError::Stream {
                detail: "the scan of the source panicked".into(),
            })?
            .map_err(RemoteError::from);
        let tree = match tree {
            Ok(t) => t,
            Err(e) => {
                send_fatal(&c.out, &e);
                return Err(e);
            }
        };
        let reader = c
            .reader
            .take()
            .ok_or_else(|| stream(io::ErrorKind::BrokenPipe.into()))?;
        sender::run(src, tree, reader, c.out.clone(), &o.engine, obs, true)
    });
    match r {
        Ok(report) => Ok(c.finish(report)),
        Err(e) => Err(c.explain(e)),
    }
}

/// Mirrors `src` on another host into the local `dst`.
pub fn pull(
    src: &Location,
    dst: &Path,
    o: &RemoteOptions,
    obs: &dyn Observer,
) -> Result<RemoteReport, RemoteError> {
    let mut c = Client::connect(src, o)?;
    let r = c.handshake(Role::Sender, &src.path, o).and_then(|()| {
        let reader = c
            .reader
            .take()
            .ok_or_else(|| stream(io::ErrorKind::BrokenPipe.into()))?;
        receiver::run(dst, reader, c.out.clone(), &o.engine, obs)
    });
    match r {
        Ok(report) => Ok(c.finish(report)),
        Err(e) => Err(c.explain(e)),
    }
}

/// The server's end (`opsync serve`, started by the client's remote shell): speaks the
/// protocol on `input` and `output` (stdin and stdout).
/// Bytes a pipe to or from ssh holds: at the default 64 KiB each frame of data wakes the other
/// process several times.
const PIPE_SIZE: usize = 1 << 20;

/// Makes the pipe `fd` hold [`PIPE_SIZE`] bytes where the system allows (not a pipe, or above
/// `/proc/sys/fs/pipe-max-size` for this user: it stays as it is).
pub fn widen_pipe(fd: std::os::fd::BorrowedFd<'_>) {
    let _ = rustix::pipe::fcntl_setpipe_size(fd, PIPE_SIZE);
}

pub fn serve(
    input: Box<dyn io::Read + Send>,
    output: Box<dyn io::Write + Send>,
) -> Result<(), RemoteError> {
    let mut reader = FrameReader::new(input, Counter::default());
    let out: Out = Arc::new(Mutex::new(FrameWriter::new(output, Counter::default())));
    send(&out, tag::HELLO, &wire::hello())?;
    flush(&out)?;
    let (t, p) = reader.frame().map_err(stream)?;
    let Some((proto, version)) = (t == tag::HELLO).then(|| wire::parse_hello(p)).flatten() else {
        return Err(RemoteError::Stream {
            detail: format!("expected a hello, got frame tag {t}"),
        });
    };
    if proto != wire::PROTOCOL {
        // The client names both versions; nothing else to do here.
        return Err(RemoteError::Version {
            ours: env!("CARGO_PKG_VERSION").into(),
            ours_proto: wire::PROTOCOL,
            theirs: version,
            theirs_proto: proto,
        });
    }
    let (t, p) = reader.frame().map_err(stream)?;
    if t != tag::START {
        return Err(RemoteError::Stream {
            detail: format!("expected the start frame, got tag {t}"),
        });
    }
    let (role, path, o) = decode_start(p).map_err(stream)?;
    {
        let mut w = out.lock().unwrap_or_else(|p| p.into_inner());
        w.limit(o.bwlimit);
        if o.compress {
            w.compress().map_err(stream)?;
            reader.decompress().map_err(stream)?;
        }
    }
    let fwd = crate::receiver::Forward {
        out: out.clone(),
        items: o.items,
    };
    let r = match role {
        Role::Receiver => receiver::run(&path, reader, out.clone(), &o.engine, &fwd).map(|_| ()),
        Role::Sender => match sync_engine::remote::scan_source(&path, &o.engine) {
            Ok(tree) => {
                sender::run(&path, tree, reader, out.clone(), &o.engine, &fwd, false).map(|_| ())
            }
            Err(e) => Err(RemoteError::from(e)),
        },
    };
    if let Err(e) = &r {
        if !matches!(e, RemoteError::Stream { .. } | RemoteError::Remote { .. }) {
            send_fatal(&out, e);
        }
    }
    let _ = flush(&out);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths_as_rsync_reads_them() {
        let l = parse_location(OsStr::new("deploy@dev-host:/srv/app/dev-data")).unwrap();
        assert_eq!(l.host, "deploy@dev-host");
        assert_eq!(l.path, PathBuf::from("/srv/app/dev-data"));
        assert_eq!(
            parse_location(OsStr::new("h:")).unwrap().path,
            PathBuf::from(".")
        );
        assert!(parse_location(OsStr::new("./a:b")).is_none());
        assert!(parse_location(OsStr::new("/x/a:b")).is_none());
        assert!(parse_location(OsStr::new("data")).is_none());
        assert!(parse_location(OsStr::new(":x")).is_none());
    }

    #[test]
    fn bwlimit_as_rsync_reads_it() {
        assert_eq!(parse_bwlimit("100"), Some(102_400));
        assert_eq!(parse_bwlimit("1.5M"), Some(1_572_864));
        assert_eq!(parse_bwlimit("2MB"), Some(2_000_000));
        assert_eq!(parse_bwlimit("0"), Some(0));
        assert_eq!(parse_bwlimit("fast"), None);
    }

    #[test]
    fn options_reach_the_server() {
        let mut o = RemoteOptions::default();
        o.engine.excludes = vec!["*.tmp".into()];
        o.engine.max_delete = Some(MaxDelete::Percent(5.0));
        o.engine.max_delete_all_or_nothing = true;
        o.engine.recheck = vec![b"db/base.dat".to_vec()];
        o.engine.dry_run = true;
        o.compress = true;
        o.bwlimit = 5000;
        o.engine.acls = true;
        o.engine.hard_links = true;
        let p = encode_start(Role::Sender, Path::new("/srv/data"), &o);
        let (role, path, back) = decode_start(&p).unwrap();
        assert_eq!(role, Role::Sender);
        assert_eq!(path, PathBuf::from("/srv/data"));
        assert_eq!(back.engine.excludes, o.engine.excludes);
        assert_eq!(back.engine.max_delete, o.engine.max_delete);
        assert!(back.engine.max_delete_all_or_nothing);
        assert_eq!(back.engine.recheck, o.engine.recheck);
        assert!(back.engine.dry_run);
        assert!(back.compress);
        assert_eq!(back.bwlimit, 5000);
        assert!(back.engine.acls && back.engine.hard_links && !back.engine.xattrs);
    }
}
