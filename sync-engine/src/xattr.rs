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

#[cfg(test)]
mod tests {
    use super::*;

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
