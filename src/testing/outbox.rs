//! The contract of the webhook outbox every store with [`WebhookStore`] keeps.

use std::collections::HashSet;
use std::time::Duration;

use time::OffsetDateTime;

use super::properties::token;
use crate::policy::{Credits, Policies};
use crate::store::webhooks::{Claimed, EndpointId, NewAttempt, NewEndpoint, Next, WebhookStore};
use crate::store::{NewToken, RevocationReason, StoreError, TokenStore};
use crate::webhooks::WebhookSecret;

const SECOND: Duration = Duration::from_secs(1);
const DAY: Duration = Duration::from_secs(86_400);

async fn endpoint(store: &impl WebhookStore, tenant: &str, events: &[&str]) -> EndpointId {
    store
        .create_endpoint(NewEndpoint::new(
            tenant,
            "https://hooks.example.com/",
            events.iter().map(|event| (*event).to_owned()).collect(),
            WebhookSecret::generate().expect("randomness"),
            OffsetDateTime::now_utc(),
        ))
        .await
        .expect("create an endpoint")
        .id
}

/// Claims everything due at `now`, held for a minute.
async fn claim(store: &impl WebhookStore, now: OffsetDateTime) -> Vec<Claimed> {
    store
        .claim_messages(now, now + Duration::from_secs(60), 100)
        .await
        .expect("claim")
}

/// The claimed messages' (endpoint, event type, token id, `reason` or `threshold`).
fn summary(claimed: &[Claimed]) -> Vec<(EndpointId, String, u64, String)> {
    claimed
        .iter()
        .map(|claimed| {
            let body: serde_json::Value =
                serde_json::from_str(&claimed.message.body).expect("a JSON body");
            assert_eq!(body["type"], claimed.message.event_type.as_str());
            let extra = body["data"]["reason"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| {
                    body["data"]["threshold_seconds"]
                        .as_u64()
                        .map(|s| s.to_string())
                })
                .unwrap_or_default();
            (
                claimed.endpoint.id,
                claimed.message.event_type.clone(),
                body["data"]["id"].as_u64().expect("the token's id"),
                extra,
            )
        })
        .collect()
}

/// The claimed messages to `endpoint`: (event type, token id, `reason` or `threshold`).
fn sent_to(endpoint: EndpointId, claimed: &[Claimed]) -> Vec<(String, u64, String)> {
    summary(claimed)
        .into_iter()
        .filter(|(to, ..)| *to == endpoint)
        .map(|(_, kind, id, extra)| (kind, id, extra))
        .collect()
}

/// Delivers every claimed message.
async fn deliver_all(store: &impl WebhookStore, claimed: &[Claimed]) {
    for claimed in claimed {
        let attempt = NewAttempt::new(OffsetDateTime::now_utc(), Some(200), SECOND, None);
        store
            .record_attempt(&claimed.message, attempt, Next::Delivered)
            .await
            .expect("record");
    }
}

fn expiring(tenant: &str, secret: &str, expires_at: OffsetDateTime) -> NewToken {
    token(tenant, secret, Some(expires_at))
}

