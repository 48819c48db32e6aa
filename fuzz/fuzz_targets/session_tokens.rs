//! Session access tokens (JWTs) through a registry that opened one session: no input
//! panics the signature, claims or cache path, and nothing but that session's token (or
//! the API key it was opened with) authenticates, whether the input is arbitrary or the
//! real token's header and payload with the input as signature, or the input as payload.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use tower_bearer::registry::IssueRequest;
use tower_bearer::session::{SessionConfig, SessionKeys};
use tower_bearer::{MemoryStore, Registry};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    registry: Registry,
    keys: SessionKeys,
    key: String,
    token: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // The key the committed seeds are signed with: forged tokens that pass the
        // signature check reach the store lookup, where they must fail.
        let keys = SessionKeys::new("fuzz", &[7u8; 32]).unwrap();
        let (registry, key, token) = runtime.block_on(async {
            let registry = Registry::builder(MemoryStore::new())
                .sessions(SessionConfig::new(keys.clone()))
                .build();
            let key = registry
                .issue(IssueRequest::new("fuzz", "acme").unwrap().scopes(["read"]).unwrap())
                .await
                .unwrap();
            let key = key.secret.expose_secret().to_owned();
            let session = registry.login(&key, Some("fuzz")).await.unwrap();
            let token = session.access_token.expose_secret().to_owned();
            (registry, key, token)
        });
        Fixture {
            runtime,
            registry,
            keys,
            key,
            token,
        }
    })
}

fn accepted(fixture: &Fixture, input: &str) -> bool {
    let _ = fixture.keys.verify(input, "tower-bearer");
    fixture
        .runtime
        .block_on(fixture.registry.verify(input))
        .is_ok()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let fixture = fixture();
    let real = fixture.token.as_str();
    if accepted(fixture, text) {
        assert!(
            text == real || text == fixture.key,
            "authenticated an input that is not the session's token: {text:?}"
        );
    }
    let (head, _) = real.rsplit_once('.').unwrap();
    let resigned = format!("{head}.{text}");
    if accepted(fixture, &resigned) {
        assert_eq!(resigned, real, "a foreign signature authenticated");
    }
    let header = real.split('.').next().unwrap();
    let signature = real.rsplit('.').next().unwrap();
    let repayloaded = format!("{header}.{}.{signature}", URL_SAFE_NO_PAD.encode(data));
    if accepted(fixture, &repayloaded) {
        assert_eq!(repayloaded, real, "a foreign payload authenticated");
    }
});
