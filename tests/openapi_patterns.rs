//! The constraints the OpenAPI document gives for a token's name and a scope accept
//! exactly what the API accepts: a client (or schemathesis) that generates values from the
//! document gets them accepted, and a value the document rules out is refused.

use std::sync::LazyLock;

use proptest::prelude::*;
use regex::Regex;
use serde_json::Value;
use tower_bearer::admin;
use tower_bearer::registry::IssueRequest;
use tower_bearer::scope::is_valid_scope;

/// A string schema of the document's components: a check of its pattern and lengths
/// (in characters, as JSON Schema counts them).
struct StringSchema {
    pattern: Regex,
    min_length: usize,
    max_length: usize,
}

impl StringSchema {
    fn of(component: &str) -> Self {
        let document = serde_json::to_value(admin::openapi()).unwrap();
        let schema: &Value = &document["components"]["schemas"][component];
        assert_eq!(schema["type"], "string", "{component}");
        let length = |name: &str, default| schema[name].as_u64().map_or(default, |n| n as usize);
        Self {
            pattern: Regex::new(schema["pattern"].as_str().unwrap()).unwrap(),
            min_length: length("minLength", 0),
            max_length: length("maxLength", usize::MAX),
        }
    }

    fn admits(&self, value: &str) -> bool {
        let length = value.chars().count();
        self.min_length <= length && length <= self.max_length && self.pattern.is_match(value)
    }
}

static TOKEN_NAME: LazyLock<StringSchema> = LazyLock::new(|| StringSchema::of("TokenName"));
static SCOPE_NAME: LazyLock<StringSchema> = LazyLock::new(|| StringSchema::of("ScopeName"));

/// Names made of what a name check can trip on: letters, spaces and other Unicode
/// whitespace, C0 and C1 control characters, DEL, and other scripts.
fn names() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "a", "Z", "7", " ", "\t", "\n", "\u{0}", "\u{1f}", "\u{7f}", "\u{85}", "\u{9f}", "\u{a0}",
        "\u{2003}", "\u{3000}", "é", "名", "😀", "<", "\"",
    ]);
    prop_oneof![
        prop::collection::vec(pieces, 0..12).prop_map(|pieces| pieces.concat()),
        // Around the length limit.
        (250usize..260, prop::sample::select(vec!["a", "名", " "]))
            .prop_map(|(n, piece)| piece.repeat(n)),
        any::<String>(),
    ]
}

fn scopes() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_.:*A-Z -]{0,12}",
        "[a-z]{1,8}(:[a-z0-9_.-]{0,8}){0,3}",
        (60usize..70).prop_map(|n| format!("a:{}", "b".repeat(n))),
        prop::sample::select(vec![
            "read", "write", "admin", "*", "Read", "read:", ":read"
        ])
        .prop_map(str::to_owned),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn the_documented_name_is_the_accepted_name(name in names()) {
        prop_assert_eq!(
            TOKEN_NAME.admits(&name),
            IssueRequest::new(&name, "acme").is_ok(),
            "{:?}", name
        );
    }

    #[test]
    fn the_documented_scope_is_the_accepted_scope(scope in scopes()) {
        prop_assert_eq!(SCOPE_NAME.admits(&scope), is_valid_scope(&scope), "{:?}", scope);
    }
}
