//! TLS pieces for the client-side tests: a CA made with rcgen, certificates it issues (valid or
//! expired), and small HTTPS servers on loopback that each run on their own thread (so a test
//! may block on the CLI while they answer).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A certificate authority for one test.
pub struct TestCa {
    /// The CA certificate (PEM).
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate and its key (PEM).
pub struct ServerCert {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PEM).
    pub key_pem: String,
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `localhost` and `127.0.0.1`, valid now.
    pub fn localhost(&self) -> ServerCert {
        self.issue(false)
    }

    /// A certificate for `localhost` and `127.0.0.1` that expired yesterday.
    pub fn expired_localhost(&self) -> ServerCert {
        self.issue(true)
    }

    fn issue(&self, expired: bool) -> ServerCert {
        let key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".into()])
            .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let now = time::OffsetDateTime::now_utc();
        if expired {
            params.not_before = now - time::Duration::days(30);
            params.not_after = now - time::Duration::days(1);
        } else {
            params.not_before = now - time::Duration::days(1);
            params.not_after = now + time::Duration::days(30);
        }
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
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
    /// Starts a responder with `cert`.
    pub fn start(
        cert: &ServerCert,
        answer: impl Fn(&Received) -> (u16, &'static str, Vec<u8>) + Send + Sync + 'static,
    ) -> Self {
        let config = server_config(cert);
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

/// A TLS-terminating proxy on loopback in front of `backend` (a plaintext `host:port`), on its
/// own thread: what airlock behind a TLS terminator looks like to a client.
pub struct TlsProxy {
    /// `https://localhost:PORT`.
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TlsProxy {
    /// Starts a proxy presenting `cert` and forwarding to `backend`.
    pub fn start(cert: &ServerCert, backend: &str) -> Self {
        let config = server_config(cert);
        let backend = backend.to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        listener.set_nonblocking(true).expect("nonblocking");
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
                        let (acceptor, backend) = (acceptor.clone(), backend.clone());
                        tokio::spawn(async move {
                            let Ok(mut tls) = acceptor.accept(tcp).await else {
                                return;
                            };
                            let Ok(mut plain) = tokio::net::TcpStream::connect(&backend).await
                            else {
                                return;
                            };
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
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
            url: format!("https://localhost:{port}"),
            stop: Some(stop),
        }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
