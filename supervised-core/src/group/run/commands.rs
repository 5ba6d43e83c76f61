//! The handles' commands as a run carries them out: add, remove, pause and
//! resume, and the commands left when a run ends.

use super::{Runner, StopReason};
use crate::group::handle::{Command, PauseError};
use crate::group::record::{ChildRecord, ChildState};
use crate::{RemoveError, SubsystemState};

impl Runner<'_> {
    // ---- commands ------------------------------------------------------------

    pub(super) async fn on_command(&mut self, command: Command) {
        match command {
            Command::Add(child) => {
                let seq = self.def.push(ChildRecord::added(child));
                self.start(seq).await;
            }
            Command::Remove(name, answer) => {
                let result = self.remove(&name).await;
                // The caller may have stopped waiting; the removal stands.
                let _ = answer.send(result);
            }
            Command::Pause(name, pause, answer) => {
                let result = if pause {
                    self.pause(&name).await
                } else {
                    self.resume(&name).await
                };
                let _ = answer.send(result);
            }
        }
    }

    /// Which member `name` is, if it is a child that can be paused.
    fn pausable(&self, name: &str) -> Result<u64, PauseError> {
        let Some(&seq) = self.def.seqs.get(name) else {
            return Err(PauseError::NotFound(name.to_string()));
        };
        if self
            .def
            .members
            .get(&seq)
            .is_some_and(ChildRecord::is_group)
        {
            return Err(PauseError::NestedGroup(name.to_string()));
        }
        Ok(seq)
    }

    async fn pause(&mut self, name: &str) -> Result<(), PauseError> {
        let seq = self.pausable(name)?;
        if self.def.members.get(&seq).is_some_and(|m| m.paused) {
            return Ok(());
        }
        if let Some(member) = self.def.members.get_mut(&seq) {
            member.paused = true;
        }
        if self.is_running(seq) {
            if let Some(ended) = self.stop_now(seq, StopReason::Paused).await {
                self.absorb_stopped(seq, &ended);
            }
        }
        self.clear_due(seq);
        if let Some(entry) = self.entry(seq) {
            entry.set_state(SubsystemState::Paused);
        }
        self.def.shared.set_state(name, SubsystemState::Paused);
        tracing::info!(target: "supervised", group = %self.path, child = %name, "child paused");
        Ok(())
    }

    async fn resume(&mut self, name: &str) -> Result<(), PauseError> {
        let seq = self.pausable(name)?;
        let Some(member) = self.def.members.get_mut(&seq) else {
            return Err(PauseError::NotFound(name.to_string()));
        };
        if !member.paused {
            return Ok(());
        }
        member.paused = false;
        member.failures = 0;
        if let Some(entry) = &member.entry {
            entry.reset_failures();
        }
        tracing::info!(target: "supervised", group = %self.path, child = %name, "child resumed");
        self.start(seq).await;
        Ok(())
    }

    async fn remove(&mut self, name: &str) -> Result<(), RemoveError> {
        let Some(&seq) = self.def.seqs.get(name) else {
            return Err(RemoveError::NotFound(name.to_string()));
        };
        if self.is_running(seq) {
            if let Some(ended) = self.stop_now(seq, StopReason::Removed).await {
                self.absorb_stopped(seq, &ended);
            }
        }
        if self.is_due(seq) && self.def.strategy == crate::Strategy::RestForOne {
            // Removed while it backs off: the children after it were
            // stopped to restart with it, and what they depend on is gone,
            // so they stay stopped (as OTP leaves them) until the group
            // restarts them for an earlier child or runs again.
            let after: Vec<u64> = self
                .def
                .members
                .range(seq + 1..)
                .filter(|(_, m)| matches!(m.state, ChildState::Due(_)))
                .map(|(s, _)| *s)
                .collect();
            for later in after {
                self.clear_due(later);
                let name = self.name_of(later);
                if let Some(entry) = self.entry(later) {
                    entry.set_state(SubsystemState::Stopped);
                }
                self.def.shared.set_state(&name, SubsystemState::Stopped);
            }
        }
        self.forget(seq);
        tracing::info!(target: "supervised", group = %self.path, child = %name, "child removed");
        Ok(())
    }

    /// Takes a child that is not running out of the group: its spec (and
    /// with it its factory and all it captured), its registry entry (a
    /// nested group's whole subtree), and its name, which is free again.
    pub(super) fn forget(&mut self, seq: u64) {
        self.clear_due(seq);
        let Some(member) = self.def.remove(seq) else {
            return;
        };
        if let Some(entry) = &member.entry {
            self.registry.forget(entry);
            if member.is_group() {
                self.registry.forget_group(entry.name());
            }
        }
        self.def.shared.roster().remove(&member.name);
    }
}

impl Runner<'_> {
    /// Commands sent before the handles saw the run end: a removal is
    /// answered (nothing is running to remove), an add is kept for the
    /// group's next run (a nested group's parent may restart it), so no
    /// caller waits on a command nobody will read.
    pub(super) fn settle_commands(&mut self) {
        while let Ok(command) = self.def.commands.try_recv() {
            match command {
                Command::Add(child) => {
                    self.def.push(ChildRecord::added(child));
                }
                Command::Remove(_, answer) => {
                    let _ = answer.send(Err(RemoveError::Ended));
                }
                Command::Pause(_, _, answer) => {
                    let _ = answer.send(Err(PauseError::Ended));
                }
            }
        }
    }
}
