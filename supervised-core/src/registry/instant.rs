//! Instants in atomics, and deadlines that cannot overflow the clock.
//!
//! A beat stores its instant as signed nanoseconds from the subsystem's
//! registration in one `AtomicI64`: one relaxed store, no lock. The
//! conversion is on the hot path, so its common case is one 64-bit
//! multiply-add; the far and negative cases are cold.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Sentinel for "no instant recorded" in an [`AtomicInstant`].
const NEVER: i64 = i64::MIN;

/// Whole seconds below which a [`Duration`] in nanoseconds fits an `i64`
/// without saturating: `i64::MAX` ns is 9,223,372,036 s and 854,775,807 ns.
const I64_EXACT_SECS: u64 = 9_223_372_036;

/// `d` in nanoseconds, saturated at `i64::MAX`.
///
/// The same value as `i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)`, in
/// one 64-bit multiply-add on the path every beat takes (292 years).
#[inline]
fn saturating_nanos(d: Duration) -> i64 {
    let secs = d.as_secs();
    if secs < I64_EXACT_SECS {
        // At most 9,223,372,035,999,999,999: no overflow, and below i64::MAX.
        (secs * 1_000_000_000 + u64::from(d.subsec_nanos())) as i64
    } else {
        saturating_nanos_far(d)
    }
}

#[cold]
#[inline(never)]
fn saturating_nanos_far(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// An [`Instant`] in an atomic: signed nanoseconds from an epoch (the
/// subsystem's registration; signed because a paused test clock may read
/// earlier than the epoch).
pub(super) struct AtomicInstant(AtomicI64);

impl AtomicInstant {
    #[inline]
    pub(super) fn never() -> Self {
        AtomicInstant(AtomicI64::new(NEVER))
    }

    /// Saturates rather than wraps: 292 years either side of the epoch
    /// (`-i64::MAX` at the earliest, so never [`NEVER`]).
    #[inline]
    fn encode(epoch: Instant, t: Instant) -> i64 {
        // One comparison and one subtraction of the two instants (`t >=
        // epoch` and then `t - epoch` would be two of each).
        match t.into_std().checked_duration_since(epoch.into_std()) {
            Some(since) => saturating_nanos(since),
            None => Self::encode_before(epoch, t),
        }
    }

    /// `t` earlier than `epoch`: only with a paused test clock.
    #[cold]
    #[inline(never)]
    fn encode_before(epoch: Instant, t: Instant) -> i64 {
        -saturating_nanos(epoch.into_std().duration_since(t.into_std()))
    }

    #[inline]
    fn decode(epoch: Instant, v: i64) -> Option<Instant> {
        if v == NEVER {
            None
        } else if v >= 0 {
            Some(epoch + Duration::from_nanos(v.unsigned_abs()))
        } else {
            epoch.checked_sub(Duration::from_nanos(v.unsigned_abs()))
        }
    }

    #[inline]
    pub(super) fn store(&self, epoch: Instant, t: Instant) {
        self.0.store(Self::encode(epoch, t), Ordering::Relaxed);
    }

    #[inline]
    pub(super) fn load(&self, epoch: Instant) -> Option<Instant> {
        Self::decode(epoch, self.0.load(Ordering::Relaxed))
    }
}

/// `from + after`, or a point 30 years on where that would overflow the
/// clock: a tick, `stale_after` or backoff of `Duration::MAX` means
/// "never", not a panic (tokio's own timers take 30 years as never).
#[inline]
pub(crate) fn deadline(from: Instant, after: Duration) -> Instant {
    const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);
    from.checked_add(after).unwrap_or_else(|| from + FAR_FUTURE)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The conversion `AtomicInstant::encode` replaced, kept as the reference.
    fn encode_reference(epoch: Instant, t: Instant) -> i64 {
        if t >= epoch {
            i64::try_from((t - epoch).as_nanos()).unwrap_or(i64::MAX)
        } else {
            i64::try_from((epoch - t).as_nanos()).map_or(NEVER + 1, |n| -n)
        }
    }

    /// Epochs with different sub-second parts, so that subtractions borrow
    /// and do not.
    fn epochs() -> Vec<Instant> {
        let now = Instant::now();
        [0, 1, 500_000_000, 999_999_999]
            .into_iter()
            .map(|ns| now + Duration::from_nanos(ns))
            .collect()
    }

    /// `epoch` moved by `offset` either way, when representable.
    fn shifted(epoch: Instant, offset: Duration, later: bool) -> Option<Instant> {
        if later {
            epoch.checked_add(offset)
        } else {
            epoch.checked_sub(offset)
        }
    }

    fn check(epoch: Instant, t: Instant) {
        let encoded = AtomicInstant::encode(epoch, t);
        assert_eq!(encoded, encode_reference(epoch, t), "{t:?} from {epoch:?}");
        assert_ne!(encoded, NEVER);
        let max = Duration::from_nanos(i64::MAX as u64);
        let distance = if t >= epoch { t - epoch } else { epoch - t };
        if distance <= max {
            assert_eq!(AtomicInstant::decode(epoch, encoded), Some(t));
        }
    }

    #[test]
    fn encode_matches_the_reference_at_the_edges() {
        let max_ns = i64::MAX as u64;
        let offsets = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(999_999_999),
            Duration::from_secs(1),
            Duration::from_nanos(1_000_000_001),
            Duration::from_secs(3600),
            Duration::new(I64_EXACT_SECS - 1, 999_999_999),
            Duration::from_secs(I64_EXACT_SECS),
            Duration::from_nanos(max_ns - 1),
            Duration::from_nanos(max_ns),
            Duration::from_nanos(max_ns) + Duration::from_nanos(1),
            Duration::new(I64_EXACT_SECS, 999_999_999),
            Duration::from_secs(I64_EXACT_SECS + 1),
            Duration::from_secs(2 * I64_EXACT_SECS),
            Duration::from_secs(u64::from(u32::MAX) * 1000),
            Duration::from_secs(i64::MAX as u64 / 4),
            Duration::MAX,
        ];
        let mut checked = 0;
        for epoch in epochs() {
            for offset in offsets {
                for later in [true, false] {
                    if let Some(t) = shifted(epoch, offset, later) {
                        check(epoch, t);
                        checked += 1;
                    }
                }
            }
        }
        // Everything up to the saturation boundary and well past it, at least.
        assert!(
            checked >= 4 * 2 * 14,
            "only {checked} instants representable"
        );
    }

    proptest! {
        #[test]
        fn encode_matches_the_reference(
            secs in 0u64..3 * I64_EXACT_SECS,
            nanos in 0u32..1_000_000_000,
            epoch_nanos in 0u64..1_000_000_000,
            later: bool,
        ) {
            let epoch = Instant::now() + Duration::from_nanos(epoch_nanos);
            if let Some(t) = shifted(epoch, Duration::new(secs, nanos), later) {
                check(epoch, t);
            }
        }

        #[test]
        fn encode_matches_the_reference_near_the_epoch(
            nanos in 0u64..10_000_000_000,
            epoch_nanos in 0u64..1_000_000_000,
            later: bool,
        ) {
            let epoch = Instant::now() + Duration::from_nanos(epoch_nanos);
            let t = shifted(epoch, Duration::from_nanos(nanos), later).unwrap();
            check(epoch, t);
        }
    }
}
