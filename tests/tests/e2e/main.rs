mod config_errors;
mod daemon;
mod nightly;
mod sync_diff;
