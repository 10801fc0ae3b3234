//! Outbound TLS to trunk peers (RFC 3261 §26.2.1, RFC 5922 §7): the
//! client side the switch uses when it opens a connection of its own to a
//! peer with `transport = "tls"`.
//!
//! The peer's certificate is verified by default against the system's trust
//! roots plus the peer's own `ca_file`, for the host name the peer is
//! configured with (RFC 5922: the domain the request is for, not an SRV
//! target). `tls_verify = false` accepts any certificate; it is an explicit
//! choice the driver logs at start. It never reads peer data itself: the
//! handshake runs in the connection task (`stream::connect_stream`).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_rustls::TlsConnector;

#[derive(Debug, thiserror::Error)]
pub enum TlsClientError {
    #[error("ca_file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("no trusted root certificate: the system has none and no ca_file is given")]
    NoRoots,
    #[error("{0:?} is not a TLS server name")]
    ServerName(String),
    #[error("tls client: {0}")]
    Config(#[from] rustls::Error),
}

/// How the switch opens TLS to one peer: its connector and the name its
/// certificate must carry.
#[derive(Clone)]
pub struct TlsTarget {
    pub connector: TlsConnector,
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTarget")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's roots, read once per process (the read walks a folder).
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: std::sync::OnceLock<Vec<CertificateDer<'static>>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "reading the system's trust roots");
        }
        found.certs
    })
}

/// A target for `server_name` (a host name or an IP literal). `ca_file`
/// adds trusted roots; `verify = false` accepts any certificate.
pub fn tls_target(
    server_name: &str,
    ca_file: Option<&Path>,
    verify: bool,
) -> Result<TlsTarget, TlsClientError> {
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|_| TlsClientError::ServerName(server_name.to_string()))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        // A system root rustls cannot use is skipped, not fatal.
        let _ = roots.add_parsable_certificates(system_roots().iter().cloned());
        if let Some(path) = ca_file {
            use rustls_pki_types::pem::PemObject;
            let ca_err = |message: String| TlsClientError::CaFile {
                path: path.display().to_string(),
                message,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| ca_err(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_err("no certificate in the file".into()));
            }
            for c in certs {
                roots.add(c).map_err(|e| ca_err(e.to_string()))?;
            }
        }
        if roots.is_empty() {
            return Err(TlsClientError::NoRoots);
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
            .with_no_client_auth()
    };
    Ok(TlsTarget {
        connector: TlsConnector::from(Arc::new(config)),
        server_name: name,
    })
}

/// `tls_verify = false`: any certificate is taken; the handshake's
/// signatures are still checked, so the session is at least with the holder
/// of the key it presented.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_and_ca_files_are_typed_errors() {
        assert!(matches!(
            tls_target("not a name", None, true),
            Err(TlsClientError::ServerName(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert!(matches!(
            tls_target("trunk.example.com", Some(&empty), true),
            Err(TlsClientError::CaFile { .. })
        ));
        assert!(matches!(
            tls_target(
                "trunk.example.com",
                Some(&dir.path().join("absent.pem")),
                true
            ),
            Err(TlsClientError::CaFile { .. })
        ));
        assert!(tls_target("192.0.2.1", None, false).is_ok());
    }
}
