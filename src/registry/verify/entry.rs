//! A cached token: the principal's identity and, in the same allocation, the cache's
//! bookkeeping (the rest of the digest, freshness, usage counters). One allocation per
//! cached token; a hit hands out the entry itself as the [`Principal`](crate::principal::Principal).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32};

use crate::registry::verify::intern::Shared;

use crate::identity::TokenKind;
use crate::principal::{Identity, Inner, Rare};
use crate::store::TokenRecord;

/// A cached token.
pub(crate) type Entry = Arc<Inner<Slot>>;

/// What the cache keeps beside a token's identity.
pub(crate) struct Slot {
    /// The second half of the token's digest (the cache is keyed by the first half).
    pub(crate) digest_tail: [u8; 16],
    /// Unix seconds after which the entry is re-read from the store.
    pub(crate) fresh_until: u32,
    pub(crate) usage: Usage,
}

/// Verifications since the last usage flush; see `registry::usage`.
#[derive(Default)]
pub(crate) struct Usage {
    pub(crate) uses: AtomicU32,
    /// Unix seconds (u32 lasts until 2106).
    pub(crate) last_used: AtomicU32,
    pub(crate) queued: AtomicBool,
}

/// The entry for a record read from the store, with the interned tenant and grants.
///
/// A session's principal is its API key's (id, name, owner), with the session's own id
/// as `session_id`: handlers, scopes and usage see the key whichever credential it used.
/// `token_check` is the keyed hash of a session token's header and payload.
pub(crate) fn from_record(
    record: &TokenRecord,
    shared: Shared,
    fresh_until: u32,
    token_check: u64,
    meter: Option<Arc<crate::registry::meter::Meter>>,
) -> Entry {
    let mut digest_tail = [0; 16];
    digest_tail.copy_from_slice(&record.digest.as_bytes()[16..]);
    let (id, session_id) = match (record.kind, record.created_by) {
        (TokenKind::Session, Some(key)) => (key, Some(record.id.to_string())),
        // An end user's token: its own id (the user is the owner).
        (TokenKind::Session, None) => (record.id, Some(record.id.to_string())),
        _ => (record.id, None),
    };
    Arc::new(Inner {
        identity: Identity {
            id,
            name: record.name.as_str().into(),
            tenant: shared.tenant,
            grants: shared.grants,
            created_at: crate::clock::to_millis(record.created_at),
            expires_at: record.expires_at.map_or(i64::MAX, crate::clock::to_nanos),
            env: record.env,
            kind: record.kind,
            rare: match session_id {
                Some(session_id) => Some(Box::new(Rare {
                    owner: record.owner.as_deref().map(Into::into),
                    session_id: Some(session_id.into()),
                    token_check,
                    // An end user's token's claims, as signed (the row keeps them).
                    claims: record
                        .metadata
                        .as_ref()
                        .and_then(|metadata| metadata.get("claims")?.as_object())
                        .map(|claims| Arc::new(claims.clone())),
                    // A session's requests count against its key's policies.
                    meter: meter.map(|meter| meter as Arc<dyn std::any::Any + Send + Sync>),
                })),
                None => match meter {
                    // Keys with policies carry their meter; the others pay nothing.
                    Some(meter) => Some(Box::new(Rare {
                        owner: record.owner.as_deref().map(Into::into),
                        meter: Some(meter as Arc<dyn std::any::Any + Send + Sync>),
                        ..Rare::default()
                    })),
                    None => Rare::boxed(record.owner.as_deref(), None),
                },
            },
        },
        extra: Slot {
            digest_tail,
            fresh_until,
            usage: Usage::default(),
        },
    })
}

/// A thread's own copy of a cached token (see `registry::hot`): the same identity and
/// digest, fresh as long, with its own reference count and usage counters.
pub(crate) fn copy(entry: &Entry) -> Entry {
    Arc::new(Inner {
        identity: entry.identity.clone(),
        extra: Slot {
            digest_tail: entry.extra.digest_tail,
            fresh_until: entry.extra.fresh_until,
            usage: Usage::default(),
        },
    })
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use super::*;

    /// A cached token costs this allocation, its name, and a 24-byte table slot: keep it
    /// small (see `benches/cache_memory.rs`).
    #[test]
    fn a_cached_token_is_one_small_allocation() {
        assert_eq!(std::mem::size_of::<Inner<Slot>>(), 104);
    }
}
