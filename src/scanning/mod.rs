//! Leaked keys revoke themselves: the partner endpoint of GitHub's secret scanning and
//! GitLab's automatic response to leaked secrets (feature `secret-scanning`).
//!
//! Our tokens were made to be found: a fixed prefix, high entropy and a CRC32 checksum.
//! A provider that finds one in public code sends it here, signed; this router checks
//! the signature over the raw body (ECDSA P-256 with SHA-256, the provider's published
//! keys), then revokes every reported key of ours through the store, so that every node
//! drops it with the change feed, and answers which matches were real.
//!
//! | route | provider | headers |
//! |---|---|---|
//! | `POST /secret-scanning/github` | GitHub secret scanning | `Github-Public-Key-Identifier`, `Github-Public-Key-Signature` |
//! | `POST /secret-scanning/gitlab` | GitLab automatic response | `Gitlab-Public-Key-Identifier`, `Gitlab-Public-Key-Signature` |
//!
//! The body is `[{"token", "type", "url", "source"}]` (GitLab sends no `source`), at
//! most 1,000 matches and 1 MiB (413 beyond). The answer is GitHub's feedback,
//! `[{"token_raw", "token_type", "label": "true_positive" | "false_positive"}]`, for both
//! (GitLab reads any 2xx as acknowledged). A request without a signature, with a bad one
//! or naming a key the provider does not publish is 401 and changes nothing; a store that
//! cannot answer is 503 (the providers retry; handling is idempotent).
//!
//! For each match: a string that is not one of our formats (its checksum included), or
//! whose `type` is not the one configured for its prefix, is `false_positive` without a
//! store lookup; an API key of ours is revoked and `true_positive`; a key revoked before
//! is `true_positive` again while the activity log remembers it (GitHub's feedback labels
//! a reported string, not an action: it was a real key); a well-formed string that is
//! not one of our keys is `false_positive`.
//!
//! Mount it public: the signature is its authentication.
//!
//! ```no_run
//! use axum::Router;
//! use tower_bearer::scanning::SecretScanning;
//! use tower_bearer::{BearerAuthLayer, MemoryStore, Registry};
//!
//! # async fn run() {
//! let registry = Registry::builder(MemoryStore::new()).build();
//! let app: Router = Router::new().merge(
//!     SecretScanning::new(registry.clone())
//!         .token_type("sk_live_", "acme_api_key")
//!         .router(),
//! );
//! let app = BearerAuthLayer::new(registry)
//!     .public(["/secret-scanning/*"])
//!     .protect(app);
//! # let _ = app;
//! # }
//! ```

mod keys;
mod openapi;
mod report;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;

pub use report::{MAX_BODY, MAX_MATCHES};

use crate::api::error::ApiError;
use crate::registry::{LeakReport, LeakVerdict, Registry};
use keys::KeyRing;
use report::{BadReport, Feedback, Label};

/// GitHub's published secret scanning keys.
pub const GITHUB_KEYS_URL: &str = "https://api.github.com/meta/public_keys/secret_scanning";
/// The token type registered by default for every token of the registry's format.
pub const DEFAULT_TOKEN_TYPE: &str = "tower_bearer_api_key";

/// The secret scanning partner endpoint: a builder of its [`Router`].
#[must_use]
pub struct SecretScanning {
    registry: Registry,
    github_keys_url: String,
    gitlab_keys_url: Option<String>,
    types: Vec<(String, String)>,
    refetch_after: std::time::Duration,
}

impl std::fmt::Debug for SecretScanning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretScanning")
            .field("github_keys_url", &self.github_keys_url)
            .field("gitlab_keys_url", &self.gitlab_keys_url)
            .field("types", &self.types)
            .finish_non_exhaustive()
    }
}

