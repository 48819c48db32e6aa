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
