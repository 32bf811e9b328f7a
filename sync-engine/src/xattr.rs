//! Which extended attributes `-X` and `-A` copy, as rsync decides: with `-A` the POSIX ACLs
//! (`system.posix_acl_access`, and `system.posix_acl_default` of directories); with `-X` every
//! other attribute a super-user can read except the `system.*` namespace, and for a normal
//! user only `user.*`. Attributes of DST that SRC lacks are removed (within the same names).

/// The attributes a run mirrors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// `-X`.
    pub xattrs: bool,
    /// `-A`.
    pub acls: bool,
    /// Running as root: every namespace but `system.*`; otherwise `user.*` only.
    pub root: bool,
}

const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";

impl Policy {
    /// True when the run reads any attribute at all.
    pub fn any(&self) -> bool {
        self.xattrs || self.acls
    }

    /// True when the attribute `name` is mirrored.
    pub fn keeps(&self, name: &[u8]) -> bool {
        if name == ACL_ACCESS || name == ACL_DEFAULT {
            return self.acls;
        }
        if name.starts_with(b"system.") {
            return false;
        }
        self.xattrs && (self.root || name.starts_with(b"user."))
    }
}

/// True when `name` is an ACL (the `a` of an itemize line), not an xattr (`x`).
pub fn is_acl(name: &[u8]) -> bool {
    name == ACL_ACCESS || name == ACL_DEFAULT
}

/// Whether the attributes other than ACLs (the `x` of an itemize line) differ.
pub fn others_differ(a: &[(Vec<u8>, Vec<u8>)], b: &[(Vec<u8>, Vec<u8>)]) -> bool {
    let (x, y) = (
        a.iter().filter(|(n, _)| !is_acl(n)),
        b.iter().filter(|(n, _)| !is_acl(n)),
    );
    !x.eq(y)
}

/// The value of the access ACL among `attrs` (scanned or read), if the entry has one.
pub fn access_acl(attrs: &[(Vec<u8>, Vec<u8>)]) -> Option<&[u8]> {
    attrs
        .iter()
        .find(|(n, _)| n == ACL_ACCESS)
        .map(|(_, v)| v.as_slice())
}

/// The default ACL among `attrs`, if the directory has one.
pub fn default_acl(attrs: &[(Vec<u8>, Vec<u8>)]) -> Option<&[u8]> {
    attrs
        .iter()
        .find(|(n, _)| n == ACL_DEFAULT)
        .map(|(_, v)| v.as_slice())
}

// Linux's xattr form of a POSIX ACL: a 4-byte version, then 8-byte entries (tag u16, perm
// u16, id u32, little endian), sorted by tag.
const TAG_GROUP_OBJ: u16 = 0x04;
const TAG_MASK: u16 = 0x10;
const TAG_USER: u16 = 0x02;
const TAG_GROUP: u16 = 0x08;

fn acl_entries(v: &[u8]) -> impl Iterator<Item = (u16, u16, &[u8])> {
    v.get(4..).unwrap_or_default().chunks_exact(8).map(|e| {
        (
            u16::from_le_bytes([e[0], e[1]]),
            u16::from_le_bytes([e[2], e[3]]),
            e,
        )
    })
}

/// Whether two access ACLs are the same as rsync counts it (`rsync_acl_equal_enough`): the
/// entries the mode holds (owner, mask or group, other) do not count, they are the `p` of
/// the mode. Equal when both have a mask or neither, the owning group's entry is the same
/// when there is a mask, and the named users and groups are the same. `None`: no ACL (the
/// mode alone).
pub fn access_acls_equal(a: Option<&[u8]>, b: Option<&[u8]>) -> bool {
    fn part(v: Option<&[u8]>) -> (bool, Option<u16>, &[u8]) {
        let v = v.unwrap_or_default();
        let mask = acl_entries(v).any(|(t, _, _)| t == TAG_MASK);
        let group = acl_entries(v)
            .find(|&(t, _, _)| t == TAG_GROUP_OBJ)
            .map(|(_, p, _)| p);
        (mask, group, v)
    }
    fn named(v: &[u8]) -> impl Iterator<Item = &[u8]> {
        acl_entries(v)
            .filter(|&(t, _, _)| t == TAG_USER || t == TAG_GROUP)
            .map(|(_, _, e)| e)
    }
    let ((ma, ga, va), (mb, gb, vb)) = (part(a), part(b));
    ma == mb && (!ma || ga == gb) && named(va).eq(named(vb))
}

/// Whether rsync, setting an ACL on an entry whose mode is `old` and gets `new`, first sets
/// it with the group and other bits of the mode cleared (`change_sacl_perms`): for a
/// directory when the sticky bit goes on, for anything else when setuid or setgid goes off.
/// (With `-X`, when the entry's xattrs change too, rsync sets the attributes a second time,
/// with the mode already set, and nothing stays masked: the callers check that.)
pub fn acl_set_masked(old: u32, new: u32, dir: bool) -> bool {
    if dir {
        new & 0o1000 != 0 && old & 0o1000 == 0
    } else {
        (old & 0o4000 != 0 && new & 0o4000 == 0) || (old & 0o2000 != 0 && new & 0o2000 == 0)
    }
}

