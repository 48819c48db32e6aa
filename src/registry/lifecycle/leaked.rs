//! Leaked keys: a credential reported found in public (by a secret scanner) is revoked
//! if it is one of ours, on every node through the store.

use crate::identity::{TokenId, TokenKind};
use crate::registry::{Registry, RegistryError};
use crate::store::{RevocationReason, StoreError};

/// Where a leaked credential was found, as the report says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeakReport {
    /// The public address of the commit, file, issue… it was found in.
    pub url: Option<String>,
    /// The provider's kind of place (`content`, `commit`, `npm`…).
    pub source: Option<String>,
}

impl LeakReport {
    /// A report of a leak found at `url` (if known), in a `source` (if known).
    pub fn new(url: Option<&str>, source: Option<&str>) -> Self {
        Self {
            url: url.map(str::to_owned),
            source: source.map(str::to_owned),
        }
    }
}

/// What a reported credential turned out to be ([`Registry::revoke_leaked`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeakVerdict {
    /// Not one of our formats, or a checksum that does not hold: never ours, and the
    /// store was not asked.
    Malformed,
    /// Well-formed, but no token with this digest exists (never issued, or revoked and
    /// forgotten).
    Unknown,
    /// A token of ours, revoked now with everything it opened.
    Revoked {
        /// The token.
        id: TokenId,
        /// Its tenant.
        tenant: String,
    },
    /// A token of ours that was revoked before (the activity log remembers it).
    AlreadyRevoked {
        /// The token.
        id: TokenId,
        /// Its tenant.
        tenant: String,
    },
}

impl Registry {
    /// Handles a report that `credential` leaked: a credential that does not pass its
    /// format's checks is [`LeakVerdict::Malformed`] without a store lookup; an API key of
    /// ours is revoked (with its sessions, through the store: every node drops it with
    /// the change feed) and warned about once, with its id, tenant and where it was found,
    /// never the credential. Idempotent: a key reported again is
    /// [`AlreadyRevoked`](LeakVerdict::AlreadyRevoked) while the activity log remembers
    /// it, else [`Unknown`](LeakVerdict::Unknown).
    pub async fn revoke_leaked(
        &self,
        credential: &str,
        report: &LeakReport,
    ) -> Result<LeakVerdict, RegistryError> {
        let Ok(presented) = self.inner.formats.decode(credential) else {
            return Ok(LeakVerdict::Malformed);
        };
        let digest = *presented.digest();
        let record = match self.inner.store.find_by_digest(&digest).await {
            Ok(record) => record,
            Err(StoreError::NotFound) => return self.remembered_leak(digest).await,
            Err(error) => return Err(error.into()),
        };
        // A session's access token is a JWT: only API keys have a scannable format.
        if record.kind != TokenKind::ApiKey
            || presented.expected_id().is_some_and(|id| id != record.id)
        {
            return Ok(LeakVerdict::Unknown);
        }
        let revoked = self
            .revoke_key(
                &record.tenant,
                record.id,
                RevocationReason::Leaked,
                Some(report),
            )
            .await;
        match revoked {
            Ok(()) | Err(RegistryError::NotFound) => {}
            Err(error) => return Err(error),
        }
        tracing::warn!(
            target: "tower_bearer::registry",
            token_id = %record.id,
            tenant = %record.tenant,
            url = report.url.as_deref().unwrap_or("-"),
            source = report.source.as_deref().unwrap_or("-"),
            "leaked token revoked"
        );
        Ok(LeakVerdict::Revoked {
            id: record.id,
            tenant: record.tenant,
        })
    }

    /// A reported credential the store does not know: revoked before, if the activity log
    /// remembers it.
    async fn remembered_leak(
        &self,
        digest: crate::token::Digest,
    ) -> Result<LeakVerdict, RegistryError> {
        #[cfg(feature = "activity")]
        if let Some(log) = self.activity() {
            let found = log.store().find_revoked(&[digest]).await?;
            if let Some(revoked) = found.into_iter().next() {
                return Ok(LeakVerdict::AlreadyRevoked {
                    id: revoked.token_id,
                    tenant: revoked.tenant,
                });
            }
        }
        // Without an activity log, nothing remembers a revoked digest.
        let _ = digest;
        Ok(LeakVerdict::Unknown)
    }
}
