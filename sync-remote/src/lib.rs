//! # sync-remote
//!
//! `opsync sync` between two hosts: the result of `rsync -a --delete SRC/ HOST:DST/` (push) or
//! `rsync -a --delete HOST:SRC/ DST/` (pull), over OpenSSH. The other end is opsync itself,
//! started through the remote shell (`ssh HOST opsync serve`), speaking a framed, versioned
//! protocol over the ssh process's stdin and stdout (no listening daemon, no other transport).
//!
//! Modules:
//! - `wire`: frames, their encoding, byte counters;
//! - `session`: starting the remote shell, the hello (one clear error when the protocol
//!   versions differ), the options handed to the other end, errors and their exit codes;
//! - `sender`: scans SRC, receives DST's listing, plans with sync-engine's one pure planner
//!   and streams the actions (files whole, or as `fast_rsync` deltas against the receiver's
//!   old version, see `delta`);
//! - `receiver`: scans DST and sends its listing, then applies each action through
//!   [`sync_engine::remote::Target`] (every name checked, nothing written outside DST,
//!   temporary file and rename, BLAKE3 of every file checked before the rename).
//!
//! A run: client and server exchange hellos; the client sends its options and the server's
//! role; the receiver sends DST's listing; the sender plans, asks for the signatures of the
//! changed files it will send as deltas (one request, answered while it streams the other
//! actions: no round trip per file), streams the actions, the directories' attributes last,
//! and its counts; the receiver answers with the report. The client prints everything.

mod delta;
mod receiver;
mod sender;
mod session;
pub mod wire;

pub use session::{
    Location, RemoteError, RemoteOptions, RemoteReport, parse_bwlimit, parse_location, pull, push,
    rsh_argv, serve, widen_pipe,
};
