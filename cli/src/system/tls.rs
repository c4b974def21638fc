//! TLS for every door of the process, from `TRACKER_TLS_CERT` and
//! `TRACKER_TLS_KEY`: one rustls configuration (the ring provider) for HTTPS /
//! WSS on the hub's address and for riders' MQTT over TLS.

use crate::settings::Settings;
use anyhow::{Context, bail};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// A TLS handshake that takes longer is dropped.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The TLS configuration of `s`, or `None` when no certificate is set;
/// `alpn` names the protocols offered (HTTP: `http/1.1`).
pub fn acceptor(s: &Settings, alpn: &[&[u8]]) -> anyhow::Result<Option<TlsAcceptor>> {
    let (Some(cert), Some(key)) = (&s.tls.cert, &s.tls.key) else {
        return Ok(None);
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading TRACKER_TLS_CERT `{}`", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!(
                "TRACKER_TLS_CERT `{}` is not PEM certificates",
                cert.display()
            )
        })?;
    if certs.is_empty() {
        bail!("TRACKER_TLS_CERT `{}` holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "TRACKER_TLS_KEY `{}` is not a PEM private key",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TRACKER_TLS_CERT and TRACKER_TLS_KEY do not make a certificate and its key")?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Some(TlsAcceptor::from(Arc::new(cfg))))
}

/// The hub's listener over TLS: TCP connections accepted and their
/// handshakes finished on tasks of their own (a slow client holds up no
/// other), handed to `axum::serve` ready.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` until `stop`.
    pub fn new(
        tcp: TcpListener,
        tls: TlsAcceptor,
        stop: CancellationToken,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = tcp.accept() => a,
                    _ = stop.cancelled() => return,
                };
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting an HTTPS connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (tls, tx) = (tls.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE, tls.accept(stream)).await {
                        Ok(Ok(s)) => {
                            let _ = tx.send((s, peer)).await;
                        }
                        _ => metrics::counter!("tracker_tls_handshakes_failed_total").increment(1),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // Stopping: no more connections; serve's graceful shutdown ends it.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(cert: &std::path::Path, key: &std::path::Path) -> Settings {
        let vars: HashMap<String, String> = [
            ("TRACKER_TLS_CERT", cert.display().to_string()),
            ("TRACKER_TLS_KEY", key.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Settings::from_vars(&vars).unwrap()
    }

    #[test]
    fn files_that_are_not_a_certificate_and_its_key_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, junk) = (
            dir.path().join("c"),
            dir.path().join("k"),
            dir.path().join("j"),
        );
        std::fs::write(&junk, "not PEM at all").unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
        assert!(
            acceptor(&settings(&cert, &key), &[b"mqtt"])
                .unwrap()
                .is_some()
        );
        for (c, k, var) in [
            (&junk, &key, "TRACKER_TLS_CERT"),
            (&cert, &junk, "TRACKER_TLS_KEY"),
            (&dir.path().join("missing"), &key, "TRACKER_TLS_CERT"),
        ] {
            let e = acceptor(&settings(c, k), &[b"mqtt"])
                .err()
                .expect("refused");
            assert!(format!("{e:#}").contains(var), "{var}: {e:#}");
        }
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&junk, other.key_pair.serialize_pem()).unwrap();
        let e = acceptor(&settings(&cert, &junk), &[b"mqtt"])
            .err()
            .expect("a key of another certificate");
        assert!(format!("{e:#}").contains("TRACKER_TLS_KEY"), "{e:#}");
    }
}
