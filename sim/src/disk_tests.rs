//! Tests of the simulated disk: durability rules of `DiskOp` and each injectable fault.

use engine::api::{DiskFault, DiskOp, FileName};
use engine::types::{Duration, Instant};

use super::{DiskConfig, DiskFaultKind, SimDisk};
use crate::rng::{SimRng, Stream};

fn name(text: &str) -> FileName {
    FileName(text.into())
}

fn disk(seed: u64, torn_tail_ppm: u32) -> SimDisk {
    SimDisk::new(
        DiskConfig {
            torn_tail_ppm,
            ..DiskConfig::ssd()
        },
        SimRng::for_stream(seed, Stream::Disk(0)),
    )
}

fn run(disk: &mut SimDisk, ops: &[DiskOp]) -> Vec<Result<(), DiskFault>> {
    ops.iter().map(|op| disk.perform(op, Instant(0))).collect()
}

fn create(file: &str) -> DiskOp {
    DiskOp::Create { file: name(file) }
}
fn append(file: &str, bytes: &[u8]) -> DiskOp {
    DiskOp::Append {
        file: name(file),
        bytes: bytes.to_vec(),
    }
}
fn sync(file: &str) -> DiskOp {
    DiskOp::Sync { file: name(file) }
}

/// Goal: only synced appends of a file whose creation was dir-synced survive a crash.
/// Method: create+syncdir a file, append and sync "abc", append "def" unsynced, crash with no
/// torn tails, and read the image; a second file created without SyncDir must vanish.
#[test]
fn crash_keeps_exactly_the_durable_state() {
    let mut disk = disk(1, 0);
    let results = run(
        &mut disk,
        &[
            create("wal"),
            DiskOp::SyncDir,
            append("wal", b"abc"),
            sync("wal"),
            append("wal", b"def"),
            create("tmp"),
            append("tmp", b"x"),
            sync("tmp"),
        ],
    );
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(
        disk.image().unwrap()[&name("wal")],
        b"abcdef".to_vec(),
        "before the crash everything is visible"
    );
    disk.crash();
    let image = disk.image().unwrap();
    assert_eq!(image[&name("wal")], b"abc".to_vec());
    assert!(
        !image.contains_key(&name("tmp")),
        "a create without SyncDir is not durable"
    );
}

/// Goal: a rename is durable only after SyncDir, and then replaces the target.
/// Method: rename without SyncDir and crash (old name back), then with SyncDir (new name stays).
#[test]
fn rename_needs_sync_dir() {
    let mut disk = disk(2, 0);
    run(
        &mut disk,
        &[create("a"), append("a", b"1"), sync("a"), DiskOp::SyncDir],
    );
    run(
        &mut disk,
        &[DiskOp::Rename {
            from: name("a"),
            to: name("b"),
        }],
    );
    disk.crash();
    assert!(disk.image().unwrap().contains_key(&name("a")));
    run(
        &mut disk,
        &[
            DiskOp::Rename {
                from: name("a"),
                to: name("b"),
            },
            DiskOp::SyncDir,
        ],
    );
    disk.crash();
    let image = disk.image().unwrap();
    assert_eq!(image.get(&name("b")), Some(&b"1".to_vec()));
    assert!(!image.contains_key(&name("a")));
}

/// Goal: a torn tail keeps a strict prefix of the unsynced bytes, never more, never reordered.
/// Method: with torn tails always on, crash many seeded disks and check the image is a prefix of
/// the written bytes that contains the durable part.
#[test]
fn torn_tail_is_a_prefix_of_unsynced_bytes() {
    let mut saw_torn = false;
    for seed in 0..50 {
        let mut disk = disk(seed, super::super::rng::PPM);
        run(
            &mut disk,
            &[
                create("wal"),
                DiskOp::SyncDir,
                append("wal", b"durable"),
                sync("wal"),
                append("wal", b"0123456789"),
            ],
        );
        disk.crash();
        let bytes = disk.image().unwrap()[&name("wal")].clone();
        assert!(b"durable0123456789".starts_with(&bytes));
        assert!(bytes.len() >= 7 && bytes.len() < 17);
        saw_torn |= bytes.len() > 7;
    }
    assert!(saw_torn);
}

/// Goal: a failed sync reports an error, and its data is sometimes durable and sometimes not.
/// Method: across seeds, inject FailedSync, sync, crash and look at what survived.
#[test]
fn failed_sync_may_or_may_not_persist() {
    let mut outcomes = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let mut disk = disk(seed, 0);
        run(
            &mut disk,
            &[create("wal"), DiskOp::SyncDir, append("wal", b"abc")],
        );
        assert!(disk
            .inject(DiskFaultKind::FailedSync, Instant(0), Duration(0))
            .is_some());
        assert_eq!(disk.perform(&sync("wal"), Instant(0)), Err(DiskFault::Io));
        disk.crash();
        outcomes.insert(disk.image().unwrap()[&name("wal")].len());
    }
    assert_eq!(outcomes.into_iter().collect::<Vec<_>>(), vec![0, 3]);
}

