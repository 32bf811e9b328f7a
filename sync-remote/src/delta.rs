//! Changed regular files as `fast_rsync` deltas against the receiver's old version, in bounded
//! memory whatever the file's size.
//!
//! - The receiver computes the signature of the old file in [`SIG_CHUNK`] pieces (blocks of
//!   [`BLOCK`] bytes: a 4-byte rolling checksum and an 8-byte MD4 prefix each, as fast_rsync
//!   makes them) and streams it (`SIG` frames, then `SIG_END` with the old length), for every
//!   requested file in turn, in a thread of its own while it applies other actions. With each
//!   piece go the XXH3-64 hashes of its [`CHUNK`]s (8 bytes per 64 KiB).
//! - The sender reads the new file in windows of [`WINDOW`] bytes. A run of chunks whose XXH3
//!   equals the old file's at the same offset (most of a file changed in place) becomes one
//!   copy command without being diffed; the other runs of window `[a, a+W)` are diffed by
//!   fast_rsync against the signature of the old range `[a-MARGIN, a+W+MARGIN)`
//!   (block-aligned, so its signature is a slice of the file's), which finds data moved by up
//!   to [`MARGIN`] bytes (an insertion, a removal). Each window's delta (in fast_rsync's
//!   format) goes in one `DELTA` frame naming its base range.
//! - The receiver reads the parts of that base range the delta copies from, applies
//!   the delta with a limit of `W` bytes of output, writes the result into the temporary file
//!   and hashes it; at the end the BLAKE3 of the result must equal the sender's hash of the new
//!   file, or the temporary file is dropped and the file is asked for again whole (once per
//!   run, after every delta: one round trip, not one per file).
//!
//! Both ends use the cores: the receiver signs [`PARALLEL`] pieces at a time, the sender diffs
//! [`PARALLEL`] windows at a time (each against its own base range), and both send the results
//! in order.
//!
//! Memory: the sender holds [`PARALLEL`] windows and their deltas, and the signatures of the
//! files whose deltas are under way (12 bytes per 4 KiB of old file: 0.3% of its size); the
//! receiver [`PARALLEL`] pieces being signed, one base range and one window of output.

use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

use fast_rsync::{Signature, SignatureOptions};

use xxhash_rust::xxh3::xxh3_64;

use crate::session::{Out, RemoteError, send};
use crate::wire::{Dec, Enc, tag};

/// Block size of signatures.
pub const BLOCK: usize = 4096;
/// Bytes of MD4 kept per block.
const HASH_LEN: usize = 8;
/// Bytes of one block's signature.
const BLOCK_SIG: usize = 4 + HASH_LEN;
/// The old file is read and signed in pieces of this size.
const SIG_CHUNK: usize = 1 << 20;
/// The new file is diffed in windows of this size.
pub const WINDOW: usize = 8 << 20;
/// Each window's base reaches this far on both sides.
pub const MARGIN: usize = 2 << 20;
/// The old file's XXH3-64 per piece of this size goes with its signature: a piece of the new
/// file with the same hash at the same offset is copied without being diffed.
pub const CHUNK: usize = 64 << 10;
/// Smaller changed files go whole: a signature costs a round of reading on both ends.
pub const DELTA_MIN: u64 = 32 << 10;
/// Pieces signed, and windows diffed, at a time.
const PARALLEL: usize = 4;

fn sig_options() -> SignatureOptions {
    SignatureOptions {
        block_size: BLOCK as u32,
        crypto_hash_size: HASH_LEN as u32,
    }
}

/// The 12-byte header fast_rsync puts before the blocks (MD4 magic, block size, hash size).
fn sig_header() -> Vec<u8> {
    let mut h = Vec::with_capacity(12);
    h.extend_from_slice(&0x7273_0136u32.to_be_bytes());
    h.extend_from_slice(&(BLOCK as u32).to_be_bytes());
    h.extend_from_slice(&(HASH_LEN as u32).to_be_bytes());
    h
}

