//! The peer transport: raft messages between members over framed TCP, one outbound connection
//! per peer (a member dials each peer to send; it accepts peers' connections to receive).
//!
//! Why framed TCP rather than gRPC streams: the engine's messages already have one codec
//! (`engine::codec`), so a frame is a length, a CRC32C and those bytes; there is no second
//! schema (protobuf) to keep in step with the engine's types, and nothing to gain from HTTP/2
//! between members, which never see clients. What gRPC would have given (reconnects, flow
//! control, large messages) is here in ~300 lines: reconnect with capped exponential backoff,
//! a bounded queue per peer (a full queue drops: raft retries what is lost), and messages
//! larger than one frame (snapshots) sent in chunks and reassembled under a size limit.
//!
//! Frame: `body length u32 LE | crc32c of kind+body u32 LE | kind u8 | body`. Kinds: hello
//! (first frame of a connection: cluster token hash, sender id, recipient id, the sender's
//! client URL), chunk (part of a message, more follow), last (the final or only part).
//! Anything else (a bad checksum, an unknown kind, a hello for another cluster or member, a
//! message that does not decode or names the wrong sender) closes the connection and is
//! logged: a peer sending garbage loses its connection, never the member's state.
//!
//! The peers are not fixed: the transport reads a [`PeerTable`] that the member task keeps in
//! step with the applied membership (members added or updated at run time carry their peer
//! URLs through the log, see `crate::membership`). A message for a member in the table gets a
//! sender dialling its address; a sender whose member left the table ends; a hello from a
//! member not in the table is refused (its sender redials, and is accepted once this member
//! applied its addition).
//!
//! It decides nothing about raft: messages go in and out as the engine made them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::api::{Envelope, PeerMessage};
use engine::types::NodeId;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::task::Command;

/// Bytes of one frame's body at most; larger messages (snapshots) travel in chunks.
pub const FRAME_BODY_BYTES_MAX: usize = 1 << 20;
/// Bytes of one reassembled message at most (the engine's own payload limit).
pub const MESSAGE_BYTES_MAX: usize = engine::codec::PAYLOAD_BYTES_MAX;
/// Messages queued for one peer at most; more are dropped (raft retries), so a dead peer
/// cannot make the member's memory grow.
pub const PEER_QUEUE_COUNT_MAX: usize = 4096;
/// The first wait before redialling a peer; it doubles per failure up to the maximum.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest wait between dials.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Bytes read from a peer's connection at once at most.
const RECEIVE_BUFFER_BYTES: usize = 64 << 10;
/// Frame header bytes: length, checksum, kind.
const FRAME_HEADER_BYTES: usize = 9;

const KIND_HELLO: u8 = 1;
const KIND_CHUNK: u8 = 2;
const KIND_LAST: u8 = 3;

/// The other members and where they listen for peers, kept by `crate::membership::View`.
pub type PeerTable = Arc<Mutex<BTreeMap<NodeId, SocketAddr>>>;

/// What the transport needs to run.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// This member.
    pub id: NodeId,
    /// Distinguishes clusters (from `--initial-cluster-token`): a hello for another is refused.
    pub cluster_hash: u64,
    /// Where to listen for peers.
    pub listen: SocketAddr,
    /// The other members (changes at run time).
    pub peers: PeerTable,
    /// This member's advertised client URL, told to peers in the hello.
    pub client_url: String,
    /// Peer TLS (an https peer URL): every connection accepted and dialled is wrapped in it.
    pub(crate) tls: Option<crate::tls::PeerTls>,
}

/// Client URLs learned from peers' hellos, for forwarding and MemberList.
pub type ClientUrls = Arc<Mutex<BTreeMap<NodeId, String>>>;

