//! What a child's end means: restarted by the strategy after the backoff
//! (with its siblings under `OneForAll` and `RestForOne`), not restarted
//! (a temporary child forgotten), or the group gives up.

use super::*;

impl Runner<'_> {
    /// A child's task finished by itself. `Some` when the run is over.
    pub(super) async fn on_end(&mut self, seq: u64, outcome: Outcome) -> Option<GroupReport> {
        let run = self.take_running(seq)?;
        if !self.runs_here(seq) {
            // A sharded child whose bucket went, or whose task the fence
            // ended unpolled: it runs elsewhere now, not judged.
            self.set_elsewhere(seq);
            return None;
        }
        let mut ended = match outcome {
            Outcome::Ended(ended) => ended,
            // Only the group aborts, and it waits for those itself.
            Outcome::Aborted => ChildEnd::normal(),
        };
        self.absorb(&ended);
        // How the run ended is logged inside its span (see `ending`).
        self.ending = ended.span.take();
        let entry = self.entry(seq).cloned()?;
        let now = Instant::now();
        // The group's restarts and each child's failures in a row follow
        // the rule a `Supervisor` applies to its body.
        let rule = Policy::group_rule(self.def.backoff);
        let beats = entry.beats();
        let progress = RunProgress {
            ran: now.saturating_duration_since(run.started),
            beats_in_run: beats.saturating_sub(run.beats_then),
            beats_ever: beats,
        };
        let member = self.def.members.get_mut(&seq)?;
        if ended.failure.is_some() {
            // The child's own count, shown on its entry.
            rule.count(&mut member.failures, progress);
        }
        let mut record = ended.failure.as_ref().map(|failure| match failure {
            ChildFailure::Panic { message, location } => FailureRecord::Panic(LastPanic {
                message: message.clone(),
                location: location.clone(),
                at: now,
            }),
            other => FailureRecord::Error(other.to_string()),
        });
        let failures = member.failures;
        let name = member.name.to_string();
        let restart = member.restart;
        let reason = match &ended.failure {
            Some(failure) => failure.to_string(),
            None => "ended normally".to_string(),
        };
        if !restart.after(ended.failure.is_some()) {
            return self.not_restarted(seq, &entry, restart, failures, record, reason);
        }

        let delay = match rule.judge(&mut self.consecutive, Some(&mut self.window), progress, now) {
            Verdict::Restart { after, .. } => after,
            Verdict::GiveUp { .. } => {
                if let Some(record) = record {
                    entry.record_failure(failures, record);
                }
                return Some(self.give_up(seq, reason).await);
            }
        };
        self.entry.count_restart();

        let together: Vec<u64> = match self.def.strategy {
            crate::Strategy::OneForOne => vec![seq],
            crate::Strategy::OneForAll => self.def.members.keys().copied().collect(),
            crate::Strategy::RestForOne => self.def.members.range(seq..).map(|(s, _)| *s).collect(),
        };
        let siblings: Vec<String> = together
            .iter()
            .filter(|s| **s != seq)
            .map(|s| self.name_of(*s).to_string())
            .collect();
        let in_run = self.ending.take();
        let entered = in_run.as_deref().map(tracing::Span::enter);
        if ended.failure.is_some() {
            tracing::error!(
                target: "supervised",
                group = %self.path, child = %name, strategy = self.strategy(), reason = %reason,
                backoff = ?delay, consecutive_failures = failures, with = ?siblings,
                "child failed: restarting it after the backoff"
            );
        } else {
            tracing::info!(
                target: "supervised",
                group = %self.path, child = %name, strategy = self.strategy(), reason = %reason,
                backoff = ?delay, with = ?siblings,
                "permanent child ended: restarting it after the backoff"
            );
        }
        // Left before the awaits below: a span entered across an await
        // would hold other tasks' events.
        drop(entered);
        // Stop the siblings, last started first, each gone before the next.
        for &sibling in together.iter().rev().filter(|s| **s != seq) {
            if self.is_running(sibling) {
                if let Some(ended) = self.stop_now(sibling, StopReason::Restart(&name)).await {
                    self.absorb_stopped(sibling, &ended);
                }
            }
        }
        let at = deadline(Instant::now(), delay);
        for s in together {
            let Some(member) = self.def.members.get(&s) else {
                continue;
            };
            if member.elsewhere {
                // A sharded sibling that runs on another replica: this
                // replica's restart is not its business.
                continue;
            }
            if member.restart == Restart::Temporary {
                // Not even with its siblings: stopped, it is forgotten.
                self.forget(s);
                continue;
            }
            if member.paused {
                // Paused: stays stopped until resumed, whatever its siblings do.
                continue;
            }
            let name = Arc::clone(&member.name);
            self.set_due(s, at);
            if let Some(entry) = self.entry(s) {
                match (s == seq).then(|| record.take()).flatten() {
                    Some(record) => entry.record_restart(failures, at, record),
                    None => entry.schedule_restart(at),
                }
            }
            self.def.shared.set_state(&name, SubsystemState::BackingOff);
        }
        None
    }

    /// A child that ended and is not to be restarted: a temporary one is
    /// forgotten (as OTP's is), any other stays listed, stopped or failed.
    pub(super) fn not_restarted(
        &mut self,
        seq: u64,
        entry: &Subsystem,
        restart: Restart,
        failures: u32,
        record: Option<FailureRecord>,
        reason: String,
    ) -> Option<GroupReport> {
        let name = self.name_of(seq);
        let failed = record.is_some();
        let in_run = self.ending.take();
        let entered = in_run.as_deref().map(tracing::Span::enter);
        if failed {
            tracing::error!(
                target: "supervised",
                group = %self.path, child = %name, strategy = self.strategy(), reason = %reason,
                "child failed and is not restarted ({restart:?})"
            );
        } else {
            tracing::info!(
                target: "supervised",
                group = %self.path, child = %name, strategy = self.strategy(), reason = %reason,
                "child ended and is not restarted ({restart:?})"
            );
        }
        drop(entered);
        if restart == Restart::Temporary {
            self.forget(seq);
            return None;
        }
        if let Some(record) = record {
            entry.record_failure(failures, record);
            self.failed.push(name.to_string());
        }
        let state = if failed {
            SubsystemState::Failed
        } else {
            SubsystemState::Stopped
        };
        entry.set_state(state);
        self.def.shared.set_state(&name, state);
        None
    }

    pub(super) async fn give_up(&mut self, seq: u64, failure: String) -> GroupReport {
        let begun = Instant::now();
        let child = self.name_of(seq).to_string();
        let (max, within) = self.def.intensity;
        {
            let in_run = self.ending.take();
            let _entered = in_run.as_deref().map(tracing::Span::enter);
            tracing::error!(
                target: "supervised",
                group = %self.path, child = %child, strategy = self.strategy(), reason = %failure,
                max_restarts = max, within = ?within,
                "group gave up: restart intensity exceeded; stopping every child"
            );
        }
        if let Some(entry) = self.entry(seq) {
            entry.set_state(SubsystemState::Failed);
        }
        self.def.shared.set_state(&child, SubsystemState::Failed);
        self.failed.push(child.clone());
        self.def.shared.roster().phase = RunPhase::ShuttingDown;
        if self.is_root() {
            self.registry.set_draining();
        }
        self.listen = Listen::ForSecondSignal;
        let until = deadline(begun, self.def.shutdown_timeout);
        self.stop_all(StopReason::GiveUp, until).await;
        self.leave_shards().await;
        self.entry.set_state(SubsystemState::Failed);
        self.finish(GroupExit::GaveUp { child, failure }, begun)
    }
}
