//! Deltas of changed files (not yet on the wire: every changed file goes whole, see the
//! README's "Remote" section).

use sync_engine::remote::Target;

use crate::session::{Out, RemoteError};

/// Answers a signature request. Protocol 1 senders never send one.
pub(crate) fn answer(
    _target: &mut Option<Target>,
    _p: &[u8],
    _out: &Out,
) -> Result<(), RemoteError> {
    Err(RemoteError::Stream {
        detail: "signature requests are not part of protocol 1".into(),
    })
}
