//! One conformance suite for every host's disk: the simulator runs it against `SimDisk`
//! (`sim/tests/host_conformance.rs`) and the server against real files
//! (`server/tests/host_conformance.rs`). Each check takes a factory of fresh, empty disks and
//! panics with a message naming the broken rule.
//!
//! The checks drive a real engine member through [`Hosting`] with a synchronous host: disk
//! operations are performed in order right after the step that issued them, time jumps to the
//! member's next wake. What they hold a disk to: the `DiskOp` durability contract (synced bytes
//! and renamed files survive a crash), recovery across a restart with a new incarnation seed,
//! a torn WAL tail repaired and reported, corruption in the middle refused with file and offset,
//! and the order of carrying out actions (a failed sync halts the member after what it said
//! before reached its clients, and a halted member re-arms no timer).

use std::collections::VecDeque;

use engine::api::{DiskFault, DiskImage, DiskOp, DiskOpId, Envelope, FileName};
use engine::kv::{PutRequest, RangeRequest, Request, Response, WatchResponse};
use engine::member::{MemberConfig, RecoveryError, RecoveryReport};
use engine::types::{Instant, NodeId};

use crate::disk::HostDisk;
use crate::hosting::{Answer, Hosting, Io, Route};
use crate::incarnation;

/// Steps a check may take before it is declared stuck.
const STEPS_COUNT_MAX: usize = 10_000;

/// A host that records what the member asked, for the checks to carry out synchronously.
#[derive(Debug, Default)]
struct SuiteIo {
    disk_queue: VecDeque<(DiskOpId, DiskOp)>,
    answers: Vec<(u64, Answer)>,
    sent_count: usize,
}

impl Io for SuiteIo {
    type Reply = u64;
    type Stream = u64;

    fn disk(&mut self, op_id: DiskOpId, op: DiskOp) {
        self.disk_queue.push_back((op_id, op));
    }

    fn send(&mut self, _envelope: Envelope) {
        self.sent_count += 1;
    }

    fn answer(&mut self, reply: u64, answer: Answer) {
        self.answers.push((reply, answer));
    }

    fn deliver(&mut self, _stream: &u64, _response: WatchResponse) -> bool {
        true
    }
}

/// A member hosted on a disk by the suite's synchronous host.
struct Running<'disk, D: HostDisk> {
    hosting: Hosting<u64, u64>,
    io: SuiteIo,
    disk: &'disk mut D,
    now: Instant,
}

/// A disk wrapper that fails every sync once `fail_syncs` is set.
struct FailingSyncs<'disk, D: HostDisk> {
    inner: &'disk mut D,
    fail_syncs: bool,
}

impl<D: HostDisk> HostDisk for FailingSyncs<'_, D> {
    fn perform(&mut self, op: &DiskOp) -> Result<(), DiskFault> {
        if self.fail_syncs && matches!(op, DiskOp::Sync { .. }) {
            return Err(DiskFault::Io);
        }
        self.inner.perform(op)
    }

    fn image(&mut self) -> Result<DiskImage, String> {
        self.inner.image()
    }

    fn crash(&mut self) {
        self.inner.crash();
    }
}

fn config(seed: u64) -> MemberConfig {
    let mut config = MemberConfig::new(NodeId(1), vec![NodeId(1)], seed);
    // Small segments and frequent snapshots, so a short run rolls segments and renames files.
    config.wal_segment_bytes_max = 4096;
    config.snapshot_interval_entries = 16;
    config
}

/// Performs operations directly on a disk, panicking on a fault (the suite's own set-up).
fn perform_all<D: HostDisk>(disk: &mut D, ops: &[DiskOp]) {
    for op in ops {
        if let Err(fault) = disk.perform(op) {
            panic!("the disk refused {op:?}: {fault:?}");
        }
    }
}

