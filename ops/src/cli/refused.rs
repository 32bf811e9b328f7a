//! The rsync options `opsync sync` refuses, each with what to use instead: the one table from
//! which the error line of a refused option and the README's list are made (a test checks that
//! the README holds [`markdown`]'s output).

/// An rsync option opsync does not support.
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    /// Long names without the dashes (the first is the one shown).
    pub long: &'static [&'static str],
    /// rsync's single letter, if it has one.
    pub short: Option<char>,
    /// What to do instead (lowercase, no trailing period).
    pub instead: &'static str,
}

const fn r(long: &'static [&'static str], short: Option<char>, instead: &'static str) -> Refused {
    Refused {
        long,
        short,
        instead,
    }
}

/// Every refused rsync option, in rsync's `--help` order.
pub const REFUSED: &[Refused] = &[
    r(
        &["debug"],
        None,
        "use OPSYNC_LOG=debug for the engine's log on stderr",
    ),
    r(
        &["stderr"],
        None,
        "errors always go to stderr, everything else to stdout",
    ),
    r(&["no-motd"], None, "drop it: opsync has no daemon mode"),
    r(
        &["relative"],
        Some('R'),
        "give the full directories as SRC and DST",
    ),
    r(
        &["no-implied-dirs"],
        None,
        "give the full directories as SRC and DST",
    ),
    r(
        &["backup", "backup-dir", "suffix"],
        Some('b'),
        "snapshot or copy DST before the run (a --no-delete run keeps old files)",
    ),
    r(
        &["update"],
        Some('u'),
        "opsync mirrors: a DST file newer than SRC's is replaced; use --no-delete to keep extra files",
    ),
    r(
        &["append", "append-verify"],
        None,
        "drop it: changed files are rebuilt from their old blocks (--delta)",
    ),
    r(
        &["dirs", "old-dirs", "old-d"],
        Some('d'),
        "opsync always recurses; use --exclude='/*/*' to copy only the top level",
    ),
    r(
        &["mkpath"],
        None,
        "create DST's parent first (mkdir -p); opsync creates DST itself",
    ),
    r(
        &["copy-links", "copy-unsafe-links"],
        Some('L'),
        "opsync copies symlinks as symlinks; copy the targets with cp -L",
    ),
    r(
        &["safe-links", "munge-links"],
        None,
        "drop it: opsync copies symlinks as they are and never follows one in DST",
    ),
    r(
        &["confine-root"],
        None,
        "drop it: opsync never writes through symlinks in DST (see --insecure-links)",
    ),
    r(
        &["copy-dirlinks"],
        Some('k'),
        "opsync copies symlinks as symlinks",
    ),
    r(
        &["keep-dirlinks"],
        Some('K'),
        "drop it: a symlink in DST is replaced by SRC's directory",
    ),
    r(
        &["executability"],
        Some('E'),
        "drop it: opsync preserves all permissions",
    ),
    r(
        &["chmod", "chown", "usermap", "groupmap", "copy-as"],
        None,
        "change the attributes in SRC or after the run (chmod -R, chown -R)",
    ),
    r(
        &["copy-devices", "write-devices"],
        None,
        "devices are copied as devices; copy device contents with dd",
    ),
    r(&["drop-D"], None, "exclude the device files with --exclude"),
    r(
        &["atimes", "open-noatime"],
        Some('U'),
        "drop it: opsync mirrors modification times (access times are not kept)",
    ),
    r(
        &["crtimes"],
        Some('N'),
        "drop it: Linux cannot set creation times",
    ),
    r(
        &["omit-dir-times"],
        Some('O'),
        "drop it: opsync sets every mtime",
    ),
    r(
        &["omit-link-times"],
        Some('J'),
        "drop it: opsync sets every mtime",
    ),
    r(
        &["fake-super"],
        None,
        "run opsync as root to keep owners and devices",
    ),
    r(
        &["sparse"],
        Some('S'),
        "drop it: opsync copies with copy_file_range, which keeps holes where the filesystem can",
    ),
    r(&["preallocate"], None, "drop it"),
    r(&["no-whole-file", "no-W"], None, "use --delta=always"),
    r(
        &["checksum-choice", "cc", "checksum-seed"],
        None,
        "drop it: --checksum uses XXH3-128",
    ),
    r(
        &["block-size"],
        Some('B'),
        "drop it: deltas use 4 KiB blocks",
    ),
    r(
        &["rsync-path"],
        None,
        "use --remote-opsync PATH: the opsync program on the remote host",
    ),
    r(
        &["existing", "ignore-non-existing", "ignore-existing"],
        None,
        "opsync mirrors every entry; exclude what should not be copied",
    ),
    r(
        &["remove-source-files"],
        None,
        "delete SRC's files after the run yourself",
    ),
    r(
        &["ignore-missing-args", "delete-missing-args", "files-from"],
        None,
        "give SRC and DST directories; select entries with --include/--exclude",
    ),
    r(
        &["ignore-errors"],
        None,
        "drop it: after an error reading SRC deletions are skipped on purpose",
    ),
    r(
        &["max-size", "min-size"],
        None,
        "exclude the files by name with --exclude",
    ),
    r(
        &["max-alloc"],
        None,
        "drop it: memory follows the directories in flight",
    ),
    r(
        &["partial-dir", "delay-updates"],
        None,
        "drop it: every file is written to a temporary file and renamed into place",
    ),
    r(
        &["prune-empty-dirs"],
        Some('m'),
        "drop it: empty directories are mirrored",
    ),
    r(
        &[
            "timeout",
            "contimeout",
            "address",
            "port",
            "sockopts",
            "blocking-io",
            "password-file",
            "early-input",
            "ipv4",
            "ipv6",
        ],
        None,
        "drop it: opsync reaches another host only through the remote shell (-e, for example \
         -e 'ssh -o ConnectTimeout=10')",
    ),
    r(
        &["ignore-times"],
        Some('I'),
        "use --checksum to compare every file by content",
    ),
    r(
        &["size-only"],
        None,
        "drop it: opsync compares size and mtime (--checksum: content)",
    ),
    r(
        &["temp-dir"],
        Some('T'),
        "drop it: temporary files are made next to their final name",
    ),
    r(&["fuzzy"], Some('y'), "drop it"),
    r(
        &["compare-dest", "copy-dest", "link-dest"],
        None,
        "mirror into a copy of the reference tree (cp -al REF DST) instead",
    ),
    r(
        &[
            "compress-choice",
            "zc",
            "compress-level",
            "zl",
            "compress-threads",
            "zt",
            "skip-compress",
        ],
        None,
        "drop it: -z compresses the remote stream with zstd at its default level",
    ),
    r(
        &["cvs-exclude"],
        Some('C'),
        "list the patterns with --exclude",
    ),
    r(
        &["secluded-args", "protect-args", "old-args", "trust-sender"],
        Some('s'),
        "drop it: the remote path and options travel inside opsync's protocol, never through the remote shell",
    ),
    r(&["outbuf"], None, "drop it: output is line-buffered"),
    r(
        &["8-bit-output"],
        Some('8'),
        "drop it: opsync prints names as rsync does by default",
    ),
    r(
        &["remote-option"],
        Some('M'),
        "drop it: the remote opsync gets the run's options inside the protocol",
    ),
    r(
        &["out-format", "log-file-format"],
        None,
        "use -i (rsync's %i %n%L) or --json",
    ),
    r(&["list-only"], None, "use -n -v to list what would change"),
    r(
        &["stop-after", "stop-at"],
        None,
        "run opsync under timeout(1); an interrupted run is finished by the next",
    ),
    r(
        &["write-batch", "only-write-batch", "read-batch"],
        None,
        "drop it: batch files are not supported",
    ),
    r(
        &["protocol"],
        None,
        "drop it: both ends check opsync's protocol version at the start",
    ),
    r(&["iconv"], None, "drop it: names are copied byte for byte"),
    r(
        &["daemon", "no-detach", "dparam"],
        None,
        "use opsync daemon for scheduled runs",
    ),
];