/// Why a connection was closed.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The body length is over [`FRAME_BODY_BYTES_MAX`].
    TooLong(usize),
    /// The checksum does not match.
    Checksum,
    /// A kind this build does not know.
    UnknownKind(u8),
    /// A reassembled message over [`MESSAGE_BYTES_MAX`].
    MessageTooLong(usize),
    /// The hello is malformed or for another cluster or member.
    Hello(String),
    /// The message does not decode, or names another sender or recipient.
    Message(String),
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::TooLong(bytes) => write!(
                formatter,
                "frame of {bytes} bytes is over the limit of {FRAME_BODY_BYTES_MAX}"
            ),
            FrameError::Checksum => write!(formatter, "frame checksum mismatch"),
            FrameError::UnknownKind(kind) => write!(formatter, "unknown frame kind {kind}"),
            FrameError::MessageTooLong(bytes) => write!(
                formatter,
                "message of {bytes} bytes is over the limit of {MESSAGE_BYTES_MAX}"
            ),
            FrameError::Hello(reason) => write!(formatter, "bad hello: {reason}"),
            FrameError::Message(reason) => write!(formatter, "bad message: {reason}"),
        }
    }
}

/// Appends one frame of `kind` holding `body` to `out`.
pub fn encode_frame(kind: u8, body: &[u8], out: &mut Vec<u8>) {
    assert!(body.len() <= FRAME_BODY_BYTES_MAX, "frames are chunked");
    let mut checksum = crc32c::crc32c(&[kind]);
    checksum = crc32c::crc32c_append(checksum, body);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(body);
}

/// Encodes a message as its frames: chunks, then the last.
pub fn encode_message(message: &PeerMessage) -> Vec<u8> {
    let payload = engine::codec::encode(message);
    let mut out = Vec::with_capacity(payload.len() + FRAME_HEADER_BYTES);
    let mut chunks = payload.chunks(FRAME_BODY_BYTES_MAX).peekable();
    if chunks.peek().is_none() {
        encode_frame(KIND_LAST, &[], &mut out);
    }
    while let Some(chunk) = chunks.next() {
        let kind = if chunks.peek().is_some() {
            KIND_CHUNK
        } else {
            KIND_LAST
        };
        encode_frame(kind, chunk, &mut out);
    }
    out
}

fn hello_body(config: &PeerConfig, to: NodeId) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&config.cluster_hash.to_le_bytes());
    body.extend_from_slice(&config.id.0.to_le_bytes());
    body.extend_from_slice(&to.0.to_le_bytes());
    body.extend_from_slice(config.client_url.as_bytes());
    body
}

/// Checks a hello: the right cluster, a known peer, this member. Returns the sender and its
/// client URL.
pub fn parse_hello(config: &PeerConfig, body: &[u8]) -> Result<(NodeId, String), FrameError> {
    let word = |index: usize| -> Result<u64, FrameError> {
        body.get(index * 8..index * 8 + 8)
            .map(|bytes| u64::from_le_bytes(bytes.try_into().expect("eight bytes")))
            .ok_or_else(|| FrameError::Hello(format!("{} bytes is too short", body.len())))
    };
    if word(0)? != config.cluster_hash {
        return Err(FrameError::Hello(
            "another cluster (a different --initial-cluster-token or member list)".into(),
        ));
    }
    let from = NodeId(word(1)?);
    let to = NodeId(word(2)?);
    if to != config.id {
        return Err(FrameError::Hello(format!(
            "meant for member {:x}, this is {:x}",
            to.0, config.id.0
        )));
    }
    if !config
        .peers
        .lock()
        .expect("the peer table is never poisoned")
        .contains_key(&from)
    {
        return Err(FrameError::Hello(format!("{:x} is not a peer", from.0)));
    }
    let client_url = String::from_utf8_lossy(&body[24..]).into_owned();
    Ok((from, client_url))
}

