//! When a run counts as having made progress: the rule the supervisor and
//! a group reset their backoff by, and that the registry's live check of a
//! running subsystem reads. Here, at the bottom of the chain, so the
//! registry needs nothing from the layers above it.

use std::time::Duration;

/// When a failed run counts as having made progress, which resets the
/// backoff: at least `beats` completed iterations and `running` of running
/// time; a subsystem that never beat at all needs only the running time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResetRule {
    pub(crate) beats: u64,
    pub(crate) running: Duration,
}

impl ResetRule {
    pub(crate) fn progressed(&self, ran: Duration, beats_in_run: u64, beats_ever: u64) -> bool {
        ran >= self.running && (beats_in_run >= self.beats || beats_ever == 0)
    }
}
