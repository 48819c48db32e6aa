//! Delivery attempts to a real receiver on 127.0.0.1: the Standard Webhooks headers and
//! a signature the receiver verifies, failures told apart (an error status, a redirect
//! not followed, no answer in time), and private targets refused unless allowed — even
//! behind a name that resolves to one.
#![cfg(feature = "webhooks")]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tower_bearer::webhooks::{Attempt, Deliverer, Message, Targets, WebhookSecret};

/// What the receiver got: each request's headers and body.
type Received = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A receiver answering `status` to `POST /hook` (after `delay`), `302` to
/// `POST /moved`; it records every request.
async fn receiver(status: StatusCode, delay: Duration) -> (String, Received) {
    let received: Received = Arc::default();
    let record = received.clone();
    let moved = received.clone();
    let app = Router::new()
        .route(
            "/hook",
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let record = record.clone();
                async move {
                    record.lock().unwrap().push((headers, body.to_vec()));
                    tokio::time::sleep(delay).await;
                    status
                }
            }),
        )
        .route(
            "/moved",
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let moved = moved.clone();
                async move {
                    moved.lock().unwrap().push((headers, body.to_vec()));
                    (StatusCode::FOUND, [("location", "/hook")])
                }
            }),
        );
    let addr = support::http::serve(app).await;
    (format!("http://{addr}"), received)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).unwrap().to_str().unwrap()
}

#[tokio::test]
async fn a_delivery_carries_a_signature_the_receiver_verifies() {
    let (base, received) = receiver(StatusCode::NO_CONTENT, Duration::ZERO).await;
    let (old, new) = (
        WebhookSecret::generate().unwrap(),
        WebhookSecret::generate().unwrap(),
    );
    let secrets = [new.clone(), old.clone()];
    let body = br#"{"type":"token.revoked","timestamp":"2026-12-04T22:00:00Z","data":{"id":42}}"#;
    let url = format!("{base}/hook");
    let deliverer = Deliverer::new(Targets::AllowPrivate, Duration::from_secs(5));
    let attempt = deliverer
        .deliver(&Message::new(
            &url,
            "msg_42_7",
            1_764_885_600,
            body,
            &secrets,
        ))
        .await;
    assert!(
        matches!(attempt, Attempt::Delivered { status: 204, .. }),
        "{attempt:?}"
    );
    let received = received.lock().unwrap();
    let (headers, got) = &received[0];
    assert_eq!(got, body);
    assert_eq!(header(headers, "content-type"), "application/json");
    assert_eq!(header(headers, "webhook-id"), "msg_42_7");
    assert_eq!(header(headers, "webhook-timestamp"), "1764885600");
    let signature = header(headers, "webhook-signature");
    assert_eq!(
        signature.split(' ').count(),
        2,
        "one per secret during a rotation"
    );
    for secret in [&new, &old] {
        assert!(secret.verify("msg_42_7", 1_764_885_600, got, signature));
    }
    assert!(
        !WebhookSecret::generate()
            .unwrap()
            .verify("msg_42_7", 1_764_885_600, got, signature)
    );
}

#[tokio::test]
async fn failures_are_told_apart_and_redirects_are_not_followed() {
    let deliverer = Deliverer::new(Targets::AllowPrivate, Duration::from_millis(500));
    let secrets = [WebhookSecret::generate().unwrap()];
    let message = |url: &str| -> (String, [WebhookSecret; 1]) { (url.to_owned(), secrets.clone()) };

    let (base, _) = receiver(StatusCode::INTERNAL_SERVER_ERROR, Duration::ZERO).await;
    let (url, secrets) = message(&format!("{base}/hook"));
    let attempt = deliverer
        .deliver(&Message::new(&url, "msg_1", 1, b"{}", &secrets))
        .await;
    assert!(
        matches!(
            attempt,
            Attempt::Failed {
                status: Some(500),
                ..
            }
        ),
        "{attempt:?}"
    );

    let (base, received) = receiver(StatusCode::OK, Duration::ZERO).await;
    let (url, secrets) = message(&format!("{base}/moved"));
    let attempt = deliverer
        .deliver(&Message::new(&url, "msg_2", 1, b"{}", &secrets))
        .await;
    assert!(
        matches!(
            attempt,
            Attempt::Failed {
                status: Some(302),
                ..
            }
        ),
        "{attempt:?}"
    );
    assert_eq!(
        received.lock().unwrap().len(),
        1,
        "the redirect's target was not called"
    );

    let (base, _) = receiver(StatusCode::OK, Duration::from_secs(3)).await;
    let (url, secrets) = message(&format!("{base}/hook"));
    let attempt = deliverer
        .deliver(&Message::new(&url, "msg_3", 1, b"{}", &secrets))
        .await;
    match attempt {
        Attempt::Failed {
            status: None,
            error,
            latency,
        } => {
            assert_eq!(error, "no answer within the deadline");
            assert!(latency < Duration::from_secs(3));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn private_targets_are_refused_at_delivery_unless_allowed() {
    let (base, received) = receiver(StatusCode::OK, Duration::ZERO).await;
    let port = base.rsplit(':').next().unwrap();
    let secrets = [WebhookSecret::generate().unwrap()];
    let public_only = Deliverer::new(Targets::Public, Duration::from_secs(2));
    // A name that resolves to 127.0.0.1: refused when resolved, nothing sent.
    let by_name = format!("https://localhost:{port}/hook");
    let attempt = public_only
        .deliver(&Message::new(&by_name, "msg_1", 1, b"{}", &secrets))
        .await;
    match attempt {
        Attempt::Failed {
            status: None,
            error,
            ..
        } => {
            assert_eq!(error, "the URL's host is not a public address");
        }
        other => panic!("{other:?}"),
    }
    // An address in the URL, and plain http: refused before anything is sent.
    let literal = format!("{base}/hook");
    let attempt = public_only
        .deliver(&Message::new(&literal, "msg_2", 1, b"{}", &secrets))
        .await;
    assert!(
        matches!(attempt, Attempt::Failed { status: None, .. }),
        "{attempt:?}"
    );
    assert!(received.lock().unwrap().is_empty());
}
