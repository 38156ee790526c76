//! `detcd gateway`: a stateless layer-4 proxy. Each accepted client connection is joined to a
//! fresh connection to one endpoint, picked round robin among the endpoints not marked down;
//! bytes are copied both ways until either side closes. An endpoint that refuses or does not
//! answer a dial within `DIAL_TIMEOUT` is marked down for the retry delay, and the connection
//! moves on to the next endpoint, so a client never sees a dead endpoint while another lives.
//!
//! Unlike etcd's gateway, which refuses connections while every endpoint is marked down, this
//! one then dials them all anyway: a cluster that comes back is reachable at once rather than
//! after the retry delay.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

/// How long a dial to an endpoint may take before it counts as down.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);

/// One endpoint and when it may be tried again after failing.
#[derive(Debug)]
struct Remote {
    address: String,
    down_until: Option<Instant>,
}

/// The endpoints and the round-robin cursor.
#[derive(Debug)]
struct Remotes {
    remotes: Vec<Remote>,
    next_index: usize,
}

impl Remotes {
    /// The endpoints to try for one connection, in order: those up (round robin from the
    /// cursor), then, only when none is up, every endpoint.
    fn dial_order(&mut self, now: Instant) -> Vec<usize> {
        let count = self.remotes.len();
        let start = self.next_index;
        self.next_index = (self.next_index + 1) % count;
        let rotation = (0..count).map(|offset| (start + offset) % count);
        let up: Vec<usize> = rotation
            .clone()
            .filter(|&index| {
                self.remotes[index]
                    .down_until
                    .is_none_or(|until| until <= now)
            })
            .collect();
        if up.is_empty() {
            rotation.collect()
        } else {
            up
        }
    }
}

/// The gateway's settings (etcd's `gateway start` flags).
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// `--endpoints`: `host:port` of each member's client port.
    pub endpoints: Vec<String>,
    /// `--retry-delay`: how long an endpoint that failed a dial is left out.
    pub retry_delay: Duration,
}

/// Serves the gateway on `listener` until the task is dropped or the listener fails.
pub async fn serve_gateway(listener: TcpListener, config: GatewayConfig) -> std::io::Result<()> {
    assert!(!config.endpoints.is_empty(), "the flags were validated");
    let remotes = Arc::new(Mutex::new(Remotes {
        remotes: config
            .endpoints
            .iter()
            .map(|address| Remote {
                address: address.clone(),
                down_until: None,
            })
            .collect(),
        next_index: 0,
    }));
    loop {
        let (client, peer) = listener.accept().await?;
        let remotes = remotes.clone();
        let retry_delay = config.retry_delay;
        tokio::spawn(async move {
            let Some(upstream) = dial(&remotes, retry_delay).await else {
                tracing::warn!(%peer, "gateway: no endpoint answers; closing the connection");
                return;
            };
            let (mut client, mut upstream) = (client, upstream);
            // Either side closing (or failing) ends the pair; nothing to report.
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
    }
}

/// Dials the endpoints in round-robin order until one answers, marking those that do not.
async fn dial(remotes: &Mutex<Remotes>, retry_delay: Duration) -> Option<TcpStream> {
    let (order, addresses) = {
        let mut remotes = remotes
            .lock()
            .expect("the endpoint table is never poisoned");
        let order = remotes.dial_order(Instant::now());
        let addresses: Vec<String> = order
            .iter()
            .map(|&index| remotes.remotes[index].address.clone())
            .collect();
        (order, addresses)
    };
    for (index, address) in order.into_iter().zip(addresses) {
        let dialed = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(&address)).await;
        let mut remotes = remotes
            .lock()
            .expect("the endpoint table is never poisoned");
        match dialed {
            Ok(Ok(stream)) => {
                remotes.remotes[index].down_until = None;
                let _ = stream.set_nodelay(true);
                return Some(stream);
            }
            Ok(Err(error)) => {
                tracing::warn!(%address, %error, "gateway: endpoint refused; marked down");
            }
            Err(_) => tracing::warn!(%address, "gateway: endpoint did not answer; marked down"),
        }
        remotes.remotes[index].down_until = Some(Instant::now() + retry_delay);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remotes(count: usize) -> Remotes {
        Remotes {
            remotes: (0..count)
                .map(|index| Remote {
                    address: format!("127.0.0.1:{index}"),
                    down_until: None,
                })
                .collect(),
            next_index: 0,
        }
    }

    #[test]
    fn round_robin_skips_endpoints_marked_down_until_their_delay_passes() {
        let now = Instant::now();
        let mut table = remotes(3);
        assert_eq!(table.dial_order(now), vec![0, 1, 2]);
        assert_eq!(table.dial_order(now), vec![1, 2, 0]);
        table.remotes[2].down_until = Some(now + Duration::from_secs(60));
        assert_eq!(table.dial_order(now), vec![0, 1], "endpoint 2 is down");
        assert_eq!(
            table.dial_order(now + Duration::from_secs(61)),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn every_endpoint_is_tried_when_all_are_down() {
        let now = Instant::now();
        let mut table = remotes(2);
        for remote in &mut table.remotes {
            remote.down_until = Some(now + Duration::from_secs(60));
        }
        assert_eq!(table.dial_order(now), vec![0, 1]);
    }
}
