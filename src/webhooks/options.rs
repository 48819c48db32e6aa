//! [`DeliveryOptions`]: how often the outbox is read, how many deliveries run at once,
//! how long a receiver has, how retries back off, and the expiry thresholds.

use std::time::Duration;

use super::DELIVERY_TIMEOUT;

/// How webhook messages are delivered (defaults in parentheses).
///
/// A failed attempt is retried after `first_retry` (5 s), then after four times as long
/// each time, at most 6 hours apart, until the event is `give_up_after` (24 hours) old:
/// about ten attempts. Then the message is given up and its endpoint marked failing.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::webhooks::DeliveryOptions;
///
/// let options = DeliveryOptions::default()
///     .expiry_thresholds([Duration::from_secs(14 * 86_400), Duration::from_secs(86_400)])
///     .concurrency(16);
/// assert_eq!(options.retry_delay(1), Duration::from_secs(5));
/// assert_eq!(options.retry_delay(2), Duration::from_secs(20));
/// assert_eq!(options.retry_delay(20), Duration::from_secs(6 * 3600));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryOptions {
    pub(crate) poll_interval: Duration,
    pub(crate) concurrency: usize,
    pub(crate) timeout: Duration,
    pub(crate) first_retry: Duration,
    pub(crate) give_up_after: Duration,
    pub(crate) expiry_thresholds: Vec<Duration>,
    pub(crate) expiry_check_interval: Duration,
    pub(crate) deliver_here: bool,
}

/// The longest wait between two attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(6 * 3600);

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            concurrency: 8,
            timeout: DELIVERY_TIMEOUT,
            first_retry: Duration::from_secs(5),
            give_up_after: Duration::from_secs(24 * 3600),
            expiry_thresholds: vec![Duration::from_secs(7 * 86_400), Duration::from_secs(86_400)],
            expiry_check_interval: Duration::from_secs(60),
            deliver_here: true,
        }
    }
}

impl DeliveryOptions {
    /// How often the outbox is read for messages due (1 s). Messages written on this
    /// node are delivered at the next read too.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// How many deliveries run at once on this node (8).
    #[must_use]
    pub fn concurrency(mut self, deliveries: usize) -> Self {
        self.concurrency = deliveries.max(1);
        self
    }

    /// How long a receiver has to answer (15 s, as Standard Webhooks advises).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The wait before the first retry (5 s); each next one is four times as long.
    #[must_use]
    pub fn first_retry(mut self, delay: Duration) -> Self {
        self.first_retry = delay;
        self
    }

    /// How long after its event a message is retried (24 hours).
    #[must_use]
    pub fn give_up_after(mut self, age: Duration) -> Self {
        self.give_up_after = age;
        self
    }

    /// Before its expiry, when a key's `token.expiring` events go out (7 days and 1 day,
    /// as GitLab and GitHub warn).
    #[must_use]
    pub fn expiry_thresholds(mut self, thresholds: impl IntoIterator<Item = Duration>) -> Self {
        self.expiry_thresholds = thresholds.into_iter().collect();
        self
    }

    /// How often tokens are checked for expiry events (60 s).
    #[must_use]
    pub fn expiry_check_interval(mut self, interval: Duration) -> Self {
        self.expiry_check_interval = interval;
        self
    }

    /// Whether this node delivers (yes): a node told not to still writes the events of
    /// its changes to the outbox, for the nodes that deliver — API nodes and delivery
    /// workers, or a test server that must reach nothing.
    #[must_use]
    pub fn deliver_here(mut self, deliver: bool) -> Self {
        self.deliver_here = deliver;
        self
    }

    /// The wait after failed attempt `attempt` (from 1) before the next.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let factor = 4u32.saturating_pow(attempt.saturating_sub(1));
        self.first_retry
            .checked_mul(factor)
            .unwrap_or(MAX_RETRY_DELAY)
            .min(MAX_RETRY_DELAY)
    }
}
