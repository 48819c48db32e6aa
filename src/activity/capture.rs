//! What the layer captures of a request for its row: everything but the answer when the
//! request arrives, the status and outcome when the response head is ready.
//!
//! A row's text (route, user agent, request id, tenant, session id) lives in one string,
//! so that recording a request allocates once.

use std::net::{IpAddr, SocketAddr};

use http::{Method, Request, StatusCode};

use super::{MAX_FIELD_LEN, MAX_REQUEST_ID_LEN, NewActivity, Outcome, TrustedProxies, clip};
use crate::Principal;
use crate::identity::TokenId;

/// The text fields of a row, in the order they sit in its string.
#[derive(Clone, Copy)]
enum Field {
    Route,
    UserAgent,
    RequestId,
    Tenant,
    SessionId,
}

const FIELDS: usize = 5;

/// A request being recorded.
pub(crate) struct Pending {
    /// Unix nanoseconds at arrival.
    start: i64,
    /// Unix nanoseconds when the response head was ready.
    end: i64,
    status: u16,
    outcome: Outcome,
    method: Method,
    ip: Option<IpAddr>,
    token_id: TokenId,
    text: String,
    /// Where each field ends in `text`.
    ends: [u16; FIELDS],
    /// Which optional fields are present (bit per field).
    present: u8,
}

impl Pending {
    /// Captures `request`, made by `principal`, that arrived at `start` (Unix nanoseconds).
    pub(crate) fn begin<B>(
        request: &Request<B>,
        principal: &Principal,
        start: i64,
        proxies: &TrustedProxies,
    ) -> Self {
        let headers = request.headers();
        let route = clip(route(request), MAX_FIELD_LEN);
        let user_agent = header(headers, http::header::USER_AGENT, MAX_FIELD_LEN);
        let request_id = header(headers, "x-request-id", MAX_REQUEST_ID_LEN);
        let tenant = principal.tenant();
        let session_id = principal.session_id();
        let fields = [
            Some(route),
            user_agent,
            request_id,
            Some(tenant),
            session_id,
        ];
        let mut text = String::with_capacity(fields.iter().flatten().map(|f| f.len()).sum());
        let mut ends = [0; FIELDS];
        let mut present = 0;
        for (at, field) in fields.iter().enumerate() {
            if let Some(field) = field {
                text.push_str(field);
                present |= 1 << at;
            }
            // Every field is clipped: the whole fits in u16.
            ends[at] = u16::try_from(text.len()).unwrap_or(u16::MAX);
        }
        Self {
            start,
            end: start,
            status: 0,
            outcome: Outcome::Ok,
            method: request.method().clone(),
            ip: proxies.client_ip(peer(request), headers),
            token_id: principal.id(),
            text,
            ends,
            present,
        }
    }

    /// When the request arrived (Unix nanoseconds).
    pub(crate) fn arrival(&self) -> i64 {
        self.start
    }

    /// The answer: `status` and `outcome`, at `end` (Unix nanoseconds).
    pub(crate) fn complete(&mut self, status: StatusCode, outcome: Outcome, end: i64) {
        self.status = status.as_u16();
        self.outcome = outcome;
        self.end = end;
    }

    fn field(&self, field: Field) -> Option<&str> {
        let at = field as usize;
        if self.present & (1 << at) == 0 {
            return None;
        }
        let start = if at == 0 { 0 } else { self.ends[at - 1] };
        self.text
            .get(usize::from(start)..usize::from(self.ends[at]))
    }

    /// The row as stored.
    pub(crate) fn into_row(self) -> NewActivity {
        let owned = |field| self.field(field).map(str::to_owned);
        NewActivity {
            at: millis(self.start),
            token_id: self.token_id,
            session_id: owned(Field::SessionId),
            tenant: owned(Field::Tenant).unwrap_or_default(),
            method: self.method.as_str().to_owned(),
            route: owned(Field::Route).unwrap_or_default(),
            status: self.status,
            outcome: self.outcome,
            latency_us: u64::try_from(self.end.saturating_sub(self.start) / 1_000).unwrap_or(0),
            client_ip: self.ip,
            user_agent: owned(Field::UserAgent),
            request_id: owned(Field::RequestId),
        }
    }
}

fn millis(nanos: i64) -> time::OffsetDateTime {
    crate::clock::from_nanos(nanos - nanos.rem_euclid(1_000_000))
}

/// axum's matched route when the layer sits inside the router, otherwise the path (never
/// the query string).
fn route<B>(request: &Request<B>) -> &str {
    #[cfg(feature = "axum")]
    if let Some(matched) = request.extensions().get::<axum::extract::MatchedPath>() {
        return matched.as_str();
    }
    request.uri().path()
}

/// The peer's address, as axum's `into_make_service_with_connect_info` records it.
fn peer<B>(request: &Request<B>) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(info.0.ip());
    }
    request.extensions().get::<SocketAddr>().map(SocketAddr::ip)
}

fn header(
    headers: &http::HeaderMap,
    name: impl http::header::AsHeaderName,
    max: usize,
) -> Option<&str> {
    let value = headers.get(name)?.to_str().ok()?;
    Some(clip(value, max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::TokenId;

    fn principal(session: Option<&str>) -> Principal {
        let mut builder = Principal::builder(TokenId::new(7), "ci", "acme");
        if let Some(session) = session {
            builder = builder.session_id(session);
        }
        builder.build()
    }

    #[test]
    fn a_row_keeps_the_path_but_never_the_query() {
        let request = Request::post("/items/42?token=secret&x=1")
            .header("user-agent", "x".repeat(300))
            .header("x-request-id", "req-1")
            .extension(SocketAddr::from(([192, 0, 2, 7], 4000)))
            .body(())
            .unwrap();
        let mut pending = Pending::begin(
            &request,
            &principal(None),
            5_000_123_456,
            &TrustedProxies::none(),
        );
        pending.complete(StatusCode::CREATED, Outcome::Ok, 5_000_323_456);
        let row = pending.into_row();
        assert_eq!(row.route, "/items/42");
        assert_eq!(row.method, "POST");
        assert_eq!(row.user_agent.as_deref().map(str::len), Some(MAX_FIELD_LEN));
        assert_eq!(row.request_id.as_deref(), Some("req-1"));
        assert_eq!((row.tenant.as_str(), row.session_id), ("acme", None));
        assert_eq!(row.client_ip, Some("192.0.2.7".parse().unwrap()));
        assert_eq!((row.status, row.latency_us), (201, 200));
        assert_eq!(crate::clock::to_nanos(row.at), 5_000_000_000);
    }

    #[test]
    fn absent_fields_stay_absent_and_a_session_is_kept() {
        let request = Request::get("/").body(()).unwrap();
        let mut pending =
            Pending::begin(&request, &principal(Some("12")), 0, &TrustedProxies::none());
        pending.complete(StatusCode::FORBIDDEN, Outcome::ScopeDenied, 0);
        let row = pending.into_row();
        assert_eq!(
            (row.user_agent, row.request_id, row.client_ip),
            (None, None, None)
        );
        assert_eq!(row.session_id.as_deref(), Some("12"));
        assert_eq!(row.route, "/");
    }
}
