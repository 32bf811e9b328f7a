//! `escape_name` on arbitrary bytes: never panics, prints no control character, and decodes
//! back to the same bytes (`\#ooo` is the only escape).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sync_engine::itemize::escape_name;

/// Reverses `escape_name`: `\#` and three octal digits is one byte; anything else is itself.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && b.get(i + 1) == Some(&b'#')
            && b.len() >= i + 5
            && b[i + 2..i + 5].iter().all(|d| (b'0'..=b'7').contains(d))
        {
            let v = b[i + 2..i + 5]
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            assert!(v <= 255, "octal escape out of range in {s:?}");
            out.push(v as u8);
            i += 5;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fuzz_target!(|name: &[u8]| {
    let s = escape_name(name);
    assert!(
        !s.chars().any(char::is_control),
        "control character in {s:?}"
    );
    assert!(
        !s.contains('\n') && !s.contains('\r'),
        "line break in {s:?}"
    );
    assert_eq!(
        unescape(&s),
        name,
        "escape of {name:?} does not decode back: {s:?}"
    );
});
