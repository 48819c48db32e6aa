//! What every TLS client of the crate shares (PostgreSQL connections, the secret
//! scanners' key documents): rustls with ring, and the platform's root certificates.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;

/// ring: no C toolchain beyond what ring needs, one provider for every client.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The platform's root certificates; those that cannot be read are warned about and left
/// out.
pub(crate) fn platform_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(target: "tower_bearer::tls", %error, "a platform root certificate could not be read");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    tracing::debug!(target: "tower_bearer::tls", added, ignored, "platform root certificates");
    roots
}

/// An HTTP client of our own (secret scanners' key documents, webhook deliveries): rustls
/// with ring and the platform's roots, HTTP/2 or 1.1, no redirect followed.
#[cfg(any(feature = "secret-scanning", feature = "webhooks"))]
pub(crate) fn http_client() -> reqwest::ClientBuilder {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(platform_roots())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tower-bearer/", env!("CARGO_PKG_VERSION")))
}
