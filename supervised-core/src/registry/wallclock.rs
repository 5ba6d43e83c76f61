//! Wall-clock readings of the registry's [`tokio::time::Instant`]s.
//!
//! The registry keeps monotonic instants only (so paused-time tests control
//! staleness). To show one as an RFC 3339 or Unix timestamp, both clocks are
//! read once, at the moment of rendering, and the instant is placed at the
//! same distance from `SystemTime::now()` as it lies from `Instant::now()`.
//! The result is as exact as the distance is; a wall clock stepped since the
//! event moves the rendered time with it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Both clocks, read together.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallClock {
    system: SystemTime,
    monotonic: Instant,
}

impl WallClock {
    /// Reads both clocks now.
    pub(crate) fn now() -> Self {
        WallClock {
            system: SystemTime::now(),
            monotonic: Instant::now(),
        }
    }

    /// The wall-clock time of `t`.
    #[inline]
    pub(crate) fn system_time(&self, t: Instant) -> SystemTime {
        if t <= self.monotonic {
            self.system
                .checked_sub(self.monotonic - t)
                .unwrap_or(UNIX_EPOCH)
        } else {
            let ahead = t - self.monotonic;
            self.system.checked_add(ahead).unwrap_or(self.system)
        }
    }

    /// Seconds since the Unix epoch of `t` (negative never happens in practice
    /// and is clamped to zero).
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    #[inline]
    pub(crate) fn unix_seconds(&self, t: Instant) -> f64 {
        self.system_time(t)
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64()
    }

    /// `t` as an RFC 3339 UTC string with whole seconds, like
    /// `2026-04-14T14:21:00Z`.
    #[cfg(feature = "http")]
    pub(crate) fn rfc3339(&self, t: Instant) -> String {
        humantime::format_rfc3339_seconds(self.system_time(t)).to_string()
    }
}
