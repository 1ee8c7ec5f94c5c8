//! The front of the embedded broker when it has topic rules or TLS (rumqttd has neither):
//! clients connect here; each connection is relayed, packet by packet, to rumqttd on a
//! loopback port. The front ends TLS, reads the user name from CONNECT and holds every
//! PUBLISH (and will topic) and SUBSCRIBE of the client to the user's rights.
//!
//! Invariants: packets are relayed whole, in order, in both directions, and our own
//! answers are written only between packets; a refused PUBLISH never reaches the broker
//! and is answered as MQTT 3.1.1 allows (QoS 1: PUBACK, QoS 2: PUBREC then PUBCOMP, QoS 0:
//! nothing), so a device does not resend it forever, and is counted and logged (the first
//! of each connection, then a total at its end); a PUBLISH or will topic that is empty or
//! holds a wildcard or NUL closes the connection (§3.3.2-2); a SUBSCRIBE with any refused
//! filter is refused whole (SUBACK 0x80 for each filter) and never reaches the broker; the
//! password is never read here: the broker answers every CONNECT first, and only an
//! accepted one whose will topic the user may not write is then refused (CONNACK 5), so a
//! stranger learns nothing of an account's rights. Memory: before the broker has accepted
//! a login a client gets at most [`MAX_CONNECT`] bytes, and a packet's buffer grows as its
//! bytes arrive (an announced length costs nothing); a packet over the size limit (counted
//! and logged), a first packet that is not CONNECT, a CONNECT later than 10 s or a client
//! that stops reading for 30 s closes the connection, and the front holds at most
//! [`MAX_CONNECTIONS`] at once. Not covered: a refused QoS 1 PUBLISH is acknowledged at
//! once, possibly before earlier allowed ones the broker still has to acknowledge; a
//! refused QoS 2 PUBLISH whose PUBREL comes on a later connection reaches the broker.
//! Local processes on the broker's host can reach rumqttd's loopback port directly (and
//! could take it before rumqttd binds it): the front defends the network, not the host.

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
/// The largest CONNECT (and CONNACK) taken: before the broker has checked the password a
/// stranger gets no more memory than this.
const MAX_CONNECT: usize = 64 * 1024;
/// How long a write to a client that does not read may block before its connection is
/// closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections the front holds at once (rumqttd's own limit is 10,010).
const MAX_CONNECTIONS: usize = 10_010;

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
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        // At the cap, new clients wait in the listen queue until a connection ends.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
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
            let _slot = slot;
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
    // Before the broker has checked the password, a CONNECT's worth of bytes at most.
    let first = tokio::time::timeout(CONNECT_TIMEOUT, read_packet(&mut client_read, MAX_CONNECT))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no CONNECT"))?
        .inspect_err(count_oversize(None, peer))?;
    let Some(connect) = first else {
        return Ok(());
    };
    if connect[0] >> 4 != 1 {
        return Err(invalid("the first packet is not CONNECT"));
    }
    let (user, will_topic) = parse_connect(&connect)?;
    if let Some(topic) = &will_topic {
        check_topic_name(topic)?;
    }
    let will_refused = match (&front.acl, &will_topic) {
        (Some(acl), Some(topic)) => !acl.may_publish(user.as_deref(), topic),
        _ => false,
    };
    let upstream = TcpStream::connect(front.upstream).await?;
    upstream.set_nodelay(true)?;
    let (up_read, up_write) = upstream.into_split();
    let mut up_read = BufReader::new(up_read);
    let mut up_write = BufWriter::new(up_write);
    up_write.write_all(&connect).await?;
    up_write.flush().await?;
    // The broker's answer first: a refused login is the broker's to answer (so nobody
    // learns anything of an account's rights without its password); a will topic the
    // user may not write is refused only once the password was right.
    let connack = tokio::time::timeout(CONNECT_TIMEOUT, read_packet(&mut up_read, MAX_CONNECT))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no CONNACK from the broker"))??;
    let Some(connack) = connack else {
        return Ok(()); // refused by the broker: it closed the connection
    };
    let accepted = connack.len() >= 4 && connack[0] >> 4 == 2 && connack[3] == 0;
    let answer: &[u8] = if accepted && will_refused {
        refused(
            &user,
            peer,
            "will topic",
            will_topic.as_deref().unwrap_or_default(),
        );
        REFUSED.fetch_add(1, Ordering::Relaxed);
        let _ = up_write.write_all(&[0xE0, 0x00]).await; // DISCONNECT
        let _ = up_write.flush().await;
        &[0x20, 0x02, 0x00, 0x05]
    } else {
        &connack
    };
    write_client(&to_client, answer).await?;
    if !accepted || will_refused {
        return to_client.lock().await.shutdown().await;
    }
    let mut down = tokio::spawn(pump_down(up_read, to_client.clone(), front.max_packet));
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
            r = &mut down => r.unwrap_or_else(|e| Err(io::Error::other(e))),
        }
    };
    // Whichever side ended, the other is stopped (never left holding the writer).
    down.abort();
    if session.refused > 1 {
        tracing::warn!(
            user = session.user.as_deref().map(|u| clip(u, 64)).unwrap_or("-"),
            %peer,
            refused = session.refused,
            "MQTT front: connection closed after refused packets"
        );
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        to_client.lock().await.shutdown().await
    })
    .await;
    result
}

