//! The supervisor's decisions as pure functions of time and counts, so they
//! can be property-tested apart from any runtime: restart intensity and the
//! progress-based backoff reset (the delay itself is [`Backoff`]), and the
//! [`Policy`] value that carries them to the engine.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::backoff::Backoff;
use std::fmt;
use std::sync::Arc;

use crate::lease::spec::{LeaseSpec, DEFAULT_TTL};
use crate::lease::Backend;
pub(crate) use crate::registry::ResetRule;

/// What the engine reads of a [`Supervisor`](super::Supervisor): the
/// policy alone, not the builder, so the engine does not depend on it.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) backoff: Backoff,
    pub(crate) stop_timeout: Duration,
    pub(crate) intensity: Option<(u32, Duration)>,
    pub(crate) reset_beats: u64,
    /// `None`: the backoff's cap.
    pub(crate) reset_running: Option<Duration>,
    pub(crate) restart_on_stall: bool,
    /// The lease that gates each run, if any: named by a `'static` string
    /// (the `const` setter) or an owned one.
    pub(crate) lease_static: Option<&'static str>,
    pub(crate) lease_owned: Option<Arc<str>>,
    pub(crate) lease_ttl: Duration,
    /// `None`: the installed backend.
    pub(crate) lease_backend: Option<BackendRef>,
    /// Hands every failure up to the caller, unlogged (a group child's
    /// lease wrapper, whose group restarts it).
    pub(crate) escalate: bool,
}

/// A backend in the policy, which is `Debug`.
#[derive(Clone)]
pub(crate) struct BackendRef(pub(crate) Arc<dyn Backend>);

impl fmt::Debug for BackendRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Backend").field(&self.0.holder()).finish()
    }
}

impl Policy {
    /// The defaults: backoff 1 s doubling to 30 s, a 5 s grace period,
    /// unlimited restarts, reset after 3 beats and the cap of running.
    pub(crate) const DEFAULT: Policy = Policy {
        backoff: Backoff::DEFAULT,
        stop_timeout: Duration::from_secs(5),
        intensity: None,
        reset_beats: 3,
        reset_running: None,
        restart_on_stall: false,
        lease_static: None,
        lease_owned: None,
        lease_ttl: DEFAULT_TTL,
        lease_backend: None,
        escalate: false,
    };

    /// The lease that gates each run, if one is named.
    pub(crate) fn lease_spec(&self) -> Option<LeaseSpec> {
        let name = match (&self.lease_owned, self.lease_static) {
            (Some(owned), _) => std::borrow::Cow::Owned(owned.to_string()),
            (None, Some(name)) => std::borrow::Cow::Borrowed(name),
            (None, None) => return None,
        };
        Some(LeaseSpec {
            name,
            ttl: self.lease_ttl,
            backend: self.lease_backend.as_ref().map(|b| b.0.clone()),
        })
    }

    /// The progress rule that resets the backoff.
    pub(crate) fn reset_rule(&self) -> ResetRule {
        ResetRule {
            beats: self.reset_beats,
            running: self.reset_running.unwrap_or(self.backoff.max()),
        }
    }

    /// The restart rule of a supervisor under this policy.
    pub(crate) fn restart_rule(&self) -> RestartRule {
        RestartRule {
            backoff: self.backoff,
            reset: self.reset_rule(),
        }
    }

    /// The restart rule of a group with `backoff`: the default reset rule,
    /// over that backoff's cap.
    pub(crate) fn group_rule(backoff: Backoff) -> RestartRule {
        RestartRule {
            backoff,
            reset: ResetRule {
                beats: Policy::DEFAULT.reset_beats,
                running: backoff.max(),
            },
        }
    }
}

/// At most `max` restarts within any window of `within`: the window is
/// half-open, so a restart exactly `within` ago no longer counts.
#[derive(Debug, Clone)]
pub(crate) struct RestartWindow {
    max: u32,
    within: Duration,
    restarts: VecDeque<Instant>,
}

impl RestartWindow {
    pub(crate) fn new(max: u32, within: Duration) -> Self {
        RestartWindow {
            max,
            within,
            restarts: VecDeque::new(),
        }
    }

    /// Records a restart at `now` if the window has room; `false` means give up.
    pub(crate) fn admit(&mut self, now: Instant) -> bool {
        while self
            .restarts
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.within)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() >= self.max as usize {
            return false;
        }
        self.restarts.push_back(now);
        true
    }

    /// Restarts currently in the window.
    pub(crate) fn len(&self) -> usize {
        self.restarts.len()
    }
}

/// The one restart rule, applied by a supervisor to its body and by a group
/// to its children: a run that ended and is to be restarted either resets
/// the failure count (it made progress), counts one more failure, and is
/// admitted by the restart window (if any) with a backoff; or the window is
/// full and the caller gives up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RestartRule {
    pub(crate) backoff: Backoff,
    pub(crate) reset: ResetRule,
}

/// How the run that ended went, for [`RestartRule::judge`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunProgress {
    pub(crate) ran: Duration,
    pub(crate) beats_in_run: u64,
    pub(crate) beats_ever: u64,
}

/// What [`RestartRule::judge`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Restart after `after`; `failures` in a row so far.
    Restart { after: Duration, failures: u32 },
    /// The window is full: `in_window` restarts in it already.
    GiveUp { failures: u32, in_window: usize },
}

