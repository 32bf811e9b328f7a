//! rsync's filter-rule syntax: `RULE[,MODIFIERS] PATTERN` with short (`-`, `+`, `.`, `:`, `H`,
//! `S`, `P`, `R`, `!`) or long (`exclude`, `include`, `merge`, `dir-merge`, `hide`, `show`,
//! `protect`, `risk`, `clear`) names, and the files `merge` and `dir-merge` read.

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Leave the entry out (sender) or protect it from deletion (receiver).
    Exclude,
    /// Keep the entry in (sender) or put it at risk of deletion (receiver).
    Include,
}

/// Which side a rule applies to: the sender builds the list of what is copied (SRC), the
/// receiver decides what is protected from deletion (DST).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sides {
    pub sender: bool,
    pub receiver: bool,
}

impl Sides {
    pub const BOTH: Sides = Sides {
        sender: true,
        receiver: true,
    };
}

/// One parsed rule, before its pattern is compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Pattern {
        action: Action,
        /// `None`: both sides, or only the sender with `--delete-excluded`.
        sides: Option<Sides>,
        negate: bool,
        pattern: String,
    },
    /// `merge FILE`: the file's rules in place of this one.
    Merge { file: String, opts: MergeOpts },
    /// `dir-merge FILE`: the rules of FILE in each directory, for that directory and below.
    DirMerge { file: String, opts: MergeOpts },
    /// `!`: forget the rules before it (of the current list).
    Clear,
}

/// Modifiers of a merge or dir-merge rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MergeOpts {
    /// `-` or `+`: every line is a pattern of this kind.
    pub only: Option<Action>,
    /// `e`: leave the merge file itself out of the transfer.
    pub exclude_self: bool,
    /// `n`: the rules of a per-directory file are not inherited by subdirectories.
    pub no_inherit: bool,
    /// `w`: rules are split on whitespace, not lines (no comments).
    pub words: bool,
    /// `s` and/or `r`: the sides every rule of the file applies to.
    pub sides: Option<Sides>,
}

/// Parses one rule as given to `--filter` or read from a merge file. `defaults` are the
/// modifiers of the merge rule that read it (for rules of a file).
pub fn rule(text: &str, defaults: &MergeOpts) -> Result<Parsed, String> {
    if let Some(kind) = defaults.only {
        return Ok(Parsed::Pattern {
            action: kind,
            sides: defaults.sides,
            negate: false,
            pattern: text.to_string(),
        });
    }
    let (head, pattern) = split_head(text);
    let (name, mods) = match head.split_once(',') {
        Some((n, m)) => (n, m),
        None => split_short(head),
    };
    let kind = match name {
        "-" | "exclude" => Kind::Plain(Action::Exclude, None),
        "+" | "include" => Kind::Plain(Action::Include, None),
        "H" | "hide" => Kind::Plain(Action::Exclude, Some(SENDER)),
        "S" | "show" => Kind::Plain(Action::Include, Some(SENDER)),
        "P" | "protect" => Kind::Plain(Action::Exclude, Some(RECEIVER)),
        "R" | "risk" => Kind::Plain(Action::Include, Some(RECEIVER)),
        "." | "merge" => Kind::Merge,
        ":" | "dir-merge" => Kind::DirMerge,
        "!" | "clear" => Kind::Clear,
        _ => {
            return Err(format!(
                "unknown filter rule {name:?}: write -, +, merge (.), dir-merge (:), hide (H), \
                 show (S), protect (P), risk (R) or clear (!), then a space and the pattern"
            ));
        }
    };
    match kind {
        Kind::Clear => {
            if !mods.is_empty() || !pattern.is_empty() {
                return Err("the clear rule (!) takes no modifiers and no pattern".into());
            }
            Ok(Parsed::Clear)
        }
        Kind::Plain(action, fixed) => {
            let mut sides = fixed.or(defaults.sides);
            let mut negate = false;
            for m in mods.chars() {
                match m {
                    '!' => negate = true,
                    's' | 'r' if fixed.is_some() || defaults.sides.is_some() => {
                        return Err(format!(
                            "the modifier {m} cannot be used here: the rule's sides are already \
                             given (by hide/show/protect/risk or the merge rule)"
                        ));
                    }
                    's' => sides.get_or_insert_with(Sides::default).sender = true,
                    'r' => sides.get_or_insert_with(Sides::default).receiver = true,
                    other => return Err(unsupported_modifier(other)),
                }
            }
            if pattern.is_empty() {
                return Err(format!("the {name} rule needs a pattern after a space"));
            }
            Ok(Parsed::Pattern {
                action,
                sides,
                negate,
                pattern: pattern.to_string(),
            })
        }
        Kind::Merge | Kind::DirMerge => {
            let mut opts = MergeOpts::default();
            for m in mods.chars() {
                match m {
                    '-' => opts.only = Some(Action::Exclude),
                    '+' => opts.only = Some(Action::Include),
                    'e' => opts.exclude_self = true,
                    'n' => opts.no_inherit = true,
                    'w' => opts.words = true,
                    's' => opts.sides.get_or_insert_with(Sides::default).sender = true,
                    'r' => opts.sides.get_or_insert_with(Sides::default).receiver = true,
                    other => return Err(unsupported_modifier(other)),
                }
            }
            if pattern.is_empty() {
                return Err(format!("the {name} rule needs a file name after a space"));
            }
            let file = pattern.to_string();
            Ok(if kind == Kind::Merge {
                Parsed::Merge { file, opts }
            } else {
                Parsed::DirMerge { file, opts }
            })
        }
    }
}

