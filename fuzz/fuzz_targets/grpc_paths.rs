//! The gRPC per-method scope map's path matching: no path panics, a requirement is only
//! ever found for a path of a mapped method or service, and deny-unlisted denies exactly
//! what the plain map leaves open.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_bearer::grpc::{GrpcScopes, MethodRequirement};

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let scopes = GrpcScopes::new()
        .require("/items.v1.Items/*", "read")
        .unwrap()
        .require("/items.v1.Items/Create", "write")
        .unwrap()
        .require("/grpc.health.v1.Health/Check", "read")
        .unwrap();
    let strict = scopes.clone().deny_unlisted();
    match scopes.requirement(path) {
        MethodRequirement::Scope(scope) => {
            let mapped = path == "/items.v1.Items/Create"
                || path == "/grpc.health.v1.Health/Check"
                || path
                    .strip_prefix("/items.v1.Items/")
                    .is_some_and(|m| !m.is_empty() && !m.contains('/'));
            assert!(mapped, "{path:?} matched {scope:?}");
            assert_eq!(strict.requirement(path), MethodRequirement::Scope(scope));
        }
        MethodRequirement::Token => {
            assert_eq!(
                strict.requirement(path),
                MethodRequirement::Denied,
                "{path:?}"
            );
        }
        other => panic!("{other:?} without deny_unlisted"),
    }
});
