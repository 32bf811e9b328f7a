//! Rule lists: first match wins, sides, per-directory files.

use super::*;

fn no_files(p: &str) -> std::io::Result<String> {
    Err(std::io::Error::other(format!("unexpected merge file {p}")))
}

fn filter(rules: &[&str]) -> Filter {
    let rules: Vec<String> = rules.iter().map(|s| s.to_string()).collect();
    Filter::new(&rules, &[], false, &no_files).unwrap()
}

fn sender(f: &Filter, path: &str, is_dir: bool) -> bool {
    let name = path.rsplit('/').next().unwrap();
    matches!(
        f.decide(
            &DirRules::default(),
            path.as_bytes(),
            name.as_bytes(),
            is_dir,
            Side::Sender
        ),
        Verdict::Exclude { .. }
    )
}

fn receiver(f: &Filter, path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap();
    matches!(
        f.decide(
            &DirRules::default(),
            path.as_bytes(),
            name.as_bytes(),
            false,
            Side::Receiver
        ),
        Verdict::Exclude { .. }
    )
}

#[test]
fn first_match_wins() {
    let f = filter(&["+ */", "+ *.c", "- *"]);
    assert!(!sender(&f, "src", true));
    assert!(!sender(&f, "src/a.c", false));
    assert!(sender(&f, "src/a.o", false));
    let f = filter(&["- *", "+ *.c"]);
    assert!(
        sender(&f, "a.c", false),
        "an include after the exclude has no effect"
    );
}

#[test]
fn sides_of_the_rules() {
    let f = filter(&["P keep", "H secret", "- both"]);
    assert!(!sender(&f, "keep", false) && receiver(&f, "keep"));
    assert!(sender(&f, "secret", false) && !receiver(&f, "secret"));
    assert!(sender(&f, "both", false) && receiver(&f, "both"));
    let rules = vec!["- both".to_string(), "P keep".to_string()];
    let f = Filter::new(&rules, &[], true, &no_files).unwrap();
    assert!(
        sender(&f, "both", false) && !receiver(&f, "both"),
        "--delete-excluded"
    );
    assert!(receiver(&f, "keep"), "protect rules keep protecting");
}

#[test]
fn negation_and_clear() {
    let f = filter(&["-! */"]);
    assert!(sender(&f, "file", false));
    assert!(!sender(&f, "dir", true));
    let f = filter(&["- a", "!", "- b"]);
    assert!(!sender(&f, "a", false) && sender(&f, "b", false));
}

#[test]
fn merge_files_are_read_in_place() {
    let read = |p: &str| -> std::io::Result<String> {
        match p {
            "rules" => Ok("# comment\n+ keep.o\n- *.o\n".into()),
            "only" => Ok("*.tmp\n*.bak\n".into()),
            _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        }
    };
    let rules: Vec<String> = ["merge rules", "merge,- only"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let f = Filter::new(&rules, &[], false, &read).unwrap();
    assert!(!sender(&f, "keep.o", false));
    assert!(sender(&f, "x.o", false));
    assert!(sender(&f, "x.bak", false));
    let missing = vec!["merge nope".to_string()];
    let e = Filter::new(&missing, &[], false, &read)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot read the merge file nope"), "{e}");
}

#[test]
fn per_directory_files_apply_below_their_directory_innermost_first() {
    let f = filter(&[": .rules", "- *.log"]);
    let files = |dir: &'static str| {
        move |name: &[u8]| -> std::io::Result<Option<Vec<u8>>> {
            assert_eq!(name, b".rules");
            Ok(match dir {
                "" => Some(b"- /top.txt\n- *.tmp\n".to_vec()),
                "a" => Some(b"+ keep.tmp\n- /only-here\n".to_vec()),
                _ => None,
            })
        }
    };
    let root = f.enter(&DirRules::default(), b"", &mut files("")).unwrap();
    let a = f.enter(&root, b"a", &mut files("a")).unwrap();
    let ab = f.enter(&a, b"a/b", &mut files("a/b")).unwrap();
    let ex = |d: &DirRules, path: &str| {
        let name = path.rsplit('/').next().unwrap();
        matches!(
            f.decide(d, path.as_bytes(), name.as_bytes(), false, Side::Sender),
            Verdict::Exclude { .. }
        )
    };
    assert!(ex(&root, "top.txt"));
    assert!(!ex(&a, "a/top.txt"), "anchored at the file's directory");
    assert!(ex(&a, "a/x.tmp"));
    assert!(!ex(&a, "a/keep.tmp"), "the inner file comes first");
    assert!(ex(&a, "a/only-here"));
    assert!(!ex(&ab, "a/b/only-here"));
    assert!(!ex(&ab, "a/b/keep.tmp"), "inherited");
    assert!(ex(&ab, "a/b/x.log"), "the global rule after the dir-merge");
}

