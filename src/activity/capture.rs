//! What the layer captures of a request for its row: everything but the answer when the
//! request arrives (borrowed from the request, copied into the queue), and what the
//! writer makes of a row and its answer.

use http::Request;

use super::ActivityConfig;
use super::queue::{Answer, Arrival, Batch, FIELDS, Row};
use crate::identity::TokenId;
use crate::principal::Principal;
use crate::store::activity::clip;
use crate::store::activity::{
    MAX_FIELD_LEN, MAX_REQUEST_ID_LEN, NewActivity, Outcome, RevokedToken,
};
use axum::extract::MatchedPath;

/// Named once: a header looked up by a `&str` name is parsed on every lookup.
const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The text fields of a row, in the order [`Arrival::text`] has them.
const ROUTE: usize = 0;
const USER_AGENT: usize = 1;
const REQUEST_ID: usize = 2;
const TENANT: usize = 3;
const SESSION_ID: usize = 4;

/// What `request`, made by `principal`, tells about itself; it arrived at `start` (Unix
/// nanoseconds).
pub(crate) fn arrival<'a, B>(
    request: &'a Request<B>,
    principal: &'a Principal,
    start: i64,
    config: &ActivityConfig,
) -> Arrival<'a> {
    let mut arrival = unattributed(request, start, config);
    arrival.token_id = principal.id();
    arrival.text[TENANT] = Some(principal.tenant());
    arrival.text[SESSION_ID] = principal.session_id();
    arrival
}

/// What `request` tells about itself, its credential not attributed to a token yet.
pub(crate) fn unattributed<'a, B>(
    request: &'a Request<B>,
    start: i64,
    config: &ActivityConfig,
) -> Arrival<'a> {
    let headers = request.headers();
    let mut text = [None; FIELDS];
    text[ROUTE] = route(request, config.raw_paths).map(|route| clip(route, MAX_FIELD_LEN));
    text[USER_AGENT] = header(headers, http::header::USER_AGENT, MAX_FIELD_LEN);
    text[REQUEST_ID] = header(headers, X_REQUEST_ID, MAX_REQUEST_ID_LEN);
    Arrival {
        start,
        token_id: TokenId::new(0),
        method: request.method(),
        ip: config.proxies.client_ip_of(request),
        text,
        digest: None,
    }
}

/// Attributes a row recorded without its token to the revoked token `revoked`.
pub(crate) fn attribute(row: &mut NewActivity, revoked: &RevokedToken) {
    row.token_id = revoked.token_id;
    row.session_id.clone_from(&revoked.session_id);
    row.tenant.clone_from(&revoked.tenant);
    row.outcome = Outcome::Revoked;
}

/// `row` with the route template its answer brought, when it brought one.
pub(crate) fn with_template(mut row: NewActivity, template: Option<&MatchedPath>) -> NewActivity {
    if let Some(template) = template {
        clip(template.as_str(), MAX_FIELD_LEN).clone_into(&mut row.route);
    }
    row
}

/// The stored form of `row` (of `batch`) with its `answer`.
pub(crate) fn new_activity(batch: &Batch, row: &Row, answer: Answer) -> NewActivity {
    let owned = |field| batch.field(row, field).map(str::to_owned);
    NewActivity {
        at: millis(row.start),
        token_id: row.token_id,
        session_id: owned(SESSION_ID),
        tenant: owned(TENANT).unwrap_or_default(),
        method: batch.method(row).to_owned(),
        route: owned(ROUTE).unwrap_or_default(),
        status: answer.status,
        outcome: answer.outcome,
        latency_us: latency_us(row.start, answer.end),
        client_ip: row.ip,
        user_agent: owned(USER_AGENT),
        request_id: owned(REQUEST_ID),
    }
}

/// Microseconds from `start` to `end` (Unix nanoseconds); 0 if the clock went back.
pub(crate) fn latency_us(start: i64, end: i64) -> u64 {
    u64::try_from(end.saturating_sub(start) / 1_000).unwrap_or(0)
}

fn millis(nanos: i64) -> time::OffsetDateTime {
    crate::clock::from_nanos(nanos - nanos.rem_euclid(1_000_000))
}

/// axum's route template when the layer sits inside the router (around it, the template
/// comes with the answer: see `route`); otherwise the path (never the query string) when
/// the application opted in, else nothing: a path can hold an invite code.
fn route<B>(request: &Request<B>, raw_paths: bool) -> Option<&str> {
    if let Some(matched) = request.extensions().get::<axum::extract::MatchedPath>() {
        return Some(matched.as_str());
    }
    raw_paths.then(|| request.uri().path())
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
    use crate::activity::queue::Queue;
    use std::net::SocketAddr;

    fn principal(session: Option<&str>) -> Principal {
        let mut builder = Principal::builder(TokenId::new(7), "ci", "acme");
        if let Some(session) = session {
            builder = builder.session_id(session);
        }
        builder.build()
    }

    /// Through the queue and back, as the layer and the writer do, recording raw paths.
    fn recorded<B>(
        request: &Request<B>,
        principal: &Principal,
        start: i64,
        answer: Answer,
    ) -> NewActivity {
        let config = ActivityConfig::new(crate::store::MemoryStore::new()).record_raw_paths();
        recorded_with(&config, request, principal, start, answer)
    }

    fn recorded_with<B>(
        config: &ActivityConfig,
        request: &Request<B>,
        principal: &Principal,
        start: i64,
        answer: Answer,
    ) -> NewActivity {
        let queue = Queue::new(10, 10);
        queue.begin(&arrival(request, principal, start, config), Some(answer));
        let (mut spares, mut batches) = (Vec::new(), Vec::new());
        queue.drain(&mut spares, &mut batches);
        new_activity(&batches[0], &batches[0].rows[0], answer)
    }

    #[test]
    fn a_row_keeps_the_path_but_never_the_query() {
        let request = Request::post("/items/42?token=secret&x=1")
            .header("user-agent", "x".repeat(300))
            .header("x-request-id", "req-1")
            .extension(SocketAddr::from(([192, 0, 2, 7], 4000)))
            .body(())
            .unwrap();
        let answer = Answer {
            end: 5_000_323_456,
            status: 201,
            outcome: Outcome::Ok,
        };
        let row = recorded(&request, &principal(None), 5_000_123_456, answer);
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
    fn without_a_template_the_path_is_kept_only_when_asked() {
        let request = Request::get("/invites/7f3a9c").body(()).unwrap();
        let answer = Answer {
            end: 0,
            status: 200,
            outcome: Outcome::Ok,
        };
        let config = ActivityConfig::new(crate::store::MemoryStore::new());
        let row = recorded_with(&config, &request, &principal(None), 0, answer);
        assert_eq!(row.route, "");
    }

    #[test]
    fn absent_fields_stay_absent_and_a_session_is_kept() {
        let request = Request::get("/").body(()).unwrap();
        let answer = Answer {
            end: 0,
            status: 403,
            outcome: Outcome::ScopeDenied,
        };
        let row = recorded(&request, &principal(Some("12")), 0, answer);
        assert_eq!(
            (row.user_agent, row.request_id, row.client_ip),
            (None, None, None)
        );
        assert_eq!(row.session_id.as_deref(), Some("12"));
        assert_eq!(row.route, "/");
    }
}
