//! HTTPS: a listener that hands axum only connections whose TLS handshake
//! has finished.
//!
//! Handshakes run in their own tasks, each bounded in time and in number, so
//! a client that connects and sends nothing delays no one else; axum's
//! accept loop only ever sees ready streams. The accepting task ends when
//! the listener is dropped (the server stopped).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further connections wait to be accepted.
const MAX_HANDSHAKES: usize = 256;

type Ready = (TlsStream<TcpStream>, SocketAddr);

pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<Ready>,
}

impl TlsListener {
    /// Starts accepting on `listener`; must be called inside a runtime.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
        Ok(TlsListener { local, ready })
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, tx: mpsc::Sender<Ready>) {
    let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            _ = tx.closed() => return,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Like axum's own loop: out of descriptors and the like pass;
                // a short pause keeps the loop from spinning meanwhile.
                tracing::warn!(error = %e, "https accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send((stream, remote)).await;
                }
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "https handshake failed"),
                Err(_) => tracing::debug!(%remote, "https handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accepting task only ends once this listener is dropped,
            // so this is unreachable; waiting forever is the safe answer.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{PrivateKeyDer, ServerName};
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    use super::super::testkit::{accepting, raw_request, TEST_KEY};

    fn server_config(cert: &rcgen::CertifiedKey<rcgen::KeyPair>) -> Arc<rustls::ServerConfig> {
        let key =
            PrivateKeyDer::from_pem_slice(cert.signing_key.serialize_pem().as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        Arc::new(config)
    }

    fn client(cert: &rcgen::CertifiedKey<rcgen::KeyPair>) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    #[tokio::test]
    async fn the_api_answers_over_tls_and_a_silent_client_blocks_no_one() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let h = accepting();
        let (stop, stopped) = oneshot::channel::<()>();
        let (addr, server) = super::super::bind(
            "127.0.0.1:0".parse().unwrap(),
            h.state,
            Some(server_config(&cert)),
            async move {
                let _ = stopped.await;
            },
        )
        .await
        .unwrap();
        let server = tokio::spawn(server);

        // A client that connects and never says hello must not hold the
        // accept loop up for the next one.
        let _silent = TcpStream::connect(addr).await.unwrap();

        let connector = client(&cert);
        let name = ServerName::try_from("localhost").unwrap();
        let round_trip = async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let tls = connector.connect(name.clone(), tcp).await.unwrap();
            let req = format!(
                "GET /v1/calls/c1 HTTP/1.1\r\nHost: localhost\r\nX-API-Key: {TEST_KEY}\r\nConnection: close\r\n\r\n"
            );
            let (status, mut body) = raw_request(tls, &req).await;
            let mut text = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut body, &mut text)
                .await
                .unwrap();
            (status, text)
        };
        let (status, body) = tokio::time::timeout(Duration::from_secs(10), round_trip)
            .await
            .expect("no answer over TLS");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"id\":\"c1\""), "{body}");

        // Plain HTTP on the TLS port gets no HTTP answer.
        let mut plain = TcpStream::connect(addr).await.unwrap();
        plain
            .write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::io::AsyncReadExt::read_to_end(&mut plain, &mut buf),
        )
        .await
        .expect("plain connection not closed");
        assert!(read.is_err() || !buf.starts_with(b"HTTP/1.1 200"));

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("server did not stop")
            .unwrap();
    }
}
