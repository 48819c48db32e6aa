//! The wall clock that expiry and cache lifetimes are measured against.
//!
//! Production code uses [`Clock::system`]. Tests (ours and yours) can use a [`ManualClock`]
//! to move time forward deterministically, e.g. to watch a cached token stop working
//! exactly at its `expires_at`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// A source of the current time, as nanoseconds since the Unix epoch.
///
/// Cheap to clone and to read: the system variant is one `clock_gettime`, the manual
/// variant one atomic load. Both are read on every cache hit.
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The operating system's wall clock.
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// The current time in nanoseconds since the Unix epoch.
    ///
    /// A clock that reads before 1970 is broken, and fails closed: this returns
    /// `i64::MAX`, the end of time, at which every token has expired (an error is logged,
    /// once per process). Issuance refuses to run on such a clock.
    #[inline]
    pub fn now_nanos(&self) -> i64 {
        let nanos = match &self.manual {
            None => system_now_nanos(),
            Some(now) => now.load(Ordering::SeqCst),
        };
        if nanos < 0 {
            return unreadable();
        }
        nanos
    }

    /// The current time as an [`OffsetDateTime`] in UTC.
    pub fn now(&self) -> OffsetDateTime {
        from_nanos(self.now_nanos())
    }

    /// The current time as the kernel's coarse clock has it: at most [`COARSE_LAG`]
    /// behind [`now_nanos`](Self::now_nanos), never ahead of it, for a third of its cost
    /// (about 10 ns against 35 here). A cache hit reads this; a token whose expiry is
    /// closer than [`COARSE_LAG`] to it is decided by the precise clock. The manual clock
    /// and systems without a coarse clock answer [`now_nanos`](Self::now_nanos).
    #[inline]
    pub(crate) fn coarse_nanos(&self) -> i64 {
        match &self.manual {
            None => match coarse::now_nanos() {
                Some(nanos) if nanos >= 0 => nanos,
                _ => self.now_nanos(),
            },
            Some(_) => self.now_nanos(),
        }
    }

    /// Whether `expires_at` (Unix nanoseconds) has passed, given `now` read from
    /// [`coarse_nanos`](Self::coarse_nanos) (or from [`now_nanos`](Self::now_nanos)): a
    /// coarse reading decides alone unless the expiry is within [`COARSE_LAG`] of it.
    #[inline]
    pub(crate) fn has_passed(&self, expires_at: i64, now: i64) -> bool {
        if now >= expires_at {
            return true;
        }
        expires_at.saturating_sub(now) <= COARSE_LAG && self.now_nanos() >= expires_at
    }
}

/// How far behind the precise clock a coarse reading may be, with a wide margin: the
/// kernel's coarse clock lags by one tick (1 to 10 ms), and is not used where its
/// resolution is coarser than 10 ms.
pub(crate) const COARSE_LAG: i64 = 1_000_000_000;

#[cfg(target_os = "linux")]
mod coarse {
    use std::sync::OnceLock;

    use nix::sys::time::TimeSpec;
    use nix::time::{ClockId, clock_getres, clock_gettime};

    /// The coarsest resolution used (the kernel's tick is 1 to 10 ms).
    pub(super) const MAX_RESOLUTION: i64 = 10_000_000;

    /// The kernel's coarse wall clock (`CLOCK_REALTIME_COARSE`, read from the vDSO
    /// without a system call), `None` where it cannot be read or its resolution is not
    /// fine enough.
    #[inline]
    pub(super) fn now_nanos() -> Option<i64> {
        static USABLE: OnceLock<bool> = OnceLock::new();
        let usable = *USABLE.get_or_init(|| {
            clock_getres(ClockId::CLOCK_REALTIME_COARSE)
                .is_ok_and(|resolution| nanos(resolution) <= MAX_RESOLUTION)
        });
        if !usable {
            return None;
        }
        clock_gettime(ClockId::CLOCK_REALTIME_COARSE)
            .ok()
            .map(nanos)
    }

    // `time_t` is 32 bits wide on some targets.
    #[allow(clippy::useless_conversion)]
    fn nanos(at: TimeSpec) -> i64 {
        i64::from(at.tv_sec())
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(at.tv_nsec()))
    }
}

#[cfg(not(target_os = "linux"))]
mod coarse {
    #[inline]
    pub(super) fn now_nanos() -> Option<i64> {
        None
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manual {
            None => f.write_str("Clock::System"),
            Some(_) => write!(f, "Clock::Manual({})", self.now()),
        }
    }
}