impl SecretScanning {
    /// Reports about tokens of `registry`, GitHub's keys from [`GITHUB_KEYS_URL`]; the
    /// GitLab route answers 503 until [`gitlab_keys_url`](Self::gitlab_keys_url) is set
    /// (GitLab hands its key endpoint to partners on request).
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            github_keys_url: GITHUB_KEYS_URL.to_owned(),
            gitlab_keys_url: None,
            types: Vec::new(),
            refetch_after: keys::REFETCH_AFTER,
        }
    }

    /// How soon a report naming a key the cache does not hold may fetch the provider's
    /// key document again (default one minute): forged key identifiers cannot make this
    /// server hammer the provider.
    pub fn key_refetch_interval(mut self, interval: std::time::Duration) -> Self {
        self.refetch_after = interval;
        self
    }

    /// Where GitHub's keys are fetched from (a proxy, a test).
    pub fn github_keys_url(mut self, url: &str) -> Self {
        self.github_keys_url = url.to_owned();
        self
    }

    /// Where GitLab's keys are fetched from: GitLab gives its partners this endpoint on
    /// request (it is not published), in the same format as GitHub's.
    pub fn gitlab_keys_url(mut self, url: &str) -> Self {
        self.gitlab_keys_url = Some(url.to_owned());
        self
    }

    /// Revokes tokens starting with `prefix` (e.g. `sk_live_`) when reported as `name`,
    /// the type registered with the providers for them. Without any, every token of the
    /// registry's prefixed format is [`DEFAULT_TOKEN_TYPE`].
    pub fn token_type(mut self, prefix: &str, name: &str) -> Self {
        self.types.push((prefix.to_owned(), name.to_owned()));
        self
    }

    /// The two routes, `POST /secret-scanning/github` and `POST /secret-scanning/gitlab`,
    /// to merge into an application's router whatever its state.
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let client = keys::client();
        let mut types = self.types;
        if types.is_empty() {
            if let Some(format) = self.registry.formats().prefixed_format() {
                types.push((
                    format!("{}_", format.prefix()),
                    DEFAULT_TOKEN_TYPE.to_owned(),
                ));
            }
        }
        let intake = Arc::new(Intake {
            registry: self.registry,
            types,
            github: KeyRing::new(self.github_keys_url, client.clone(), self.refetch_after),
            gitlab: self
                .gitlab_keys_url
                .map(|url| KeyRing::new(url, client.clone(), self.refetch_after)),
        });
        Router::new()
            .route("/secret-scanning/github", post(github))
            .route("/secret-scanning/gitlab", post(gitlab))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(intake)
    }
}

/// The OpenAPI 3.1 document of the two routes, to merge with an application's own (they
/// take no Bearer token: their `security` is empty).
///
/// ```
/// let api = tower_bearer::scanning::openapi();
/// assert!(api.paths.paths.contains_key("/secret-scanning/github"));
/// assert!(api.paths.paths.contains_key("/secret-scanning/gitlab"));
/// ```
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    Document::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "tower-bearer secret scanning",
        description = "Reports of leaked keys from GitHub's secret scanning and GitLab's \
                       automatic response, signed by the provider."
    ),
    tags((name = "secret-scanning", description = "Leaked keys, reported by secret scanners")),
    paths(github, gitlab)
)]
struct Document;

struct Intake {
    registry: Registry,
    types: Vec<(String, String)>,
    github: KeyRing,
    gitlab: Option<KeyRing>,
}

/// Which provider's headers a report carries.
#[derive(Clone, Copy, Debug)]
enum Provider {
    GitHub,
    GitLab,
}

impl Provider {
    fn headers(self) -> (&'static str, &'static str) {
        match self {
            Provider::GitHub => (
                "github-public-key-identifier",
                "github-public-key-signature",
            ),
            Provider::GitLab => (
                "gitlab-public-key-identifier",
                "gitlab-public-key-signature",
            ),
        }
    }
}

#[utoipa::path(
    post,
    path = "/secret-scanning/github",
    operation_id = "reportLeakedKeysGitHub",
    tag = "secret-scanning",
    summary = "GitHub's secret scanning report of leaked keys",
    description = "Signed by GitHub: `Github-Public-Key-Signature` is the base64 of a DER \
                   ECDSA P-256 signature of the raw body with SHA-256, by the published key \
                   `Github-Public-Key-Identifier` names. Every reported key of ours is revoked.",
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "The signing key's identifier"),
        ("Github-Public-Key-Signature" = String, Header, description = "The body's signature, base64 DER"),
    ),
    request_body(content = Vec<openapi::LeakedMatch>, content_type = "application/json"),
    responses(
        (status = 200, description = "Each match, labelled", body = Vec<openapi::LeakFeedback>),
        (status = 400, description = "Not a report of matches", body = crate::api::body::ErrorBody),
        (status = 401, description = "Not signed, or not by a published key: nothing changed", body = crate::api::body::ErrorBody),
        (status = 413, description = "More than 1,000 matches or 1 MiB", body = crate::api::body::ErrorBody),
        (status = 503, description = "The provider's keys or the token store cannot be reached; retry", body = crate::api::body::ErrorBody),
    ),
    security(()),
)]
async fn github(State(intake): State<Arc<Intake>>, request: Request) -> Response {
    intake.receive(Provider::GitHub, request).await
}

#[utoipa::path(
    post,
    path = "/secret-scanning/gitlab",
    operation_id = "reportLeakedKeysGitLab",
    tag = "secret-scanning",
    summary = "GitLab's automatic response: a report of leaked keys",
    description = "Signed by GitLab: `Gitlab-Public-Key-Signature` is the base64 of a DER \
                   ECDSA P-256 signature of the raw body with SHA-256, by the published key \
                   `Gitlab-Public-Key-Identifier` names. Every reported key of ours is revoked.",
    params(
        ("Gitlab-Public-Key-Identifier" = String, Header, description = "The signing key's identifier"),
        ("Gitlab-Public-Key-Signature" = String, Header, description = "The body's signature, base64 DER"),
    ),
    request_body(content = Vec<openapi::LeakedMatch>, content_type = "application/json"),
    responses(
        (status = 200, description = "Each match, labelled", body = Vec<openapi::LeakFeedback>),
        (status = 400, description = "Not a report of matches", body = crate::api::body::ErrorBody),
        (status = 401, description = "Not signed, or not by a published key: nothing changed", body = crate::api::body::ErrorBody),
        (status = 413, description = "More than 1,000 matches or 1 MiB", body = crate::api::body::ErrorBody),
        (status = 503, description = "The provider's keys or the token store cannot be reached; retry", body = crate::api::body::ErrorBody),
    ),
    security(()),
)]
async fn gitlab(State(intake): State<Arc<Intake>>, request: Request) -> Response {
    intake.receive(Provider::GitLab, request).await
}