/// Writes one answer of ours to the client, whole, between relayed packets.
async fn write_client<S>(to_client: &ClientWriter<S>, packet: &[u8]) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(WRITE_TIMEOUT, async {
        let mut w = to_client.lock().await;
        w.write_all(packet).await?;
        w.flush().await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the client does not read"))?
}

/// Counts (and logs) a packet refused for its size.
fn count_oversize(user: Option<&str>, peer: SocketAddr) -> impl FnOnce(&io::Error) + '_ {
    move |e| {
        if e.kind() == io::ErrorKind::FileTooLarge {
            let total = OVERSIZE.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                user = user.map(|u| clip(u, 64)).unwrap_or("-"),
                %peer,
                total,
                "MQTT front: {e}; connection closed (MQTT 3.1.1 has no reason code for it)"
            );
        }
    }
}

/// A topic name a client may publish on (MQTT 3.1.1 §4.7.3 and §3.3.2-2: not empty, no
/// wildcard, no NUL); anything else closes the connection, as the protocol requires.
fn check_topic_name(topic: &str) -> io::Result<()> {
    if topic.is_empty() || topic.contains(['+', '#', '\0']) {
        return Err(invalid(
            "a topic name that is empty or holds a wildcard or NUL",
        ));
    }
    Ok(())
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
        let packet = match read_packet(&mut from_client, front.max_packet)
            .await
            .inspect_err(count_oversize(session.user.as_deref(), session.peer))?
        {
            Some(packet) => packet,
            None => break,
        };
        let answer = match &front.acl {
            Some(acl) => check(acl, session, &packet)?,
            None => None,
        };
        match answer {
            None => {
                to_broker.write_all(&packet).await?;
                if !packet_buffered(from_client.buffer()) {
                    to_broker.flush().await?;
                }
            }
            Some(answer) => {
                to_broker.flush().await?;
                if !answer.is_empty() {
                    write_client(to_client, &answer).await?;
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
            check_topic_name(topic)?;
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
        let flush = !packet_buffered(from_broker.buffer());
        tokio::time::timeout(WRITE_TIMEOUT, async {
            let mut w = to_client.lock().await;
            w.write_all(&packet).await?;
            if flush {
                w.flush().await?;
            }
            Ok::<_, io::Error>(())
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the client does not read"))??;
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
    // Grown as the bytes arrive: a length announced but never sent costs nothing.
    let start = packet.len();
    let read = r.take(length as u64).read_to_end(&mut packet).await?;
    if read < length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection ended inside a packet",
        ));
    }
    debug_assert_eq!(packet.len(), start + length);
    Ok(Some(packet))
}

/// Does `buffered` begin with a whole packet? (Then the writer waits for it before
/// flushing; otherwise what it holds goes out now, not behind a packet still arriving.)
fn packet_buffered(buffered: &[u8]) -> bool {
    let mut length = 0usize;
    for i in 0..4 {
        let Some(b) = buffered.get(1 + i) else {
            return false;
        };
        length |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return buffered.len() >= 2 + i + length;
        }
    }
    false
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

    #[test]
    fn a_whole_packet_in_the_buffer_is_told_from_a_partial_one() {
        assert!(!packet_buffered(&[]));
        assert!(!packet_buffered(&[0x30]));
        assert!(packet_buffered(&[0xC0, 0x00]));
        assert!(!packet_buffered(&[0x30, 0x03, 0, 1]));
        assert!(packet_buffered(&[0x30, 0x03, 0, 1, b'a', 0x30]));
        assert!(!packet_buffered(&[0x30, 0x80]));
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
        // A length announced and not sent: an error at the end of the stream.
        let mut r = &big[..1000];
        assert_eq!(
            read_packet(&mut r, 300_000).await.unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
