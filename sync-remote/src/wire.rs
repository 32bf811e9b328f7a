//! The wire: frames of `[tag: u8][length: u32 LE][payload]`, payloads in a fixed little-endian
//! encoding ([`Enc`], [`Dec`]), and readers and writers that count the bytes they move (what
//! `--stats` reports as sent and received).
//!
//! The first frame each way is the hello ([`HELLO_MAGIC`], the protocol version, opsync's
//! version): its layout never changes, so two different versions can always tell each other
//! what they speak.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sync_engine::remote::{Kind, Meta, Time};

/// Starts every hello frame.
pub const HELLO_MAGIC: &[u8; 8] = b"OPSYNC\x00\x01";
/// The protocol this build speaks; both ends must speak the same. 3: the start frame carries
/// `-X`, `-A` and `-H`, and with them the listing entries their extended attributes and inodes.
pub const PROTOCOL: u32 = 3;
/// A frame's payload is at most this long (a bad length is a stream error, not an allocation).
pub const MAX_FRAME: usize = 16 << 20;
/// File data goes in frames of this size.
pub const DATA_CHUNK: usize = 256 << 10;

/// Frame tags.
pub mod tag {
    pub const HELLO: u8 = 1;
    /// Client to server: the role and path of the server, and the run's options.
    pub const START: u8 = 2;
    /// A fatal error: exit code and message; the sender of it stops.
    pub const FATAL: u8 = 3;
    /// Receiver to sender: whether it runs as root, its groups, whether DST exists.
    pub const DST_INFO: u8 = 10;
    /// Receiver to sender: a batch of DST listing entries.
    pub const ENTRIES: u8 = 11;
    pub const ENTRIES_END: u8 = 12;
    /// An `ENTRIES` payload compressed with zstd (names and attributes shrink 3 to 4 times:
    /// the listing is most of a no-change run's bytes).
    pub const ENTRIES_Z: u8 = 13;
    /// Sender to receiver: the actions.
    pub const DELETE: u8 = 20;
    pub const MKDIR: u8 = 21;
    pub const FILE: u8 = 22;
    pub const DATA: u8 = 23;
    pub const FILE_END: u8 = 24;
    pub const MAKE: u8 = 25;
    pub const ATTRS: u8 = 26;
    pub const DIR_ATTRS: u8 = 27;
    /// The sender could not read a file it announced: the receiver drops it.
    pub const FILE_ABORT: u8 = 28;
    /// Sender to receiver: a file rebuilt from a delta against the receiver's old version.
    pub const DELTA_FILE: u8 = 29;
    /// Sender to receiver: a piece of delta (fast_rsync's format) for the current window.
    pub const DELTA: u8 = 30;
    /// Sender to receiver: every delta was sent; the receiver answers with `RESEND`.
    pub const DELTAS_END: u8 = 31;
    /// Sender to receiver (`-X`, `-A`): the whole set of extended attributes the entry of the
    /// next action on the same path gets (path, masked mode, name/value pairs).
    pub const XATTRS: u8 = 32;
    /// Sender to receiver (`-H`): make a path a hard link of another one already in DST.
    pub const LINK: u8 = 33;
    /// Receiver to sender: the files whose delta did not rebuild the sender's content.
    pub const RESEND: u8 = 52;
    /// Receiver to sender: the end of one file's signature, with the old file's length.
    pub const SIG_END: u8 = 53;
    /// Sender to receiver: the sender's counts, then the end of the actions.
    pub const SUMMARY: u8 = 40;
    pub const END: u8 = 41;
    /// Receiver to sender: requests for signatures (sender to receiver) and signatures.
    pub const SIG_REQUEST: u8 = 50;
    pub const SIG: u8 = 51;
    /// Either way: an itemize line or an error on one entry, for the client to print.
    pub const ITEM: u8 = 60;
    pub const ERROR: u8 = 61;
    /// Receiver to sender: the run's report; the last frame of a run.
    pub const REPORT: u8 = 70;
    /// Sender to receiver, before the actions: DST files whose contents decide (`-c`, racy
    /// copies); the receiver answers each with `HASHES` (present flag and hash per path).
    pub const HASH_REQUEST: u8 = 80;
    pub const HASHES: u8 = 81;
}

/// Byte counter shared between a reader or writer and whoever reports it.
pub type Counter = Arc<AtomicU64>;

