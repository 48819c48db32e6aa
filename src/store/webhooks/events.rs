//! What the stores write to the webhook outbox when a token changes: the event's type,
//! its id, and the body every endpoint of the tenant subscribed to it receives — made in
//! the transaction of the change, so that an event exists exactly when its change does.

use std::time::Duration;

use time::OffsetDateTime;

use crate::identity::TokenKind;
use crate::store::{Happened, TokenInfo, TokenRecord};

/// An event, ready for the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    /// The `webhook-id` of its deliveries: the same for every endpoint and attempt.
    pub(crate) id: String,
    /// `token.created`…
    pub(crate) kind: &'static str,
    /// The tenant whose endpoints receive it.
    pub(crate) tenant: String,
    /// When it happened.
    pub(crate) at: OffsetDateTime,
    /// The JSON body: `{"type", "timestamp", "data"}`.
    pub(crate) body: String,
}

impl Event {
    /// The event `happened` to `record` at `at`, if there is one: a session is created
    /// and ends, nothing else about it is an event.
    pub(crate) fn about(
        record: &TokenRecord,
        happened: Happened,
        at: OffsetDateTime,
    ) -> Option<Self> {
        let kind = event_type(record.kind, happened)?;
        let at = crate::clock::truncate_to_millis(at);
        let mut data = serde_json::to_value(TokenInfo::from_record(record.clone(), at))
            .expect("a token's description serializes");
        let fields = data
            .as_object_mut()
            .expect("a token is described by an object");
        match happened {
            Happened::Rotated { from } => {
                fields.insert("rotated_from".into(), from.get().into());
            }
            Happened::Revoked(reason) => {
                fields.insert("reason".into(), reason.as_str().into());
            }
            Happened::Expiring { threshold } => {
                fields.insert("threshold_seconds".into(), threshold.as_secs().into());
            }
            Happened::Created | Happened::Updated | Happened::Expired | Happened::CreditsLow => {}
        }
        let timestamp = at
            .format(&time::format_description::well_known::Rfc3339)
            .expect("a time in range formats");
        let body = serde_json::json!({ "type": kind, "timestamp": timestamp, "data": data });
        Some(Self {
            id: new_event_id(),
            kind,
            tenant: record.tenant.clone(),
            at,
            body: body.to_string(),
        })
    }
}

/// The event type of `happened` to a token of `kind`.
pub(crate) fn event_type(kind: TokenKind, happened: Happened) -> Option<&'static str> {
    Some(match (kind, happened) {
        (TokenKind::Session, Happened::Created) => "session.created",
        (TokenKind::Session, Happened::Revoked(_) | Happened::Expired) => "session.ended",
        (TokenKind::Session, _) => return None,
        (_, Happened::Created) => "token.created",
        (_, Happened::Updated) => "token.updated",
        (_, Happened::Rotated { .. }) => "token.rotated",
        (_, Happened::Revoked(_)) => "token.revoked",
        (_, Happened::Expiring { .. }) => "token.expiring",
        (_, Happened::Expired) => "token.expired",
        (_, Happened::CreditsLow) => "token.credits_low",
    })
}

/// A fresh event id: `msg_` and 128 random bits in hex, unique without coordination.
fn new_event_id() -> String {
    let mut bytes = [0u8; 16];
    // The operating system's generator does not fail once the process runs; a fallback
    // from the clock and a counter keeps ids unique if it ever did.
    if getrandom::fill(&mut bytes).is_err() {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos() as u64;
        bytes[..8].copy_from_slice(&nanos.to_be_bytes());
        bytes[8..].copy_from_slice(&count.to_be_bytes());
    }
    let mut id = String::with_capacity(36);
    id.push_str("msg_");
    for byte in bytes {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// Tokens expiring in `(after, until]` (Unix milliseconds) at one moment take `mark`
/// (a threshold in milliseconds; 0 for the expiry itself) and, with it, the marks of the
/// larger thresholds in `also`: the marks of a token only ever grow, so that each
/// threshold's event is written once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExpiryWindow {
    pub(crate) mark: i64,
    pub(crate) after: i64,
    pub(crate) until: i64,
    pub(crate) also: Vec<i64>,
}

impl ExpiryWindow {
    /// Whether the window is the expiry's own (any token kind) rather than a threshold
    /// before it (API keys not rotated away only).
    pub(crate) fn is_expiry(&self) -> bool {
        self.mark == 0
    }

    /// Whether `record` expires within the window.
    pub(crate) fn holds(&self, record: &TokenRecord) -> bool {
        record
            .expires_at
            .map(crate::clock::to_millis)
            .is_some_and(|at| at > self.after && at <= self.until)
    }

    /// The event of a token taking this window's mark.
    pub(crate) fn event(&self, record: &TokenRecord, now: OffsetDateTime) -> Option<Event> {
        let happened = if !self.is_expiry() {
            Happened::Expiring {
                threshold: Duration::from_millis(self.mark.unsigned_abs()),
            }
        } else if record.rotated_to.is_some() {
            // A rotated key's grace period ended: the rotation revoked it.
            Happened::Revoked(crate::store::RevocationReason::Rotated)
        } else {
            Happened::Expired
        };
        Event::about(record, happened, now)
    }
}

/// How long after its expiry a token still gets its `token.expired` event: a store that
/// turns webhooks on does not announce every token that ever expired.
const EXPIRED_LOOKBACK_MS: i64 = 86_400_000;

/// The window of the tokens whose expiry passed lately at `now` (mark 0).
pub(crate) fn expired_window(now: OffsetDateTime) -> ExpiryWindow {
    let now = crate::clock::to_millis(now);
    ExpiryWindow {
        mark: 0,
        after: now - EXPIRED_LOOKBACK_MS,
        until: now,
        also: Vec::new(),
    }
}

/// The windows of expiry times at `now` for `thresholds`: the expiry's own first.
pub(crate) fn expiry_windows(at: OffsetDateTime, thresholds: &[Duration]) -> Vec<ExpiryWindow> {
    let now = crate::clock::to_millis(at);
    let mut marks: Vec<i64> = thresholds
        .iter()
        .map(|threshold| i64::try_from(threshold.as_millis()).unwrap_or(i64::MAX / 2))
        .filter(|mark| *mark > 0)
        .collect();
    marks.sort_unstable();
    marks.dedup();
    let mut windows = vec![expired_window(at)];
    let mut after = now;
    for (index, mark) in marks.iter().enumerate() {
        windows.push(ExpiryWindow {
            mark: *mark,
            after,
            until: now.saturating_add(*mark),
            also: marks[index + 1..].to_vec(),
        });
        after = now.saturating_add(*mark);
    }
    windows
}