/// Reads one frame: (kind, body).
async fn read_frame(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Result<(u8, Vec<u8>), std::io::Error> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    stream.read_exact(&mut header).await?;
    let length = u32::from_le_bytes(header[0..4].try_into().expect("four bytes")) as usize;
    let checksum = u32::from_le_bytes(header[4..8].try_into().expect("four bytes"));
    let kind = header[8];
    // Checked before allocating: a garbage length cannot make the member allocate.
    if length > FRAME_BODY_BYTES_MAX {
        return Err(invalid(FrameError::TooLong(length)));
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    let actual = crc32c::crc32c_append(crc32c::crc32c(&[kind]), &body);
    if actual != checksum {
        return Err(invalid(FrameError::Checksum));
    }
    Ok((kind, body))
}

fn invalid(error: FrameError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string())
}

/// Starts the transport: the listener, and a sender per peer as messages for it come. Returns
/// the outbox the member task sends through. Fails only if the peer address cannot be bound.
pub async fn start(
    config: PeerConfig,
    commands: mpsc::Sender<Command>,
    client_urls: ClientUrls,
) -> Result<mpsc::UnboundedSender<Envelope>, String> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|error| format!("cannot listen for peers on {}: {error}", config.listen))?;
    let config = Arc::new(config);
    tokio::spawn(accept_loop(listener, config.clone(), commands, client_urls));
    let mut queues: BTreeMap<NodeId, mpsc::Sender<PeerMessage>> = BTreeMap::new();
    let (outbox, mut outbox_receiver) = mpsc::unbounded_channel::<Envelope>();
    tokio::spawn(async move {
        while let Some(envelope) = outbox_receiver.recv().await {
            let to = envelope.to;
            // A sender ends when its member left the table; a later message starts another.
            if queues.get(&to).is_some_and(mpsc::Sender::is_closed) {
                queues.remove(&to);
            }
            let queue = match queues.entry(to) {
                std::collections::btree_map::Entry::Occupied(queue) => queue.into_mut(),
                std::collections::btree_map::Entry::Vacant(vacant) => {
                    let known = config
                        .peers
                        .lock()
                        .expect("the peer table is never poisoned")
                        .contains_key(&to);
                    if !known {
                        continue;
                    }
                    let (sender, receiver) = mpsc::channel::<PeerMessage>(PEER_QUEUE_COUNT_MAX);
                    tokio::spawn(send_loop(config.clone(), to, receiver));
                    vacant.insert(sender)
                }
            };
            // A full queue means the peer is gone or slow: drop, raft retries.
            let _ = queue.try_send(envelope.message);
        }
    });
    Ok(outbox)
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<PeerConfig>,
    commands: mpsc::Sender<Command>,
    client_urls: ClientUrls,
) {
    loop {
        let Ok((stream, address)) = listener.accept().await else {
            tokio::time::sleep(BACKOFF_MIN).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let config = config.clone();
        let commands = commands.clone();
        let client_urls = client_urls.clone();
        tokio::spawn(async move {
            let stream = match crate::tls::peer_accept(config.tls.as_ref(), stream).await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(peer = %address, %error, "peer TLS handshake failed");
                    return;
                }
            };
            if let Err(error) = receive(stream, &config, &commands, &client_urls).await {
                tracing::warn!(peer = %address, %error, "peer connection closed");
            }
        });
    }
}

