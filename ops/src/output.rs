//! Everything opsync prints: logging setup, itemize lines, JSON events, progress bars.
//! No other module writes to stdout or stderr directly, except `commands::fail`.

use std::io::IsTerminal;

use crate::cli::LogFormat;

/// Installs the tracing subscriber: human-readable on a terminal, JSON lines with
/// `--log-format json`. The level comes from `OPSYNC_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("OPSYNC_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Prints command output (a human-readable block or one JSON object) on stdout.
pub fn stdout_text(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
}