/// A reader that counts the bytes read through it.
pub struct Counted<R> {
    inner: R,
    count: Counter,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A writer that counts the bytes written through it and, with a limit, keeps their rate at
/// most that many bytes per second (`--bwlimit`).
pub struct CountedW<W> {
    inner: W,
    count: Counter,
    limit: Option<(u64, std::time::Instant, u64)>,
}

impl<W: Write> Write for CountedW<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Writes of at most 64 KiB, so a limit is kept smoothly.
        let n = self.inner.write(&buf[..buf.len().min(64 << 10)])?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        if let Some((rate, started, sent)) = &mut self.limit {
            *sent += n as u64;
            let due = std::time::Duration::from_secs_f64(*sent as f64 / *rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type RawReader = BufReader<Counted<Box<dyn Read + Send>>>;

enum ReadSide {
    Plain(RawReader),
    Zstd(Box<zstd::stream::read::Decoder<'static, BufReader<ChainedReader>>>),
    Gone,
}

/// What was buffered before compression started, then the rest of the stream.
type ChainedReader = io::Chain<io::Cursor<Vec<u8>>, Counted<Box<dyn Read + Send>>>;

impl Read for ReadSide {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ReadSide::Plain(r) => r.read(buf),
            ReadSide::Zstd(r) => r.read(buf),
            ReadSide::Gone => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }
}

/// Reads frames.
pub struct FrameReader {
    inner: ReadSide,
    buf: Vec<u8>,
}

impl FrameReader {
    pub fn new(r: Box<dyn Read + Send>, count: Counter) -> FrameReader {
        FrameReader {
            inner: ReadSide::Plain(BufReader::with_capacity(
                256 << 10,
                Counted { inner: r, count },
            )),
            buf: Vec::new(),
        }
    }

    /// From here on the stream is zstd-compressed (`-z`).
    pub fn decompress(&mut self) -> io::Result<()> {
        if let ReadSide::Plain(r) = std::mem::replace(&mut self.inner, ReadSide::Gone) {
            let left = r.buffer().to_vec();
            let chained = io::Cursor::new(left).chain(r.into_inner());
            self.inner = ReadSide::Zstd(Box::new(zstd::stream::read::Decoder::new(chained)?));
        }
        Ok(())
    }

    /// The next frame: its tag and payload; `UnexpectedEof` when the stream ended between
    /// frames or inside one.
    pub fn frame(&mut self) -> io::Result<(u8, &[u8])> {
        let mut head = [0u8; 5];
        self.inner.read_exact(&mut head)?;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame of {len} bytes (at most {MAX_FRAME})"),
            ));
        }
        self.buf.resize(len, 0);
        self.inner.read_exact(&mut self.buf)?;
        Ok((head[0], &self.buf))
    }
}

type RawWriter = BufWriter<CountedW<Box<dyn Write + Send>>>;

enum WriteSide {
    Plain(RawWriter),
    Zstd(Box<zstd::stream::write::Encoder<'static, RawWriter>>),
    Gone,
}

impl Write for WriteSide {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            WriteSide::Plain(w) => w.write(buf),
            WriteSide::Zstd(w) => w.write(buf),
            WriteSide::Gone => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            WriteSide::Plain(w) => w.flush(),
            WriteSide::Zstd(w) => w.flush(),
            WriteSide::Gone => Ok(()),
        }
    }
}

/// Writes frames.
pub struct FrameWriter {
    inner: WriteSide,
}

impl FrameWriter {
    pub fn new(w: Box<dyn Write + Send>, count: Counter) -> FrameWriter {
        FrameWriter {
            inner: WriteSide::Plain(BufWriter::with_capacity(
                256 << 10,
                CountedW {
                    inner: w,
                    count,
                    limit: None,
                },
            )),
        }
    }

    /// From here on the stream is zstd-compressed (`-z`).
    pub fn compress(&mut self) -> io::Result<()> {
        if let WriteSide::Plain(w) = std::mem::replace(&mut self.inner, WriteSide::Gone) {
            self.inner = WriteSide::Zstd(Box::new(zstd::stream::write::Encoder::new(w, 3)?));
        }
        Ok(())
    }

    /// Writes at most `bytes_per_sec` bytes a second on the connection (`--bwlimit`).
    pub fn limit(&mut self, bytes_per_sec: u64) {
        let raw = match &mut self.inner {
            WriteSide::Plain(w) => w.get_mut(),
            WriteSide::Zstd(w) => w.get_mut().get_mut(),
            WriteSide::Gone => return,
        };
        raw.limit = (bytes_per_sec > 0).then(|| (bytes_per_sec, std::time::Instant::now(), 0));
    }

