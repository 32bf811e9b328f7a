//! The options of `opsync sync` about the configuration's rails (kept apart from the rsync
//! options in [`super::mirror`]).

use clap::Args;

/// How a hand-run `opsync sync SRC DST` relates to the configuration.
#[derive(Debug, Args)]
pub struct RailsArgs {
    /// Ignore the configuration: do not apply the exclude and max-delete configured for this
    /// SRC and DST
    #[arg(long, help_heading = "Safety")]
    pub no_config: bool,

    /// Without a configured pair or --max-delete, allow deleting more than half of a non-empty
    /// DST (rsync's --force, deleting a non-empty directory that SRC replaces with another
    /// type, is what opsync always does)
    #[arg(long, help_heading = "Safety")]
    pub force: bool,
}
