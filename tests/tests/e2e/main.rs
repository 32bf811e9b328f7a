//! End-to-end tests of the `opsync` binary.

mod verify;