    pub fn frame(&mut self, tag: u8, payload: &[u8]) -> io::Result<()> {
        let mut head = [0u8; 5];
        head[0] = tag;
        head[1..].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        self.inner.write_all(&head)?;
        self.inner.write_all(payload)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Builds a payload.
#[derive(Default)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    pub fn new() -> Enc {
        Enc(Vec::new())
    }
    pub fn u8(&mut self, v: u8) -> &mut Enc {
        self.0.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Enc {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Enc {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Enc {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bool(&mut self, v: bool) -> &mut Enc {
        self.u8(u8::from(v))
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Enc {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
        self
    }
    pub fn str(&mut self, v: &str) -> &mut Enc {
        self.bytes(v.as_bytes())
    }
    pub fn meta(&mut self, m: &Meta) -> &mut Enc {
        self.u8(kind_code(m.kind))
            .u32(m.perm)
            .u32(m.uid)
            .u32(m.gid)
            .u64(m.size)
            .i64(m.mtime.sec)
            .u32(m.mtime.nsec)
            .u8(u8::from(m.protected) | (u8::from(m.mount) << 1))
    }
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

fn kind_code(k: Kind) -> u8 {
    match k {
        Kind::File => 0,
        Kind::Dir => 1,
        Kind::Symlink => 2,
        Kind::CharDev => 3,
        Kind::BlockDev => 4,
        Kind::Fifo => 5,
        Kind::Socket => 6,
    }
}

fn kind_of(c: u8) -> Option<Kind> {
    Some(match c {
        0 => Kind::File,
        1 => Kind::Dir,
        2 => Kind::Symlink,
        3 => Kind::CharDev,
        4 => Kind::BlockDev,
        5 => Kind::Fifo,
        6 => Kind::Socket,
        _ => return None,
    })
}

/// Longest extended attribute value accepted (Linux's limit).
pub const MAX_XATTR_VALUE: usize = 64 << 10;

impl Enc {
    /// Extended attributes: count, then name and value of each.
    pub fn xattrs(&mut self, x: &[(Vec<u8>, Vec<u8>)]) -> &mut Enc {
        self.u32(x.len() as u32);
        for (n, v) in x {
            self.bytes(n).bytes(v);
        }
        self
    }
}

/// A payload that ended early or held a bad value.
pub fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed {what} frame"),
    )
}

/// Reads a payload.
pub struct Dec<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Dec<'a> {
        Dec { buf, what }
    }
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(malformed(self.what));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    pub fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> io::Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> io::Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    pub fn i64(&mut self) -> io::Result<i64> {
        Ok(self.u64()? as i64)
    }
    pub fn bool(&mut self) -> io::Result<bool> {
        Ok(self.u8()? != 0)
    }
    pub fn bytes(&mut self) -> io::Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn string(&mut self) -> io::Result<String> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }
    pub fn meta(&mut self) -> io::Result<Meta> {
        let kind = kind_of(self.u8()?).ok_or_else(|| malformed(self.what))?;
        let perm = self.u32()? & 0o7777;
        let uid = self.u32()?;
        let gid = self.u32()?;
        let size = self.u64()?;
        let sec = self.i64()?;
        let nsec = self.u32()?;
        if nsec >= 1_000_000_000 {
            return Err(malformed(self.what));
        }
        let flags = self.u8()?;
        Ok(Meta {
            kind,
            perm,
            uid,
            gid,
            size,
            mtime: Time { sec, nsec },
            racy: false,
            protected: flags & 1 != 0,
            mount: flags & 2 != 0,
        })
    }
    /// Extended attributes as [`Enc::xattrs`] wrote them, sorted by name; names of 1 to 255
    /// bytes without NUL, values of at most [`MAX_XATTR_VALUE`] bytes.
    pub fn xattrs(&mut self) -> io::Result<sync_engine::remote::Xattrs> {
        let n = self.u32()? as usize;
        // Each pair takes at least 9 bytes: a count larger than the payload is malformed.
        if n > self.buf.len() / 9 {
            return Err(malformed(self.what));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let name = self.bytes()?;
            let value = self.bytes()?;
            if name.is_empty() || name.len() > 255 || name.contains(&0) {
                return Err(malformed(self.what));
            }
            if value.len() > MAX_XATTR_VALUE {
                return Err(malformed(self.what));
            }
            out.push((name.to_vec(), value.to_vec()));
        }
        out.sort();
        Ok(out)
    }
    pub fn rest_is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    /// The rest of the payload.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
}

/// The hello payload: magic, protocol, opsync's version.
pub fn hello() -> Vec<u8> {
    let mut e = Enc::new();
    e.0.extend_from_slice(HELLO_MAGIC);
    e.u32(PROTOCOL).str(env!("CARGO_PKG_VERSION"));
    e.take()
}

/// The other end's protocol and version from its hello; `None` when it is not an opsync hello.
pub fn parse_hello(p: &[u8]) -> Option<(u32, String)> {
    let rest = p.strip_prefix(HELLO_MAGIC.as_slice())?;
    let mut d = Dec::new(rest, "hello");
    let proto = d.u32().ok()?;
    let version = d.string().ok()?;
    Some((proto, version))
}

/// The report's fields in order.
pub fn encode_report(r: &sync_engine::Report) -> Vec<u8> {
    let mut e = Enc::new();
    for v in [
        r.src_entries,
        r.src_files,
        r.src_bytes,
        r.src_dirs,
        r.src_symlinks,
        r.src_devices,
        r.src_specials,
        r.src_link_bytes,
        r.dst_entries,
        r.files_copied,
        r.bytes_copied,
        r.bytes_written,
        r.rechecked,
        r.unstable,
        r.verified,
        r.created,
        r.deleted,
        r.attrs_fixed,
        r.errors,
        r.vanished,
    ] {
        e.u64(v);
    }
    e.bool(r.dry_run)
        .bool(r.deletions_disabled)
        .bool(r.delete_limited)
        .bool(r.cancelled);
    e.take()
}

pub fn decode_report(p: &[u8]) -> io::Result<sync_engine::Report> {
    let mut d = Dec::new(p, "report");
    let mut r = sync_engine::Report::default();
    for f in [
        &mut r.src_entries,
        &mut r.src_files,
        &mut r.src_bytes,
        &mut r.src_dirs,
        &mut r.src_symlinks,
        &mut r.src_devices,
        &mut r.src_specials,
        &mut r.src_link_bytes,
        &mut r.dst_entries,
        &mut r.files_copied,
        &mut r.bytes_copied,
        &mut r.bytes_written,
        &mut r.rechecked,
        &mut r.unstable,
        &mut r.verified,
        &mut r.created,
        &mut r.deleted,
        &mut r.attrs_fixed,
        &mut r.errors,
        &mut r.vanished,
    ] {
        *f = d.u64()?;
    }
    r.dry_run = d.bool()?;
    r.deletions_disabled = d.bool()?;
    r.delete_limited = d.bool()?;
    r.cancelled = d.bool()?;
    Ok(r)
}

/// The operations an error frame may name (a `FileError` names a static operation).
const ERROR_OPS: &[&str] = &[
    "copy",
    "delete",
    "create directory",
    "create",
    "set attributes of",
    "read",
    "read directory",
    "stat",
    "receive",
    "check",
    "hard link",
];

pub fn encode_error(e: &sync_engine::FileError) -> Vec<u8> {
    Enc::new()
        .str(e.op)
        .bytes(&e.path)
        .u8(u8::from(e.side == sync_engine::Side::Dest))
        .str(&e.source.to_string())
        .take()
}

pub fn decode_error(p: &[u8]) -> io::Result<sync_engine::FileError> {
    let mut d = Dec::new(p, "error");
    let op = d.string()?;
    let op = ERROR_OPS
        .iter()
        .find(|o| **o == op)
        .copied()
        .unwrap_or("transfer");
    let path = d.bytes()?.to_vec();
    let side = if d.bool()? {
        sync_engine::Side::Dest
    } else {
        sync_engine::Side::Source
    };
    let msg = d.string()?;
    Ok(sync_engine::FileError {
        op,
        path,
        side,
        source: io::Error::other(msg),
    })
}

fn op_code(op: sync_engine::Op) -> u8 {
    use sync_engine::Op;
    match op {
        Op::Delete => 0,
        Op::Mkdir => 1,
        Op::Copy => 2,
        Op::Symlink => 3,
        Op::Mknod => 4,
        Op::SetAttrs => 5,
        Op::Link => 6,
        Op::Stamp => 7,
        Op::Unchanged => 8,
    }
}

fn op_of(c: u8) -> Option<sync_engine::Op> {
    use sync_engine::Op;
    Some(match c {
        0 => Op::Delete,
        1 => Op::Mkdir,
        2 => Op::Copy,
        3 => Op::Symlink,
        4 => Op::Mknod,
        5 => Op::SetAttrs,
        6 => Op::Link,
        7 => Op::Stamp,
        8 => Op::Unchanged,
        _ => return None,
    })
}

pub fn encode_item(i: &sync_engine::Item<'_>) -> Vec<u8> {
    let mut e = Enc::new();
    e.0.extend_from_slice(&i.field);
    e.u8(op_code(i.op))
        .u8(kind_code(i.kind))
        .bytes(i.path)
        .u64(i.bytes);
    match i.link {
        Some(l) => e.bool(true).bytes(l),
        None => e.bool(false),
    };
    e.take()
}

/// An itemize line received: the observer gets it as an [`sync_engine::Item`].
pub struct OwnedItem {
    pub field: [u8; 11],
    pub op: sync_engine::Op,
    pub kind: Kind,
    pub path: Vec<u8>,
    pub link: Option<Vec<u8>>,
    pub bytes: u64,
}

impl OwnedItem {
    pub fn item(&self) -> sync_engine::Item<'_> {
        sync_engine::Item {
            field: self.field,
            op: self.op,
            kind: self.kind,
            path: &self.path,
            link: self.link.as_deref(),
            bytes: self.bytes,
        }
    }
}

