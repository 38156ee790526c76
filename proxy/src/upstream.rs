//! The grpc-proxy's way to the cluster: one lazily connecting channel per endpoint, and a
//! failover rule. A call goes to the endpoint that answered last; when an endpoint cannot be
//! reached the call moves on to the next, and when none can, the client gets `Unavailable`
//! naming every endpoint. A call that may have reached a member (the connection broke after it
//! was sent) is retried elsewhere only when it is safe to repeat (reads), as etcd's client does.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// How long a connection attempt to one endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether a failed call may be tried again on another endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Only when the endpoint was never reached (the request was not sent).
    Unreached,
    /// Also when the connection broke mid-call: the request is a read.
    Unavailable,
}

/// The cluster's endpoints.
#[derive(Debug)]
pub(crate) struct Upstream {
    endpoints: Vec<(String, Channel)>,
    current: AtomicUsize,
}

/// Whether `status` says the endpoint could not be reached at all.
pub(crate) fn is_unreached(status: &Status) -> bool {
    if status.code() != Code::Unavailable {
        return false;
    }
    let message = status.message().to_ascii_lowercase();
    message.contains("connect") || message.contains("dns error")
}

/// A call cut off by its connection breaking comes back from tonic as `Cancelled`; the client
/// did not cancel anything, so it gets `Unavailable`, as from a member that went away.
/// (The proxy passes no deadline upstream, so `Cancelled` has no other cause.)
fn broken_connection(status: Status, url: &str) -> Status {
    if status.code() == Code::Cancelled {
        Status::unavailable(format!(
            "grpc-proxy: the connection to {url} broke: {}",
            status.message()
        ))
    } else {
        status
    }
}

impl Upstream {
    /// Channels to `urls` (`http://host:port`); nothing is dialed yet.
    pub(crate) fn new(urls: &[String]) -> Result<Upstream, String> {
        let endpoints = urls
            .iter()
            .map(|url| {
                let endpoint = Endpoint::from_shared(url.clone())
                    .map_err(|error| format!("--endpoints: {url:?}: {error}"))?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .tcp_nodelay(true);
                Ok((url.clone(), endpoint.connect_lazy()))
            })
            .collect::<Result<Vec<_>, String>>()?;
        assert!(!endpoints.is_empty(), "the flags were validated");
        Ok(Upstream {
            endpoints,
            current: AtomicUsize::new(0),
        })
    }

    /// The endpoints, from the one that answered last, as (index, url, channel).
    pub(crate) fn rotation(&self) -> impl Iterator<Item = (usize, &str, Channel)> + '_ {
        let count = self.endpoints.len();
        let start = self.current.load(Ordering::Relaxed);
        (0..count).map(move |offset| {
            let index = (start + offset) % count;
            let (url, channel) = &self.endpoints[index];
            (index, url.as_str(), channel.clone())
        })
    }

    /// Remembers that endpoint `index` answered: the next call starts there.
    pub(crate) fn answered(&self, index: usize) {
        self.current.store(index, Ordering::Relaxed);
    }

    /// The error a client gets when no endpoint could be reached.
    pub(crate) fn all_down(&self, last: &Status) -> Status {
        let urls: Vec<&str> = self.endpoints.iter().map(|(url, _)| url.as_str()).collect();
        Status::unavailable(format!(
            "grpc-proxy: no endpoint of the cluster answers (tried {}): {}",
            urls.join(", "),
            last.message()
        ))
    }

    /// Runs `call` on the endpoints in turn until one answers (see the module doc).
    pub(crate) async fn call<T, F, Fut>(&self, retry: Retry, call: F) -> Result<T, Status>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut last = Status::unavailable("no endpoint tried");
        for (index, url, channel) in self.rotation() {
            match call(channel).await {
                Ok(answer) => {
                    self.answered(index);
                    return Ok(answer);
                }
                Err(status) => {
                    let status = broken_connection(status, url);
                    let retry_here = is_unreached(&status)
                        || (retry == Retry::Unavailable && status.code() == Code::Unavailable);
                    if !retry_here {
                        self.answered(index);
                        return Err(status);
                    }
                    tracing::debug!(%url, error = %status.message(), "grpc-proxy: endpoint failed");
                    last = status;
                }
            }
        }
        Err(self.all_down(&last))
    }
}
