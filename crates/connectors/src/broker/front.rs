//! The front of the embedded broker when it has topic rules or TLS (rumqttd has neither):
//! clients connect here; each connection is relayed, packet by packet, to rumqttd on a
//! loopback port. The front ends TLS, reads the user name from CONNECT and holds every
//! PUBLISH (and will topic) and SUBSCRIBE of the client to the user's rights.
//!
//! Invariants: packets are relayed whole, in order, in both directions, and our own
//! answers are written only between packets; a refused PUBLISH never reaches the broker
//! and is answered as MQTT 3.1.1 allows (QoS 1: PUBACK, QoS 2: PUBREC then PUBCOMP, QoS 0:
//! nothing), so a device does not resend it forever, and is counted and logged (the first
//! of each connection, then a total at its end); a SUBSCRIBE with any refused filter is
//! refused whole (SUBACK 0x80 for each filter) and never reaches the broker; a will topic
//! the user may not publish on refuses the connection (CONNACK 5, not authorised); the
//! password is never read here (rumqttd checks it); a packet over the size limit (counted
//! and logged), a first packet that is not CONNECT or a CONNECT later than 10 s closes the
//! connection. Local
//! processes on the broker's host can reach rumqttd's loopback port directly: the front
//! defends the network, not the host.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

use super::acl::Acl;

/// Publishes and subscriptions refused by the topic rules since the process started.
static REFUSED: AtomicU64 = AtomicU64::new(0);
/// Client packets over the size limit (their connection closed) since the process started.
static OVERSIZE: AtomicU64 = AtomicU64::new(0);

/// Client packets refused for their size so far (all fronts of the process).
pub fn oversize_refusals() -> u64 {
    OVERSIZE.load(Ordering::Relaxed)
}

/// Publishes and subscriptions the topic rules refused so far (all fronts of the process).
pub fn acl_refusals() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

/// How long a client has to finish TLS and send CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the front does for every connection.
pub(super) struct Front {
    /// Topic rules; `None`: relay only (TLS without rules).
    pub acl: Option<Acl>,
    /// The TLS side; `None`: plain TCP.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// rumqttd's loopback address.
    pub upstream: SocketAddr,
    /// The largest packet relayed (payload limit plus headers).
    pub max_packet: usize,
}

/// Accepts clients on `listener` for ever.
pub(super) async fn serve(listener: TcpListener, front: Arc<Front>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "MQTT front: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let front = front.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let result = match &front.tls {
                Some(acceptor) => {
                    match tokio::time::timeout(CONNECT_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => relay(&front, tls, peer).await,
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake")),
                    }
                }
                None => relay(&front, tcp, peer).await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "MQTT front: connection closed");
            }
        });
    }
}

type ClientWriter<S> = Arc<Mutex<BufWriter<tokio::io::WriteHalf<S>>>>;

/// Relays one client connection to the broker until either side closes.
async fn relay<S>(front: &Front, client: S, peer: SocketAddr) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (client_read, client_write) = tokio::io::split(client);
    let mut client_read = BufReader::new(client_read);
    let to_client: ClientWriter<S> = Arc::new(Mutex::new(BufWriter::new(client_write)));
    let first = tokio::time::timeout(
        CONNECT_TIMEOUT,
        read_packet(&mut client_read, front.max_packet),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no CONNECT"))??;
    let Some(connect) = first else {
        return Ok(());
    };
    if connect[0] >> 4 != 1 {
        return Err(invalid("the first packet is not CONNECT"));
    }
    let (user, will_topic) = parse_connect(&connect)?;
    if let (Some(acl), Some(topic)) = (&front.acl, &will_topic) {
        if !acl.may_publish(user.as_deref(), topic) {
            refused(&user, peer, "will topic", topic);
            let mut w = to_client.lock().await;
            w.write_all(&[0x20, 0x02, 0x00, 0x05]).await?;
            w.flush().await?;
            return w.shutdown().await;
        }
    }
    let upstream = TcpStream::connect(front.upstream).await?;
    upstream.set_nodelay(true)?;
    let (up_read, up_write) = upstream.into_split();
    let mut up_write = BufWriter::new(up_write);
    up_write.write_all(&connect).await?;
    up_write.flush().await?;
    let down = tokio::spawn(pump_down(
        BufReader::new(up_read),
        to_client.clone(),
        front.max_packet,
    ));
    let mut session = Session {
        user,
        peer,
        refused: 0,
        swallowed: HashSet::new(),
    };
    let result = {
        let up = pump_up(front, &mut session, client_read, up_write, &to_client);
        tokio::pin!(up);
        tokio::select! {
            r = &mut up => r,
            r = down => r.unwrap_or_else(|e| Err(io::Error::other(e))),
        }
    };
    if session.refused > 1 {
        tracing::warn!(
            user = session.user.as_deref().map(|u| clip(u, 64)).unwrap_or("-"),
            %peer,
            refused = session.refused,
            "MQTT front: connection closed after refused packets"
        );
    }
    let _ = to_client.lock().await.shutdown().await;
    result
}