/// The access ACL rsync leaves when it sets `acl` (SRC's, for mode `perm`) masked (see
/// [`acl_set_masked`]): rsync sends no owning-group entry when it equals the mode's group
/// bits and there is a mask, and fills it from the masked mode, so the entry ends empty
/// (`group::---`) once the mode is set. `None`: the ACL is set as it is.
pub fn masked_access_acl(acl: &[u8], perm: u32) -> Option<Vec<u8>> {
    let group_bits = ((perm >> 3) & 7) as u16;
    let has_mask = acl_entries(acl).any(|(t, _, _)| t == TAG_MASK);
    let at = acl_entries(acl).position(|(t, p, _)| t == TAG_GROUP_OBJ && p == group_bits)?;
    if !has_mask || group_bits == 0 {
        return None;
    }
    let mut v = acl.to_vec();
    let off = 4 + at * 8 + 2;
    v[off..off + 2].copy_from_slice(&0u16.to_le_bytes());
    Some(v)
}

/// The attributes to set when SRC's are `want` and rsync would set its access ACL masked
/// (see [`masked_access_acl`]); `None`: `want` as it is.
pub fn rsync_masked(want: &[(Vec<u8>, Vec<u8>)], perm: u32) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let v = masked_access_acl(access_acl(want)?, perm)?;
    Some(
        want.iter()
            .map(|(n, x)| {
                (
                    n.clone(),
                    if n == ACL_ACCESS {
                        v.clone()
                    } else {
                        x.clone()
                    },
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for &(t, p, id) in entries {
            v.extend_from_slice(&t.to_le_bytes());
            v.extend_from_slice(&p.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    #[test]
    fn acls_compare_and_mask_as_rsync() {
        const X: u32 = u32::MAX;
        // user::rwx user:1001:r-x group::rwx mask::rwx other::r-x
        let src = acl(&[
            (1, 7, X),
            (2, 5, 1001),
            (4, 7, X),
            (0x10, 7, X),
            (0x20, 5, X),
        ]);
        // The same names, another mask and other: equal (those are the mode's).
        let dst = acl(&[
            (1, 7, X),
            (2, 5, 1001),
            (4, 7, X),
            (0x10, 5, X),
            (0x20, 0, X),
        ]);
        assert!(access_acls_equal(Some(&src), Some(&dst)));
        assert!(!access_acls_equal(Some(&src), None));
        assert!(access_acls_equal(None, None));
        let other_group = acl(&[
            (1, 7, X),
            (2, 5, 1001),
            (4, 4, X),
            (0x10, 7, X),
            (0x20, 5, X),
        ]);
        assert!(!access_acls_equal(Some(&src), Some(&other_group)));
        let other_name = acl(&[
            (1, 7, X),
            (2, 5, 1002),
            (4, 7, X),
            (0x10, 7, X),
            (0x20, 5, X),
        ]);
        assert!(!access_acls_equal(Some(&src), Some(&other_name)));

        assert!(acl_set_masked(0o755, 0o1777, true));
        assert!(!acl_set_masked(0o1755, 0o1777, true));
        assert!(acl_set_masked(0o4755, 0o755, false));
        assert!(acl_set_masked(0o2755, 0o755, false));
        assert!(!acl_set_masked(0o4755, 0o4777, false));
        assert!(!acl_set_masked(0o755, 0o1777, false));

        // The owning group's entry equal to the mode's group bits ends empty; another one stays.
        let masked = masked_access_acl(&src, 0o1775).unwrap();
        assert_eq!(
            masked,
            acl(&[
                (1, 7, X),
                (2, 5, 1001),
                (4, 0, X),
                (0x10, 7, X),
                (0x20, 5, X)
            ])
        );
        assert_eq!(masked_access_acl(&other_group, 0o1775), None);
        assert_eq!(
            masked_access_acl(&acl(&[(1, 7, X), (4, 7, X), (0x20, 5, X)]), 0o775),
            None
        );
    }

    #[test]
    fn names_mirrored_by_option_and_user() {
        let x = Policy {
            xattrs: true,
            acls: false,
            root: false,
        };
        assert!(x.keeps(b"user.comment"));
        assert!(!x.keeps(b"trusted.x"));
        assert!(!x.keeps(ACL_ACCESS));
        let root = Policy { root: true, ..x };
        assert!(root.keeps(b"trusted.x") && root.keeps(b"security.selinux"));
        assert!(!root.keeps(b"system.nfs4_acl"));
        let a = Policy {
            xattrs: false,
            acls: true,
            root: true,
        };
        assert!(a.keeps(ACL_ACCESS) && a.keeps(ACL_DEFAULT));
        assert!(!a.keeps(b"user.comment"));
    }
}
