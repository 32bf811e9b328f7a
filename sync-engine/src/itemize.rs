//! rsync-compatible change strings (`-i`): the 11-character `YXcstpoguax` field and rsync's
//! escaping of names (`\#ooo` for bytes that are not printable).

use crate::listing::Kind;

/// What changed about one entry, as the letters of rsync's itemize field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Change(u16);

impl Change {
    pub const NONE: Change = Change(0);
    /// The entry is created (`+++++++++`).
    pub const NEW: Change = Change(1);
    /// Content differs (`c`): checksum for files, target for symlinks.
    pub const CONTENT: Change = Change(2);
    /// Size differs (`s`).
    pub const SIZE: Change = Change(4);
    /// Modification time differs (`t`).
    pub const TIME: Change = Change(8);
    /// Permissions differ (`p`).
    pub const PERMS: Change = Change(16);
    /// Owner differs (`o`).
    pub const OWNER: Change = Change(32);
    /// Group differs (`g`).
    pub const GROUP: Change = Change(64);
    /// The entry replaces one of another type (shown as `NEW`).
    pub const TYPE: Change = Change(128);
    /// POSIX ACLs differ (`a`, with `-A`).
    pub const ACL: Change = Change(256);
    /// Extended attributes differ (`x`, with `-X`).
    pub const XATTR: Change = Change(512);

    pub fn contains(self, other: Change) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The attribute part only (perms, owner, group, time, ACLs, xattrs).
    pub fn attrs(self) -> Change {
        Change(
            self.0
                & (Self::TIME.0
                    | Self::PERMS.0
                    | Self::OWNER.0
                    | Self::GROUP.0
                    | Self::ACL.0
                    | Self::XATTR.0),
        )
    }
}

impl std::ops::BitOr for Change {
    type Output = Change;
    fn bitor(self, o: Change) -> Change {
        Change(self.0 | o.0)
    }
}

impl std::ops::BitOrAssign for Change {
    fn bitor_assign(&mut self, o: Change) {
        self.0 |= o.0;
    }
}

/// How an entry is updated, for the first letter of the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// File data is written (`>`).
    Transfer,
    /// Created or replaced locally without data (`c`): directories, symlinks, devices.
    Local,
    /// Only attributes change (`.`).
    Attrs,
    /// Removed (`*deleting`).
    Delete,
    /// Made a hard link of another file (`h`).
    HardLink,
}

fn type_letter(kind: Kind) -> u8 {
    match kind {
        Kind::File => b'f',
        Kind::Dir => b'd',
        Kind::Symlink => b'L',
        Kind::CharDev | Kind::BlockDev => b'D',
        Kind::Fifo | Kind::Socket => b'S',
    }
}

/// The 11-character field, for example `>f.st......` or `*deleting  `.
pub fn field(update: Update, kind: Kind, change: Change) -> [u8; 11] {
    if update == Update::Delete {
        return *b"*deleting  ";
    }
    let mut f = *b"...........";
    f[0] = match update {
        Update::Transfer => b'>',
        Update::Local => b'c',
        Update::HardLink => b'h',
        Update::Attrs | Update::Delete => b'.',
    };
    f[1] = type_letter(kind);
    if change.contains(Change::NEW) || change.contains(Change::TYPE) {
        f[2..].copy_from_slice(b"+++++++++");
        return f;
    }
    let letters = [
        (Change::CONTENT, b'c'),
        (Change::SIZE, b's'),
        (Change::TIME, b't'),
        (Change::PERMS, b'p'),
        (Change::OWNER, b'o'),
        (Change::GROUP, b'g'),
    ];
    for (i, (flag, letter)) in letters.iter().enumerate() {
        if change.contains(*flag) {
            f[2 + i] = *letter;
        }
    }
    if change.contains(Change::ACL) {
        f[9] = b'a';
    }
    if change.contains(Change::XATTR) {
        f[10] = b'x';
    }
    // rsync: a line of an entry it neither transfers nor changes in any letter (an unchanged
    // entry of `-ii`, a link made over an identical file) shows spaces instead of dots.
    if update != Update::Transfer && f[2..].iter().all(|&b| b == b'.') {
        f[2..].copy_from_slice(b"         ");
    }
    f
}