/// Starts a member on `disk` as a host must: the next incarnation made durable first.
fn start<D: HostDisk>(
    disk: &mut D,
    now: Instant,
) -> Result<(Running<'_, D>, RecoveryReport, incarnation::Incarnation), RecoveryError> {
    let mut image = disk.image().expect("the disk's image reads");
    let (incarnation, ops) = incarnation::next(&mut image, 7).expect("the start count reads");
    perform_all(disk, &ops);
    let mut io = SuiteIo::default();
    let (hosting, report) = Hosting::start(config(incarnation.seed), image, now, &mut io)?;
    let mut running = Running {
        hosting,
        io,
        disk,
        now,
    };
    running.settle();
    Ok((running, report, incarnation))
}

impl<D: HostDisk> Running<'_, D> {
    /// Performs queued disk operations in order, reporting each, until none is left.
    fn settle(&mut self) {
        let mut steps = 0;
        while let Some((op_id, op)) = self.io.disk_queue.pop_front() {
            steps += 1;
            assert!(
                steps < STEPS_COUNT_MAX,
                "the member keeps issuing disk work"
            );
            let result = self.disk.perform(&op);
            self.hosting
                .disk_done(self.now, op_id, result, &mut self.io);
        }
    }

    /// Advances time to the member's wake and fires it.
    fn tick(&mut self) {
        let wake = self
            .hosting
            .wake_at()
            .expect("a running member wants a wake");
        assert!(wake >= self.now, "wakes never go back in time");
        self.now = wake;
        assert!(self.hosting.fire_timer(self.now, &mut self.io));
        self.settle();
    }

    /// Runs until the member is a leader (a one-member cluster elects itself).
    fn until_leader(&mut self) {
        for _ in 0..STEPS_COUNT_MAX {
            if self.hosting.member().status().is_leader {
                return;
            }
            self.tick();
        }
        panic!("a one-member cluster elected no leader");
    }

    /// Sends one request and runs until it is answered.
    fn call(&mut self, request: Request) -> Answer {
        let tag = self.io.answers.len() as u64 + 1_000;
        self.hosting
            .request(self.now, request, Route::Reply(tag), &mut self.io);
        self.settle();
        for _ in 0..STEPS_COUNT_MAX {
            if let Some(position) = self.io.answers.iter().position(|(id, _)| *id == tag) {
                return self.io.answers.remove(position).1;
            }
            self.tick();
        }
        panic!("request {tag} was never answered");
    }

    fn put(&mut self, key: &str, value: &str) {
        let answer = self.call(Request::Put(PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            ..PutRequest::default()
        }));
        assert!(
            matches!(answer, Ok(Response::Put(_))),
            "put {key}: {answer:?}"
        );
    }

    fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        let answer = self.call(Request::Range(RangeRequest {
            key: key.as_bytes().to_vec(),
            ..RangeRequest::default()
        }));
        match answer {
            Ok(Response::Range(range)) => range.kvs.first().map(|kv| kv.value.to_vec()),
            other => panic!("get {key}: {other:?}"),
        }
    }
}

/// The plain `DiskOp` contract: created, appended, synced, renamed and removed files read back
/// as written, and survive a crash once synced (files) and directory-synced (names).
pub fn check_disk_operations<D: HostDisk>(make: &mut dyn FnMut() -> D) {
    let mut disk = make();
    assert!(disk.image().unwrap().is_empty(), "a fresh disk is empty");
    let (a, b, c) = (
        FileName("a.tmp".into()),
        FileName("b".into()),
        FileName("c".into()),
    );
    perform_all(
        &mut disk,
        &[
            DiskOp::Create { file: a.clone() },
            DiskOp::Append {
                file: a.clone(),
                bytes: b"hello ".to_vec(),
            },
            DiskOp::Append {
                file: a.clone(),
                bytes: b"world".to_vec(),
            },
            DiskOp::Sync { file: a.clone() },
            DiskOp::Rename {
                from: a.clone(),
                to: b.clone(),
            },
            DiskOp::Create { file: c.clone() },
            DiskOp::SyncDir,
            DiskOp::Remove { file: c.clone() },
            DiskOp::SyncDir,
        ],
    );
    disk.crash();
    let image = disk.image().unwrap();
    assert_eq!(
        image.keys().cloned().collect::<Vec<_>>(),
        vec![b.clone()],
        "after rename, remove and a directory sync only the renamed file remains"
    );
    assert_eq!(image[&b], b"hello world", "synced appends survive a crash");
    // A create truncates an existing file.
    perform_all(&mut disk, &[DiskOp::Create { file: b.clone() }]);
    assert!(disk.image().unwrap()[&b].is_empty(), "create truncates");
}

