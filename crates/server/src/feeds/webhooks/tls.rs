//! TLS for `https://` deliveries (webhook subscriptions and playbook notifications): the
//! shared client configuration (`watchfloor_connectors::tls`), trusting the system's
//! certificate authorities and, when configured, the PEM certificates of
//! `[server.webhooks] ca_file` (a city's private authority).
//!
//! Invariants: the receiver's certificate is always verified against the host name (or IP
//! address) of the URL; there is no switch to turn verification off; TLS 1.2 and 1.3 only.

use std::path::Path;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;

/// The trust and settings of outgoing TLS connections.
#[derive(Clone)]
pub struct Tls {
    connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// Trusting the system's authorities and those in `ca_file` (PEM), when given; a file
    /// that cannot be read or holds no certificate is an error.
    pub fn new(ca_file: Option<&Path>) -> Result<Tls, String> {
        let config = watchfloor_connectors::tls::client_config(ca_file)?;
        Ok(Tls {
            connector: tokio_rustls::TlsConnector::from(config),
        })
    }

    /// The TLS session over `stream` with `host` (a name or an IP address), its
    /// certificate verified.
    pub async fn connect(
        &self,
        host: &str,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>, String> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("TLS: `{host}` is not a server name: {e}"))?;
        self.connector
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS with {host}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_or_missing_is_refused() {
        let dir = std::env::temp_dir().join(format!("wf-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(Tls::new(Some(&empty))
            .unwrap_err()
            .contains("no PEM certificate"));
        assert!(Tls::new(Some(&dir.join("missing.pem"))).is_err());
        assert!(Tls::new(None).is_ok());
        let _ = std::fs::remove_dir_all(dir);
    }
}