/// Escapes a name as rsync prints it in a UTF-8 locale: control characters other than TAB and
/// DEL, and bytes that are not UTF-8, become `\#ooo` (octal); a backslash before `#` is escaped
/// too so the output stays unambiguous. Valid UTF-8, TAB and DEL are kept as they are (rsync
/// 3.5 prints them raw).
pub fn escape_name(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                push_valid(&mut out, s);
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                // `valid_up_to` guarantees this prefix is UTF-8.
                push_valid(&mut out, std::str::from_utf8(valid).unwrap_or_default());
                let bad = e.error_len().unwrap_or(after.len());
                for b in &after[..bad] {
                    push_octal(&mut out, *b);
                }
                rest = &after[bad..];
            }
        }
    }
    out
}

fn push_valid(out: &mut String, s: &str) {
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_control() && c != '\t' && c != '\u{7f}' {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                push_octal(out, b);
            }
        } else if c == '\\' && chars.peek() == Some(&'#') {
            push_octal(out, b'\\');
        } else {
            out.push(c);
        }
    }
}

fn push_octal(out: &mut String, b: u8) {
    use std::fmt::Write;
    let _ = write!(out, "\\#{b:03o}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_match_rsync() {
        let f = |u, k, c| String::from_utf8(field(u, k, c).to_vec()).unwrap();
        assert_eq!(f(Update::Transfer, Kind::File, Change::NEW), ">f+++++++++");
        assert_eq!(f(Update::Local, Kind::Dir, Change::NEW), "cd+++++++++");
        assert_eq!(f(Update::Local, Kind::Symlink, Change::NEW), "cL+++++++++");
        assert_eq!(
            f(Update::Transfer, Kind::File, Change::SIZE | Change::TIME),
            ">f.st......"
        );
        assert_eq!(f(Update::Attrs, Kind::Dir, Change::TIME), ".d..t......");
        assert_eq!(
            f(Update::Attrs, Kind::File, Change::PERMS | Change::OWNER),
            ".f...po...."
        );
        assert_eq!(f(Update::Local, Kind::Fifo, Change::NEW), "cS+++++++++");
        assert_eq!(f(Update::Local, Kind::CharDev, Change::NEW), "cD+++++++++");
        assert_eq!(f(Update::Delete, Kind::File, Change::NONE), "*deleting  ");
        // Unchanged entries (`-ii`) and links over identical files: spaces, not dots.
        assert_eq!(f(Update::Attrs, Kind::File, Change::NONE), ".f         ");
        assert_eq!(f(Update::Attrs, Kind::Dir, Change::NONE), ".d         ");
        assert_eq!(f(Update::Attrs, Kind::Symlink, Change::NONE), ".L         ");
        assert_eq!(f(Update::HardLink, Kind::File, Change::NONE), "hf         ");
        assert_eq!(f(Update::Transfer, Kind::File, Change::NONE), ">f.........");
    }

    #[test]
    fn names_are_escaped_like_rsync() {
        assert_eq!(escape_name(b"plain name.txt"), "plain name.txt");
        assert_eq!(escape_name(b"new\nline"), "new\\#012line");
        assert_eq!(escape_name(b"bad\xffbyte"), "bad\\#377byte");
        assert_eq!(escape_name("grüße".as_bytes()), "grüße");
        assert_eq!(escape_name(b"tab\there"), "tab\there");
        assert_eq!(escape_name(b"del\x7f"), "del\x7f");
        assert_eq!(escape_name(b"esc\x1b[31m"), "esc\\#033[31m");
        assert_eq!(escape_name(b"a\\#b"), "a\\#134#b");
        assert_eq!(escape_name(b"a\\b"), "a\\b");
    }
}