/// Reads one inbound connection: a hello, then messages, until it closes or sends garbage.
async fn receive(
    stream: crate::tls::PeerStream,
    config: &PeerConfig,
    commands: &mpsc::Sender<Command>,
    client_urls: &ClientUrls,
) -> Result<(), std::io::Error> {
    // A frame is read as a header then a body: buffered, the frames a sender batched into one
    // write cost one read between them instead of two each.
    let mut stream = tokio::io::BufReader::with_capacity(RECEIVE_BUFFER_BYTES, stream);
    let (kind, body) = read_frame(&mut stream).await?;
    if kind != KIND_HELLO {
        return Err(invalid(FrameError::Hello(format!(
            "the first frame is of kind {kind}"
        ))));
    }
    let (from, client_url) = parse_hello(config, &body).map_err(invalid)?;
    client_urls
        .lock()
        .expect("the URL map is never poisoned")
        .insert(from, client_url);
    let mut assembling = Vec::new();
    loop {
        let (kind, body) = match read_frame(&mut stream).await {
            Ok(frame) => frame,
            // The peer closed the connection (it stopped or redials).
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(error) => return Err(error),
        };
        match kind {
            KIND_CHUNK | KIND_LAST => {
                if assembling.len() + body.len() > MESSAGE_BYTES_MAX {
                    let bytes = assembling.len() + body.len();
                    return Err(invalid(FrameError::MessageTooLong(bytes)));
                }
                assembling.extend_from_slice(&body);
                if kind == KIND_CHUNK {
                    continue;
                }
            }
            other => return Err(invalid(FrameError::UnknownKind(other))),
        }
        let bytes = std::mem::take(&mut assembling);
        let message = decode_message(config, from, &bytes).map_err(invalid)?;
        if commands
            .send(Command::Peer { from, message })
            .await
            .is_err()
        {
            return Ok(());
        }
    }
}

/// Decodes a message and checks that it comes from the connection's peer and is for us.
pub fn decode_message(
    config: &PeerConfig,
    from: NodeId,
    bytes: &[u8],
) -> Result<PeerMessage, FrameError> {
    let message: PeerMessage =
        engine::codec::decode(bytes).map_err(|error| FrameError::Message(error.to_string()))?;
    if message.from != from || message.to != config.id {
        return Err(FrameError::Message(format!(
            "names {:x} -> {:x} on the connection from {:x} to {:x}",
            message.from.0, message.to.0, from.0, config.id.0
        )));
    }
    Ok(message)
}

