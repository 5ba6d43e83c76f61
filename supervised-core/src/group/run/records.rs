//! The children's states as the run changes them: each in its record
//! (`group/record.rs`), with the run's indexes beside them kept in step (how
//! many run, which are due by time).

use super::*;

impl Runner<'_> {
    /// Member `seq`'s registry entry, once it has started.
    pub(super) fn entry(&self, seq: u64) -> Option<&Subsystem> {
        self.def.members.get(&seq)?.entry.as_ref()
    }

    pub(super) fn is_running(&self, seq: u64) -> bool {
        self.def
            .members
            .get(&seq)
            .is_some_and(ChildRecord::is_running)
    }

    pub(super) fn is_due(&self, seq: u64) -> bool {
        self.def
            .members
            .get(&seq)
            .is_some_and(|m| matches!(m.state, ChildState::Due(_)))
    }

    /// Takes member `seq`'s run, if it is running: it is idle after.
    pub(super) fn take_running(&mut self, seq: u64) -> Option<Running> {
        let member = self.def.members.get_mut(&seq)?;
        if !member.is_running() {
            return None;
        }
        let ChildState::Running(run) = std::mem::replace(&mut member.state, ChildState::Idle)
        else {
            return None;
        };
        self.running -= 1;
        Some(run)
    }

    /// Makes member `seq` due at `at` (it is not running).
    pub(super) fn set_due(&mut self, seq: u64, at: Instant) {
        self.clear_due(seq);
        if let Some(member) = self.def.members.get_mut(&seq) {
            member.state = ChildState::Due(at);
            self.due.insert((at, seq));
        }
    }

    /// Every record idle again, for a nested group's next run: at the end
    /// of a run nothing runs (its tasks are stopped or aborted with the
    /// `JoinSet`) and nothing is due.
    pub(super) fn settle_records(&mut self) {
        for member in self.def.members.values_mut() {
            member.state = ChildState::Idle;
        }
        self.running = 0;
        self.due.clear();
    }

    /// Makes member `seq` idle if it was due.
    pub(super) fn clear_due(&mut self, seq: u64) {
        if let Some(member) = self.def.members.get_mut(&seq) {
            if let ChildState::Due(at) = member.state {
                member.state = ChildState::Idle;
                self.due.remove(&(at, seq));
            }
        }
    }

    /// Forgets every temporary child at the end of a run (all are stopped
    /// by then), as OTP forgets them when it terminates its children, so a
    /// nested group that its parent runs again does not start them again.
    pub(super) fn forget_temporaries(&mut self) {
        let temporary: Vec<u64> = self
            .def
            .members
            .iter()
            .filter(|(_, m)| m.restart == Restart::Temporary)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in temporary {
            self.forget(seq);
        }
    }
}
