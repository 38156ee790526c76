//! TLS on the client and peer ports, with rustls, named and behaving as etcd's flags do.
//!
//! Client port: `https://` in `--listen-client-urls` serves gRPC and the HTTP/JSON gateway over
//! TLS on the one port (ALPN offers `h2` and `http/1.1`), with `--cert-file`/`--key-file`. With
//! `--client-cert-auth` a client must present a certificate signed by `--trusted-ca-file`, or
//! its handshake fails. The verified certificate's Common Name is attached to every request of
//! the connection as a [`ClientTlsInfo`] extension ([`common_name`] reads it): that name is the
//! user the request runs as, as in etcd (the Auth service turns it into
//! `engine::auth::Credentials::User`; a token, when one is sent, takes precedence as in etcd).
//! JSON clients of the gateway get the same: the gateway passes the extension on to the call.
//!
//! Peer port: `https://` in `--listen-peer-urls` wraps the peer transport's connections in TLS
//! with `--peer-cert-file`/`--peer-key-file`; with `--peer-client-cert-auth` a dialling peer
//! must present a certificate signed by `--peer-trusted-ca-file`. A member with peer TLS dials
//! every peer with TLS, presenting its peer certificate and verifying the peer's against
//! `--peer-trusted-ca-file` for the IP address the peer URL resolves to (so peer certificates
//! need an IP SAN for it; a DNS-only certificate is refused).
//!
//! Leader dialling: a follower passes lease keep-alives and TTL queries to the leader's client
//! URL (`LeaderDialer`); an `https://` one is dialled with TLS, the leader's certificate verified
//! against `--trusted-ca-file` for the URL's host and this member's `--cert-file` presented.
//! Without `--trusted-ca-file` such a request fails as `Unavailable`, naming the flag.
//!
//! Certificate flags with an `http://` URL are ignored with a warning, as etcd does ("scheme is
//! HTTP while key and cert files are present"). An `https://` URL without the certificate and
//! key, a missing or unreadable file, PEM without a certificate or key, a key that does not
//! match its certificate, and client-cert auth without a trusted CA are errors naming the flag
//! and the file. Under madsim there is no TLS: TLS flags are refused with an error.

use std::path::PathBuf;

/// The files and switches of one side's TLS (client or peer), as etcd's flags give them.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    /// `--cert-file` (`--peer-cert-file`): the PEM certificate chain this member serves.
    pub cert_file: Option<PathBuf>,
    /// `--key-file` (`--peer-key-file`): its PEM private key.
    pub key_file: Option<PathBuf>,
    /// `--trusted-ca-file` (`--peer-trusted-ca-file`): PEM CA certificates that sign the other
    /// side's certificates.
    pub trusted_ca_file: Option<PathBuf>,
    /// `--client-cert-auth` (`--peer-client-cert-auth`): the other side must present a
    /// certificate signed by the trusted CA.
    pub client_cert_auth: bool,
}

impl TlsFiles {
    /// Whether any TLS flag is set.
    pub fn any(&self) -> bool {
        self.cert_file.is_some()
            || self.key_file.is_some()
            || self.trusted_ca_file.is_some()
            || self.client_cert_auth
    }
}

/// The Common Name of a client certificate the TLS acceptor verified against
/// `--trusted-ca-file` (only under `--client-cert-auth`): the user the request runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCertCommonName(pub String);

/// What the client port's TLS acceptor knows of a connection; tonic attaches it to every
/// request of the connection as an extension (`request.extensions().get::<ClientTlsInfo>()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTlsInfo {
    /// The client's address.
    pub remote_address: Option<std::net::SocketAddr>,
    /// The verified client certificate's Common Name, if client-cert auth verified one.
    pub common_name: Option<PeerCertCommonName>,
}

/// The verified client certificate's Common Name of the connection `request` came on, if any.
/// Always `None` on a plain connection, without `--client-cert-auth`, and under madsim.
pub fn common_name<T>(request: &tonic::Request<T>) -> Option<&str> {
    #[cfg(not(madsim))]
    {
        request
            .extensions()
            .get::<ClientTlsInfo>()
            .and_then(|info| info.common_name.as_ref())
            .map(|name| name.0.as_str())
    }
    #[cfg(madsim)]
    {
        let _ = request;
        None
    }
}

