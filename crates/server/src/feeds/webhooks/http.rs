//! One webhook attempt: an HTTP/1.1 POST of the delivery's body, signed per Standard
//! Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature` with a `v1,` HMAC-SHA256
//! over `id.timestamp.body` for each of the subscription's secrets), to the address the
//! policy passed, within a time limit; `https://` over TLS with the receiver's certificate
//! verified (`tls.rs`). Also the transport of playbooks' webhook notifications (unsigned:
//! no secrets, so no `webhook-signature`).
//!
//! Invariants: the body and id are the delivery's, the same on every attempt; only the
//! timestamp and signatures are of the attempt; nothing here retries; a connection is
//! reused only to the same address, scheme and host, and never after an attempt failed on
//! it.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

use super::policy::Target;
use super::tls::Tls;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// What a kept connection was opened to: address, TLS server name (`None`: plain HTTP).
type Endpoint = (SocketAddr, Option<String>);

/// What an attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// `Retry-After`, seconds.
    pub retry_after_s: Option<u64>,
}

/// The `webhook-signature` header for `secrets`.
pub fn signatures(
    secrets: &[String],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, String> {
    let mut out = Vec::new();
    for secret in secrets {
        let wh = standardwebhooks::Webhook::new(secret).map_err(|e| format!("secret: {e}"))?;
        out.push(wh.sign(id, timestamp, body).map_err(|e| e.to_string())?);
    }
    Ok(out.join(" "))
}

/// A worker's connection, kept open between deliveries to the same endpoint (HTTP/1.1
/// keep-alive) and opened again when the receiver closed it.
pub struct Client {
    tls: Tls,
    open: Option<(Endpoint, Sender)>,
}

/// The HTTP/1.1 handshake over `io`, its connection driven on a task of its own.
async fn handshake<T>(io: T) -> Result<Sender, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

impl Client {
    /// A client with no connection open yet; `https://` trusts what `tls` trusts.
    pub fn new(tls: Tls) -> Client {
        Client { tls, open: None }
    }

    /// A sender ready on a connection to `endpoint`: the open one if it still is.
    async fn sender(&mut self, endpoint: Endpoint) -> Result<&mut Sender, String> {
        let reusable = match &mut self.open {
            Some((e, sender)) if *e == endpoint => sender.ready().await.is_ok(),
            _ => false,
        };
        if !reusable {
            self.open = None;
            let address = endpoint.0;
            let stream = tokio::net::TcpStream::connect(address)
                .await
                .map_err(|e| format!("connect {address}: {e}"))?;
            let _ = stream.set_nodelay(true);
            let sender = match &endpoint.1 {
                Some(host) => handshake(self.tls.connect(host, stream).await?).await?,
                None => handshake(stream).await?,
            };
            self.open = Some((endpoint, sender));
        }
        Ok(&mut self.open.as_mut().expect("just set").1)
    }

    /// POSTs `body` to `target` at `address`, signed, within `timeout`.
    pub async fn post(
        &mut self,
        target: &Target,
        address: SocketAddr,
        id: &str,
        secrets: &[String],
        body: &str,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let result = tokio::time::timeout(timeout, self.send(target, address, id, secrets, body))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())));
        if result.is_err() {
            self.open = None; // never reuse a connection an attempt failed on
        }
        result
    }

    async fn send(
        &mut self,
        target: &Target,
        address: SocketAddr,
        id: &str,
        secrets: &[String],
        body: &str,
    ) -> Result<Answer, String> {
        let timestamp = chrono_now_s();
        let signature = signatures(secrets, id, timestamp, body.as_bytes())?;
        let endpoint = (
            address,
            (target.scheme == "https").then(|| target.host.clone()),
        );
        // An IPv6 literal goes in brackets (RFC 3986), the port when it is not the scheme's.
        let name = if target.host.contains(':') {
            format!("[{}]", target.host)
        } else {
            target.host.clone()
        };
        let host = if (target.scheme == "http" && target.port == 80)
            || (target.scheme == "https" && target.port == 443)
        {
            name
        } else {
            format!("{name}:{}", target.port)
        };
        let mut request = hyper::Request::builder()
            .method("POST")
            .uri(&target.path)
            .header("host", host)
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("Watchfloor/", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string());
        if !signature.is_empty() {
            request = request.header("webhook-signature", signature);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let sender = self.sender(endpoint).await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status().as_u16();
        let retry_after_s = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        // Read the answer's body (at most 64 KiB, 2 s) so the connection can carry the
        // next request; a longer one closes the connection.
        let read = tokio::time::timeout(
            Duration::from_secs(2),
            http_body_util::Limited::new(response.into_body(), 64 * 1024).collect(),
        )
        .await;
        if !matches!(read, Ok(Ok(_))) {
            self.open = None;
        }
        Ok(Answer {
            status,
            retry_after_s,
        })
    }
}

fn chrono_now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_signature_and_one_per_secret() {
        // The Standard Webhooks reference vector.
        let s = signatures(
            &["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into()],
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .unwrap();
        assert_eq!(s, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        let two = signatures(
            &[
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into(),
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            ],
            "id",
            1,
            b"{}",
        )
        .unwrap();
        assert_eq!(two.split(' ').count(), 2);
        assert!(signatures(&["whsec_%%%".into()], "id", 1, b"{}").is_err());
    }
}