/// Keeps one outbound connection to member `peer`, redialling with backoff (at the address the
/// table holds at each dial), and writes its messages. Ends when the member leaves the table.
async fn send_loop(config: Arc<PeerConfig>, peer: NodeId, mut queue: mpsc::Receiver<PeerMessage>) {
    let mut backoff = BACKOFF_MIN;
    let mut logged_down = false;
    loop {
        let address = config
            .peers
            .lock()
            .expect("the peer table is never poisoned")
            .get(&peer)
            .copied();
        let Some(address) = address else {
            tracing::info!(peer = %format!("{:x}", peer.0), "peer left the membership");
            return;
        };
        let dialled = match TcpStream::connect(address).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                crate::tls::peer_dial(config.tls.as_ref(), stream, address).await
            }
            Err(error) => Err(error),
        };
        let mut stream = match dialled {
            Ok(stream) => stream,
            Err(error) => {
                if !logged_down {
                    tracing::info!(peer = %address, %error, "peer unreachable; redialling");
                    logged_down = true;
                }
                // Messages queued while the peer is down are stale by the time it is back.
                while queue.try_recv().is_ok() {}
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let mut hello = Vec::new();
        encode_frame(KIND_HELLO, &hello_body(&config, peer), &mut hello);
        // Flushed after each write: a no-op on a real socket, and the moment madsim's simulated
        // one sends what was written.
        if stream.write_all(&hello).await.is_err() || stream.flush().await.is_err() {
            continue;
        }
        tracing::info!(peer = %address, "peer connected");
        backoff = BACKOFF_MIN;
        logged_down = false;
        loop {
            let Some(message) = queue.recv().await else {
                return;
            };
            let mut bytes = encode_message(&message);
            // Batch what is already queued into one write.
            while bytes.len() < FRAME_BODY_BYTES_MAX {
                match queue.try_recv() {
                    Ok(next) => bytes.extend_from_slice(&encode_message(&next)),
                    Err(_) => break,
                }
            }
            if stream.write_all(&bytes).await.is_err() || stream.flush().await.is_err() {
                // The message is lost with the connection; raft resends what matters.
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{decode_message, encode_frame, encode_message, parse_hello, FrameError};
    use super::{PeerConfig, FRAME_BODY_BYTES_MAX, FRAME_HEADER_BYTES, KIND_LAST};
    use engine::raft::{Message, MessageBody};
    use engine::types::{LogIndex, NodeId, Term};

    fn config() -> PeerConfig {
        PeerConfig {
            id: NodeId(2),
            cluster_hash: 77,
            listen: "127.0.0.1:0".parse().unwrap(),
            peers: std::sync::Arc::new(std::sync::Mutex::new(
                [(NodeId(1), "127.0.0.1:1".parse().unwrap())].into(),
            )),
            client_url: "http://127.0.0.1:2379".into(),
            tls: None,
        }
    }

    fn forward(bytes_count: usize) -> Message {
        Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(3),
            body: MessageBody::ForwardProposal {
                kind: engine::raft::EntryKind::Normal,
                data: vec![7; bytes_count],
            },
        }
    }

    /// Splits a byte string of frames into (kind, body) pairs, checking each checksum.
    fn frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let length = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
            let kind = bytes[8];
            let body = bytes[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + length].to_vec();
            let checksum = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
            assert_eq!(
                checksum,
                crc32c::crc32c_append(crc32c::crc32c(&[kind]), &body)
            );
            out.push((kind, body));
            bytes = &bytes[FRAME_HEADER_BYTES + length..];
        }
        out
    }

    /// Goal: a message larger than a frame (a snapshot) travels in chunks and comes back whole;
    /// a small one is one frame. Method: encode 2.5 frames' worth, split, reassemble, decode.
    #[test]
    fn large_messages_are_chunked_and_reassembled() {
        let message = forward(FRAME_BODY_BYTES_MAX * 5 / 2);
        let parts = frames(&encode_message(&message));
        assert_eq!(parts.len(), 3, "three chunks");
        assert!(parts[..2]
            .iter()
            .all(|(kind, _)| *kind == super::KIND_CHUNK));
        assert_eq!(parts[2].0, KIND_LAST);
        let whole: Vec<u8> = parts.into_iter().flat_map(|(_, body)| body).collect();
        assert_eq!(decode_message(&config(), NodeId(1), &whole), Ok(message));
        assert_eq!(frames(&encode_message(&forward(10))).len(), 1);
    }

    /// Goal: garbage is refused with a reason: a hello for another cluster or member, or from a
    /// stranger; a message that does not decode or names another sender. Method: build each.
    #[test]
    fn garbage_is_refused() {
        let config = config();
        let hello = |cluster: u64, from: u64, to: u64| {
            let mut body = Vec::new();
            for word in [cluster, from, to] {
                body.extend_from_slice(&word.to_le_bytes());
            }
            body.extend_from_slice(b"http://x");
            body
        };
        assert_eq!(
            parse_hello(&config, &hello(77, 1, 2)),
            Ok((NodeId(1), "http://x".to_string()))
        );
        for bad in [
            hello(78, 1, 2),
            hello(77, 9, 2),
            hello(77, 1, 3),
            vec![1, 2, 3],
        ] {
            assert!(matches!(
                parse_hello(&config, &bad),
                Err(FrameError::Hello(_))
            ));
        }
        assert!(matches!(
            decode_message(&config, NodeId(1), b"\xff\xff\xff garbage"),
            Err(FrameError::Message(_))
        ));
        let mut wrong_sender = forward(1);
        wrong_sender.from = NodeId(3);
        let bytes = engine::codec::encode(&wrong_sender);
        assert!(matches!(
            decode_message(&config, NodeId(1), &bytes),
            Err(FrameError::Message(_))
        ));
        let mut frame = Vec::new();
        encode_frame(KIND_LAST, b"abc", &mut frame);
        assert_eq!(frames(&frame), vec![(KIND_LAST, b"abc".to_vec())]);
        let _ = LogIndex(0);
    }
}