/// Checks `store` (empty) against the outbox contract: a change writes one message per
/// subscribed endpoint of its tenant (the same event id for all), with the token as
/// `GET` shows it and never its secret; a claimed message is held until its lease
/// ends; retries keep the event id; delivered messages are never claimed again; giving
/// up marks the endpoint failing and a delivery clears it; attempts are listed newest
/// first per tenant; cascades and rotations say why; expiry events are written once per
/// token and threshold; `token.credits_low` is written once, when a reservation uses
/// the last 20 % of the credits; claims made at once never share a message.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// tower_bearer::testing::outbox_contract(&tower_bearer::MemoryStore::new()).await;
/// # }
/// ```
pub async fn outbox_contract<S: TokenStore + WebhookStore>(store: &S) {
    let all = [
        "token.created",
        "token.updated",
        "token.rotated",
        "token.revoked",
        "token.expiring",
        "token.expired",
        "token.credits_low",
        "session.created",
        "session.ended",
    ];
    let a = endpoint(store, "acme", &all).await;
    let b = endpoint(store, "acme", &["token.revoked"]).await;
    let foreign = endpoint(store, "globex", &all).await;
    let later = || OffsetDateTime::now_utc() + SECOND;

    // Created: endpoint A only (B does not subscribe, globex is another tenant).
    let key = store
        .insert(token("acme", "outbox-1", None))
        .await
        .expect("insert");
    let claimed = claim(store, later()).await;
    assert_eq!(
        summary(&claimed),
        [(a, "token.created".into(), key.id.get(), String::new())]
    );
    let created = &claimed[0].message;
    assert!(created.event_id.starts_with("msg_"), "{}", created.event_id);
    assert_eq!((created.tenant.as_str(), created.attempts), ("acme", 0));
    let body: serde_json::Value = serde_json::from_str(&created.body).expect("JSON");
    assert_eq!(body["data"]["name"], "token outbox-1");
    let data = body["data"].as_object().expect("an object");
    assert!(
        !data.contains_key("digest") && data.values().all(|value| value != "outbox-1"),
        "never the secret nor its digest: {data:?}"
    );
    assert_eq!(body["data"]["tenant"], "acme");
    assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(claim(store, later()).await.is_empty(), "held by its lease");

    // A failed attempt: retried later with the same event id, never before.
    let now = OffsetDateTime::now_utc();
    let retry_at = now + Duration::from_secs(30);
    let failed = NewAttempt::new(now, Some(500), SECOND, Some("status 500".into()));
    store
        .record_attempt(created, failed, Next::RetryAt(retry_at))
        .await
        .expect("record");
    assert!(claim(store, later()).await.is_empty(), "not due yet");
    let again = claim(store, retry_at + SECOND).await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        (&again[0].message.event_id, again[0].message.attempts),
        (&created.event_id, 1)
    );
    deliver_all(store, &again).await;
    assert!(
        claim(store, retry_at + DAY).await.is_empty(),
        "delivered once"
    );
    let attempts = store
        .delivery_attempts("acme", a, None, 10)
        .await
        .expect("attempts");
    let listed: Vec<(u32, Option<u16>)> = attempts.iter().map(|t| (t.attempt, t.status)).collect();
    assert_eq!(listed, [(2, Some(200)), (1, Some(500))], "newest first");
    assert_eq!(attempts[1].error.as_deref(), Some("status 500"));
    assert_eq!(attempts[1].latency, SECOND);
    assert_eq!(attempts[0].event_id, created.event_id);
    let page = store
        .delivery_attempts("acme", a, Some(attempts[0].id), 10)
        .await
        .expect("attempts");
    assert_eq!(page, attempts[1..]);
    for wrong in [
        store.delivery_attempts("globex", a, None, 10).await,
        store.delivery_attempts("acme", foreign, None, 10).await,
    ] {
        assert!(matches!(wrong, Err(StoreError::NotFound)), "{wrong:?}");
    }

    // Revoked: both endpoints of acme, one event id, the reason said.
    store
        .delete("acme", key.id, RevocationReason::Leaked)
        .await
        .expect("delete");
    let claimed = claim(store, later()).await;
    assert_eq!(
        summary(&claimed),
        [
            (a, "token.revoked".into(), key.id.get(), "leaked".into()),
            (b, "token.revoked".into(), key.id.get(), "leaked".into()),
        ]
    );
    assert_eq!(claimed[0].message.event_id, claimed[1].message.event_id);

    // Giving up marks the endpoint failing; a later delivery clears it.
    let now = OffsetDateTime::now_utc();
    let attempt = NewAttempt::new(now, None, SECOND, Some("timed out".into()));
    store
        .record_attempt(&claimed[1].message, attempt, Next::GiveUp)
        .await
        .expect("record");
    let failing = store.endpoint("acme", b).await.expect("get").failing_since;
    assert!(failing.is_some(), "marked failing, not deleted");
    assert!(
        claim(store, now + DAY)
            .await
            .iter()
            .all(|c| c.endpoint.id != b),
        "given up"
    );
    deliver_all(store, &claimed[..1]).await;
    assert_eq!(
        store.endpoint("acme", a).await.expect("get").failing_since,
        None
    );

    // A cascade: the key named for its reason, its children for the cascade; an update.
    let root = store
        .insert(token("acme", "outbox-2", None))
        .await
        .expect("insert");
    let child = store
        .insert(NewToken {
            created_by: Some(root.id),
            ..token("acme", "outbox-3", None)
        })
        .await
        .expect("insert");
    store
        .update(
            "acme",
            child.id,
            crate::store::TokenUpdate::new().name("renamed"),
        )
        .await
        .expect("update");
    store
        .delete_with_descendants("acme", root.id, RevocationReason::LastAdminForced)
        .await
        .expect("cascade");
    let claimed = claim(store, later()).await;
    let events = sent_to(a, &claimed);
    assert_eq!(
        events,
        [
            ("token.created".into(), root.id.get(), String::new()),
            ("token.created".into(), child.id.get(), String::new()),
            ("token.updated".into(), child.id.get(), String::new()),
            (
                "token.revoked".into(),
                root.id.get(),
                "last_admin_forced".into()
            ),
            ("token.revoked".into(), child.id.get(), "cascade".into()),
        ]
    );
    deliver_all(store, &claimed).await;

    // A rotation without grace: the new key, then the old one revoked as rotated.
    let old = store
        .insert(token("acme", "outbox-4", None))
        .await
        .expect("insert");
    let new = store
        .rotate(&old, token("acme", "outbox-5", None), None)
        .await
        .expect("rotate");
    let claimed = claim(store, later()).await;
    let events = sent_to(a, &claimed);
    assert_eq!(
        events,
        [
            ("token.created".into(), old.id.get(), String::new()),
            ("token.rotated".into(), new.id.get(), String::new()),
            ("token.revoked".into(), old.id.get(), "rotated".into()),
        ]
    );
    let rotated: serde_json::Value = serde_json::from_str(&claimed[1].message.body).expect("JSON");
    assert_eq!(rotated["data"]["rotated_from"], old.id.get());
    deliver_all(store, &claimed).await;

    // Expiry: the nearest threshold once, then the next, then the expiry; never twice.
    let thresholds = [7 * DAY, DAY];
    let now = OffsetDateTime::now_utc();
    let soon = store
        .insert(expiring("acme", "outbox-6", now + 2 * DAY))
        .await
        .expect("insert");
    deliver_all(store, &claim(store, later()).await).await;
    let expiry = |at: OffsetDateTime| store.write_expiry_events(at, &thresholds);
    assert_eq!(expiry(now).await.expect("expiry"), 1);
    assert_eq!(expiry(now).await.expect("expiry"), 0, "once per threshold");
    assert_eq!(expiry(now + DAY / 2).await.expect("expiry"), 0);
    let claimed = claim(store, now + DAY).await;
    assert_eq!(
        summary(&claimed),
        [(a, "token.expiring".into(), soon.id.get(), "604800".into())]
    );
    deliver_all(store, &claimed).await;
    let within_a_day = now + DAY + Duration::from_secs(3600);
    assert_eq!(expiry(within_a_day).await.expect("expiry"), 1);
    assert_eq!(expiry(within_a_day).await.expect("expiry"), 0);
    let past = now + 2 * DAY + SECOND;
    assert_eq!(expiry(past).await.expect("expiry"), 1);
    assert_eq!(expiry(past).await.expect("expiry"), 0);
    let claimed = claim(store, past + SECOND).await;
    assert_eq!(
        summary(&claimed),
        [
            (a, "token.expiring".into(), soon.id.get(), "86400".into()),
            (a, "token.expired".into(), soon.id.get(), String::new()),
        ]
    );
    deliver_all(store, &claimed).await;
    // A key expiring within a day when first seen takes that threshold, not the larger.
    let sooner = store
        .insert(expiring("acme", "outbox-7", now + DAY / 2))
        .await
        .expect("insert");
    deliver_all(store, &claim(store, later()).await).await;
    assert_eq!(expiry(now).await.expect("expiry"), 1);
    assert_eq!(expiry(now).await.expect("expiry"), 0);
    let claimed = claim(store, later()).await;
    assert_eq!(
        summary(&claimed),
        [(a, "token.expiring".into(), sooner.id.get(), "86400".into())]
    );
    deliver_all(store, &claimed).await;

    // Credits: announced when a reservation takes the balance into its last 20 %, once.
    let budget = store
        .insert(NewToken {
            policies: Policies::none().credits(Credits::new(10)),
            ..token("acme", "outbox-8", None)
        })
        .await
        .expect("insert");
    deliver_all(store, &claim(store, later()).await).await;
    let now = OffsetDateTime::now_utc();
    for (want, left) in [(7, 3), (1, 2), (2, 0)] {
        let grant = store
            .reserve_credits(budget.id, want, now)
            .await
            .expect("reserve")
            .expect("the key has credits");
        assert_eq!(grant.remaining, left);
    }
    let claimed = claim(store, later()).await;
    assert_eq!(
        summary(&claimed),
        [(
            a,
            "token.credits_low".into(),
            budget.id.get(),
            String::new()
        )]
    );
    let low: serde_json::Value = serde_json::from_str(&claimed[0].message.body).expect("JSON");
    assert_eq!(low["data"]["policies"]["credits"]["remaining"], 2);
    deliver_all(store, &claimed).await;

    // A session opens and is revoked with its key.
    let owner = store
        .insert(token("acme", "outbox-9", None))
        .await
        .expect("insert");
    let session = store
        .insert(NewToken {
            kind: crate::identity::TokenKind::Session,
            created_by: Some(owner.id),
            ..token("acme", "outbox-10", Some(OffsetDateTime::now_utc() + DAY))
        })
        .await
        .expect("insert");
    store
        .delete("acme", session.id, RevocationReason::Cascade)
        .await
        .expect("delete");
    let claimed = claim(store, later()).await;
    let events: Vec<(String, u64, String)> = summary(&claimed)
        .into_iter()
        .map(|(_, kind, id, extra)| (kind, id, extra))
        .collect();
    assert_eq!(
        events,
        [
            ("token.created".into(), owner.id.get(), String::new()),
            ("session.created".into(), session.id.get(), String::new()),
            ("session.ended".into(), session.id.get(), "cascade".into()),
        ]
    );
    deliver_all(store, &claimed).await;

    // A session pruned before an expiry check saw it expire still ends, once.
    let now = OffsetDateTime::now_utc();
    let brief = store
        .insert(NewToken {
            kind: crate::identity::TokenKind::Session,
            created_by: Some(owner.id),
            ..token("acme", "outbox-12", Some(now - Duration::from_secs(60)))
        })
        .await
        .expect("insert");
    deliver_all(store, &claim(store, later()).await).await;
    let pruned = store.prune_expired_sessions(now).await.expect("prune");
    assert_eq!(pruned.len(), 1);
    assert_eq!(
        store
            .write_expiry_events(now, &thresholds)
            .await
            .expect("expiry"),
        0
    );
    let claimed = claim(store, later()).await;
    assert_eq!(
        summary(&claimed),
        [(a, "session.ended".into(), brief.id.get(), String::new())]
    );
    deliver_all(store, &claimed).await;
    // Keys whose expiry was announced, or is still to come, are pruned silently.
    store.prune_expired(now + 3 * DAY).await.expect("prune");
    assert!(
        claim(store, later()).await.is_empty(),
        "nothing announced twice"
    );

    // Nodes checking expiry at once write each event once.
    let now = OffsetDateTime::now_utc();
    store
        .insert(expiring("acme", "outbox-11", now + DAY / 4))
        .await
        .expect("insert");
    deliver_all(store, &claim(store, later()).await).await;
    let (first, second) = tokio::join!(
        store.write_expiry_events(now, &thresholds),
        store.write_expiry_events(now, &thresholds),
    );
    assert_eq!(first.expect("expiry") + second.expect("expiry"), 1);
    deliver_all(store, &claim(store, later()).await).await;

    // Claims made at once never share a message.
    for n in 0..20 {
        store
            .insert(token("acme", &format!("outbox-burst-{n}"), None))
            .await
            .expect("insert");
    }
    let at = later();
    let (first, second) = tokio::join!(
        store.claim_messages(at, at + Duration::from_secs(60), 7),
        store.claim_messages(at, at + Duration::from_secs(60), 7),
    );
    let (first, second) = (first.expect("claim"), second.expect("claim"));
    let ids: HashSet<u64> = first.iter().chain(&second).map(|c| c.message.id).collect();
    assert_eq!(
        ids.len(),
        first.len() + second.len(),
        "no message claimed twice"
    );
    assert_eq!(ids.len(), 14);

    // A deleted endpoint's messages go with it; delivered messages are pruned.
    store.delete_endpoint("acme", a).await.expect("delete");
    assert!(claim(store, at + DAY).await.is_empty());
    store
        .prune_messages(OffsetDateTime::now_utc() + DAY)
        .await
        .expect("prune");
    assert!(
        store
            .delivery_attempts("globex", foreign, None, 10)
            .await
            .expect("attempts")
            .is_empty()
    );
    assert!(matches!(
        store.delivery_attempts("acme", a, None, 10).await,
        Err(StoreError::NotFound)
    ));
}
