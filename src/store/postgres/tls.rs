//! TLS to PostgreSQL the way libpq reads a connection string: `sslmode` (`disable`,
//! `prefer` (the default), `require`, `verify-ca`, `verify-full`) and `sslrootcert` (a
//! PEM file of CA certificates; without it, the platform's roots), with rustls, for the
//! pool and the `LISTEN` connection alike.
//!
//! tokio-postgres itself knows only `disable`, `prefer` and `require` (and refuses the
//! others), so both parameters are taken out of the string here and turned into its
//! `SslMode` and a rustls configuration:
//!
//! | `sslmode` | encrypted | server certificate checked |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` | when the server offers it | no (as libpq; against `sslrootcert` when given) |
//! | `require` | always | no (as libpq; against `sslrootcert` when given) |
//! | `verify-ca` | always | chain to a trusted CA |
//! | `verify-full` | always | chain, and the host name |

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::StoreError;
use crate::tls::{platform_roots, provider};

/// A connection string's settings and the TLS connector its `sslmode` asks for.
pub(super) fn configure(
    url: &str,
) -> Result<(tokio_postgres::Config, MakeRustlsConnect), StoreError> {
    let (rest, mode, root_cert) = take_tls_parameters(url);
    let mut config = tokio_postgres::Config::from_str(&rest).map_err(StoreError::unavailable)?;
    let mode = mode.as_deref().unwrap_or("prefer");
    let (ssl_mode, check) = match mode {
        "disable" => (SslMode::Disable, Check::Nothing),
        "allow" | "prefer" => (SslMode::Prefer, Check::Nothing),
        "require" => (SslMode::Require, Check::Nothing),
        "verify-ca" => (SslMode::Require, Check::Chain),
        "verify-full" => (SslMode::Require, Check::ChainAndName),
        other => {
            return Err(StoreError::unavailable(format!(
                "sslmode={other}: expected disable, prefer, require, verify-ca or verify-full"
            )));
        }
    };
    // As libpq: with a root certificate file, `prefer` and `require` check the chain too.
    let check = match (check, &root_cert) {
        (Check::Nothing, Some(_)) => Check::Chain,
        (check, _) => check,
    };
    config.ssl_mode(ssl_mode);
    let tls = match ssl_mode {
        SslMode::Disable => client_config(Check::Nothing, RootCertStore::empty())?,
        _ => {
            let roots = match &root_cert {
                Some(path) => roots_from_file(Path::new(path))?,
                None if check == Check::Nothing => RootCertStore::empty(),
                None => platform_roots(),
            };
            client_config(check, roots)?
        }
    };
    Ok((config, MakeRustlsConnect::new(tls)))
}

/// What is checked of the server's certificate.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

/// `url` without its `sslmode` and `sslrootcert`, and their values. Both forms: a URL
/// (`postgres://…?sslmode=verify-full&sslrootcert=/ca.pem`) and `key=value` pairs.
fn take_tls_parameters(url: &str) -> (String, Option<String>, Option<String>) {
    let (mut mode, mut root) = (None, None);
    if url.contains("://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_owned(), None, None);
        };
        let mut kept = form_urlencoded::Serializer::new(String::new());
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "sslmode" => mode = Some(value.into_owned()),
                "sslrootcert" => root = Some(value.into_owned()),
                _ => {
                    kept.append_pair(&key, &value);
                }
            }
        }
        let kept = kept.finish();
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{kept}")
        };
        return (rest, mode, root);
    }
    let mut kept = Vec::new();
    for pair in url.split_whitespace() {
        match pair.split_once('=') {
            Some(("sslmode", value)) => mode = Some(value.trim_matches('\'').to_owned()),
            Some(("sslrootcert", value)) => root = Some(value.trim_matches('\'').to_owned()),
            _ => kept.push(pair),
        }
    }
    (kept.join(" "), mode, root)
}

fn client_config(check: Check, roots: RootCertStore) -> Result<ClientConfig, StoreError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(StoreError::unavailable)?;
    let chain = match check {
        Check::ChainAndName => {
            return Ok(builder.with_root_certificates(roots).with_no_client_auth());
        }
        Check::Chain => Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(StoreError::unavailable)?,
        ),
        Check::Nothing => None,
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Relaxed { chain, provider }))
        .with_no_client_auth();
    Ok(config)
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, StoreError> {
    let mut roots = RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(path).map_err(|error| {
        StoreError::unavailable(format!("sslrootcert {}: {error}", path.display()))
    })?;
    for certificate in certificates {
        let certificate = certificate.map_err(|error| {
            StoreError::unavailable(format!("sslrootcert {}: {error}", path.display()))
        })?;
        roots.add(certificate).map_err(|error| {
            StoreError::unavailable(format!("sslrootcert {}: {error}", path.display()))
        })?;
    }
    if roots.is_empty() {
        return Err(StoreError::unavailable(format!(
            "sslrootcert {}: no certificate in the file",
            path.display()
        )));
    }
    Ok(roots)
}

/// The platform's trusted roots (those it cannot read are skipped, and logged).
/// Less than `verify-full`: with a chain verifier (`verify-ca`, or a root file given to
/// `prefer`/`require`) the chain must lead to a trusted root but the name is not
/// checked; without one (`prefer`/`require` as libpq) the certificate is not checked.
/// The handshake's signatures are checked either way.
#[derive(Debug)]
struct Relaxed {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::take_tls_parameters;

    #[test]
    fn tls_parameters_are_taken_out_of_both_forms() {
        let (rest, mode, root) = take_tls_parameters(
            "postgres://app:pw@db/app?application_name=x&sslmode=verify-full&sslrootcert=%2Fca.pem",
        );
        assert_eq!(rest, "postgres://app:pw@db/app?application_name=x");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/ca.pem"));
        let (rest, mode, root) = take_tls_parameters("postgres://db/app?sslmode=require");
        assert_eq!(
            (rest.as_str(), mode.as_deref(), root),
            ("postgres://db/app", Some("require"), None)
        );
        let (rest, mode, root) =
            take_tls_parameters("host=db dbname=app sslmode=verify-ca sslrootcert=/ca.pem");
        assert_eq!(rest, "host=db dbname=app");
        assert_eq!(mode.as_deref(), Some("verify-ca"));
        assert_eq!(root.as_deref(), Some("/ca.pem"));
        let (rest, mode, _) = take_tls_parameters("postgres://db/app");
        assert_eq!((rest.as_str(), mode), ("postgres://db/app", None));
    }
}
