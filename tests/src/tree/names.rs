//! Random file names, odd ones often: every byte but `/` and NUL is allowed in a name.

use fastrand::Rng;

/// A random valid name (1 to 255 bytes, never `.` or `..`). With `extra_percent` probability one
/// of `extra` instead.
pub(crate) fn random_name(rng: &mut Rng, extra: &[Vec<u8>], extra_percent: u32) -> Vec<u8> {
    if !extra.is_empty() && rng.u32(0..100) < extra_percent {
        return extra[rng.usize(..extra.len())].clone();
    }
    let name = match rng.u32(0..100) {
        0..=44 => plain(rng),
        45..=49 => [plain(rng), b" ".to_vec(), plain(rng)].concat(),
        50..=51 => [b" ".to_vec(), plain(rng), b" ".to_vec()].concat(),
        52..=55 => {
            let dashes: &[u8] = if rng.bool() { b"-" } else { b"--" };
            [dashes.to_vec(), plain(rng)].concat()
        }
        56..=60 => {
            let dotted: &[&[u8]] = &[b"a..b", b"..x", b"x..", b"...", b".hidden", b".", b".~tmp~"];
            let d = dotted[rng.usize(..dotted.len())];
            [d, plain(rng).as_slice()].concat()
        }
        61..=64 => [plain(rng), b"\n".to_vec(), plain(rng)].concat(),
        65..=69 => {
            let odd: &[&[u8]] = &[b"\xff", b"\xfe\xfd", b"caf\xe9", b"\xc3\x28", b"\x80"];
            [plain(rng).as_slice(), odd[rng.usize(..odd.len())]].concat()
        }
        70..=73 => long(rng),
        74..=78 => {
            let special: &[&[u8]] = &[
                b"*", b"?", b"[ab]", b"\\", b"#", b"'", b"\"", b"$HOME", b"~", b"%s", b";|&",
            ];
            [plain(rng).as_slice(), special[rng.usize(..special.len())]].concat()
        }
        79..=81 => {
            let ctrl: &[&[u8]] = &[b"\t", b"\x01", b"\x7f", b"\r", b"\x1b[31m"];
            [plain(rng).as_slice(), ctrl[rng.usize(..ctrl.len())]].concat()
        }
        82..=85 => {
            let utf8: &[&str] = &["é", "日本語", "🦀", "Ωmega", "ﬁ", "e\u{301}"];
            [
                plain(rng).as_slice(),
                utf8[rng.usize(..utf8.len())].as_bytes(),
            ]
            .concat()
        }
        _ => plain(rng),
    };
    debug_assert!(!name.is_empty() && name.len() <= 255);
    debug_assert!(!name.contains(&b'/') && !name.contains(&0));
    if name == b"." || name == b".." {
        b"dot".to_vec()
    } else {
        name
    }
}

/// Letters and digits, maybe with an extension.
fn plain(rng: &mut Rng) -> Vec<u8> {
    let len = rng.usize(1..=10);
    let mut name: Vec<u8> = (0..len).map(|_| rng.alphanumeric() as u8).collect();
    if rng.u32(0..3) == 0 {
        let ext: &[&[u8]] = &[b".txt", b".log", b".tar.gz", b".", b".bak"];
        name.extend_from_slice(ext[rng.usize(..ext.len())]);
    }
    name
}

/// A name of exactly 255 bytes (the usual limit), or close to it.
fn long(rng: &mut Rng) -> Vec<u8> {
    let len = if rng.bool() {
        255
    } else {
        rng.usize(200..=255)
    };
    let mut name = if rng.bool() {
        // Multi-byte UTF-8, cut at a whole character.
        "é".repeat(len / 2).into_bytes()
    } else {
        plain(rng)
    };
    while name.len() < len {
        name.push(b'x');
    }
    name.truncate(len);
    name
}