/// Whether the first of a comma-separated URL list is `https://`.
pub fn is_https(urls: &str) -> bool {
    urls.split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .starts_with("https://")
}

/// Checks one side's flags against its URL's scheme: `https` needs a certificate and key,
/// client-cert auth needs a trusted CA. Returns whether the side serves TLS. `prefix` is `""`
/// or `"peer-"`, `url_flag` the flag holding the URL.
pub fn check_side(
    files: &TlsFiles,
    prefix: &str,
    url_flag: &str,
    urls: &str,
) -> Result<bool, String> {
    if !is_https(urls) {
        if files.any() {
            tracing::warn!(
                "{url_flag} {urls}: the scheme is http while --{prefix}cert-file and related \
                 flags are set; they are ignored (as etcd does)"
            );
        }
        return Ok(false);
    }
    if cfg!(madsim) {
        return Err(format!(
            "{url_flag} {urls}: TLS is not available under madsim; use an http:// URL"
        ));
    }
    if files.cert_file.is_none() || files.key_file.is_none() {
        return Err(format!(
            "{url_flag} {urls}: an https URL needs --{prefix}cert-file and --{prefix}key-file"
        ));
    }
    if files.client_cert_auth && files.trusted_ca_file.is_none() {
        return Err(format!(
            "--{prefix}client-cert-auth needs --{prefix}trusted-ca-file (the CA that signs \
             the certificates to accept)"
        ));
    }
    Ok(true)
}

#[cfg(not(madsim))]
pub(crate) use real::*;

#[cfg(not(madsim))]
mod real {
    use std::net::SocketAddr;
    use std::path::Path;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::ReceiverStream;

    use super::{ClientTlsInfo, PeerCertCommonName, TlsFiles};

    /// How long a client or peer may take over its handshake before it is dropped.
    const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
    /// Handshaken client connections waiting for the server to take them.
    const ACCEPTED_QUEUE_COUNT_MAX: usize = 64;

