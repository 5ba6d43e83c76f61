//! The restart delay policy: exponential, capped, optionally jittered.

use std::time::Duration;

/// How long to wait before restarting a failed body.
///
/// The delay after the `n`-th consecutive failure is
/// `initial * multiplier^(n-1)`, capped at `max` (1 s, 2 s, 4 s, …
/// 30 s with the defaults). With jitter on, each delay is drawn uniformly from
/// `[d/2, 3d/2]` around that nominal delay `d`, narrowed to `[initial, max]`
/// (the interval is narrowed before drawing, so no value is more likely than
/// another): never below the initial value, never above the cap, and still
/// uniformly random at the cap (`[max/2, max]`) so subsystems that fail
/// together do not restart together. With `initial == max` there is no room
/// to spread.
///
/// If `initial` exceeds `max`, `initial` wins: every delay is `initial`.
///
/// ```
/// use std::time::Duration;
/// use supervised::Backoff;
///
/// let default = Backoff::default();
/// let gaps: Vec<u64> = (1..=7).map(|n| default.nominal(n).as_secs()).collect();
/// assert_eq!(gaps, [1, 2, 4, 8, 16, 30, 30]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
    pub(crate) multiplier: f64,
    pub(crate) jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::DEFAULT
    }
}

impl Backoff {
    /// The default policy: 1 s doubling to 30 s, no jitter.
    pub(crate) const DEFAULT: Backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(30),
        multiplier: 2.0,
        jitter: false,
    };

    /// A policy with the given bounds, multiplier 2 and no jitter.
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = supervised::Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
    /// assert_eq!(b.nominal(5), Duration::from_secs(1));
    /// ```
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            ..Backoff::default()
        }
    }

    /// Sets the growth factor between consecutive delays.
    ///
    /// # Panics
    /// If `multiplier` is below 1.0 or not finite: a shrinking backoff is a
    /// configuration mistake, reported where it is made.
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = supervised::Backoff::default().multiplier(3.0);
    /// assert_eq!(b.nominal(3), Duration::from_secs(9));
    /// ```
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        assert!(
            multiplier.is_finite() && multiplier >= 1.0,
            "backoff multiplier must be a finite number >= 1.0, got {multiplier}"
        );
        self.multiplier = multiplier;
        self
    }

    /// Turns jitter on or off (see the type's docs for the range).
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = supervised::Backoff::default().jitter(true);
    /// let d = b.delay(10);
    /// assert!(d >= Duration::from_secs(15) && d <= Duration::from_secs(30));
    /// ```
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// The initial delay.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The cap (never below the initial delay).
    pub fn max(&self) -> Duration {
        self.max.max(self.initial)
    }

    /// The delay after the `failures`-th consecutive failure, without jitter.
    /// `failures` of 0 is treated as 1.
    pub fn nominal(&self, failures: u32) -> Duration {
        let exponent = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        Duration::try_from_secs_f64(secs)
            .unwrap_or(Duration::MAX)
            .clamp(self.initial, self.max())
    }

    /// The delay after the `failures`-th consecutive failure, jittered when
    /// jitter is on.
    pub fn delay(&self, failures: u32) -> Duration {
        let nominal = self.nominal(failures);
        if self.jitter {
            self.spread(nominal, fastrand::f64())
        } else {
            nominal
        }
    }

    /// Maps `unit` in `[0, 1)` onto `[d/2, 3d/2]` narrowed to `[initial, max]`.
    pub(crate) fn spread(&self, nominal: Duration, unit: f64) -> Duration {
        let low = (nominal / 2).max(self.initial);
        let high = nominal.saturating_add(nominal / 2).min(self.max());
        low + (high.saturating_sub(low)).mul_f64(unit.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_stays_in_bounds_and_is_random_at_the_cap() {
        let b = Backoff::default().jitter(true);
        let cap = b.nominal(20);
        assert_eq!(cap, Duration::from_secs(30));
        assert_eq!(b.spread(cap, 0.0), Duration::from_secs(15));
        assert_eq!(b.spread(cap, 0.5), Duration::from_millis(22_500));
        assert_eq!(b.spread(cap, 1.0), Duration::from_secs(30));
        assert_eq!(b.spread(b.initial, 0.0), Duration::from_secs(1));
        assert_eq!(b.spread(b.initial, 0.5), Duration::from_millis(1250));
    }

    #[test]
    fn huge_failure_counts_saturate_at_the_cap() {
        let b = Backoff::default();
        assert_eq!(b.nominal(u32::MAX), Duration::from_secs(30));
        assert_eq!(b.nominal(0), Duration::from_secs(1));
    }

    #[test]
    fn initial_above_max_wins() {
        let b = Backoff::new(Duration::from_secs(10), Duration::from_secs(5));
        assert_eq!(b.nominal(1), Duration::from_secs(10));
        assert_eq!(b.nominal(4), Duration::from_secs(10));
    }

    #[test]
    #[should_panic(expected = "multiplier must be a finite number >= 1.0")]
    fn shrinking_multiplier_is_rejected() {
        let _ = Backoff::default().multiplier(0.5);
    }
}