pub fn decode_item(p: &[u8]) -> io::Result<OwnedItem> {
    if p.len() < 11 {
        return Err(malformed("item"));
    }
    let mut field = [0u8; 11];
    field.copy_from_slice(&p[..11]);
    let mut d = Dec::new(&p[11..], "item");
    let op = op_of(d.u8()?).ok_or_else(|| malformed("item"))?;
    let kind = kind_of(d.u8()?).ok_or_else(|| malformed("item"))?;
    let path = d.bytes()?.to_vec();
    let bytes = d.u64()?;
    let link = if d.bool()? {
        Some(d.bytes()?.to_vec())
    } else {
        None
    };
    Ok(OwnedItem {
        field,
        op,
        kind,
        path,
        link,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips() {
        let m = Meta {
            kind: Kind::BlockDev,
            perm: 0o4755,
            uid: 1000,
            gid: 7,
            size: 0x0801,
            mtime: Time {
                sec: -5,
                nsec: 999_999_999,
            },
            racy: false,
            protected: true,
            mount: false,
        };
        let buf = Enc::new().meta(&m).take();
        assert_eq!(Dec::new(&buf, "t").meta().unwrap(), m);
        assert!(Dec::new(&buf[..buf.len() - 1], "t").meta().is_err());
    }

    #[test]
    fn xattrs_round_trip_and_bad_ones_are_malformed() {
        let x = vec![
            (b"user.b".to_vec(), vec![0u8, 1, 2]),
            (b"user.a".to_vec(), Vec::new()),
        ];
        let buf = Enc::new().xattrs(&x).take();
        let mut sorted = x.clone();
        sorted.sort();
        assert_eq!(Dec::new(&buf, "t").xattrs().unwrap(), sorted);
        // A count larger than the payload could hold, an empty name, a NUL in a name.
        assert!(
            Dec::new(&Enc::new().u32(u32::MAX).take(), "t")
                .xattrs()
                .is_err()
        );
        let empty = Enc::new().u32(1).bytes(b"").bytes(b"v").take();
        assert!(Dec::new(&empty, "t").xattrs().is_err());
        let nul = Enc::new().u32(1).bytes(b"user.\0").bytes(b"v").take();
        assert!(Dec::new(&nul, "t").xattrs().is_err());
        let big = Enc::new()
            .u32(1)
            .bytes(b"user.x")
            .bytes(&vec![0u8; MAX_XATTR_VALUE + 1])
            .take();
        assert!(Dec::new(&big, "t").xattrs().is_err());
    }

    #[test]
    fn hello_names_protocol_and_version() {
        let (p, v) = parse_hello(&hello()).unwrap();
        assert_eq!(p, PROTOCOL);
        assert_eq!(v, env!("CARGO_PKG_VERSION"));
        assert!(parse_hello(b"SSH-2.0-junk").is_none());
    }
}
