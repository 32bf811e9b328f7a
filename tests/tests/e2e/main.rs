mod certs;
mod config_errors;
mod daemon;
mod faults;
mod hostile;
mod nginx;
mod nightly;
mod stack;
