//! Outbound HTTP for webhooks: the URL rule (HTTPS unless the configuration
//! explicitly allows plain HTTP, for testing) and the client (rustls with
//! the system's roots, plus an optional extra CA file for private CAs).

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use reqwest::Url;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url:?} is not a valid URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("{url:?} must use https (set allow_http = true only for testing)")]
    NotHttps { url: String },
    #[error("cannot read the CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the CA file {path} holds no usable certificate: {source}")]
    CaCert {
        path: PathBuf,
        source: reqwest::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Build(reqwest::Error),
}

/// Parses a webhook URL and applies the HTTPS rule.
pub fn webhook_url(url: &str, allow_http: bool) -> Result<Url, ClientError> {
    let parsed = Url::parse(url).map_err(|e| ClientError::BadUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(ClientError::NotHttps {
                url: url.to_string(),
            })
        }
        other => {
            return Err(ClientError::BadUrl {
                url: url.to_string(),
                reason: format!("scheme {other:?} is neither https nor http"),
            })
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ClientError::BadUrl {
            url: url.to_string(),
            reason: "no host".into(),
        });
    }
    Ok(parsed)
}

/// A client for one webhook: `timeout` bounds a whole request (connect,
/// send, answer); redirects are not followed (a webhook that moves must be
/// reconfigured, not silently sent elsewhere with its secrets).
pub fn build(timeout: Duration, ca_file: Option<&Path>) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("switchback/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|source| ClientError::CaFile {
            path: path.to_owned(),
            source,
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| ClientError::CaCert {
                path: path.to_owned(),
                source,
            })?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(ClientError::Build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_is_required_unless_http_is_allowed() {
        assert!(webhook_url("https://crm.example/hook", false).is_ok());
        assert!(matches!(
            webhook_url("http://crm.example/hook", false),
            Err(ClientError::NotHttps { .. })
        ));
        assert!(webhook_url("http://127.0.0.1:9000/hook", true).is_ok());
        for bad in ["ftp://crm.example/x", "not a url", "https://"] {
            assert!(
                matches!(webhook_url(bad, true), Err(ClientError::BadUrl { .. })),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let err = build(
            Duration::from_secs(1),
            Some(Path::new("/nonexistent/ca.pem")),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