#[test]
fn non_inherited_per_directory_rules_stay_in_their_directory() {
    let f = filter(&[":n- .excl"]);
    let root = f
        .enter(&DirRules::default(), b"", &mut |_| {
            Ok(Some(b"*.o".to_vec()))
        })
        .unwrap();
    let sub = f.enter(&root, b"sub", &mut |_| Ok(None)).unwrap();
    let ex = |d: &DirRules, path: &str| {
        let name = path.rsplit('/').next().unwrap();
        matches!(
            f.decide(d, path.as_bytes(), name.as_bytes(), false, Side::Sender),
            Verdict::Exclude { .. }
        )
    };
    assert!(ex(&root, "x.o"));
    assert!(!ex(&sub, "sub/x.o"));
}

#[test]
fn rules_read_from_a_parent_of_the_root() {
    let f = filter(&[": /.rsync-filter"]);
    assert!(f.reads_parents());
    let above = f
        .enter_above(&DirRules::default(), b"path", &mut |_| {
            Ok(Some(b"- /path/skip\n- *.o\n".to_vec()))
        })
        .unwrap();
    let root = f.enter(&above, b"", &mut |_| Ok(None)).unwrap();
    let ex = |path: &str| {
        let name = path.rsplit('/').next().unwrap();
        matches!(
            f.decide(&root, path.as_bytes(), name.as_bytes(), false, Side::Sender),
            Verdict::Exclude { .. }
        )
    };
    assert!(ex("skip"), "anchored at the parent's directory");
    assert!(ex("d/x.o"));
    assert!(!ex("d/skip"));
}

#[test]
fn exclude_self_leaves_the_merge_file_out() {
    let f = filter(&[":e .rules"]);
    assert!(sender(&f, "d/.rules", false));
}

#[test]
fn merge_from_standard_input_becomes_plain_rules() {
    let rules: Vec<String> = ["+ keep.o", "merge -", "-,s! */", ". -"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut input = vec![
        String::new(),
        "# rules\n- *.o\nP kept\n!\n- *.a\n".to_string(),
    ];
    let mut stdin = || Ok(input.pop().unwrap_or_default());
    let got = expand_stdin_merges(&rules, &mut stdin).unwrap();
    assert_eq!(
        got,
        ["+ keep.o", "- *.o", "-,r kept", "!", "- *.a", "-,s! */"],
        "the second `. -` finds standard input at its end"
    );
    let only: Vec<String> = vec!["merge,+s -".into()];
    let mut stdin = || Ok("x y\n".to_string());
    assert_eq!(expand_stdin_merges(&only, &mut stdin).unwrap(), ["+,s x y"]);
    // The clear rule read from standard input forgets the rules before it.
    let f = Filter::new(&got[..5], &[], false, &|_: &str| unreachable!()).unwrap();
    assert!(sender(&f, "x.a", false) && !sender(&f, "x.o", false));
}

#[test]
fn standard_input_is_read_only_for_merge_minus() {
    let rules: Vec<String> = vec!["merge rules".into(), "- -".into(), ": -".into()];
    let mut stdin = || -> std::io::Result<String> { panic!("standard input read") };
    assert_eq!(expand_stdin_merges(&rules, &mut stdin).unwrap(), rules);
    let bad: Vec<String> = vec!["merge -".into()];
    let mut stdin = || Ok("x foo\n".to_string());
    let e = expand_stdin_merges(&bad, &mut stdin)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("x foo") && e.contains("unknown filter rule"),
        "{e}"
    );
}