/// A member's acknowledged writes survive a crash and a restart, the restart gets a new
/// incarnation and seed, and proposals of the new incarnation are not mistaken for repeats.
pub fn check_restart_recovers<D: HostDisk>(make: &mut dyn FnMut() -> D) {
    let mut disk = make();
    let first_seed = {
        let (mut running, report, incarnation) = start(&mut disk, Instant(0)).unwrap();
        assert!(report.fresh, "an empty disk starts a new member");
        assert_eq!(incarnation.number, 1);
        running.until_leader();
        for index in 0..40 {
            running.put(&format!("key{index}"), &format!("value{index}"));
        }
        assert_eq!(running.hosting.disk_in_flight_count(), 0);
        incarnation.seed
    };
    disk.crash();
    let (mut running, report, incarnation) = start(&mut disk, Instant(1_000_000_000_000)).unwrap();
    assert!(!report.fresh, "a restart recovers");
    assert_eq!(incarnation.number, 2, "the start count was persisted");
    assert_ne!(
        incarnation.seed, first_seed,
        "each incarnation has its own seed"
    );
    running.until_leader();
    for index in 0..40 {
        let value = running.get(&format!("key{index}"));
        assert_eq!(value, Some(format!("value{index}").into_bytes()));
    }
    // The same request again, from the new incarnation: applied, not dropped as a repeat.
    running.put("key0", "again");
    assert_eq!(running.get("key0"), Some(b"again".to_vec()));
}

/// A torn WAL tail (a partial record at the end) is cut off at restart and reported, and the
/// writes before it are kept.
pub fn check_torn_tail_repaired<D: HostDisk>(make: &mut dyn FnMut() -> D) {
    let mut disk = make();
    {
        let (mut running, _, _) = start(&mut disk, Instant(0)).unwrap();
        running.until_leader();
        running.put("kept", "yes");
    }
    let last_segment = newest_segment(&mut disk);
    perform_all(
        &mut disk,
        &[
            DiskOp::Append {
                file: last_segment.clone(),
                bytes: vec![0x55; 7],
            },
            DiskOp::Sync {
                file: last_segment.clone(),
            },
        ],
    );
    disk.crash();
    let (mut running, report, _) = start(&mut disk, Instant(1_000_000_000_000)).unwrap();
    let notes = report.notes.join("\n");
    assert!(
        notes.contains("torn") && notes.contains(&*last_segment.0),
        "the repair is reported, naming the file: {notes}"
    );
    running.until_leader();
    assert_eq!(running.get("kept"), Some(b"yes".to_vec()));
    drop(running);
    let bytes = disk
        .image()
        .unwrap()
        .remove(&last_segment)
        .unwrap_or_default();
    assert!(
        !bytes.ends_with(&[0x55; 7]),
        "the repair reached the disk: the garbage is gone"
    );
}