/// The receiver's answer to one signature request: signs each requested old file in turn.
/// `open(path)` opens the old file (`None`: not a regular file any more).
pub(crate) fn sign_all(
    requests: Vec<(u32, Vec<u8>)>,
    mut open: impl FnMut(&[u8]) -> io::Result<Option<std::fs::File>>,
    out: &Out,
) -> Result<(), RemoteError> {
    let mut buf = vec![0u8; SIG_CHUNK * PARALLEL];
    for (id, path) in requests {
        let mut len = 0u64;
        let ok = match open(&path) {
            Ok(Some(mut f)) => loop {
                let n = match read_full(&mut f, &mut buf) {
                    Ok(n) => n,
                    Err(_) => break false,
                };
                if n == 0 {
                    break true;
                }
                len += n as u64;
                // The pieces' signatures side by side are the signature of the whole (blocks
                // are signed one by one), in order.
                let frames: Vec<Vec<u8>> = on_threads(buf[..n].chunks(SIG_CHUNK), |piece| {
                    let sig = Signature::calculate(piece, sig_options());
                    let mut e = Enc::new();
                    e.u32(id).u32(piece.len().div_ceil(CHUNK) as u32);
                    for c in piece.chunks(CHUNK) {
                        e.u64(xxh3_64(c));
                    }
                    e.0.extend_from_slice(&sig.serialized()[12..]);
                    e.take()
                });
                for f in &frames {
                    send(out, tag::SIG, f)?;
                }
                if n < buf.len() {
                    break true;
                }
            },
            _ => false,
        };
        send(
            out,
            tag::SIG_END,
            &Enc::new().u32(id).u64(len).bool(ok).take(),
        )?;
        // The sender waits for each whole signature before it diffs that file: it must not
        // sit in the buffer behind the next files' signatures.
        crate::session::flush(out)?;
    }
    Ok(())
}

