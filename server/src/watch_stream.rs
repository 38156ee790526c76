//! The buffer between the member task and one gRPC Watch stream, with backpressure: a slow
//! reader makes the engine pause its watches, never drop their events.
//!
//! The member task pushes each watch response (it must never block, and a response the engine
//! handed out must not be lost, so a push always succeeds while the stream is open). When the
//! buffer holds [`HIGH_WATER_COUNT`] responses, the watch whose push reached it is reported
//! slow and the member task tells the engine (`Input::WatchBackpressure { slow: true }`): the
//! engine then buffers that watch's events itself, up to its limit, and past it feeds the
//! watch later from MVCC history — a gap is never made. The stream's forwarder pops responses
//! as the client takes them; once the buffer is down to [`LOW_WATER_COUNT`], it hands back the
//! watches reported slow, and they are resumed (`slow: false`). So the buffer is bounded by the
//! high-water mark plus what the engine emits for the stream before it learns it is slow (one
//! step's output).

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use engine::kv::WatchResponse;
use engine::types::WatchId;
use tokio::sync::Notify;

/// Responses buffered for one stream at which its watches are reported slow.
pub const HIGH_WATER_COUNT: usize = 64;
/// Responses buffered at or below which slow watches are resumed.
pub const LOW_WATER_COUNT: usize = HIGH_WATER_COUNT / 4;

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<WatchResponse>,
    /// Watches reported slow and not yet resumed.
    slow: BTreeSet<WatchId>,
    /// Pushing handles alive; the stream ends when none is left and the queue is empty.
    sinks_count: usize,
    /// The reader went away: pushes fail, so the member cancels the watches.
    reader_gone: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    ready: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("the watch buffer is never poisoned")
    }
}

/// The member task's side: pushes responses. Cloned once per watch of the stream.
#[derive(Debug)]
pub struct WatchSink {
    shared: Arc<Shared>,
}

/// The stream's side: pops responses and learns which watches to resume.
#[derive(Debug)]
pub struct WatchSource {
    shared: Arc<Shared>,
}

/// The reader of the stream went away.
#[derive(Debug, PartialEq, Eq)]
pub struct ReaderGone;

/// A new buffer for one stream.
pub fn channel() -> (WatchSink, WatchSource) {
    let shared = Arc::new(Shared::default());
    shared.lock().sinks_count = 1;
    (
        WatchSink {
            shared: shared.clone(),
        },
        WatchSource { shared },
    )
}

impl Clone for WatchSink {
    fn clone(&self) -> WatchSink {
        self.shared.lock().sinks_count += 1;
        WatchSink {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for WatchSink {
    fn drop(&mut self) {
        self.shared.lock().sinks_count -= 1;
        self.shared.ready.notify_one();
    }
}

impl WatchSink {
    /// Queues a response. `Ok(Some(watch))` when this push filled the buffer and `watch` is
    /// newly slow (tell the engine); `Err` when the reader is gone.
    pub fn push(&self, response: WatchResponse) -> Result<Option<WatchId>, ReaderGone> {
        let watch_id = response.watch_id;
        let newly_slow = {
            let mut state = self.shared.lock();
            if state.reader_gone {
                return Err(ReaderGone);
            }
            state.queue.push_back(response);
            state.queue.len() >= HIGH_WATER_COUNT && state.slow.insert(watch_id)
        };
        self.shared.ready.notify_one();
        Ok(newly_slow.then_some(watch_id))
    }
}

impl WatchSource {
    /// The next response, and the watches to resume now that the buffer has drained (empty
    /// mostly); `None` once every sink is gone and the buffer is empty.
    pub async fn next(&mut self) -> Option<(WatchResponse, Vec<WatchId>)> {
        loop {
            {
                let mut state = self.shared.lock();
                if let Some(response) = state.queue.pop_front() {
                    let resumed = if state.queue.len() <= LOW_WATER_COUNT {
                        std::mem::take(&mut state.slow).into_iter().collect()
                    } else {
                        Vec::new()
                    };
                    return Some((response, resumed));
                }
                if state.sinks_count == 0 {
                    return None;
                }
            }
            self.shared.ready.notified().await;
        }
    }
}

impl Drop for WatchSource {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.reader_gone = true;
        state.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(watch: i64, revision: i64) -> WatchResponse {
        WatchResponse {
            watch_id: WatchId(watch),
            compact_revision: engine::types::Revision(revision),
            ..Default::default()
        }
    }

    /// Goal: the buffer never loses a response, reports a watch slow once when it fills, hands
    /// it back for resuming once drained, and fails pushes after the reader left. Method: push
    /// past the high-water mark, pop down past the low one, drop the reader.
    #[tokio::test]
    async fn fills_reports_slow_once_drains_and_resumes() {
        let (sink, mut source) = channel();
        let mut reported = Vec::new();
        for revision in 0..HIGH_WATER_COUNT as i64 + 10 {
            if let Some(watch) = sink.push(response(7, revision)).unwrap() {
                reported.push((watch, revision));
            }
        }
        assert_eq!(reported, vec![(WatchId(7), HIGH_WATER_COUNT as i64 - 1)]);
        let mut resumed_at = None;
        for expected in 0..HIGH_WATER_COUNT as i64 + 10 {
            let (popped, resumed) = source.next().await.unwrap();
            assert_eq!(popped.compact_revision.0, expected, "in order, none lost");
            if !resumed.is_empty() {
                assert_eq!(resumed, vec![WatchId(7)]);
                assert!(resumed_at.is_none(), "resumed once");
                resumed_at = Some(expected);
            }
        }
        let remaining_at_resume = HIGH_WATER_COUNT as i64 + 10 - 1 - resumed_at.unwrap();
        assert_eq!(remaining_at_resume, LOW_WATER_COUNT as i64);
        let second = sink.clone();
        drop(sink);
        drop(source);
        assert_eq!(second.push(response(7, 0)), Err(ReaderGone));
    }

    /// Goal: the stream ends once every sink is gone and the buffer is drained.
    #[tokio::test]
    async fn ends_when_the_sinks_are_gone() {
        let (sink, mut source) = channel();
        sink.push(response(1, 1)).unwrap();
        drop(sink);
        assert!(source.next().await.is_some());
        assert!(source.next().await.is_none());
    }
}