/// A clock that only moves when told to; convert it into a [`Clock`] with `.into()` or
/// [`ManualClock::clock`].
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::clock::ManualClock;
///
/// let manual = ManualClock::new(time::macros::datetime!(2030-01-01 0:00 UTC));
/// let clock = manual.clock();
/// manual.advance(Duration::from_secs(90));
/// assert_eq!(clock.now(), time::macros::datetime!(2030-01-01 0:01:30 UTC));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<AtomicI64>,
}

impl ManualClock {
    /// A manual clock standing at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Arc::new(AtomicI64::new(to_nanos(start))),
        }
    }

    /// A manual clock standing at the current system time.
    pub fn starting_now() -> Self {
        Self {
            now: Arc::new(AtomicI64::new(system_now_nanos())),
        }
    }

    /// A [`Clock`] that reads this manual clock.
    pub fn clock(&self) -> Clock {
        Clock {
            manual: Some(self.now.clone()),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
        self.now.fetch_add(by, Ordering::SeqCst);
    }

    /// Sets the clock to `at` (which may be in the past).
    pub fn set(&self, at: OffsetDateTime) {
        self.now.store(to_nanos(at), Ordering::SeqCst);
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock")
            .field(&self.clock().now())
            .finish()
    }
}

impl From<ManualClock> for Clock {
    fn from(manual: ManualClock) -> Self {
        manual.clock()
    }
}

fn system_now_nanos() -> i64 {
    nanos_since_epoch(SystemTime::now())
}

/// Nanoseconds since the Unix epoch; negative (a broken clock) before it.
fn nanos_since_epoch(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_nanos()).unwrap_or(i64::MAX),
        Err(_) => -1,
    }
}

/// The answer for a clock that cannot be read: the end of time, so that every token has
/// expired (fail closed). Logged once.
#[cold]
fn unreadable() -> i64 {
    static LOGGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !LOGGED.swap(true, Ordering::Relaxed) {
        tracing::error!(
            target: "tower_bearer::clock",
            "the wall clock reads before 1970: treating every token as expired until it is fixed"
        );
    }
    i64::MAX
}

/// Nanoseconds since the Unix epoch, saturating outside the `i64` range (years 1677–2262).
pub(crate) fn to_nanos(at: OffsetDateTime) -> i64 {
    let nanos = at.unix_timestamp_nanos();
    i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
}

/// Milliseconds since the Unix epoch (the precision stores keep), saturating like
/// [`to_nanos`].
pub(crate) fn to_millis(at: OffsetDateTime) -> i64 {
    let millis = at.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(millis).unwrap_or(if millis < 0 { i64::MIN } else { i64::MAX })
}

pub(crate) fn from_nanos(nanos: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .expect("every i64 nanosecond count is a valid OffsetDateTime")
}

/// Stores keep milliseconds; so does everything we hand them, so that a record read back
/// equals the record written.
pub(crate) fn truncate_to_millis(at: OffsetDateTime) -> OffsetDateTime {
    let millis = at.nanosecond() / 1_000_000;
    at.replace_nanosecond(millis * 1_000_000).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coarse_reading_lags_the_precise_clock_by_less_than_its_margin() {
        let clock = Clock::system();
        for _ in 0..1000 {
            let before = clock.now_nanos();
            let coarse = clock.coarse_nanos();
            let after = clock.now_nanos();
            assert!(coarse <= after, "never ahead");
            assert!(before - coarse < COARSE_LAG);
        }
    }

    /// A coarse reading lags by a tick: a token that expired since that tick must be
    /// expired all the same (what the precise clock decides near an expiry).
    #[test]
    fn an_expiry_between_the_coarse_reading_and_now_has_passed() {
        let clock = Clock::system();
        for _ in 0..1000 {
            let coarse = clock.coarse_nanos();
            let expired_just_now = clock.now_nanos();
            assert!(clock.has_passed(expired_just_now, coarse));
            assert!(!clock.has_passed(expired_just_now + 60_000_000_000, coarse));
            assert!(!clock.has_passed(i64::MAX, coarse));
        }
        let manual = ManualClock::new(time::macros::datetime!(2030-01-01 0:00 UTC)).clock();
        let now = manual.coarse_nanos();
        assert_eq!(now, manual.now_nanos());
        assert!(manual.has_passed(now, now) && !manual.has_passed(now + 1, now));
    }

    #[test]
    fn a_clock_before_1970_fails_closed() {
        let broken = UNIX_EPOCH - Duration::from_secs(1);
        assert!(nanos_since_epoch(broken) < 0);
        let manual = ManualClock::new(time::macros::datetime!(1969-12-31 23:59 UTC));
        assert_eq!(manual.clock().now_nanos(), i64::MAX);
        manual.set(time::macros::datetime!(2030-01-01 0:00 UTC));
        assert!(manual.clock().now_nanos() < i64::MAX);
    }
}