/// `f` of each item, each on a thread of its own (at most [`PARALLEL`] items), in order. Plain
/// threads, not the rayon pool: its idle workers spin (`sched_yield`) after every batch, which
/// took CPU from ssh and the other end on a 2-core machine.
fn on_threads<'a, T: Send>(
    items: impl Iterator<Item = &'a [u8]>,
    f: impl Fn(&'a [u8]) -> T + Sync,
) -> Vec<T> {
    std::thread::scope(|sc| {
        let f = &f;
        let handles: Vec<_> = items.map(|x| sc.spawn(move || f(x))).collect();
        handles
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Reads until `buf` is full or the file ends.
fn read_full(f: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The signature of one old file, as the sender collects it.
#[derive(Default)]
pub(crate) struct OldSig {
    /// fast_rsync's signature of each [`BLOCK`], side by side.
    pub blocks: Vec<u8>,
    /// XXH3-64 of each [`CHUNK`].
    pub chunks: Vec<u64>,
    pub len: u64,
}

impl OldSig {
    /// Adds one `SIG` frame's piece (after the request id): its chunk hashes and block
    /// signatures.
    pub fn add(&mut self, p: &[u8]) -> io::Result<()> {
        let mut d = Dec::new(p, "signature");
        for _ in 0..d.u32()? {
            self.chunks.push(d.u64()?);
        }
        let blocks = d.rest();
        if blocks.len() % BLOCK_SIG != 0 {
            return Err(crate::wire::malformed("signature"));
        }
        self.blocks.extend_from_slice(blocks);
        Ok(())
    }

    /// Whether the new file's piece `data` at `off` (a multiple of [`CHUNK`]) has the old
    /// file's hash there.
    fn same_chunk(&self, off: u64, data: &[u8]) -> bool {
        let k = (off / CHUNK as u64) as usize;
        match self.chunks.get(k) {
            Some(&h) if off < self.len => {
                (self.len - off).min(CHUNK as u64) == data.len() as u64 && xxh3_64(data) == h
            }
            _ => false,
        }
    }
}

/// The base range of the window at `a` (of `len` bytes) in an old file of `old_len` bytes.
fn base_range(a: u64, old_len: u64) -> (u64, u64) {
    let start = a.saturating_sub(MARGIN as u64).min(old_len);
    let end = (a + (WINDOW + MARGIN) as u64).min(old_len);
    (start, end)
}

/// Sends the new file `f` as deltas against `old`, one `DELTA` frame per window, diffing
/// [`PARALLEL`] windows at a time; returns the BLAKE3 of the new content and its length.
pub(crate) fn send_windows(
    out: &Out,
    f: &mut std::fs::File,
    old: &OldSig,
    windows: &mut Vec<u8>,
    deltas: &mut Vec<Vec<u8>>,
) -> Result<Result<(blake3::Hash, u64), io::Error>, RemoteError> {
    windows.resize(WINDOW * PARALLEL, 0);
    deltas.resize_with(PARALLEL, Vec::new);
    let mut h = blake3::Hasher::new();
    let mut a = 0u64;
    loop {
        let n = match read_full(f, windows) {
            Ok(n) => n,
            Err(e) => return Ok(Err(e)),
        };
        if n == 0 {
            break;
        }
        let data = &windows[..n];
        let made: io::Result<()> = std::thread::scope(|sc| {
            let diffs: Vec<_> = data
                .chunks(WINDOW)
                .zip(deltas.iter_mut())
                .enumerate()
                .map(|(i, (w, delta))| {
                    sc.spawn(move || window_delta(old, a + (i * WINDOW) as u64, w, delta))
                })
                .collect();
            h.update(data);
            diffs
                .into_iter()
                .try_for_each(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        });
        if let Err(e) = made {
            return Ok(Err(e));
        }
        for (i, (w, delta)) in data.chunks(WINDOW).zip(deltas.iter()).enumerate() {
            let (bs, be) = base_range(a + (i * WINDOW) as u64, old.len);
            let mut e = Enc::new();
            e.u64(bs).u64(be - bs).u32(w.len() as u32);
            e.0.extend_from_slice(delta);
            send(out, tag::DELTA, &e.take())?;
        }
        a += n as u64;
        if n < windows.len() {
            break;
        }
    }
    Ok(Ok((h.finalize(), a)))
}

/// fast_rsync's delta format: its first four bytes, the end command, and the copy command
/// with 8-byte offset and length.
const DELTA_MAGIC: u32 = 0x7273_0236;
const OP_END: u8 = 0;
const OP_COPY_N8_N8: u8 = 0x54;

/// The delta of the window `data` at offset `a` of the new file against its base range of the
/// old file (see [`base_range`]), into `delta`.
///
/// Runs of [`CHUNK`]s whose XXH3 equals the old file's at the same offset become one copy
/// command each; only the other runs are diffed by fast_rsync (against the whole base range's
/// signature, so moved data is still found), and their deltas' commands are put in between.
/// The result is one delta in fast_rsync's format.
fn window_delta(old: &OldSig, a: u64, data: &[u8], delta: &mut Vec<u8>) -> io::Result<()> {
    let (bs, be) = base_range(a, old.len);
    // The runs of pieces that are (true) and are not (false) the same as the old file's.
    let mut runs: Vec<(usize, usize, bool)> = Vec::new();
    for (k, piece) in data.chunks(CHUNK).enumerate() {
        let at = k * CHUNK;
        let same = old.same_chunk(a + at as u64, piece);
        match runs.last_mut() {
            Some(r) if r.2 == same => r.1 = at + piece.len(),
            _ => runs.push((at, at + piece.len(), same)),
        }
    }
    let bad = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    let sig = if runs.iter().any(|r| !r.2) {
        let (b0, b1) = ((bs as usize) / BLOCK, (be as usize).div_ceil(BLOCK));
        let slice = old
            .blocks
            .get(b0 * BLOCK_SIG..b1 * BLOCK_SIG)
            .unwrap_or_default();
        let mut bytes = sig_header();
        bytes.extend_from_slice(slice);
        Some(Signature::deserialize(bytes).map_err(|e| bad(e.to_string()))?)
    } else {
        None
    };
    let index = sig.as_ref().map(Signature::index);
    delta.clear();
    delta.extend_from_slice(&DELTA_MAGIC.to_be_bytes());
    let mut sub = Vec::new();
    for (start, end, same) in runs {
        match (&index, same) {
            (Some(ix), false) => {
                sub.clear();
                fast_rsync::diff(ix, &data[start..end], &mut sub)
                    .map_err(|e| bad(e.to_string()))?;
                // Its commands, without its magic and its end.
                delta.extend_from_slice(&sub[4..sub.len() - 1]);
            }
            (None, false) => unreachable!("the index is built when a piece differs"),
            (_, true) => {
                delta.push(OP_COPY_N8_N8);
                delta.extend_from_slice(&(a + start as u64 - bs).to_be_bytes());
                delta.extend_from_slice(&((end - start) as u64).to_be_bytes());
            }
        }
    }
    delta.push(OP_END);
    Ok(())
}

/// The ranges of the base that `delta` (fast_rsync's format) copies from, merged where they
/// touch, in `out`; `None` when the delta is malformed.
fn copied_ranges(delta: &[u8], out: &mut Vec<(usize, usize)>) -> Option<()> {
    out.clear();
    let mut d = delta.get(4..)?;
    fn take<'a>(d: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (h, t) = (d.get(..n)?, d.get(n..)?);
        *d = t;
        Some(h)
    }
    fn int(d: &mut &[u8], n: usize) -> Option<u64> {
        let mut b = [0u8; 8];
        b[8 - n..].copy_from_slice(take(d, n)?);
        Some(u64::from_be_bytes(b))
    }
    loop {
        let cmd = *take(&mut d, 1)?.first()?;
        match cmd {
            OP_END => return Some(()),
            0x01..=0x40 => {
                take(&mut d, cmd as usize)?;
            }
            0x41..=0x44 => {
                let n = int(&mut d, 1 << (cmd - 0x41))?;
                take(&mut d, usize::try_from(n).ok()?)?;
            }
            0x45..=OP_COPY_N8_N8 => {
                let mode = cmd - 0x45;
                let off = usize::try_from(int(&mut d, 1 << (mode / 4))?).ok()?;
                let len = usize::try_from(int(&mut d, 1 << (mode % 4))?).ok()?;
                let end = off.checked_add(len)?;
                match out.last_mut() {
                    Some(last) if off <= last.1 && off >= last.0 => last.1 = last.1.max(end),
                    _ => out.push((off, end)),
                }
            }
            _ => return None,
        }
    }
}

/// The receiver's side of one `DELTA` frame: reads the base range of `old`, applies the delta
/// and writes the result into `tmp`; returns the bytes written.
pub(crate) fn apply_window(
    p: &[u8],
    old: &std::fs::File,
    base: &mut Vec<u8>,
    tmp: &mut std::fs::File,
    hasher: &mut blake3::Hasher,
) -> io::Result<u64> {
    let mut d = Dec::new(p, "delta");
    let start = d.u64()?;
    let len = d.u64()? as usize;
    let want = d.u32()? as usize;
    if len > WINDOW + 2 * MARGIN || want > WINDOW {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "delta window larger than the protocol allows",
        ));
    }
    let delta = d.rest();
    base.resize(len, 0);
    // Only what the delta copies is read (a window's base reaches past it on both sides); a
    // malformed delta reads nothing and fails to apply below.
    let mut ranges = Vec::new();
    if copied_ranges(delta, &mut ranges).is_some() {
        for &(s, e) in &ranges {
            if e > len {
                break;
            }
            old.read_exact_at(&mut base[s..e], start + s as u64)?;
        }
    }
    let mut sink = Sink {
        tmp,
        hasher,
        written: 0,
    };
    fast_rsync::apply_limited(base, delta, &mut sink, want)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    Ok(sink.written)
}

/// Where a delta's output goes: hashed and written in pieces of [`SINK_PIECE`] bytes, each
/// while it is in the cache (one 8 MiB write took 4 times as long on ext4 as 32 of 256 KiB).
/// A delta that fails halfway leaves part of the output: its file is dropped.
struct Sink<'a> {
    tmp: &'a mut std::fs::File,
    hasher: &'a mut blake3::Hasher,
    written: u64,
}

const SINK_PIECE: usize = 256 << 10;

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for piece in buf.chunks(SINK_PIECE) {
            self.hasher.update(piece);
            self.tmp.write_all(piece)?;
        }
        self.written += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose bytes the test reads afterwards.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The signature of `old` as the sender collects it from `sign_all`'s frames.
    fn old_sig(old: &[u8]) -> OldSig {
        let back = Shared::default();
        let out: Out = std::sync::Arc::new(std::sync::Mutex::new(crate::wire::FrameWriter::new(
            Box::new(back.clone()),
            Default::default(),
        )));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("old"), old).unwrap();
        sign_all(
            vec![(7, b"old".to_vec())],
            |p| std::fs::File::open(dir.path().join(std::str::from_utf8(p).unwrap())).map(Some),
            &out,
        )
        .unwrap();
        out.lock().unwrap().flush().unwrap();
        let bytes = back.0.lock().unwrap().clone();
        let mut r =
            crate::wire::FrameReader::new(Box::new(io::Cursor::new(bytes)), Default::default());
        let mut sig = OldSig::default();
        loop {
            let (t, p) = r.frame().unwrap();
            let mut d = Dec::new(p, "test");
            assert_eq!(d.u32().unwrap(), 7);
            if t == tag::SIG_END {
                sig.len = d.u64().unwrap();
                return sig;
            }
            assert_eq!(t, tag::SIG);
            sig.add(d.rest()).unwrap();
        }
    }

    fn pseudo_random(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect()
    }

    /// A file of more windows than are diffed at a time, with changed blocks and an insertion
    /// across the boundary of two batches, rebuilt by the receiver's side from the frames: the
    /// deltas go in order and the hash is the new file's.
    #[test]
    fn windows_diffed_in_parallel_rebuild_the_file_in_order() {
        use crate::wire::{Counter, FrameReader, FrameWriter};
        let dir = tempfile::tempdir().unwrap();
        let old = pseudo_random(5 * WINDOW + 12_345, 1);
        let mut new = old.clone();
        for b in (0..new.len()).step_by(777_777) {
            new[b] ^= 0x5a;
        }
        let at = WINDOW * PARALLEL - 1000;
        new.splice(at..at, pseudo_random(65_536, 2));
        std::fs::write(dir.path().join("old"), &old).unwrap();
        std::fs::write(dir.path().join("new"), &new).unwrap();
        // The receiver's signature of the old file, as sign_all streams it.
        let sig = old_sig(&old);
        let back = Shared::default();
        let out: Out = std::sync::Arc::new(std::sync::Mutex::new(FrameWriter::new(
            Box::new(back.clone()),
            Counter::default(),
        )));
        let mut f = std::fs::File::open(dir.path().join("new")).unwrap();
        let (mut w, mut d) = (Vec::new(), Vec::new());
        let (hash, len) = send_windows(&out, &mut f, &sig, &mut w, &mut d)
            .unwrap()
            .unwrap();
        assert_eq!(len, new.len() as u64);
        assert_eq!(hash, blake3::hash(&new));
        out.lock().unwrap().flush().unwrap();
        let bytes = back.0.lock().unwrap().clone();
        let mut r = FrameReader::new(Box::new(io::Cursor::new(bytes)), Counter::default());
        let oldf = std::fs::File::open(dir.path().join("old")).unwrap();
        let mut tmp = std::fs::File::create(dir.path().join("tmp")).unwrap();
        let (mut base, mut h) = (Vec::new(), blake3::Hasher::new());
        let mut frames = 0;
        while let Ok((t, p)) = r.frame() {
            assert_eq!(t, tag::DELTA);
            apply_window(p, &oldf, &mut base, &mut tmp, &mut h).unwrap();
            frames += 1;
        }
        assert_eq!(frames, new.len().div_ceil(WINDOW));
        assert_eq!(h.finalize(), hash);
        assert!(std::fs::read(dir.path().join("tmp")).unwrap() == new);
    }

    /// A window whose pieces all have the old file's hash at the same offset is one copy
    /// command (not diffed); a window with one changed byte copies only from inside the window
    /// (the receiver reads nothing of the margins), and its delta holds one block of literal.
    #[test]
    fn unchanged_pieces_are_one_copy_and_a_changed_window_reads_only_itself() {
        let old = pseudo_random(3 * WINDOW, 3);
        let sig = old_sig(&old);
        let a = WINDOW as u64;
        let (bs, _) = base_range(a, old.len() as u64);
        let window = &old[WINDOW..2 * WINDOW];
        let mut delta = Vec::new();
        window_delta(&sig, a, window, &mut delta).unwrap();
        let mut want = DELTA_MAGIC.to_be_bytes().to_vec();
        want.push(OP_COPY_N8_N8);
        want.extend_from_slice(&(a - bs).to_be_bytes());
        want.extend_from_slice(&(WINDOW as u64).to_be_bytes());
        want.push(OP_END);
        assert_eq!(delta, want);

        let mut changed = window.to_vec();
        changed[WINDOW / 2 + 100] ^= 1;
        window_delta(&sig, a, &changed, &mut delta).unwrap();
        assert!(delta.len() < BLOCK + 200, "delta of {} bytes", delta.len());
        let mut ranges = Vec::new();
        copied_ranges(&delta, &mut ranges).unwrap();
        let inside = ((a - bs) as usize, (a - bs) as usize + WINDOW);
        assert!(
            ranges.iter().all(|&(s, e)| s >= inside.0 && e <= inside.1),
            "{ranges:?} reach outside {inside:?}"
        );
        let mut out = Vec::new();
        fast_rsync::apply(&old[bs as usize..], &delta, &mut out).unwrap();
        assert!(out == changed);
        assert!(copied_ranges(&delta[..delta.len() - 1], &mut ranges).is_none());
        assert!(copied_ranges(&[0x72, 0x73, 0x02, 0x36, 0x55], &mut ranges).is_none());
    }

    /// A window's base signature sliced from per-chunk signatures equals fast_rsync's
    /// signature of that base range, and the delta rebuilds an insertion.
    #[test]
    fn sliced_signatures_rebuild_shifted_data() {
        let mut old = vec![0u8; 3 * SIG_CHUNK + 1234];
        let mut x = 7u32;
        for b in &mut old {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = (x >> 16) as u8;
        }
        let mut blocks = Vec::new();
        for c in old.chunks(SIG_CHUNK) {
            blocks.extend_from_slice(&Signature::calculate(c, sig_options()).serialized()[12..]);
        }
        let whole = Signature::calculate(&old, sig_options());
        assert_eq!(&whole.serialized()[12..], &blocks[..]);
        let mut new = old[..100_000].to_vec();
        new.extend_from_slice(&[9u8; 65536]);
        new.extend_from_slice(&old[100_000..]);
        let (bs, be) = base_range(0, old.len() as u64);
        let mut sig = sig_header();
        sig.extend_from_slice(
            &blocks[(bs as usize / BLOCK) * BLOCK_SIG..(be as usize).div_ceil(BLOCK) * BLOCK_SIG],
        );
        let s = Signature::deserialize(sig).unwrap();
        let mut delta = Vec::new();
        fast_rsync::diff(&s.index(), &new, &mut delta).unwrap();
        assert!(
            delta.len() < 70_000 + 4096,
            "delta of {} bytes",
            delta.len()
        );
        let mut out = Vec::new();
        fast_rsync::apply(&old[bs as usize..be as usize], &delta, &mut out).unwrap();
        assert_eq!(out, new);
    }
}
