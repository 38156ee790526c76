//! A small TCP proxy in front of each member's peer port: every peer link of the cluster passes
//! through one, so a link can pass, drop, delay or black-hole traffic, as etcd's robustness
//! tests do with their own proxies.
//!
//! The proxy reads the peer transport's frames (`server::peer`: `body length u32 LE | crc32c
//! u32 LE | kind u8 | body`, a hello first). The hello names the sending member, so each
//! connection is known as one directed link (from, to) although every sender dials the same
//! proxy. Faults act on whole messages (the frames up to a `last` frame), never on bytes, so a
//! dropped message is lost as a datagram would be, and the connection stays well-formed: what
//! raft sees is loss, delay or silence, not garbage.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore as _, SeedableRng as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Frame header bytes of the peer transport: length, checksum, kind.
const FRAME_HEADER_BYTES: usize = 9;
/// The peer transport's hello frame kind (the first frame of a connection).
const KIND_HELLO: u8 = 1;
/// The peer transport's frame kind that ends a message.
const KIND_LAST: u8 = 3;
/// Messages held back on one delayed link at most; more are dropped (raft retries).
const DELAYED_MESSAGE_COUNT_MAX: usize = 4096;

/// What a directed link does to the messages crossing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMode {
    /// Every message arrives at once.
    Pass,
    /// Each message is lost with this probability, in percent.
    Drop {
        /// Chance of losing a message, 0 to 100.
        percent: u32,
    },
    /// Every message arrives this late (order kept).
    Delay {
        /// Added latency, milliseconds.
        latency_ms: u64,
    },
    /// No message arrives; the connection stays open, so the sender cannot tell.
    Blackhole,
}

impl core::fmt::Display for LinkMode {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LinkMode::Pass => write!(formatter, "pass"),
            LinkMode::Drop { percent } => write!(formatter, "drop {percent}%"),
            LinkMode::Delay { latency_ms } => write!(formatter, "delay {latency_ms} ms"),
            LinkMode::Blackhole => write!(formatter, "black-hole"),
        }
    }
}

/// The mode of every directed link, by (sender id, recipient id); absent links pass.
#[derive(Clone, Default)]
pub struct Links {
    modes: Arc<Mutex<BTreeMap<(u64, u64), LinkMode>>>,
}

impl Links {
    /// Sets the link from `from` to `to`.
    pub fn set(&self, from: u64, to: u64, mode: LinkMode) {
        let mut modes = self.modes.lock().expect("the link table is never poisoned");
        if mode == LinkMode::Pass {
            modes.remove(&(from, to));
        } else {
            modes.insert((from, to), mode);
        }
    }

    /// The link from `from` to `to`.
    pub fn get(&self, from: u64, to: u64) -> LinkMode {
        let modes = self.modes.lock().expect("the link table is never poisoned");
        modes.get(&(from, to)).copied().unwrap_or(LinkMode::Pass)
    }

    /// Heals every link.
    pub fn heal_all(&self) {
        self.modes
            .lock()
            .expect("the link table is never poisoned")
            .clear();
    }
}

/// Starts a proxy listening on `listen` that forwards to `upstream` under `links`; `seed` picks
/// which messages a dropping link loses. Runs until the runtime stops.
pub async fn start(
    listen: SocketAddr,
    upstream: SocketAddr,
    links: Links,
    seed: u64,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    tokio::spawn(async move {
        let mut connection_count: u64 = 0;
        loop {
            let Ok((inbound, _)) = listener.accept().await else {
                continue;
            };
            connection_count += 1;
            let links = links.clone();
            let connection_seed = seed ^ connection_count.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            tokio::spawn(async move {
                // A connection ends when either side closes or sends garbage: the sender redials.
                let _ended = forward(inbound, upstream, links, connection_seed).await;
            });
        }
    });
    Ok(())
}

/// Reads one frame: (kind, header and body bytes).
async fn read_frame(stream: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    stream.read_exact(&mut header).await?;
    let body_bytes = u32::from_le_bytes(header[0..4].try_into().expect("four bytes")) as usize;
    if body_bytes > server::peer::FRAME_BODY_BYTES_MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a frame of {body_bytes} bytes is over the transport's limit"),
        ));
    }
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + body_bytes);
    frame.extend_from_slice(&header);
    frame.resize(FRAME_HEADER_BYTES + body_bytes, 0);
    stream.read_exact(&mut frame[FRAME_HEADER_BYTES..]).await?;
    Ok((header[8], frame))
}

