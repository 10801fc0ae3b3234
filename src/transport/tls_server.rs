//! The server side of TLS (RFC 3261 §26.2.1, RFC 5630): the acceptor a
//! profile's TLS listener and the HTTPS API are built from, loaded once at
//! start-up from PEM files. No I/O after loading; the listener is
//! `stream.rs`'s.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

/// Why a certificate and key did not make an acceptor.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("{}: {source}", path.display())]
    Pem {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds a TLS acceptor from PEM certificate chain and key files.
pub fn load_tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsSetupError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let pem = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsSetupError::Pem { path, source }
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(pem(cert))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(pem(key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
