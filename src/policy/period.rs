//! Refill periods: calendar days and months, in UTC.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime, Time};

/// How often credits are refilled: at midnight UTC, or on the first of each month (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefillPeriod {
    /// Every day.
    Day,
    /// Every month.
    Month,
}

impl RefillPeriod {
    /// The period holding `at`, as a number that grows by one per period.
    pub(crate) fn index(self, at: OffsetDateTime) -> i64 {
        let at = at.to_offset(time::UtcOffset::UTC);
        match self {
            RefillPeriod::Day => at.unix_timestamp().div_euclid(86_400),
            RefillPeriod::Month => i64::from(at.year()) * 12 + i64::from(u8::from(at.month())) - 1,
        }
    }

    /// Whether a refill is due at `now` for a balance set at `since`.
    pub(crate) fn is_due(self, since: OffsetDateTime, now: OffsetDateTime) -> bool {
        self.index(now) > self.index(since)
    }

    /// The start of the period after the one holding `now`.
    pub(crate) fn next_start(self, now: OffsetDateTime) -> OffsetDateTime {
        let now = now.to_offset(time::UtcOffset::UTC);
        let date = match self {
            RefillPeriod::Day => now.date().next_day(),
            RefillPeriod::Month => {
                let (year, month) = match now.month() {
                    Month::December => (now.year() + 1, Month::January),
                    month => (now.year(), month.next()),
                };
                Date::from_calendar_date(year, month, 1).ok()
            }
        };
        date.map_or(now, |date| date.with_time(Time::MIDNIGHT).assume_utc())
    }
}

impl fmt::Display for RefillPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefillPeriod::Day => "day",
            RefillPeriod::Month => "month",
        })
    }
}

/// Neither `day` nor `month`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a refill period is `day` or `month`")]
pub struct InvalidRefillPeriod;

impl FromStr for RefillPeriod {
    type Err = InvalidRefillPeriod;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "day" => Ok(RefillPeriod::Day),
            "month" => Ok(RefillPeriod::Month),
            _ => Err(InvalidRefillPeriod),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn days_and_months_turn_at_midnight_utc() {
        let day = RefillPeriod::Day;
        assert!(!day.is_due(
            datetime!(2026-12-04 00:00 UTC),
            datetime!(2026-12-04 23:59 UTC)
        ));
        assert!(day.is_due(
            datetime!(2026-12-04 23:59 UTC),
            datetime!(2026-12-05 00:00 UTC)
        ));
        assert_eq!(
            day.next_start(datetime!(2026-12-31 10:00 UTC)),
            datetime!(2027-01-01 00:00 UTC)
        );
        let month = RefillPeriod::Month;
        assert!(!month.is_due(
            datetime!(2026-12-01 00:00 UTC),
            datetime!(2026-12-31 23:59 UTC)
        ));
        assert!(month.is_due(
            datetime!(2026-12-31 23:59 UTC),
            datetime!(2027-01-01 00:00 UTC)
        ));
        assert_eq!(
            month.next_start(datetime!(2026-12-15 10:00 UTC)),
            datetime!(2027-01-01 00:00 UTC)
        );
        assert_eq!(
            month.next_start(datetime!(2026-01-31 10:00 +02:00)),
            datetime!(2026-02-01 00:00 UTC)
        );
        assert_eq!("month".parse::<RefillPeriod>(), Ok(RefillPeriod::Month));
        assert!("week".parse::<RefillPeriod>().is_err());
    }
}