/// One client connection's state on the way up.
struct Session {
    user: Option<String>,
    peer: SocketAddr,
    refused: u64,
    /// QoS 2 packet ids refused (answered PUBREC) and waiting for their PUBREL.
    swallowed: HashSet<u16>,
}

/// Client → broker: every packet checked against the rules, relayed or answered here.
async fn pump_up<R, W, S>(
    front: &Front,
    session: &mut Session,
    mut from_client: BufReader<R>,
    mut to_broker: BufWriter<W>,
    to_client: &ClientWriter<S>,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let packet = match read_packet(&mut from_client, front.max_packet).await {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(e) if e.kind() == io::ErrorKind::FileTooLarge => {
                let total = OVERSIZE.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    user = session.user.as_deref().map(|u| clip(u, 64)).unwrap_or("-"),
                    peer = %session.peer,
                    total,
                    "MQTT front: {e}; connection closed (MQTT 3.1.1 has no reason code for it)"
                );
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let answer = match &front.acl {
            Some(acl) => check(acl, session, &packet)?,
            None => None,
        };
        match answer {
            None => {
                to_broker.write_all(&packet).await?;
                if from_client.buffer().is_empty() {
                    to_broker.flush().await?;
                }
            }
            Some(answer) => {
                to_broker.flush().await?;
                if !answer.is_empty() {
                    let mut w = to_client.lock().await;
                    w.write_all(&answer).await?;
                    w.flush().await?;
                }
            }
        }
    }
    to_broker.flush().await?;
    to_broker.shutdown().await
}

/// What the front answers instead of relaying `packet` (`Some(empty)`: drop it silently),
/// or `None` to relay it.
fn check(acl: &Acl, session: &mut Session, packet: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let body = &packet[body_start(packet)..];
    match packet[0] >> 4 {
        3 => {
            let qos = (packet[0] >> 1) & 3;
            let (topic, rest) = string(body)?;
            if acl.may_publish(session.user.as_deref(), topic) {
                return Ok(None);
            }
            refuse(session, "publish", topic);
            let pkid = || rest.get(..2).map(|b| [b[0], b[1]]).ok_or_else(short);
            Ok(Some(match qos {
                0 => Vec::new(),
                1 => {
                    let id = pkid()?;
                    vec![0x40, 0x02, id[0], id[1]]
                }
                _ => {
                    let id = pkid()?;
                    session.swallowed.insert(u16::from_be_bytes(id));
                    vec![0x50, 0x02, id[0], id[1]]
                }
            }))
        }
        6 => {
            let id = body.get(..2).ok_or_else(short)?;
            if session
                .swallowed
                .remove(&u16::from_be_bytes([id[0], id[1]]))
            {
                Ok(Some(vec![0x70, 0x02, id[0], id[1]]))
            } else {
                Ok(None)
            }
        }
        8 => {
            let id = body.get(..2).ok_or_else(short)?;
            let mut rest = &body[2..];
            let mut filters = Vec::new();
            while !rest.is_empty() {
                let (filter, after) = string(rest)?;
                filters.push(filter);
                rest = after.get(1..).ok_or_else(short)?;
            }
            let user = session.user.clone();
            let denied: Vec<&str> = filters
                .iter()
                .copied()
                .filter(|f| !acl.may_subscribe(user.as_deref(), f))
                .collect();
            if denied.is_empty() {
                return Ok(None);
            }
            refuse(session, "subscribe", denied[0]);
            let mut suback = vec![0x90];
            push_length(&mut suback, 2 + filters.len());
            suback.extend_from_slice(id);
            suback.extend(std::iter::repeat_n(0x80, filters.len()));
            Ok(Some(suback))
        }
        _ => Ok(None),
    }
}

/// Broker → client: packets relayed whole, so the front's answers fall between them.
async fn pump_down<R, S>(
    mut from_broker: BufReader<R>,
    to_client: ClientWriter<S>,
    max_packet: usize,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    // The broker may send twice the client's limit (its own headers on our payloads).
    while let Some(packet) = read_packet(&mut from_broker, max_packet * 2).await? {
        let mut w = to_client.lock().await;
        w.write_all(&packet).await?;
        if from_broker.buffer().is_empty() {
            w.flush().await?;
        }
    }
    Ok(())
}

fn refuse(session: &mut Session, what: &str, topic: &str) {
    session.refused += 1;
    REFUSED.fetch_add(1, Ordering::Relaxed);
    if session.refused == 1 {
        refused(&session.user, session.peer, what, topic);
    }
}

fn refused(user: &Option<String>, peer: SocketAddr, what: &str, topic: &str) {
    tracing::warn!(
        user = user.as_deref().map(|u| clip(u, 64)).unwrap_or("-"),
        %peer,
        topic = clip(topic, 128),
        "MQTT front: {what} refused by the topic rules"
    );
}

/// One whole MQTT packet (fixed header included), `None` at a clean end of stream.
async fn read_packet<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> io::Result<Option<Vec<u8>>> {
    let first = match r.read_u8().await {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut packet = vec![first];
    let mut length = 0usize;
    for i in 0..4 {
        let b = r.read_u8().await?;
        packet.push(b);
        length |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            break;
        }
        if i == 3 {
            return Err(invalid("a remaining length over 4 bytes"));
        }
    }
    if length > max {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("a packet of {length} bytes, over the limit of {max}"),
        ));
    }
    let start = packet.len();
    packet.resize(start + length, 0);
    r.read_exact(&mut packet[start..]).await?;
    Ok(Some(packet))
}