impl Intake {
    async fn receive(&self, provider: Provider, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
            return ApiError::plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "A report may be at most 1 MiB.",
            )
            .into_response();
        };
        // The request without its body: what the activity log records of a report.
        let head = http::Request::from_parts(parts, ());
        let (headers, body) = (head.headers(), &body[..]);
        match self.verify(provider, headers, body).await {
            Ok(()) => {}
            Err(refused) => return refused.into_response(),
        }
        let matches = match report::parse(body) {
            Ok(matches) => matches,
            Err(BadReport::TooMany) => {
                return ApiError::plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("A report may carry at most {MAX_MATCHES} matches."),
                )
                .into_response();
            }
            Err(BadReport::Shape(why)) => {
                return ApiError::plain(
                    StatusCode::BAD_REQUEST,
                    format!("The body is not a report of matches: {why}"),
                )
                .into_response();
            }
        };
        let mut feedback = Vec::with_capacity(matches.len());
        for found in matches {
            let label = match self.label(&found, &head).await {
                Ok(label) => label,
                Err(unavailable) => return unavailable.into_response(),
            };
            feedback.push(Feedback {
                token_raw: found.token,
                token_type: found.kind,
                label,
            });
        }
        crate::api::body::json(StatusCode::OK, &feedback)
    }

    /// The signature over the raw body, by a key the provider publishes.
    async fn verify(
        &self,
        provider: Provider,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), ApiError> {
        let unauthorized = |why: &str| {
            ApiError::plain(StatusCode::UNAUTHORIZED, format!("Report refused: {why}."))
        };
        let (id_header, signature_header) = provider.headers();
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        let (Some(id), Some(signature)) = (header(id_header), header(signature_header)) else {
            return Err(unauthorized("it is not signed"));
        };
        let ring = match provider {
            Provider::GitHub => Some(&self.github),
            Provider::GitLab => self.gitlab.as_ref(),
        };
        let Some(ring) = ring else {
            return Err(ApiError::plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "GitLab's keys are not configured on this server.",
            ));
        };
        let key = match ring.key(id).await {
            Ok(Some(key)) => key,
            Ok(None) => return Err(unauthorized("its key is not one the provider publishes")),
            Err(error) => {
                tracing::warn!(target: "tower_bearer::scanning", %error, "report not checked: the provider's keys cannot be fetched");
                return Err(ApiError::plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The provider's keys cannot be fetched; try again later.",
                ));
            }
        };
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .ok()
            .and_then(|der| p256::ecdsa::Signature::from_der(&der).ok());
        match signature {
            Some(signature) if key.verify(body, &signature).is_ok() => Ok(()),
            _ => Err(unauthorized("its signature does not match")),
        }
    }

    /// Whether `found` is one of our keys, revoking it if it is; a key revoked now gets
    /// the report's row in the activity log (`leaked`).
    async fn label(
        &self,
        found: &report::Match,
        report: &http::Request<()>,
    ) -> Result<Label, ApiError> {
        let typed = self
            .types
            .iter()
            .any(|(prefix, kind)| found.token.starts_with(prefix.as_str()) && *kind == found.kind);
        if !typed {
            return Ok(Label::FalsePositive);
        }
        let leak = LeakReport::new(found.url.as_deref(), found.source.as_deref());
        match self.registry.revoke_leaked(&found.token, &leak).await {
            Ok(LeakVerdict::Revoked { id, tenant }) => {
                #[cfg(feature = "activity")]
                if let Some(log) = self.registry.activity() {
                    let holder = crate::principal::Principal::builder(id, "", &tenant).build();
                    let outcome = crate::store::activity::Outcome::Leaked;
                    log.answered(report, &holder, log.now(), StatusCode::OK, outcome);
                }
                #[cfg(not(feature = "activity"))]
                let _ = (id, report, tenant);
                Ok(Label::TruePositive)
            }
            Ok(LeakVerdict::AlreadyRevoked { .. }) => Ok(Label::TruePositive),
            Ok(_) => Ok(Label::FalsePositive),
            Err(error) => {
                tracing::warn!(target: "tower_bearer::scanning", %error, "a reported key could not be checked");
                Err(ApiError::plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The token store cannot answer; try again later.",
                ))
            }
        }
    }
}
