//! Golden-file tests of the watch hub: scripts write to a model store, create, pause, resume and
//! cancel watches, compact, and ask for progress; every response the hub emits is rendered with
//! `describe_response` and compared with an insta snapshot.

use engine::kv::{ResponseHeader, WatchCreateRequest, WatchFilters, WatchResponse};
use engine::types::{Duration, Instant, Revision, WatchId};
use engine::watch::model::{ModelStore, ModelWrite};
use engine::watch::{describe_response, WatchConfig, WatchHub};

/// Small limits so that buffering, catch-up and fragmenting show in short scripts.
fn config() -> WatchConfig {
    WatchConfig {
        watchers_count_max: 8,
        pending_events_count_max: 3,
        response_bytes_max: 160,
        progress_interval: Duration::from_secs(10),
    }
}

struct Harness {
    store: ModelStore,
    hub: WatchHub,
    now: Instant,
    output: String,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            store: ModelStore::new(),
            hub: WatchHub::new(config(), ResponseHeader::default()),
            now: Instant(0),
            output: String::new(),
        }
    }

    /// `put k v`, `del k` or `txn put a 1 del b ...`: one revision, fed to the hub after apply.
    fn write(&mut self, words: &[&str], out: &mut Vec<WatchResponse>) -> String {
        let mut writes = Vec::new();
        let mut rest = words;
        while let Some((verb, tail)) = rest.split_first() {
            match (*verb, tail) {
                ("put", [key, value, more @ ..]) => {
                    writes.push(ModelWrite::Put(key.as_bytes().to_vec(), expand(value)));
                    rest = more;
                }
                ("del", [key, more @ ..]) => {
                    writes.push(ModelWrite::Delete(key.as_bytes().to_vec()));
                    rest = more;
                }
                _ => panic!("bad write {words:?}"),
            }
        }
        match self.store.apply(&writes) {
            Some((revision, events)) => {
                self.hub.on_apply(revision, &events, out);
                format!("rev={revision}")
            }
            None => "no change".to_string(),
        }
    }

    fn watch(&mut self, words: &[&str]) -> String {
        let mut request = WatchCreateRequest::default();
        for word in words {
            let (name, value) = word.split_once('=').unwrap_or((word, ""));
            match name {
                "key" => request.key = value.as_bytes().to_vec(),
                "end" if value == "\\0" => request.range_end = vec![0],
                "end" => request.range_end = value.as_bytes().to_vec(),
                "start" => request.start_revision = Revision(value.parse().unwrap()),
                "id" => request.watch_id = WatchId(value.parse().unwrap()),
                "prev_kv" => request.prev_kv = true,
                "fragment" => request.fragment = true,
                "progress_notify" => request.progress_notify = true,
                "no_put" => {
                    request.filters = WatchFilters {
                        no_put: true,
                        ..request.filters
                    }
                }
                "no_delete" => {
                    request.filters = WatchFilters {
                        no_delete: true,
                        ..request.filters
                    }
                }
                _ => panic!("bad watch option {word}"),
            }
        }
        match self.hub.create(request, &self.store) {
            Ok(id) => describe_response(&self.hub.created_response(id)),
            Err(error) => format!("error {}", error.code()),
        }
    }

    fn step(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut out = Vec::new();
        let result = match words.as_slice() {
            ["put", ..] | ["del", ..] => self.write(&words, &mut out),
            ["txn", rest @ ..] => self.write(rest, &mut out),
            ["watch", rest @ ..] => self.watch(rest),
            ["compact", revision] => {
                self.store.compact(Revision(revision.parse().unwrap()));
                "ok".to_string()
            }
            ["cancel", id] => render(self.hub.cancel(WatchId(id.parse().unwrap()))),
            ["pause", id] => render(self.hub.pause(WatchId(id.parse().unwrap()))),
            ["resume", id] => render(self.hub.resume(WatchId(id.parse().unwrap()), &mut out)),
            ["catch-up", budget] => {
                let lagging = self
                    .hub
                    .catch_up(&self.store, &mut out, budget.parse().unwrap());
                format!("lagging={lagging}")
            }
            ["progress"] => {
                self.hub.request_progress(&mut out);
                "ok".to_string()
            }
            ["advance", ms] => {
                self.now = self.now + Duration::from_millis(ms.parse().unwrap());
                self.hub.progress_due(self.now, &mut out);
                format!("now={}ms", self.now.0 / 1_000_000)
            }
            _ => panic!("unknown script line {line:?}"),
        };
        self.output.push_str(&format!("> {line}\n{result}\n"));
        for response in &out {
            self.output
                .push_str(&format!("  {}\n", describe_response(response)));
        }
    }
}

