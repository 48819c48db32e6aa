//! The providers' report, `[{"token", "type", "url", "source"}]`, and the feedback
//! answered for it, `[{"token_raw", "token_type", "label"}]`.

use serde::{Deserialize, Serialize};

/// The most matches one report may carry.
pub const MAX_MATCHES: usize = 1_000;
/// The largest report body, in bytes.
pub const MAX_BODY: usize = 1 << 20;

/// One match of a report.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Match {
    pub(crate) token: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) url: Option<String>,
    /// GitHub's `content`, `commit`, `pull_request_…`…; GitLab sends none.
    #[serde(default)]
    pub(crate) source: Option<String>,
}

/// Why a report body is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadReport {
    /// Not a JSON array of matches.
    Shape(String),
    /// More than [`MAX_MATCHES`] matches.
    TooMany,
}

/// Reads a report body.
pub(crate) fn parse(body: &[u8]) -> Result<Vec<Match>, BadReport> {
    let matches: Vec<Match> =
        serde_json::from_slice(body).map_err(|e| BadReport::Shape(e.to_string()))?;
    if matches.len() > MAX_MATCHES {
        return Err(BadReport::TooMany);
    }
    Ok(matches)
}

/// GitHub's feedback on one match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Feedback {
    pub(crate) token_raw: String,
    pub(crate) token_type: String,
    pub(crate) label: Label,
}

/// Whether a reported string is one of our credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Label {
    TruePositive,
    FalsePositive,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_of_both_providers_parse() {
        let github = br#"[{"token":"sk_live_x","type":"acme_api_key","url":"https://github.com/o/r/blob/1/a.txt","source":"content"}]"#;
        let matches = parse(github).unwrap();
        assert_eq!(matches[0].source.as_deref(), Some("content"));
        assert_eq!(matches[0].kind, "acme_api_key");
        let gitlab = br#"[{"token":"sk_live_x","type":"acme_api_key","url":"https://gitlab.com/o/r/-/blob/1/a.txt"}]"#;
        assert_eq!(parse(gitlab).unwrap()[0].source, None);
        assert!(matches!(parse(b"{}"), Err(BadReport::Shape(_))));
        assert!(matches!(
            parse(br#"[{"type":"x"}]"#),
            Err(BadReport::Shape(_))
        ));
        let many = format!("[{}]", vec![r#"{"token":"t","type":"x"}"#; 1_001].join(","));
        assert_eq!(parse(many.as_bytes()), Err(BadReport::TooMany));
    }

    #[test]
    fn feedback_is_githubs_shape() {
        let feedback = Feedback {
            token_raw: "sk_live_x".into(),
            token_type: "acme_api_key".into(),
            label: Label::TruePositive,
        };
        assert_eq!(
            serde_json::to_string(&[feedback]).unwrap(),
            r#"[{"token_raw":"sk_live_x","token_type":"acme_api_key","label":"true_positive"}]"#
        );
    }
}