    /// rustls over *ring*: it builds with a C compiler alone (aws-lc-rs needs CMake), and
    /// 0.23.48's deprecation of it is about post-quantum key exchange, which neither etcd 3.4
    /// nor its clients offer.
    #[allow(deprecated)]
    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn read(flag: &str, path: &Path) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|error| format!("{flag} {}: {error}", path.display()))
    }

    /// The certificates of a PEM file; an error names the flag and file.
    pub(crate) fn load_certs(
        flag: &str,
        path: &Path,
    ) -> Result<Vec<CertificateDer<'static>>, String> {
        let bytes = read(flag, path)?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("{flag} {}: not PEM certificates: {error}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "{flag} {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file",
                path.display()
            ));
        }
        Ok(certs)
    }

    /// The private key of a PEM file; an error names the flag and file.
    pub(crate) fn load_key(flag: &str, path: &Path) -> Result<PrivateKeyDer<'static>, String> {
        let bytes = read(flag, path)?;
        PrivateKeyDer::from_pem_slice(&bytes)
            .map_err(|error| format!("{flag} {}: no PEM private key: {error}", path.display()))
    }

    fn roots(flag: &str, path: &Path) -> Result<rustls::RootCertStore, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in load_certs(flag, path)? {
            roots.add(cert).map_err(|error| {
                format!("{flag} {}: not a CA certificate: {error}", path.display())
            })?;
        }
        Ok(roots)
    }

    fn flag(prefix: &str, name: &str) -> String {
        format!("--{prefix}{name}")
    }

    /// The server side of one TLS side, checked: the key matches the certificate, the CA parses.
    pub(crate) fn server_config(
        files: &TlsFiles,
        prefix: &str,
    ) -> Result<Arc<rustls::ServerConfig>, String> {
        let cert_flag = flag(prefix, "cert-file");
        let key_flag = flag(prefix, "key-file");
        let cert_path = files
            .cert_file
            .as_deref()
            .ok_or(format!("{cert_flag} is needed"))?;
        let key_path = files
            .key_file
            .as_deref()
            .ok_or(format!("{key_flag} is needed"))?;
        let certs = load_certs(&cert_flag, cert_path)?;
        let key = load_key(&key_flag, key_path)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS: {error}"))?;
        let builder = match (&files.trusted_ca_file, files.client_cert_auth) {
            (Some(ca), true) => {
                let ca_flag = flag(prefix, "trusted-ca-file");
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots(&ca_flag, ca)?),
                    provider(),
                )
                .build()
                .map_err(|error| format!("{ca_flag} {}: {error}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(certs, key).map_err(|error| {
            format!(
                "{key_flag} {} does not fit {cert_flag} {}: {error}",
                key_path.display(),
                cert_path.display()
            )
        })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The dialling side of peer TLS: presents this member's peer certificate, trusts
    /// `--peer-trusted-ca-file`.
    pub(crate) fn peer_client_config(
        files: &TlsFiles,
    ) -> Result<Arc<rustls::ClientConfig>, String> {
        let ca = files.trusted_ca_file.as_deref().ok_or(
            "an https peer URL needs --peer-trusted-ca-file (the CA that signs the peers' certificates)",
        )?;
        let roots = roots("--peer-trusted-ca-file", ca)?;
        let certs = load_certs(
            "--peer-cert-file",
            files
                .cert_file
                .as_deref()
                .ok_or("--peer-cert-file is needed")?,
        )?;
        let key = load_key(
            "--peer-key-file",
            files
                .key_file
                .as_deref()
                .ok_or("--peer-key-file is needed")?,
        )?;
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS: {error}"))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|error| format!("--peer-key-file does not fit --peer-cert-file: {error}"))?;
        Ok(Arc::new(config))
    }

    /// How a follower reaches the leader's client URL, to pass on lease keep-alives and TTL
    /// queries (leader-local in the engine): one lazily connected channel per URL, kept. An
    /// `https` URL is dialled with TLS as etcd's own clients of the client port are: the
    /// leader's certificate verified against `--trusted-ca-file` for the URL's host, this
    /// member's `--cert-file`/`--key-file` presented (the leader may ask under
    /// `--client-cert-auth`).
    #[derive(Clone)]
    pub(crate) struct LeaderDialer {
        /// `None` when there is no `--trusted-ca-file` to verify the leader with.
        tls: Option<tokio_rustls::TlsConnector>,
        /// Shared by clones.
        pub(super) channels: Arc<std::sync::Mutex<LeaderChannels>>,
    }

    type LeaderChannels = std::collections::BTreeMap<String, tonic::transport::Channel>;

    impl core::fmt::Debug for LeaderDialer {
        fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            formatter
                .debug_struct("LeaderDialer")
                .field("tls", &self.tls.is_some())
                .finish_non_exhaustive()
        }
    }

    impl LeaderDialer {
        /// A dialler with the client port's files (`--cert-file`, `--key-file`,
        /// `--trusted-ca-file`); errors name the flag and file.
        pub(crate) fn load(files: &TlsFiles) -> Result<LeaderDialer, String> {
            let tls = match &files.trusted_ca_file {
                None => None,
                Some(ca) => {
                    let builder = rustls::ClientConfig::builder_with_provider(provider())
                        .with_safe_default_protocol_versions()
                        .map_err(|error| format!("TLS: {error}"))?
                        .with_root_certificates(roots("--trusted-ca-file", ca)?);
                    let mut config = match (&files.cert_file, &files.key_file) {
                        (Some(cert), Some(key)) => builder
                            .with_client_auth_cert(
                                load_certs("--cert-file", cert)?,
                                load_key("--key-file", key)?,
                            )
                            .map_err(|error| {
                                format!("--key-file does not fit --cert-file: {error}")
                            })?,
                        _ => builder.with_no_client_auth(),
                    };
                    config.alpn_protocols = vec![b"h2".to_vec()];
                    Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
                }
            };
            Ok(LeaderDialer {
                tls,
                channels: Arc::default(),
            })
        }

        /// The channel to `url` (connected on first use, reconnected by tonic as needed).
        pub(crate) fn channel(&self, url: &str) -> Result<tonic::transport::Channel, String> {
            let mut channels = self.channels.lock().expect("never poisoned");
            if let Some(channel) = channels.get(url) {
                return Ok(channel.clone());
            }
            let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
                .map_err(|error| format!("{url}: {error}"))?
                .connect_timeout(HANDSHAKE_TIMEOUT);
            let channel = if super::is_https(url) {
                let connector = self.tls.clone().ok_or_else(|| {
                    format!(
                        "{url}: dialling an https leader needs --trusted-ca-file (the CA that \
                         signs the members' client certificates)"
                    )
                })?;
                endpoint.connect_with_connector_lazy(tower::service_fn(move |uri| {
                    tls_dial(connector.clone(), uri)
                }))
            } else {
                endpoint.connect_lazy()
            };
            channels.insert(url.to_string(), channel.clone());
            Ok(channel)
        }
    }

    /// A TLS connection to `uri`'s host and port, the certificate verified for its host.
    async fn tls_dial(
        connector: tokio_rustls::TlsConnector,
        uri: tonic::codegen::http::Uri,
    ) -> std::io::Result<hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>> {
        let host = uri
            .host()
            .ok_or_else(|| std::io::Error::other(format!("{uri}: no host")))?;
        let port = uri.port_u16().unwrap_or(443);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|error| std::io::Error::other(format!("{uri}: {error}")))?;
        let stream = TcpStream::connect((host, port)).await?;
        let _ = stream.set_nodelay(true);
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, stream))
            .await
            .map_err(|_| std::io::Error::other("TLS handshake with the leader timed out"))??;
        Ok(hyper_util::rt::TokioIo::new(stream))
    }

    /// The Common Name of a DER certificate, if it has one.
    pub(crate) fn certificate_common_name(der: &[u8]) -> Option<String> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
        let name = certificate.subject().iter_common_name().next()?;
        name.as_str().ok().map(str::to_string)
    }

    /// A client connection after its TLS handshake, carrying what tonic attaches to requests.
    pub(crate) struct ClientTlsStream {
        inner: tokio_rustls::server::TlsStream<TcpStream>,
        info: ClientTlsInfo,
    }

    impl tonic::transport::server::Connected for ClientTlsStream {
        type ConnectInfo = ClientTlsInfo;

        fn connect_info(&self) -> ClientTlsInfo {
            self.info.clone()
        }
    }

    impl AsyncRead for ClientTlsStream {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for ClientTlsStream {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// The client port's connections after their handshakes. Each handshake runs in its own
    /// task, so a slow or hostile client cannot hold up the others; a failed one (no
    /// certificate under client-cert auth, an untrusted one) is logged and dropped.
    pub(crate) type ClientIncoming = ReceiverStream<Result<ClientTlsStream, std::io::Error>>;

    /// Accepts TLS clients on `listener` with `config`.
    pub(crate) fn client_incoming(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        client_cert_auth: bool,
    ) -> ClientIncoming {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (accepted, incoming) = mpsc::channel(ACCEPTED_QUEUE_COUNT_MAX);
        tokio::spawn(async move {
            loop {
                let (stream, remote) = match listener.accept().await {
                    Ok(connection) => connection,
                    Err(error) => {
                        tracing::warn!(%error, "accepting a client failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if accepted.is_closed() {
                    return;
                }
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let accepted = accepted.clone();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    let inner = match handshake {
                        Ok(Ok(inner)) => inner,
                        Ok(Err(error)) => {
                            tracing::warn!(client = %remote, %error, "client TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::warn!(client = %remote, "client TLS handshake timed out");
                            return;
                        }
                    };
                    let common_name = client_cert_auth
                        .then(|| inner.get_ref().1.peer_certificates())
                        .flatten()
                        .and_then(|chain| chain.first())
                        .and_then(|leaf| certificate_common_name(leaf))
                        .map(PeerCertCommonName);
                    let info = ClientTlsInfo {
                        remote_address: Some(remote),
                        common_name,
                    };
                    let _ = accepted.send(Ok(ClientTlsStream { inner, info })).await;
                });
            }
        });
        ReceiverStream::new(incoming)
    }

    /// Peer TLS: the acceptor for the peer port (an https peer URL) and the dialler.
    #[derive(Clone)]
    pub(crate) struct PeerTls {
        acceptor: tokio_rustls::TlsAcceptor,
        connector: tokio_rustls::TlsConnector,
    }

    impl core::fmt::Debug for PeerTls {
        fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            formatter.write_str("PeerTls")
        }
    }

    impl PeerTls {
        /// Loads peer TLS from the `--peer-*` flags.
        pub(crate) fn load(files: &TlsFiles) -> Result<PeerTls, String> {
            Ok(PeerTls {
                acceptor: tokio_rustls::TlsAcceptor::from(server_config(files, "peer-")?),
                connector: tokio_rustls::TlsConnector::from(peer_client_config(files)?),
            })
        }
    }

    /// A peer connection, plain or TLS.
    pub(crate) trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send {}
    impl<T: AsyncRead + AsyncWrite + Unpin + Send> PeerIo for T {}

    /// A peer connection of either kind.
    pub(crate) type PeerStream = Box<dyn PeerIo>;

    /// An accepted peer connection, after the TLS handshake when peer TLS is on.
    pub(crate) async fn peer_accept(
        tls: Option<&PeerTls>,
        stream: TcpStream,
    ) -> std::io::Result<PeerStream> {
        match tls {
            None => Ok(Box::new(stream)),
            Some(tls) => {
                let accept = tls.acceptor.accept(stream);
                let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, accept)
                    .await
                    .map_err(|_| std::io::Error::other("peer TLS handshake timed out"))??;
                Ok(Box::new(stream))
            }
        }
    }

    /// A dialled peer connection, after the TLS handshake (verifying the peer's certificate
    /// for `address`'s IP) when peer TLS is on.
    pub(crate) async fn peer_dial(
        tls: Option<&PeerTls>,
        stream: TcpStream,
        address: SocketAddr,
    ) -> std::io::Result<PeerStream> {
        match tls {
            None => Ok(Box::new(stream)),
            Some(tls) => {
                let name = ServerName::IpAddress(address.ip().into());
                let connect = tls.connector.connect(name, stream);
                let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, connect)
                    .await
                    .map_err(|_| std::io::Error::other("peer TLS handshake timed out"))??;
                Ok(Box::new(stream))
            }
        }
    }
}

