//! Token decoding in every format, through a registry that issued one token of each: no
//! input panics, and no input that is not one of those tokens (in one of its accepted
//! spellings) authenticates.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tower_bearer::registry::IssueRequest;
use tower_bearer::token::{Formats, IssueFormat};
use tower_bearer::{MemoryStore, Registry};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    registry: Registry,
    /// The issued plaintexts.
    issued: Vec<String>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (registry, issued) = runtime.block_on(async {
            let formats = Formats::default().sanctum().account();
            let mut issued = Vec::new();
            let store = MemoryStore::new();
            for format in [IssueFormat::Prefixed, IssueFormat::Sanctum] {
                let registry = Registry::builder(store.clone())
                    .formats(formats.clone())
                    .issue_format(format)
                    .build();
                let token = registry
                    .issue(IssueRequest::new("fuzz", "acme").unwrap())
                    .await
                    .unwrap();
                issued.push(token.secret.expose_secret().to_owned());
            }
            (Registry::builder(store).formats(formats).build(), issued)
        });
        Fixture {
            runtime,
            registry,
            issued,
        }
    })
}

/// The key part an input shares with an issued token, if any: the whole prefixed token,
/// the secret after `|`, or the key inside account credentials.
fn credential(text: &str) -> String {
    use base64::Engine as _;
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    for engine in engines {
        if let Ok(decoded) = engine.decode(text) {
            if let Ok(decoded) = String::from_utf8(decoded) {
                if let Some((_, key)) = decoded.split_once(':') {
                    return key.to_owned();
                }
            }
        }
    }
    text.to_owned()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let fixture = fixture();
    if fixture
        .runtime
        .block_on(fixture.registry.verify(text))
        .is_ok()
    {
        assert!(
            fixture.issued.contains(&credential(text)),
            "authenticated an input that is not an issued token: {text:?}"
        );
    }
});
