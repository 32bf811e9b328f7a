mod certs;
mod config_errors;
mod daemon;
mod nginx;
mod nightly;
mod stack;
mod sync_diff;