/// Under madsim there is no TLS: peer connections are the simulated sockets themselves.
#[cfg(madsim)]
mod simulated {
    use std::net::SocketAddr;
    use tokio::net::TcpStream;

    /// Never constructed under madsim (TLS flags are refused).
    #[derive(Clone, Debug)]
    pub(crate) enum PeerTls {}

    /// A peer connection.
    pub(crate) type PeerStream = TcpStream;

    /// The connection as accepted.
    pub(crate) async fn peer_accept(
        _tls: Option<&PeerTls>,
        stream: TcpStream,
    ) -> std::io::Result<PeerStream> {
        Ok(stream)
    }

    /// The connection as dialled.
    pub(crate) async fn peer_dial(
        _tls: Option<&PeerTls>,
        stream: TcpStream,
        _address: SocketAddr,
    ) -> std::io::Result<PeerStream> {
        Ok(stream)
    }
}

#[cfg(madsim)]
pub(crate) use simulated::*;

#[cfg(all(test, not(madsim)))]
mod tests {
    //! The leader dialler's choices; the TLS path itself is `tests/serve_tls.rs`'s.

    use super::*;

    #[tokio::test]
    async fn an_https_leader_needs_a_trusted_ca_and_channels_are_kept() {
        let dialer = LeaderDialer::load(&TlsFiles::default()).expect("nothing to load");
        let error = dialer
            .channel("https://127.0.0.1:2379")
            .expect_err("no CA to verify the leader with");
        assert!(error.contains("needs --trusted-ca-file"), "{error}");
        dialer.channel("http://127.0.0.1:2379").expect("plain");
        dialer.channel("http://127.0.0.1:2379").expect("kept");
        let kept = dialer.channels.lock().expect("never poisoned").len();
        assert_eq!(kept, 1, "one channel per URL");
        let missing = TlsFiles {
            trusted_ca_file: Some("/nonexistent/ca.crt".into()),
            ..TlsFiles::default()
        };
        let error = LeaderDialer::load(&missing).expect_err("a missing CA file");
        assert!(
            error.starts_with("--trusted-ca-file /nonexistent/ca.crt"),
            "{error}"
        );
    }
}
