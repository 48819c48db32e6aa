//! A real HTTP server on 127.0.0.1:0 and a real HTTP client.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Serves `app` on an ephemeral loopback port until the test ends.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Serves `app` (a `Router`, or the layer around one) on an ephemeral loopback port until
/// the test ends, with the peer's address in each request (`ConnectInfo`).
pub async fn serve_with_peer<S>(app: S) -> SocketAddr
where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let make = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
        SocketAddr,
    >(app);
    tokio::spawn(async move { axum::serve(listener, make).await.unwrap() });
    addr
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
}

impl HttpClient {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            addr,
        }
    }

    /// Sends `method path` with the given raw `Authorization` header values.
    pub async fn send(&self, method: &str, path: &str, authorization: &[&[u8]]) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for value in authorization {
            request = request.header(
                "authorization",
                http::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        self.request(request.body(Full::default()).unwrap()).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.send("GET", path, &[format!("Bearer {token}").as_bytes()])
            .await
    }

    /// Sends `body` as JSON with `Authorization: Bearer <token>`; the answer's status and
    /// JSON body (`Null` when it has none).
    pub async fn call_json(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: &str,
    ) -> (StatusCode, serde_json::Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let answer = self.request(request).await;
        (
            answer.status,
            serde_json::from_slice(&answer.body).unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn request(&self, mut request: Request<Full<Bytes>>) -> Answer {
        if request.uri().authority().is_none() {
            *request.uri_mut() = format!("http://{}{}", self.addr, request.uri())
                .parse()
                .unwrap();
        }
        let response = self.client.request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }
}
