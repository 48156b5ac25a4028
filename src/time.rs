//! The crate's monotonic time: [`Timestamp`].
//!
//! The engines never read a clock. Every time-dependent call takes a `now: Timestamp` supplied by
//! the caller (an adapter, a test, the simulator). A `Timestamp` counts microseconds since an
//! arbitrary origin chosen by the caller; only differences between timestamps matter.
//!
//! All arithmetic saturates: adding a huge [`Duration`] yields [`Timestamp::MAX`], and subtracting
//! a later timestamp from an earlier one yields [`Duration::ZERO`]. Nothing here panics.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};
use core::time::Duration;

/// A point in monotonic time, in microseconds since an arbitrary, caller-chosen origin.
///
/// ```
/// use core::time::Duration;
/// use hibernating_ws::Timestamp;
///
/// let t0 = Timestamp::from_millis(1_000);
/// let t1 = t0 + Duration::from_secs(3);
/// assert_eq!(t1.as_millis(), 4_000);
/// assert_eq!(t1 - t0, Duration::from_secs(3));
/// // Saturating, never panics:
/// assert_eq!(t0 - t1, Duration::ZERO);
/// assert_eq!(Timestamp::MAX + Duration::from_secs(1), Timestamp::MAX);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The origin (zero).
    pub const ZERO: Self = Self(0);
    /// The latest representable instant.
    pub const MAX: Self = Self(u64::MAX);

    /// A timestamp `micros` microseconds after the origin.
    #[must_use]
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// A timestamp `millis` milliseconds after the origin (saturating).
    #[must_use]
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis.saturating_mul(1_000))
    }

    /// A timestamp `secs` seconds after the origin (saturating).
    #[must_use]
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1_000_000))
    }

    /// Microseconds since the origin.
    #[must_use]
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Whole milliseconds since the origin.
    #[must_use]
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000
    }

    /// The time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    #[must_use]
    pub const fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating at [`Timestamp::MAX`].
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Self {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(micros))
    }

    /// `self - d`, saturating at [`Timestamp::ZERO`].
    #[must_use]
    pub fn saturating_sub(self, d: Duration) -> Self {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Self(self.0.saturating_sub(micros))
    }

    /// `self + d`, or `None` if that is past [`Timestamp::MAX`].
    #[must_use]
    pub fn checked_add(self, d: Duration) -> Option<Self> {
        let micros = u64::try_from(d.as_micros()).ok()?;
        self.0.checked_add(micros).map(Self)
    }
}

impl Add<Duration> for Timestamp {
    type Output = Self;
    /// Saturating addition.
    fn add(self, rhs: Duration) -> Self {
        self.saturating_add(rhs)
    }
}

impl AddAssign<Duration> for Timestamp {
    fn add_assign(&mut self, rhs: Duration) {
        *self = self.saturating_add(rhs);
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Self;
    /// Saturating subtraction.
    fn sub(self, rhs: Duration) -> Self {
        self.saturating_sub(rhs)
    }
}

impl Sub for Timestamp {
    type Output = Duration;
    /// Saturating difference: zero when `rhs` is later than `self`.
    fn sub(self, rhs: Self) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Turns a wall clock into [`Timestamp`]s: the first instant seen is the origin.
///
/// Only adapters use this; the engines never read a clock.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: std::time::Instant,
}

#[cfg(feature = "std")]
impl Clock {
    /// A clock whose origin is `epoch`.
    #[must_use]
    pub fn with_epoch(epoch: std::time::Instant) -> Self {
        Self { epoch }
    }

    /// A clock whose origin is the current instant.
    #[must_use]
    #[allow(clippy::disallowed_methods)] // adapters own the clock
    pub fn start() -> Self {
        Self::with_epoch(std::time::Instant::now())
    }

    /// The [`Timestamp`] of `instant` (instants before the epoch map to zero).
    #[must_use]
    pub fn timestamp(&self, instant: std::time::Instant) -> Timestamp {
        let d = instant.saturating_duration_since(self.epoch);
        Timestamp::ZERO.saturating_add(d)
    }

    /// The current [`Timestamp`].
    #[must_use]
    #[allow(clippy::disallowed_methods)] // adapters own the clock
    pub fn now(&self) -> Timestamp {
        self.timestamp(std::time::Instant::now())
    }

    /// The wall-clock instant of `t`.
    #[must_use]
    pub fn instant(&self, t: Timestamp) -> std::time::Instant {
        self.epoch
            .checked_add(Duration::from_micros(t.as_micros()))
            .unwrap_or(self.epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_agree() {
        assert_eq!(Timestamp::from_secs(2), Timestamp::from_millis(2_000));
        assert_eq!(Timestamp::from_millis(3), Timestamp::from_micros(3_000));
        assert_eq!(Timestamp::from_millis(u64::MAX), Timestamp::MAX);
        assert_eq!(Timestamp::from_secs(u64::MAX), Timestamp::MAX);
        assert_eq!(Timestamp::from_micros(1_999).as_millis(), 1);
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_secs(10);
        assert_eq!(t + Duration::from_secs(5), Timestamp::from_secs(15));
        assert_eq!(t - Duration::from_secs(50), Timestamp::ZERO);
        assert_eq!(t + Duration::MAX, Timestamp::MAX);
        assert_eq!(Timestamp::MAX + Duration::from_micros(1), Timestamp::MAX);
        assert_eq!(Timestamp::ZERO - t, Duration::ZERO);
        assert_eq!(t - Timestamp::ZERO, Duration::from_secs(10));
        assert_eq!(t.checked_add(Duration::MAX), None);
        assert_eq!(Timestamp::MAX.checked_add(Duration::from_micros(1)), None);
        assert_eq!(
            t.checked_add(Duration::from_micros(1)),
            Some(Timestamp::from_micros(10_000_001))
        );
        let mut u = t;
        u += Duration::from_millis(1);
        assert_eq!(u.as_micros(), 10_001_000);
    }

    #[test]
    fn debug_format() {
        assert_eq!(
            alloc::format!("{:?}", Timestamp::from_micros(3_000_042)),
            "3.000042s"
        );
    }

    #[cfg(feature = "std")]
    #[test]
    fn clock_round_trip() {
        let clock = Clock::start();
        let t = Timestamp::from_millis(1_500);
        assert_eq!(clock.timestamp(clock.instant(t)), t);
    }
}
