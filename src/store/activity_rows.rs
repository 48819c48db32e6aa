//! The SQL the SQLite and PostgreSQL stores share: the columns, and the `WHERE` clause of
//! an [`ActivityQuery`].

use std::net::IpAddr;

use crate::identity::TokenId;
use crate::store::StoreError;
use crate::store::activity::{Activity, ActivityQuery, NewActivity, Outcome};
use crate::store::columns::count_param;

/// The columns of a row, in the order [`RawActivity`] reads them.
pub(super) const COLUMNS: &str = "id, at, token_id, session_id, tenant, method, route, status, \
                                  outcome, latency_us, client_ip, user_agent, request_id, new_ip";

/// A query parameter: both drivers bind integers and text.
pub(super) enum Param {
    Int(i64),
    Text(String),
}

/// The `WHERE` clause (tenant first) and its parameters; `placeholder(n)` spells the
/// n-th parameter (`?n` or `$n`).
pub(super) fn filters(
    tenant: &str,
    query: &ActivityQuery,
    placeholder: impl Fn(usize) -> String,
) -> (String, Vec<Param>) {
    let mut params = vec![Param::Text(tenant.to_owned())];
    let mut clause = format!("tenant = {}", placeholder(1));
    let mut add = |condition: &str, param: Param| {
        params.push(param);
        clause.push_str(" AND ");
        clause.push_str(&condition.replace('?', &placeholder(params.len())));
    };
    if let Some(id) = query.token_id {
        add("token_id = ?", Param::Int(count_param(id.get())));
    }
    if let Some(before) = query.before {
        add("id < ?", Param::Int(count_param(before)));
    }
    if let Some(outcome) = query.outcome {
        add("outcome = ?", Param::Text(outcome.as_str().to_owned()));
    }
    if let Some(status) = query.status {
        add("status >= ?", Param::Int(status.low().into()));
        add("status <= ?", Param::Int(status.high().into()));
    }
    if let Some(since) = query.since {
        add("at >= ?", Param::Int(crate::clock::to_millis(since)));
    }
    if let Some(until) = query.until {
        add("at <= ?", Param::Int(crate::clock::to_millis(until)));
    }
    (clause, params)
}

/// A row as both drivers read it.
pub(super) struct RawActivity {
    pub(super) id: i64,
    pub(super) at: i64,
    pub(super) token_id: i64,
    pub(super) session_id: Option<String>,
    pub(super) tenant: String,
    pub(super) method: String,
    pub(super) route: String,
    pub(super) status: i64,
    pub(super) outcome: String,
    pub(super) latency_us: i64,
    pub(super) client_ip: Option<String>,
    pub(super) user_agent: Option<String>,
    pub(super) request_id: Option<String>,
    pub(super) new_ip: bool,
}

impl RawActivity {
    pub(super) fn parse(self) -> Result<Activity, StoreError> {
        let corrupt = |what: &str| StoreError::unavailable(format!("corrupt activity row: {what}"));
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.at) * 1_000_000)
            .map_err(|_| corrupt("at"))?;
        let client_ip = match self.client_ip {
            Some(ip) => Some(ip.parse::<IpAddr>().map_err(|_| corrupt("client_ip"))?),
            None => None,
        };
        let request = NewActivity {
            at,
            token_id: TokenId::new(u64::try_from(self.token_id).map_err(|_| corrupt("token_id"))?),
            session_id: self.session_id,
            tenant: self.tenant,
            method: self.method,
            route: self.route,
            status: u16::try_from(self.status).map_err(|_| corrupt("status"))?,
            outcome: self
                .outcome
                .parse::<Outcome>()
                .map_err(|_| corrupt("outcome"))?,
            latency_us: u64::try_from(self.latency_us).unwrap_or(0),
            client_ip,
            user_agent: self.user_agent,
            request_id: self.request_id,
        };
        Ok(Activity {
            id: u64::try_from(self.id).map_err(|_| corrupt("id"))?,
            new_ip: self.new_ip,
            request,
        })
    }
}

/// The columns of a remembered revoked token, in the order [`RawRevoked`] reads them.
pub(super) const REVOKED_COLUMNS: &str =
    "digest, token_id, session_id, tenant, revoked_at, reason, leak_url, leak_source";

/// A remembered revoked token's columns as both drivers read them.
pub(super) struct RawRevoked {
    pub(super) digest: Vec<u8>,
    pub(super) token_id: i64,
    pub(super) session_id: Option<String>,
    pub(super) tenant: String,
    pub(super) revoked_at: i64,
    pub(super) reason: String,
    pub(super) leak_url: Option<String>,
    pub(super) leak_source: Option<String>,
}

impl RawRevoked {
    /// The row, checked.
    pub(super) fn parse(self) -> Result<super::activity::RevokedToken, StoreError> {
        use crate::store::RevocationReason;
        use crate::store::columns;
        Ok(super::activity::RevokedToken {
            digest: columns::digest_of(self.digest)?,
            token_id: columns::token_id(self.token_id)?,
            session_id: self.session_id,
            tenant: self.tenant,
            revoked_at: columns::from_millis(self.revoked_at)?,
            reason: RevocationReason::from_name(&self.reason)
                .ok_or_else(|| StoreError::unavailable("corrupt revoked token row: reason"))?,
            leak_url: self.leak_url,
            leak_source: self.leak_source,
        })
    }
}