/// Carries one connection: the hello names the link, then each message meets the link's mode.
async fn forward(
    mut inbound: TcpStream,
    upstream: SocketAddr,
    links: Links,
    seed: u64,
) -> std::io::Result<()> {
    let (kind, hello) = read_frame(&mut inbound).await?;
    let word = |index: usize| -> Option<u64> {
        let start = FRAME_HEADER_BYTES + index * 8;
        hello
            .get(start..start + 8)
            .map(|bytes| u64::from_le_bytes(bytes.try_into().expect("eight bytes")))
    };
    let (Some(from), Some(to)) = (word(1), word(2)) else {
        return Ok(());
    };
    if kind != KIND_HELLO {
        return Ok(());
    }
    let mut outbound = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(upstream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "upstream dial"))??;
    outbound.set_nodelay(true)?;
    outbound.write_all(&hello).await?;
    // The writer delivers messages at their due times, in order, so a delay adds latency
    // without limiting throughput.
    let (queue, mut due) =
        mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(DELAYED_MESSAGE_COUNT_MAX);
    let writer = tokio::spawn(async move {
        while let Some((deliver_at, bytes)) = due.recv().await {
            tokio::time::sleep_until(deliver_at).await;
            if outbound.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut message = Vec::new();
    let result = loop {
        let (kind, frame) = match read_frame(&mut inbound).await {
            Ok(read) => read,
            Err(error) => break Err(error),
        };
        message.extend_from_slice(&frame);
        if kind != KIND_LAST {
            continue;
        }
        let bytes = std::mem::take(&mut message);
        let now = tokio::time::Instant::now();
        let deliver_at = match links.get(from, to) {
            LinkMode::Pass => Some(now),
            LinkMode::Drop { percent } => {
                (rng.next_u64() % 100 >= u64::from(percent)).then_some(now)
            }
            LinkMode::Delay { latency_ms } => Some(now + Duration::from_millis(latency_ms)),
            LinkMode::Blackhole => None,
        };
        if let Some(deliver_at) = deliver_at {
            match queue.try_send((deliver_at, bytes)) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => break Ok(()),
            }
        }
    };
    drop(queue);
    writer.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::{LinkMode, Links, KIND_HELLO, KIND_LAST};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        server::peer::encode_frame(kind, body, &mut out);
        out
    }

    /// Goal: the proxy names a connection's link from its hello and applies that link's mode
    /// to whole messages. Method: a sender (id 1) talks to an upstream (id 2) through a proxy;
    /// a message crosses while the link passes, one sent while it is black-holed never
    /// arrives, and the next one after healing does, on the same connection.
    #[tokio::test]
    async fn a_black_holed_link_loses_messages_until_healed() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_address = upstream.local_addr().unwrap();
        let proxy_address = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap()
        };
        let links = Links::default();
        super::start(proxy_address, upstream_address, links.clone(), 7)
            .await
            .unwrap();
        let mut sender = tokio::net::TcpStream::connect(proxy_address).await.unwrap();
        let mut hello_body = Vec::new();
        for word in [77u64, 1, 2] {
            hello_body.extend_from_slice(&word.to_le_bytes());
        }
        let hello = frame(KIND_HELLO, &hello_body);
        sender.write_all(&hello).await.unwrap();
        let (mut receiver, _) = upstream.accept().await.unwrap();
        let mut received = vec![0u8; hello.len()];
        receiver.read_exact(&mut received).await.unwrap();
        assert_eq!(received, hello);

        let first = frame(KIND_LAST, b"first");
        sender.write_all(&first).await.unwrap();
        let mut received = vec![0u8; first.len()];
        receiver.read_exact(&mut received).await.unwrap();
        assert_eq!(received, first);

        links.set(1, 2, LinkMode::Blackhole);
        sender.write_all(&frame(KIND_LAST, b"lost")).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        links.heal_all();
        let third = frame(KIND_LAST, b"third");
        sender.write_all(&third).await.unwrap();
        let mut received = vec![0u8; third.len()];
        receiver.read_exact(&mut received).await.unwrap();
        assert_eq!(received, third, "the black-holed message never arrived");
    }

    /// Goal: a link's mode is per direction, and healing restores every link. Method: set one
    /// direction, read both, heal, read again.
    #[test]
    fn links_are_directed_and_heal() {
        let links = Links::default();
        links.set(1, 2, LinkMode::Blackhole);
        assert_eq!(links.get(1, 2), LinkMode::Blackhole);
        assert_eq!(links.get(2, 1), LinkMode::Pass);
        links.set(2, 1, LinkMode::Delay { latency_ms: 5 });
        links.heal_all();
        assert_eq!(links.get(1, 2), LinkMode::Pass);
        assert_eq!(links.get(2, 1), LinkMode::Pass);
    }
}
