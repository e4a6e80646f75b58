//! HTTPS servers for the client-side tests (webhook receivers, JWKS issuers): on loopback, each
//! on its own thread (so a test may block while they answer), presenting a certificate from the
//! harness's [`TestPki`].

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::TestPki;

/// A server certificate chain and its key (PEM).
pub struct ServerCert {
    /// The chain (PEM).
    pub cert_pem: String,
    /// Its private key (PEM).
    pub key_pem: String,
}

impl ServerCert {
    /// A chain for `localhost` and `127.0.0.1` from `pki`, valid now.
    pub fn from(pki: &TestPki) -> Self {
        let (cert_pem, key_pem) = pki.server_pem(-1, 30);
        Self { cert_pem, key_pem }
    }
}

/// The PEM of `pki`'s root CA.
pub fn ca_pem(pki: &TestPki) -> String {
    std::fs::read_to_string(&pki.ca_cert).expect("CA file")
}

/// A rustls server configuration for `cert` (HTTP/1.1 only).
pub fn server_config(cert: &ServerCert) -> Arc<rustls::ServerConfig> {
    airlock_server::outbound_tls::install_crypto_provider();
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("certificate PEM");
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).expect("key PEM");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        airlock_server::outbound_tls::crypto_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A request an [`HttpsResponder`] received.
#[derive(Debug, Clone)]
pub struct Received {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The request target.
    pub path: String,
    /// The body.
    pub body: Vec<u8>,
}

type Answer = dyn Fn(&Received) -> (u16, &'static str, Vec<u8>) + Send + Sync;

/// An HTTPS server on loopback answering every request with `answer` (one request per
/// connection), recording what it received and how many handshakes failed.
pub struct HttpsResponder {
    /// `https://localhost:PORT`.
    pub url: String,
    /// The address it listens on.
    pub address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    failed_handshakes: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl HttpsResponder {
    /// Starts a responder with a certificate from `pki`.
    pub fn start(
        pki: &TestPki,
        answer: impl Fn(&Received) -> (u16, &'static str, Vec<u8>) + Send + Sync + 'static,
    ) -> Self {
        let config = server_config(&ServerCert::from(pki));
        let answer: Arc<Answer> = Arc::new(answer);
        let received = Arc::new(Mutex::new(Vec::new()));
        let failed_handshakes = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        listener.set_nonblocking(true).expect("nonblocking");
        let (seen, failures) = (received.clone(), failed_handshakes.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let serve = async {
                    loop {
                        let Ok((tcp, _)) = listener.accept().await else {
                            continue;
                        };
                        let (acceptor, answer, seen, failures) = (
                            acceptor.clone(),
                            answer.clone(),
                            seen.clone(),
                            failures.clone(),
                        );
                        tokio::spawn(async move {
                            let Ok(mut tls) = acceptor.accept(tcp).await else {
                                failures.fetch_add(1, Ordering::SeqCst);
                                return;
                            };
                            if let Some(request) = read_request(&mut tls).await {
                                let (status, content_type, body) = answer(&request);
                                seen.lock().unwrap().push(request);
                                let head = format!(
                                    "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\n\
                                     content-length: {}\r\nconnection: close\r\n\r\n",
                                    body.len()
                                );
                                let _ = tls.write_all(head.as_bytes()).await;
                                let _ = tls.write_all(&body).await;
                                let _ = tls.shutdown().await;
                            }
                        });
                    }
                };
                tokio::select! {
                    () = serve => {},
                    _ = stopped => {},
                }
            });
        });
        Self {
            url: format!("https://localhost:{}", address.port()),
            address,
            received,
            failed_handshakes,
            stop: Some(stop),
        }
    }

    /// The requests received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Handshakes that failed (e.g. the client did not trust the certificate).
    pub fn failed_handshakes(&self) -> usize {
        self.failed_handshakes.load(Ordering::SeqCst)
    }
}

impl Drop for HttpsResponder {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Reads one HTTP/1.1 request (head and a `content-length` body).
async fn read_request(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Option<Received> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buffer.len() > 1 << 20 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let length: usize = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Received { method, path, body })
}
