//! Stopping children: one (for a restart or a removal: token, stop
//! timeout, abort), the fleet added at run time all at once, or every
//! child for a shutdown or a give-up, within the group's bounds; then the
//! run's report.

use super::*;

impl Runner<'_> {
    /// Whether a stop in progress watches the trigger: for a shutdown
    /// outside one, for a second signal inside one.
    fn listening(&self) -> bool {
        match self.listen {
            Listen::ForShutdown => true,
            Listen::ForSecondSignal => self.trigger.repeats(),
            Listen::Not => false,
        }
    }

    /// Waits for member `seq`'s task to finish, until `until`, keeping the
    /// ends of others for later.
    pub(super) async fn wait_for(&mut self, seq: u64, until: Option<Instant>) -> Waited {
        if let Some(at) = self.ends.iter().position(|(s, _)| *s == seq) {
            if let Some((_, outcome)) = self.ends.remove(at) {
                return Waited::Joined(outcome);
            }
        }
        loop {
            let listening = self.listening();
            tokio::select! {
                biased;
                joined = self.tasks.join_next_with_id() => {
                    let Some(joined) = joined else {
                        return Waited::Joined(Outcome::Aborted);
                    };
                    if let Some((ended, outcome)) = self.identify(joined) {
                        if ended == seq {
                            return Waited::Joined(outcome);
                        }
                        self.ends.push_back((ended, outcome));
                    }
                }
                why = self.trigger.fired(), if listening => return Waited::Triggered(why),
                () = self.handle_shutdown.cancelled(), if self.listen == Listen::ForShutdown => {
                    return Waited::Triggered("handle");
                }
                () = bounded(&mut self.stop_timer, until) => return Waited::TimedOut,
            }
        }
    }

    /// Records a shutdown asked for while the run was busy: readiness
    /// turns at once, the shutdown itself begins when the run is free.
    pub(super) fn note_trigger(&mut self, why: &'static str) {
        self.listen = Listen::Not;
        self.triggered = Some(why);
        if self.is_root() {
            self.registry.set_draining();
        }
    }

    /// Stops a running child outside a shutdown (for a restart or a
    /// removal): its token, its stop timeout, then an abort that is waited
    /// for, so its future is gone when this returns.
    pub(super) async fn stop_now(&mut self, seq: u64, reason: StopReason<'_>) -> Option<ChildEnd> {
        let (run, begun, until) = self.begin_stop(seq)?;
        let mut aborted = false;
        let outcome = loop {
            match self
                .wait_for(seq, if aborted { None } else { Some(until) })
                .await
            {
                Waited::Joined(outcome) => break outcome,
                Waited::Triggered(why) => self.note_trigger(why),
                Waited::TimedOut => {
                    run.abort.abort();
                    aborted = true;
                }
            }
        };
        self.stopped(seq, reason, begun, aborted, "stop_timeout");
        match outcome {
            Outcome::Ended(ended) => Some(ended),
            Outcome::Aborted => None,
        }
    }

    /// Takes member `seq`'s run and cancels its token: the run, when its
    /// stop began, and when its stop timeout ends.
    pub(super) fn begin_stop(&mut self, seq: u64) -> Option<(Running, Instant, Instant)> {
        let run = self.take_running(seq)?;
        run.token.cancel();
        let begun = Instant::now();
        let timeout = self
            .def
            .members
            .get(&seq)
            .map_or(Duration::ZERO, |m| m.stop_timeout);
        Some((run, begun, deadline(begun, timeout)))
    }

    /// The running children, last started first: the stop order.
    pub(super) fn running_last_first(&self) -> Vec<u64> {
        // The records are in start order already.
        self.def
            .members
            .iter()
            .rev()
            .filter(|(_, m)| m.is_running())
            .map(|(seq, _)| *seq)
            .collect()
    }

    /// Books a child the group stopped, with one event.
    pub(super) fn stopped(
        &mut self,
        seq: u64,
        reason: StopReason<'_>,
        begun: Instant,
        aborted: bool,
        bound: &str,
    ) {
        let name = self.name_of(seq);
        if let Some(entry) = self.entry(seq) {
            entry.set_state(SubsystemState::Stopped);
        }
        self.def.shared.set_state(&name, SubsystemState::Stopped);
        let took = Instant::now().saturating_duration_since(begun);
        if aborted {
            self.unstopped.push(name.to_string());
            tracing::error!(
                target: "supervised",
                group = %self.path, child = %name, strategy = self.strategy(),
                reason = %reason.describe(), bound, took = ?took,
                "child unstopped: it did not finish within its bound after cancellation, and its task was aborted. The usual cause: the child does not watch the CancellationToken it was given (or blocks its thread between awaits). Check `cancel.is_cancelled()` in its loop or select on `cancel.cancelled()` around its waits; if it needs longer to finish, raise its stop_timeout"
            );
        } else if (self
            .def
            .members
            .get(&seq)
            .is_some_and(|m| m.added_at_run_time)
            && matches!(reason, StopReason::Shutdown | StopReason::GiveUp))
            || matches!(reason, StopReason::HandedOff | StopReason::ShardLost)
        {
            // One of a fleet stopped together: a line each would be 100,000
            // lines; `stop_together` logs them as one.
            tracing::debug!(
                target: "supervised",
                group = %self.path, child = %name, strategy = self.strategy(),
                reason = %reason.describe(), took = ?took,
                "child stopped"
            );
        } else {
            tracing::info!(
                target: "supervised",
                group = %self.path, child = %name, strategy = self.strategy(),
                reason = %reason.describe(), took = ?took,
                "child stopped"
            );
        }
    }

    pub(super) async fn shut_down(&mut self, trigger: &'static str) -> GroupReport {
        let begun = Instant::now();
        self.def.shared.roster().phase = RunPhase::ShuttingDown;
        if self.is_root() {
            self.registry.set_draining();
        }
        tracing::info!(
            target: "supervised",
            group = %self.path, strategy = self.strategy(), reason = "shutdown", trigger,
            children = self.running, drain = ?self.def.drain, timeout = ?self.def.shutdown_timeout,
            "shutdown begun"
        );
        self.listen = Listen::ForSecondSignal;
        let due: Vec<u64> = self.due.iter().map(|(_, seq)| *seq).collect();
        for seq in due {
            self.clear_due(seq);
        }
        let until = deadline(begun, self.def.shutdown_timeout);
        let drained = deadline(begun, self.def.drain).min(until);
        let second = if self.def.drain.is_zero() {
            None
        } else {
            tokio::select! {
                why = self.trigger.fired(), if self.trigger.repeats() => Some(why),
                () = tokio::time::sleep_until(drained) => None,
            }
        };
        if let Some(why) = second {
            self.abort_all(why);
        } else {
            self.stop_all(StopReason::Shutdown, until).await;
        }
        self.leave_shards().await;
        self.finish(GroupExit::Shutdown, begun)
    }

    /// Stops every running child within `until`: the fleet (children added
    /// at run time) all at once, then the builder's children one at a time,
    /// last started first.
    pub(super) async fn stop_all(&mut self, reason: StopReason<'_>, until: Instant) {
        let fleet: Vec<u64> = self
            .running_last_first()
            .into_iter()
            .filter(|seq| {
                self.def
                    .members
                    .get(seq)
                    .is_some_and(|m| m.added_at_run_time)
            })
            .collect();
        if !fleet.is_empty() && !self.stop_together(fleet, reason, until).await {
            return;
        }
        for seq in self.running_last_first() {
            let Some((run, begun, own)) = self.begin_stop(seq) else {
                continue;
            };
            let bound = if own < until {
                "stop_timeout"
            } else {
                "shutdown_timeout"
            };
            match self.wait_for(seq, Some(own.min(until))).await {
                Waited::Joined(outcome) => {
                    if let Outcome::Ended(ended) = &outcome {
                        self.absorb_stopped(seq, ended);
                    }
                    self.stopped(seq, reason, begun, false, bound);
                }
                Waited::TimedOut => {
                    // Not waited for: the shutdown's bound is a hard one.
                    run.abort.abort();
                    self.stopped(seq, reason, begun, true, bound);
                }
                Waited::Triggered(why) => {
                    run.abort.abort();
                    self.stopped(seq, reason, begun, true, why);
                    self.abort_all(why);
                    return;
                }
            }
        }
    }

    /// Stops `seqs` together, as OTP stops a `simple_one_for_one`
    /// supervisor's children: every token is cancelled now, and each child
    /// has its own stop timeout (within `until`) before its task is
    /// aborted. A thousand tenant workers that each take a second to flush
    /// stop in about a second, not a thousand. `false` if a second trigger
    /// aborted everything left.
    pub(super) async fn stop_together(
        &mut self,
        seqs: Vec<u64>,
        reason: StopReason<'_>,
        until: Instant,
    ) -> bool {
        let begun = Instant::now();
        let count = seqs.len();
        let mut stopping: HashMap<u64, (AbortHandle, Instant, &'static str)> = HashMap::default();
        let mut by_deadline: BTreeSet<(Instant, u64)> = BTreeSet::new();
        for seq in seqs {
            let Some((run, _, own)) = self.begin_stop(seq) else {
                continue;
            };
            let bound = if own < until {
                "stop_timeout"
            } else {
                "shutdown_timeout"
            };
            let at = own.min(until);
            stopping.insert(seq, (run.abort, at, bound));
            by_deadline.insert((at, seq));
        }
        // Ends that came in before the tokens were cancelled.
        let queued: Vec<(u64, Outcome)> = std::mem::take(&mut self.ends).into_iter().collect();
        for (seq, outcome) in queued {
            match stopping.remove(&seq) {
                Some((_, at, bound)) => {
                    by_deadline.remove(&(at, seq));
                    if let Outcome::Ended(ended) = &outcome {
                        self.absorb_stopped(seq, ended);
                    }
                    self.stopped(seq, reason, begun, false, bound);
                }
                None => self.ends.push_back((seq, outcome)),
            }
        }
        while let Some(&(next, _)) = by_deadline.first() {
            let listening = self.listening();
            tokio::select! {
                biased;
                joined = self.tasks.join_next_with_id() => {
                    let Some(joined) = joined else { break };
                    let Some((seq, outcome)) = self.identify(joined) else { continue };
                    let Some((_, at, bound)) = stopping.remove(&seq) else {
                        self.ends.push_back((seq, outcome));
                        continue;
                    };
                    by_deadline.remove(&(at, seq));
                    if let Outcome::Ended(ended) = &outcome {
                        self.absorb_stopped(seq, ended);
                    }
                    self.stopped(seq, reason, begun, false, bound);
                }
                why = self.trigger.fired(), if listening => {
                    for (seq, (abort, _, _)) in stopping {
                        abort.abort();
                        self.stopped(seq, reason, begun, true, why);
                    }
                    self.abort_all(why);
                    return false;
                }
                () = bounded(&mut self.stop_timer, Some(next)) => {
                    // Not waited for: the bound is a hard one.
                    while let Some(&(at, seq)) = by_deadline.first() {
                        if at > Instant::now() {
                            break;
                        }
                        by_deadline.pop_first();
                        if let Some((abort, _, bound)) = stopping.remove(&seq) {
                            abort.abort();
                            self.stopped(seq, reason, begun, true, bound);
                        }
                    }
                }
            }
        }
        let took = Instant::now().saturating_duration_since(begun);
        if matches!(reason, StopReason::HandedOff | StopReason::ShardLost) {
            tracing::info!(
                target: "supervised",
                group = %self.path, children = count, reason = %reason.describe(), took = ?took,
                "sharded children stopped together"
            );
        } else {
            tracing::info!(
                target: "supervised",
                group = %self.path, children = count, reason = %reason.describe(), took = ?took,
                "children added at run time stopped together"
            );
        }
        true
    }

    /// A second signal: every child left is aborted at once.
    pub(super) fn abort_all(&mut self, why: &'static str) {
        let now = Instant::now();
        for seq in self.running_last_first() {
            if let Some(run) = self.take_running(seq) {
                run.abort.abort();
                self.stopped(seq, StopReason::Shutdown, now, true, why);
            }
        }
    }

    pub(super) fn finish(&mut self, exit: GroupExit, begun: Instant) -> GroupReport {
        if !matches!(exit, GroupExit::GaveUp { .. }) {
            self.entry.set_state(SubsystemState::Stopped);
        }
        if self.is_root() {
            self.registry.set_draining();
        }
        self.token.cancel();
        self.settle_records();
        self.forget_temporaries();
        self.def.shared.roster().phase = RunPhase::Ended;
        self.settle_commands();
        let took = match exit {
            GroupExit::Completed => Duration::ZERO,
            _ => Instant::now().saturating_duration_since(begun),
        };
        tracing::info!(
            target: "supervised",
            group = %self.path, strategy = self.strategy(), reason = ?exit,
            unstopped = ?self.unstopped, failed = ?self.failed, took = ?took,
            "group ended"
        );
        GroupReport {
            exit,
            unstopped: std::mem::take(&mut self.unstopped),
            failed: std::mem::take(&mut self.failed),
            took,
        }
    }
}

/// Sleeps on `timer` until `at` (forever without one), resetting it only
/// when its deadline differs.
async fn bounded(timer: &mut Option<Pin<Box<Sleep>>>, at: Option<Instant>) {
    let Some(at) = at else {
        return std::future::pending().await;
    };
    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
    if timer.deadline() != at {
        timer.as_mut().reset(at);
    }
    timer.as_mut().await;
}
