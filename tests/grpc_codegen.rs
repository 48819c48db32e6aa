//! The gRPC example's generated code (`examples/grpc/items.v1.rs`) is committed, so that
//! nobody needs `protoc`; this test regenerates it from `proto/items/v1/items.proto` with
//! protox (a pure-Rust protobuf compiler) and fails if the committed file is stale.
//! Run with `TOWER_BEARER_BLESS=1` to rewrite it.
#![cfg(feature = "grpc")]

use std::path::Path;

#[test]
fn committed_grpc_code_matches_the_proto() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let descriptors = protox::compile(
        [root.join("proto/items/v1/items.proto")],
        [root.join("proto")],
    )
    .expect("the proto compiles");
    let out = tempfile::tempdir().unwrap();
    tonic_prost_build::configure()
        .out_dir(out.path())
        .build_transport(false)
        .compile_fds(descriptors)
        .expect("code generation");
    let generated = std::fs::read_to_string(out.path().join("items.v1.rs")).unwrap();
    let committed_path = root.join("examples/grpc/items.v1.rs");
    if std::env::var_os("TOWER_BEARER_BLESS").is_some() {
        std::fs::write(&committed_path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == generated,
        "examples/grpc/items.v1.rs is stale: rerun with TOWER_BEARER_BLESS=1"
    );
}
