//! Errors as one line: [`one_line`] renders any error with its causes the way every error of
//! opsync is printed (`opsync: error: ...`) and recorded (a job step's message).
//!
//! The errors themselves are typed and live next to what fails: [`crate::config::ConfigError`],
//! [`crate::lock::LockError`], [`crate::fs::WriteError`], [`crate::process::ProcessError`], the
//! stack, certificate and nginx errors. Each names the operation and the path or program, and
//! says what to do; [`crate::exit::ToExit`] gives its exit code.

/// The error and its causes on one line, `: `-separated, leaving out a cause whose text the
/// message before it already contains (typed errors often print their source themselves).
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut cause = Some(err);
    while let Some(e) = cause {
        let text = e.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        cause = e.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct Read {
        path: &'static str,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("stack prod")]
    struct Outer {
        #[source]
        inner: Read,
    }

    #[test]
    fn causes_are_joined_and_repeats_left_out() {
        let e = Outer {
            inner: Read {
                path: "/x",
                source: std::io::Error::other("denied"),
            },
        };
        assert_eq!(one_line(&e), "stack prod: cannot read /x: denied");
    }
}