/// Where a whole packet's variable header starts.
fn body_start(packet: &[u8]) -> usize {
    1 + packet[1..]
        .iter()
        .position(|b| b & 0x80 == 0)
        .map_or(4, |i| i + 1)
}

fn push_length(out: &mut Vec<u8>, mut length: usize) {
    loop {
        let mut b = (length % 128) as u8;
        length /= 128;
        if length > 0 {
            b |= 0x80;
        }
        out.push(b);
        if length == 0 {
            break;
        }
    }
}

/// The user name and will topic of a CONNECT (MQTT 3.1, 3.1.1 or 5).
fn parse_connect(packet: &[u8]) -> io::Result<(Option<String>, Option<String>)> {
    let body = &packet[body_start(packet)..];
    let (_protocol, rest) = string(body)?;
    let (level, flags) = match rest.get(..4) {
        Some(fixed) => (fixed[0], fixed[1]),
        None => return Err(short()),
    };
    let mut rest = &rest[4..];
    if level == 5 {
        rest = skip_properties(rest)?;
    }
    let (_client_id, after) = string(rest)?;
    rest = after;
    let mut will_topic = None;
    if flags & 0x04 != 0 {
        if level == 5 {
            rest = skip_properties(rest)?;
        }
        let (topic, after) = string(rest)?;
        will_topic = Some(topic.to_string());
        let (_message, after) = binary(after)?;
        rest = after;
    }
    let user = if flags & 0x80 != 0 {
        Some(string(rest)?.0.to_string())
    } else {
        None
    };
    Ok((user, will_topic))
}

fn skip_properties(bytes: &[u8]) -> io::Result<&[u8]> {
    let mut length = 0usize;
    for i in 0..4 {
        let b = *bytes.get(i).ok_or_else(short)?;
        length |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return bytes.get(i + 1 + length..).ok_or_else(short);
        }
    }
    Err(invalid("a property length over 4 bytes"))
}

fn binary(bytes: &[u8]) -> io::Result<(&[u8], &[u8])> {
    let len = usize::from(u16::from_be_bytes([
        *bytes.first().ok_or_else(short)?,
        *bytes.get(1).ok_or_else(short)?,
    ]));
    let value = bytes.get(2..2 + len).ok_or_else(short)?;
    Ok((value, &bytes[2 + len..]))
}

fn string(bytes: &[u8]) -> io::Result<(&str, &[u8])> {
    let (value, rest) = binary(bytes)?;
    let value = std::str::from_utf8(value).map_err(|_| invalid("a string not in UTF-8"))?;
    Ok((value, rest))
}

fn short() -> io::Error {
    invalid("a packet shorter than its fields")
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// At most `max` bytes of `text`, for logs.
pub(super) fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mqtt_string(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn connect(user: Option<&str>, will: Option<&str>) -> Vec<u8> {
        let mut flags = 0x02;
        let mut body = mqtt_string("MQTT");
        body.push(4);
        if will.is_some() {
            flags |= 0x04;
        }
        if user.is_some() {
            flags |= 0x80 | 0x40;
        }
        body.extend_from_slice(&[flags, 0, 30]);
        body.extend(mqtt_string("client"));
        if let Some(w) = will {
            body.extend(mqtt_string(w));
            body.extend(mqtt_string("gone"));
        }
        if let Some(u) = user {
            body.extend(mqtt_string(u));
            body.extend(mqtt_string("password"));
        }
        let mut packet = vec![0x10];
        push_length(&mut packet, body.len());
        packet.extend(body);
        packet
    }

    #[test]
    fn connect_gives_the_user_and_the_will_topic() {
        assert_eq!(
            parse_connect(&connect(Some("CT-AIR-01"), Some("ioc/status/CT-AIR-01"))).unwrap(),
            (
                Some("CT-AIR-01".to_string()),
                Some("ioc/status/CT-AIR-01".to_string())
            )
        );
        assert_eq!(parse_connect(&connect(None, None)).unwrap(), (None, None));
        // Truncated: an error, never a panic.
        let whole = connect(Some("u"), Some("w"));
        for cut in 2..whole.len() {
            let mut part = whole[..cut].to_vec();
            part[1] = (cut - 2) as u8;
            let _ = parse_connect(&part);
        }
    }

    #[tokio::test]
    async fn packets_are_framed_and_limited() {
        let mut big = vec![0x30];
        push_length(&mut big, 200_000);
        big.extend(std::iter::repeat_n(0u8, 200_000));
        let mut r = &big[..];
        assert_eq!(read_packet(&mut r, 300_000).await.unwrap().unwrap(), big);
        assert!(read_packet(&mut r, 300_000).await.unwrap().is_none());
        let mut r = &big[..];
        assert!(read_packet(&mut r, 100_000).await.is_err());
        assert_eq!(body_start(&big), 4);
    }
}