/// `x*N` expands to N copies of x, so scripts can write large values.
fn expand(value: &str) -> Vec<u8> {
    match value.split_once('*') {
        Some((unit, count)) => unit.repeat(count.parse().unwrap()).into_bytes(),
        None => value.as_bytes().to_vec(),
    }
}

fn render(result: Result<(), engine::kv::RequestError>) -> String {
    match result {
        Ok(()) => "ok".to_string(),
        Err(error) => format!("error {}", error.code()),
    }
}

fn run(script: &str) -> String {
    let mut harness = Harness::new();
    for line in script.lines().map(str::trim) {
        if !line.is_empty() && !line.starts_with('#') {
            harness.step(line);
        }
    }
    harness.output
}

/// Goal: a watch from a past revision replays exactly the history of its range, then continues
/// live without a gap or a repeat. Method: write five revisions (one a txn), watch the prefix
/// `a`..`b` from revision 2 with prev_kv, catch up in small budgets, then write more.
#[test]
fn watch_replays_history() {
    let output = run("
        put a1 x
        put b1 y
        txn put a1 z put a2 w
        del a1
        put a3 v
        watch key=a end=b start=2 prev_kv
        watch key=a2
        catch-up 2
        catch-up 2
        catch-up 2
        put a2 u
        put c q
    ");
    insta::assert_snapshot!("watch_replays_history", output);
}

/// Goal: a watch whose start revision (or whose catch-up position) was compacted is cancelled
/// with the compact revision, and one starting after it replays normally. Method: compact at
/// 3, watch from 2 (cancelled), from 4 (replayed); then let a paused watcher overflow into
/// catch-up and compact past its position before it resumes.
#[test]
fn watch_compaction_cancels() {
    let output = run("
        put k 1
        put k 2
        put k 3
        put k 4
        compact 3
        watch key=k start=2
        watch key=k start=4
        catch-up 10
        watch key=k
        pause 3
        put k 5
        put k 6
        put k 7
        put k 8
        compact 8
        resume 3
        catch-up 10
        put k 9
    ");
    insta::assert_snapshot!("watch_compaction_cancels", output);
}

/// Goal: filters drop event kinds, prev_kv is included only when asked, and given ids are
/// honoured or refused. Method: three watches on one key with different options, a put, a
/// delete and a put again; cancel one and check it gets nothing more.
#[test]
fn watch_filters_and_prev_kv() {
    let output = run("
        put k 0
        watch key=k no_put
        watch key=k no_delete prev_kv id=7
        watch key=k id=7
        watch key=k end=\\0 prev_kv
        put k 1
        del k
        put k 2
        cancel 7
        cancel 7
        put k 3
    ");
    insta::assert_snapshot!("watch_filters_and_prev_kv", output);
}

/// Goal: responses are split at revision boundaries to respect `response_bytes_max`, and one
/// oversized revision is split only for a watch that asked for fragments. Method: replay three
/// revisions of big values, then one txn larger than the limit to a fragmenting and a
/// non-fragmenting watch.
#[test]
fn watch_fragments_large_responses() {
    let output = run("
        put a x*40
        put b y*40
        put c z*40
        watch key=a end=\\0 start=1
        watch key=a end=\\0 fragment
        catch-up 100
        txn put a p*50 put b q*50 put c r*50
    ");
    insta::assert_snapshot!("watch_fragments_large_responses", output);
}

/// Goal: progress notifications never claim a revision whose events were not delivered.
/// Method: one idle synced watch, one paused watch with buffered events, one catching up; an
/// on-demand request answers only the first at once, the others after they are drained; the
/// periodic notification goes only to idle watches with progress_notify.
#[test]
fn watch_progress() {
    let output = run("
        put k 1
        watch key=k progress_notify
        watch key=k
        watch key=k start=1 progress_notify
        pause 2
        put k 2
        progress
        resume 2
        catch-up 10
        advance 1
        advance 10000
        put k 3
        advance 10000
        advance 10000
    ");
    insta::assert_snapshot!("watch_progress", output);
}