/// A damaged record in the middle of the WAL refuses the start, naming the file and offset.
pub fn check_corrupt_middle_refused<D: HostDisk>(make: &mut dyn FnMut() -> D) {
    let mut disk = make();
    {
        let (mut running, _, _) = start(&mut disk, Instant(0)).unwrap();
        running.until_leader();
        for index in 0..8 {
            running.put(&format!("key{index}"), "value");
        }
    }
    let segment = newest_segment(&mut disk);
    let mut bytes = disk.image().unwrap().remove(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    perform_all(
        &mut disk,
        &[
            DiskOp::Create {
                file: segment.clone(),
            },
            DiskOp::Append {
                file: segment.clone(),
                bytes,
            },
            DiskOp::Sync {
                file: segment.clone(),
            },
            // The create replaced the file: durable only once the directory is synced.
            DiskOp::SyncDir,
        ],
    );
    disk.crash();
    let error = match start(&mut disk, Instant(1_000_000_000_000)) {
        Err(error) => error,
        Ok((_, report, _)) => panic!(
            "a WAL damaged in the middle ({} at offset {middle}) must not start: {report:?}",
            segment.0
        ),
    };
    let text = error.to_string();
    assert!(
        text.contains(&*segment.0) && text.contains("offset"),
        "the refusal names file and offset: {text}"
    );
}

/// A failed sync halts the member: what it said before the halt still reaches the host, the
/// halt is kept, requests after it are answered `Stopping`, and no timer is re-armed.
pub fn check_failed_sync_halts<D: HostDisk>(make: &mut dyn FnMut() -> D) {
    let mut inner = make();
    let mut disk = FailingSyncs {
        inner: &mut inner,
        fail_syncs: false,
    };
    let (mut running, _, _) = start(&mut disk, Instant(0)).unwrap();
    running.until_leader();
    running.put("before", "1");
    running.disk.fail_syncs = true;
    running.hosting.request(
        running.now,
        Request::Put(PutRequest {
            key: b"after".to_vec(),
            value: b"2".to_vec(),
            ..PutRequest::default()
        }),
        Route::Reply(1),
        &mut running.io,
    );
    running.settle();
    assert!(
        running.hosting.halted().is_some(),
        "a failed sync halts the member"
    );
    assert_eq!(
        running.hosting.wake_at(),
        None,
        "a halted member re-arms no timer"
    );
    assert!(
        !running.io.answers.iter().any(|(_, answer)| answer.is_ok()),
        "a write whose sync failed is never acknowledged"
    );
    let answer = running.call_after_halt();
    assert_eq!(answer, Err(engine::kv::RequestError::Stopping));
    // A request with credentials is answered the same way, never handed to the member.
    running.hosting.request_with_credentials(
        running.now,
        Request::Range(RangeRequest::default()),
        engine::auth::Credentials::User("alice".into()),
        Route::Reply(3),
        &mut running.io,
    );
    let answered = running.io.answers.iter().find(|(id, _)| *id == 3);
    assert_eq!(
        answered.map(|(_, answer)| answer.clone()),
        Some(Err(engine::kv::RequestError::Stopping))
    );
}

impl<D: HostDisk> Running<'_, D> {
    fn call_after_halt(&mut self) -> Answer {
        self.hosting.request(
            self.now,
            Request::Range(RangeRequest::default()),
            Route::Reply(2),
            &mut self.io,
        );
        let position = self
            .io
            .answers
            .iter()
            .position(|(id, _)| *id == 2)
            .expect("a halted member's host answers at once");
        self.io.answers.remove(position).1
    }
}

fn newest_segment<D: HostDisk>(disk: &mut D) -> FileName {
    disk.image()
        .unwrap()
        .keys()
        .filter(|name| engine::wal::parse_segment_name(name).is_some())
        .max()
        .cloned()
        .expect("the member wrote a WAL segment")
}

/// Every check, each on fresh disks from `make`.
pub fn run_all<D: HostDisk>(mut make: impl FnMut() -> D) {
    check_disk_operations(&mut make);
    check_restart_recovers(&mut make);
    check_torn_tail_repaired(&mut make);
    check_corrupt_middle_refused(&mut make);
    check_failed_sync_halts(&mut make);
}