impl Parsed {
    /// The rule as text that parses back to `self` without a merge rule's modifiers (a rule
    /// read from a merge file with them, given on its own).
    pub fn to_rule(&self) -> String {
        let with_mods = |name: &str, mods: String, rest: &str| {
            if mods.is_empty() {
                format!("{name} {rest}")
            } else {
                format!("{name},{mods} {rest}")
            }
        };
        let sides = |s: Option<Sides>| {
            let s = s.unwrap_or_default();
            format!(
                "{}{}",
                if s.sender { "s" } else { "" },
                if s.receiver { "r" } else { "" }
            )
        };
        match self {
            Parsed::Pattern {
                action,
                sides: s,
                negate,
                pattern,
            } => {
                let name = match action {
                    Action::Exclude => "-",
                    Action::Include => "+",
                };
                let mods = format!("{}{}", sides(*s), if *negate { "!" } else { "" });
                with_mods(name, mods, pattern)
            }
            Parsed::Merge { file, opts } | Parsed::DirMerge { file, opts } => {
                let name = if matches!(self, Parsed::Merge { .. }) {
                    "merge"
                } else {
                    "dir-merge"
                };
                let mut mods = match opts.only {
                    Some(Action::Exclude) => "-".to_string(),
                    Some(Action::Include) => "+".to_string(),
                    None => String::new(),
                };
                for (on, m) in [
                    (opts.exclude_self, 'e'),
                    (opts.no_inherit, 'n'),
                    (opts.words, 'w'),
                ] {
                    if on {
                        mods.push(m);
                    }
                }
                mods.push_str(&sides(opts.sides));
                with_mods(name, mods, file)
            }
            Parsed::Clear => "!".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain(Action, Option<Sides>),
    Merge,
    DirMerge,
    Clear,
}

const SENDER: Sides = Sides {
    sender: true,
    receiver: false,
};
const RECEIVER: Sides = Sides {
    sender: false,
    receiver: true,
};

fn unsupported_modifier(m: char) -> String {
    match m {
        '/' => "the filter modifier / (match the absolute path) is not supported: anchor the \
                pattern at the transfer root with a leading / instead"
            .into(),
        'p' => "the filter modifier p (perishable) is not supported: drop it (the rule then also \
                protects files in directories that are deleted)"
            .into(),
        'x' => "the filter modifier x (xattr names) is not supported: opsync copies every \
                extended attribute with -X"
            .into(),
        'C' => "CVS-style filter rules (C) are not supported: list the patterns to exclude".into(),
        other => format!("unknown filter modifier {other:?}"),
    }
}

/// Splits `RULE PATTERN` (or `RULE_PATTERN`) at the first space or underscore; a rule without
/// a pattern (`!`) has none.
fn split_head(text: &str) -> (&str, &str) {
    match text.find([' ', '_']) {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, ""),
    }
}

/// Splits a short rule name from the modifiers glued to it (`-!`, `:n-`, `Pr`).
fn split_short(head: &str) -> (&str, &str) {
    let mut chars = head.char_indices();
    match chars.next() {
        Some((_, c)) if "-+.:HSPR!".contains(c) => head.split_at(c.len_utf8()),
        _ => (head, ""),
    }
}

/// The rules in the text of a merge file: one per line (blank lines and lines starting with
/// `#` or `;` ignored, as rsync does), or one per whitespace-separated word with `w`.
pub fn file_rules(text: &str, opts: &MergeOpts) -> Vec<String> {
    if opts.words {
        return text.split_whitespace().map(str::to_string).collect();
    }
    text.lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Parsed, String> {
        rule(text, &MergeOpts::default())
    }

    fn pat(action: Action, sides: Option<Sides>, negate: bool, pattern: &str) -> Parsed {
        Parsed::Pattern {
            action,
            sides,
            negate,
            pattern: pattern.into(),
        }
    }

    #[test]
    fn short_and_long_names_with_modifiers() {
        use Action::*;
        let cases = [
            ("- *.o", pat(Exclude, None, false, "*.o")),
            ("exclude *.o", pat(Exclude, None, false, "*.o")),
            ("+ */", pat(Include, None, false, "*/")),
            ("-! */", pat(Exclude, None, true, "*/")),
            ("-,! */", pat(Exclude, None, true, "*/")),
            ("-_*.o", pat(Exclude, None, false, "*.o")),
            ("P keep", pat(Exclude, Some(RECEIVER), false, "keep")),
            ("protect keep", pat(Exclude, Some(RECEIVER), false, "keep")),
            ("R x", pat(Include, Some(RECEIVER), false, "x")),
            ("H x", pat(Exclude, Some(SENDER), false, "x")),
            ("S x", pat(Include, Some(SENDER), false, "x")),
            ("-s x", pat(Exclude, Some(SENDER), false, "x")),
            ("- a b", pat(Exclude, None, false, "a b")),
            ("!", Parsed::Clear),
        ];
        for (text, want) in cases {
            assert_eq!(p(text), Ok(want), "{text}");
        }
        assert_eq!(
            p(": /.rsync-filter"),
            Ok(Parsed::DirMerge {
                file: "/.rsync-filter".into(),
                opts: MergeOpts::default()
            })
        );
        let Ok(Parsed::DirMerge { opts, .. }) = p(":n- .excl") else {
            panic!()
        };
        assert_eq!((opts.no_inherit, opts.only), (true, Some(Action::Exclude)));
        let Ok(Parsed::Merge { opts, .. }) = p("merge,e rules") else {
            panic!()
        };
        assert!(opts.exclude_self);
    }

    #[test]
    fn rules_read_with_a_merge_rules_modifiers_keep_them_as_text() {
        let sender = MergeOpts {
            sides: Some(SENDER),
            ..MergeOpts::default()
        };
        let only = MergeOpts {
            only: Some(Action::Include),
            ..MergeOpts::default()
        };
        let cases = [
            ("- *.o", MergeOpts::default(), "- *.o"),
            ("-! x y", MergeOpts::default(), "-,! x y"),
            ("P keep", MergeOpts::default(), "-,r keep"),
            ("- x", sender, "-,s x"),
            ("S x", sender, "+,s x"),
            ("- not a rule", only, "+ - not a rule"),
            ("!", MergeOpts::default(), "!"),
            ("merge,-ew inner", MergeOpts::default(), "merge,-ew inner"),
            (":nrs .f", MergeOpts::default(), "dir-merge,nsr .f"),
        ];
        for (text, opts, want) in cases {
            let parsed = rule(text, &opts).unwrap();
            assert_eq!(parsed.to_rule(), want, "{text}");
            assert_eq!(p(want), Ok(parsed), "{text}");
        }
    }

    #[test]
    fn mistakes_say_what_to_write() {
        for (text, needle) in [
            ("x foo", "unknown filter rule"),
            ("-/ /etc", "absolute path"),
            ("-p foo", "perishable"),
            ("-", "needs a pattern"),
            ("merge", "needs a file name"),
            ("Ps foo", "already"),
            ("! x", "no modifiers and no pattern"),
        ] {
            let e = p(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn merge_files_skip_comments_and_blank_lines() {
        let text = "# comment\n- *.o\n\n+ keep\r\n";
        assert_eq!(file_rules(text, &MergeOpts::default()), ["- *.o", "+ keep"]);
        let words = MergeOpts {
            words: true,
            ..MergeOpts::default()
        };
        assert_eq!(file_rules("a b\nc", &words), ["a", "b", "c"]);
        let only = MergeOpts {
            only: Some(Action::Exclude),
            ..MergeOpts::default()
        };
        assert_eq!(
            rule("+ not a rule", &only),
            Ok(pat(Action::Exclude, None, false, "+ not a rule"))
        );
    }
}
