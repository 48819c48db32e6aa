//! The OpenAPI 3.1 document of the two secret scanning routes (documentation types:
//! reports are read as [`report`](super::report) says, not deserialized into these).

use utoipa::ToSchema;

/// One match of a provider's report.
#[derive(ToSchema)]
#[schema(
    as = LeakedMatch,
    examples(json!({
        "token": "sk_live_…",
        "type": "tower_bearer_api_key",
        "url": "https://github.com/octo/demo/blob/4b2c/config.yml",
        "source": "content"
    }))
)]
#[allow(dead_code)]
pub(super) struct LeakedMatch {
    /// The string found.
    token: String,
    /// The token type it was registered as.
    #[serde(rename = "type")]
    kind: String,
    /// Where it was found.
    url: Option<String>,
    /// GitHub's kind of place (`content`, `commit`, `pull_request_…`, `npm`…); GitLab
    /// sends none.
    source: Option<String>,
}

/// The answer about one match: GitHub's feedback format.
#[derive(ToSchema)]
#[schema(as = LeakFeedback)]
#[allow(dead_code)]
pub(super) struct LeakFeedback {
    /// The reported string, as reported.
    token_raw: String,
    /// Its reported type.
    token_type: String,
    /// `true_positive`: one of our keys (revoked now, or before); `false_positive`:
    /// not one of ours.
    #[schema(pattern = "^(true_positive|false_positive)$")]
    label: String,
}
