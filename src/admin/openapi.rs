//! The OpenAPI 3.1 document of the management API: request bodies and error bodies
//! (documentation types: requests are validated field by field, not deserialized into
//! them), and the Bearer security scheme.

use utoipa::openapi::RefOr;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, PartialSchema, ToSchema};

/// `POST /tokens`.
#[derive(ToSchema)]
#[schema(
    as = IssueTokenRequest,
    examples(
        json!({"name": "CI deploy key", "scopes": ["read", "write"], "expires_in_days": 90}),
        json!({
            "name": "Reporting export",
            "scopes": ["read"],
            "never_expires": true,
            "owner": "user_42",
            "metadata": {"team": "data"}
        })
    )
)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct CreateTokenBody {
    name: TokenName,
    /// Scopes to grant: `read`, `write`, `admin`, `*` or `resource:action`, only ones the
    /// calling token holds, at most 64.
    #[schema(max_items = 64)]
    scopes: Option<Vec<ScopeName>>,
    /// Days until expiry (at most 36500, or the lifetime policy).
    #[schema(minimum = 1, maximum = 36500)]
    expires_in_days: Option<u64>,
    /// The expiry instant (RFC 3339, in the future).
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
    /// A token that never expires (refused under a lifetime policy).
    never_expires: Option<bool>,
    /// The application user the token belongs to, 1 to 255 bytes.
    #[schema(min_length = 1, max_length = 255)]
    owner: Option<String>,
    /// The application's notes: a JSON object of at most 4 KiB.
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
    /// Requests per window, at most 4, with distinct names.
    #[schema(max_items = 4)]
    rate_limits: Option<Vec<RateLimitBody>>,
    /// A budget of uses; `null` or absent for unlimited.
    credits: Option<CreditsBody>,
    /// The networks the key may be used from: addresses or CIDR ranges, at most 64;
    /// empty or absent for anywhere.
    #[schema(max_items = 64)]
    allowed_ips: Option<Vec<String>>,
}

/// A rate limit: `limit` requests per `window_seconds`.
#[derive(ToSchema)]
#[schema(as = RateLimit, examples(json!({"name": "burst", "limit": 100, "window_seconds": 60})))]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct RateLimitBody {
    /// 1 to 32 of `a-z 0-9 _ -`, named in the `RateLimit` headers.
    #[schema(pattern = "^[a-z0-9_-]{1,32}$")]
    name: String,
    /// Requests per window.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    limit: u64,
    /// The window, in seconds (at most 31 days).
    #[schema(minimum = 1, maximum = 2_678_400)]
    window_seconds: u64,
}

/// A budget of uses, charged for each request that reaches the application.
#[derive(ToSchema)]
#[schema(as = Credits, examples(json!({"remaining": 1000, "refill": {"amount": 1000, "every": "day"}})))]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct CreditsBody {
    /// Uses left.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_u64)]
    remaining: u64,
    /// Set `remaining` back to `amount` every day or month (UTC); `null` never.
    refill: Option<RefillBody>,
}

/// A refill of credits.
#[derive(ToSchema)]
#[schema(as = Refill)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct RefillBody {
    /// What `remaining` becomes.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_u64)]
    amount: u64,
    /// `day` or `month`.
    #[schema(value_type = String, pattern = "^(day|month)$")]
    every: String,
}

/// `PATCH /tokens/{id}`: at least one field.
#[derive(ToSchema)]
#[schema(
    as = UpdateTokenRequest,
    min_properties = 1,
    examples(
        json!({"name": "CI deploy key (old)"}),
        json!({"scopes": ["read"], "expires_in_days": 30})
    )
)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct UpdateTokenBody {
    /// A new name.
    name: Option<TokenName>,
    /// New scopes, within the calling token's.
    #[schema(max_items = 64)]
    scopes: Option<Vec<ScopeName>>,
    /// An earlier expiry.
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
    /// An earlier expiry, in days from now.
    #[schema(minimum = 1, maximum = 36500)]
    expires_in_days: Option<u64>,
    /// New rate limits (`null` or `[]`: none).
    #[schema(max_items = 4)]
    rate_limits: Option<Vec<RateLimitBody>>,
    /// New credits, counted from now (`null`: unlimited).
    credits: Option<CreditsBody>,
    /// A new allow-list (`null` or `[]`: anywhere).
    #[schema(max_items = 64)]
    allowed_ips: Option<Vec<String>>,
}