/// Goal: a write error fails only the next append and stores nothing.
/// Method: inject, append twice, compare the file.
#[test]
fn write_error_fails_one_append() {
    let mut disk = disk(3, 0);
    run(&mut disk, &[create("f")]);
    disk.inject(DiskFaultKind::WriteError, Instant(0), Duration(0));
    assert_eq!(
        run(&mut disk, &[append("f", b"xx"), append("f", b"yy")]),
        vec![Err(DiskFault::Io), Ok(())]
    );
    assert_eq!(disk.image().unwrap()[&name("f")], b"yy".to_vec());
}

/// Goal: a bit flip changes exactly one bit of stored bytes, silently.
/// Method: store known bytes, flip, and count differing bits.
#[test]
fn bit_flip_changes_one_bit() {
    let mut disk = disk(4, 0);
    run(
        &mut disk,
        &[
            create("f"),
            append("f", &[0_u8; 64]),
            sync("f"),
            DiskOp::SyncDir,
        ],
    );
    assert!(disk
        .inject(DiskFaultKind::BitFlip, Instant(0), Duration(0))
        .is_some());
    let ones: u32 = disk.image().unwrap()[&name("f")]
        .iter()
        .map(|byte| byte.count_ones())
        .sum();
    assert_eq!(ones, 1);
    let mut empty = self::disk(4, 0);
    assert!(
        empty
            .inject(DiskFaultKind::BitFlip, Instant(0), Duration(0))
            .is_none(),
        "nothing to flip"
    );
}

/// Goal: a latent read error fails the next read of the disk (naming the file and the sector's
/// offset) once; the sector reads back whole after that. Method: store 2 KiB, inject, read the
/// image twice.
#[test]
fn latent_read_error_fails_the_next_read_once() {
    let mut disk = disk(5, 0);
    run(
        &mut disk,
        &[
            create("f"),
            append("f", &[7_u8; 2048]),
            sync("f"),
            DiskOp::SyncDir,
        ],
    );
    disk.inject(DiskFaultKind::LatentReadError, Instant(0), Duration(0));
    let first = disk.image().expect_err("the read fails");
    assert!(first.contains("read error in f at offset"), "{first}");
    let offset: usize = first.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(offset < 2048 && offset.is_multiple_of(512));
    assert_eq!(
        disk.image().expect("remapped after one read")[&name("f")].len(),
        2048
    );
}

/// Goal: a lost write reports success but its bytes read as zeros; a misdirected write reports
/// success, leaves zeros where it should be and overwrites earlier bytes.
/// Method: inject each, append a marker, inspect the file.
#[test]
fn lost_and_misdirected_writes_are_silent() {
    let mut disk = disk(6, 0);
    run(&mut disk, &[create("f"), append("f", b"aaaaaaaa")]);
    disk.inject(DiskFaultKind::LostWrite, Instant(0), Duration(0));
    assert_eq!(run(&mut disk, &[append("f", b"bb")]), vec![Ok(())]);
    assert_eq!(disk.image().unwrap()[&name("f")], b"aaaaaaaa\0\0".to_vec());
    disk.inject(DiskFaultKind::MisdirectedWrite, Instant(0), Duration(0));
    assert_eq!(run(&mut disk, &[append("f", b"cc")]), vec![Ok(())]);
    let bytes = disk.image().unwrap()[&name("f")].clone();
    assert_eq!(&bytes[10..], b"\0\0");
    assert!(
        bytes[..10].contains(&b'c'),
        "the bytes landed earlier: {bytes:?}"
    );
}

/// Goal: a latency spike slows operations during its window; a full disk rejects appends during
/// its window and the heal ends both. Method: compare latencies and results inside and after.
#[test]
fn latency_spike_and_disk_full_are_timed() {
    let mut disk = disk(7, 0);
    run(&mut disk, &[create("f")]);
    disk.inject(
        DiskFaultKind::LatencySpike,
        Instant(0),
        Duration::from_secs(1),
    );
    let slow = disk.latency(&append("f", b"x"), Instant(10));
    assert!(slow.0 >= 50 * 10_000);
    assert!(disk.latency(&append("f", b"x"), Instant(2_000_000_000)).0 <= 50_000);
    disk.inject(DiskFaultKind::DiskFull, Instant(0), Duration::from_secs(1));
    assert_eq!(
        disk.perform(&append("f", b"x"), Instant(10)),
        Err(DiskFault::NoSpace)
    );
    assert_eq!(
        disk.perform(&append("f", b"x"), Instant(2_000_000_000)),
        Ok(())
    );
    disk.inject(
        DiskFaultKind::DiskFull,
        Instant(0),
        Duration::from_secs(100),
    );
    disk.heal();
    assert_eq!(disk.perform(&append("f", b"x"), Instant(10)), Ok(()));
}