impl RestartRule {
    /// Judges an end at `now` that is to be restarted. `failures` is the
    /// caller's count of ends in a row (reset to 0 on progress before this
    /// one is counted); `window` is the restart intensity, if any.
    /// Counts one more end in a row in `failures`, reset to 0 first if the
    /// run made progress: the first half of [`judge`](Self::judge), alone
    /// for a count that decides no restart (a group child's own).
    pub(crate) fn count(&self, failures: &mut u32, progress: RunProgress) {
        if self
            .reset
            .progressed(progress.ran, progress.beats_in_run, progress.beats_ever)
        {
            *failures = 0;
        }
        *failures = failures.saturating_add(1);
    }

    pub(crate) fn judge(
        &self,
        failures: &mut u32,
        window: Option<&mut RestartWindow>,
        progress: RunProgress,
        now: Instant,
    ) -> Verdict {
        self.count(failures, progress);
        if let Some(window) = window {
            if !window.admit(now) {
                return Verdict::GiveUp {
                    failures: *failures,
                    in_window: window.len(),
                };
            }
        }
        Verdict::Restart {
            after: self.backoff.delay(*failures),
            failures: *failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    proptest! {
        #[test]
        fn delays_stay_within_initial_and_cap(
            initial in 0u64..10_000,
            extra in 0u64..100_000,
            multiplier in 1.0f64..5.0,
            failures in 0u32..200,
            unit in 0.0f64..1.0,
        ) {
            let backoff = Backoff::new(ms(initial), ms(initial + extra)).multiplier(multiplier);
            let nominal = backoff.nominal(failures);
            prop_assert!(nominal >= ms(initial) && nominal <= ms(initial + extra));
            let jittered = backoff.spread(nominal, unit);
            prop_assert!(jittered >= ms(initial), "{jittered:?} below the initial value");
            prop_assert!(jittered <= ms(initial + extra), "{jittered:?} above the cap");
            prop_assert!(jittered >= nominal / 2 && jittered <= nominal + nominal / 2);
            // Never shrinking as failures accumulate.
            prop_assert!(backoff.nominal(failures + 1) >= nominal);
        }

        #[test]
        fn jitter_at_the_cap_still_spans_half_the_cap(cap in 2u64..100_000) {
            let backoff = Backoff::new(ms(1), ms(cap)).jitter(true);
            let at_cap = backoff.nominal(64);
            prop_assert_eq!(at_cap, ms(cap));
            prop_assert_eq!(backoff.spread(at_cap, 0.0), ms(cap) / 2);
            prop_assert_eq!(backoff.spread(at_cap, 1.0), ms(cap));
        }

        #[test]
        fn restart_intensity_is_exact_at_its_boundary(
            max in 0u32..6,
            within in 1u64..10_000,
            gaps in proptest::collection::vec(0u64..4_000, 1..60),
        ) {
            let start = Instant::now();
            let mut window = RestartWindow::new(max, ms(within));
            let mut admitted: Vec<Instant> = Vec::new();
            let mut now = start;
            for gap in gaps {
                now += ms(gap);
                // Reference: restarts admitted in the half-open window (now - within, now].
                let in_window = admitted.iter().filter(|t| now - **t < ms(within)).count();
                let expected = in_window < max as usize;
                let got = window.admit(now);
                prop_assert_eq!(got, expected, "at {:?} with {} in the window", now - start, in_window);
                if got {
                    admitted.push(now);
                } else {
                    break; // the supervisor gives up at the first refusal
                }
                prop_assert!(window.len() <= max as usize);
            }
        }

        #[test]
        fn the_restart_rule_resets_counts_admits_and_backs_off_in_that_order(
            ends in proptest::collection::vec((0u64..40_000, 0u64..6), 1..40),
            max in 0u32..8,
        ) {
            let backoff = Backoff::new(ms(1_000), ms(30_000));
            let rule = RestartRule { backoff, reset: ResetRule { beats: 3, running: ms(30_000) } };
            let mut window = RestartWindow::new(max, ms(60_000));
            let mut reference_window = RestartWindow::new(max, ms(60_000));
            let (mut failures, mut reference) = (0u32, 0u32);
            let mut now = Instant::now();
            let mut ever = 0;
            for (ran, beats) in ends {
                now += ms(ran);
                ever += beats;
                let progress = RunProgress { ran: ms(ran), beats_in_run: beats, beats_ever: ever };
                let verdict = rule.judge(&mut failures, Some(&mut window), progress, now);
                // The rule written out: reset on progress, count, admit, delay.
                if ran >= 30_000 && (beats >= 3 || ever == 0) {
                    reference = 0;
                }
                reference += 1;
                let expected = if reference_window.admit(now) {
                    Verdict::Restart { after: backoff.delay(reference), failures: reference }
                } else {
                    Verdict::GiveUp { failures: reference, in_window: reference_window.len() }
                };
                prop_assert_eq!(verdict, expected);
                if matches!(verdict, Verdict::GiveUp { .. }) {
                    break;
                }
            }
        }

        #[test]
        fn reset_needs_both_beats_and_running_time(
            beats in 0u64..10,
            running in 0u64..100_000,
            ran in 0u64..200_000,
            beats_in_run in 0u64..20,
            beats_before in 0u64..20,
        ) {
            let rule = ResetRule { beats, running: ms(running) };
            let ever = beats_before + beats_in_run;
            let got = rule.progressed(ms(ran), beats_in_run, ever);
            if ran < running {
                prop_assert!(!got, "uptime below the rule never resets");
            } else if ever == 0 {
                prop_assert!(got, "a body that never beats needs only the running time");
            } else {
                prop_assert_eq!(got, beats_in_run >= beats);
            }
        }
    }
}