/// `POST /tokens/{id}/rotate` (the body is optional).
#[derive(ToSchema)]
#[schema(as = RotateTokenRequest, examples(json!({"grace_seconds": 3600})))]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct RotateBody {
    /// Seconds the old token keeps working (at most a day).
    #[schema(minimum = 0, maximum = 86400)]
    grace_seconds: Option<u64>,
}

/// A token's name: 1 to 255 characters, not only whitespace, no control characters (the
/// API checks it with `trim` and `char::is_control`: C0, DEL and C1 are control).
pub(super) struct TokenName;

impl PartialSchema for TokenName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "1 to 255 characters, not only whitespace, no control characters.",
            ))
            .min_length(Some(1))
            .max_length(Some(255))
            .pattern(Some(
                r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$",
            ))
            .into()
    }
}

impl ToSchema for TokenName {}

/// A scope name, as `scope::is_valid_scope` has it.
pub(super) struct ScopeName;

impl PartialSchema for ScopeName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "`read`, `write`, `admin`, `*`, or `resource:action` (segments of lowercase \
                 ASCII letters, digits, `_`, `-` and `.`, separated by `:`), at most 64 bytes. \
                 A token grants only scopes the calling token holds, and custom scopes only \
                 when the application declared them.",
            ))
            .max_length(Some(64))
            .pattern(Some(
                r"^(read|write|admin|\*|[a-z0-9_.-]+(:[a-z0-9_.-]+)+)$",
            ))
            .into()
    }
}

impl ToSchema for ScopeName {}

/// The Bearer security scheme every route requires.
pub(super) struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token holding scope `admin`: `Authorization: Bearer <token>`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Which answer gives the id that another operation takes: `(operation, status, target
/// operation, where the id is in the answer)`. Clients that follow links (and
/// schemathesis' stateful phase) go from a token just issued to what can be done with
/// it, and from a key's sessions to revoking one; links whose target is not in the
/// document (a feature that is off) are left out.
const LINKS: &[(&str, &str, &str, &str)] = &[
    ("issueToken", "201", "getToken", ID),
    ("issueToken", "201", "updateToken", ID),
    ("issueToken", "201", "rotateToken", ID),
    ("issueToken", "201", "revokeToken", ID),
    ("issueToken", "201", "listTokenSessions", ID),
    ("issueToken", "201", "listTokenActivity", ID),
    ("rotateToken", "201", "getToken", ID),
    ("rotateToken", "201", "revokeToken", ID),
    ("getToken", "200", "updateToken", ID),
    ("createWebhookEndpoint", "201", "getWebhookEndpoint", ID),
    ("createWebhookEndpoint", "201", "updateWebhookEndpoint", ID),
    ("createWebhookEndpoint", "201", "rotateWebhookSecret", ID),
    ("createWebhookEndpoint", "201", "deleteWebhookEndpoint", ID),
    ("createWebhookEndpoint", "201", "listWebhookDeliveries", ID),
    ("updateToken", "200", "getToken", ID),
    (
        "listTokenSessions",
        "200",
        "revokeSession",
        "$response.body#/data/0/id",
    ),
];

/// The id of the token an answer describes.
const ID: &str = "$response.body#/id";

/// Adds [`LINKS`] to the responses they start from, each passing the `id` path parameter.
pub(super) fn link_operations(openapi: &mut utoipa::openapi::OpenApi) {
    let present: Vec<String> = operations_mut(openapi)
        .filter_map(|operation| operation.operation_id.clone())
        .collect();
    for operation in operations_mut(openapi) {
        let Some(from) = operation.operation_id.clone() else {
            continue;
        };
        for &(_, status, target, id) in LINKS.iter().filter(|link| link.0 == from) {
            if !present.iter().any(|present| present == target) {
                continue;
            }
            let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status) else {
                continue;
            };
            let link = LinkBuilder::new()
                .operation_id(target)
                .parameter("id", id)
                .build();
            response.links.insert(target.to_owned(), RefOr::T(link));
        }
    }
}

fn operations_mut(openapi: &mut utoipa::openapi::OpenApi) -> impl Iterator<Item = &mut Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.post,
            &mut item.patch,
            &mut item.put,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
    })
}