/// The refused option named by `arg` as clap reports it (`--compress`, `--bwlimit=1`, `-z`).
pub fn lookup(arg: &str) -> Option<(String, &'static Refused)> {
    if let Some(long) = arg.strip_prefix("--") {
        let name = long.split_once('=').map_or(long, |(n, _)| n);
        return REFUSED
            .iter()
            .find(|r| r.long.contains(&name))
            .map(|r| (format!("--{name}"), r));
    }
    let c = arg.strip_prefix('-')?.chars().next()?;
    REFUSED
        .iter()
        .find(|r| r.short == Some(c))
        .map(|r| (format!("-{c} (--{})", r.long[0]), r))
}

/// The error line for an option clap did not know: a refused rsync option with what to do
/// instead, or an unknown option.
pub fn message(arg: &str) -> String {
    match lookup(arg) {
        Some((shown, r)) => format!("the rsync option {shown} is not supported: {}", r.instead),
        None if arg.starts_with("--no-") => format!(
            "the rsync option {arg} is not supported: opsync always mirrors everything -a keeps \
             (plus -H, -A, -X when given); drop it"
        ),
        None => {
            format!("unknown option {arg}: see `opsync sync --help` for the options opsync has")
        }
    }
}

/// The README's list of refused options: one table row per entry.
#[cfg(test)]
pub fn markdown() -> String {
    let mut out = String::from("| rsync option | instead |\n|---|---|\n");
    for r in REFUSED {
        let mut names: Vec<String> = r.long.iter().map(|l| format!("`--{l}`")).collect();
        if let Some(c) = r.short {
            names.insert(1, format!("`-{c}`"));
        }
        out.push_str(&format!("| {} | {} |\n", names.join(", "), r.instead));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_options_name_what_to_use_instead() {
        assert_eq!(
            message("-R"),
            "the rsync option -R (--relative) is not supported: give the full directories as SRC \
             and DST"
        );
        assert!(message("--timeout=100").starts_with("the rsync option --timeout is not"));
        // A single letter is named by rsync's long name for it (`rsync --help`).
        for (short, long) in [
            ("-s", "--secluded-args"),
            ("-L", "--copy-links"),
            ("-u", "--update"),
        ] {
            let m = message(short);
            assert!(
                m.starts_with(&format!("the rsync option {short} ({long}) is not")),
                "{m}"
            );
        }
        assert!(message("--frobnicate").starts_with("unknown option --frobnicate"));
    }

    #[test]
    fn no_option_is_listed_twice() {
        let mut longs: Vec<&str> = REFUSED
            .iter()
            .flat_map(|r| r.long.iter().copied())
            .collect();
        let n = longs.len();
        longs.sort_unstable();
        longs.dedup();
        assert_eq!(longs.len(), n);
        let mut shorts: Vec<char> = REFUSED.iter().filter_map(|r| r.short).collect();
        let n = shorts.len();
        shorts.sort_unstable();
        shorts.dedup();
        assert_eq!(shorts.len(), n);
    }

    /// The README's list is this table's output: regenerate it with
    /// `OPSYNC_UPDATE_README=1 cargo test -p ops refused`.
    #[test]
    fn readme_lists_every_refused_option() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let (begin, end) = (
            "<!-- refused-options: begin -->\n",
            "<!-- refused-options: end -->",
        );
        let start = readme
            .find(begin)
            .expect("README lacks the refused-options markers")
            + begin.len();
        let stop = readme[start..].find(end).unwrap() + start;
        let want = markdown();
        if std::env::var_os("OPSYNC_UPDATE_README").is_some() {
            let new = format!("{}{want}{}", &readme[..start], &readme[stop..]);
            std::fs::write(path, new).unwrap();
            return;
        }
        assert_eq!(
            &readme[start..stop],
            want,
            "the README's refused-options list is stale: rerun with OPSYNC_UPDATE_README=1"
        );
    }
}
