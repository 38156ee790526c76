//! An in-memory disk for tests and benchmarks: applies the engine's `DiskOp`s, tracks what is
//! durable (file bytes per inode, directory entries) separately from what is merely written, and
//! can crash, keeping only durable state and optionally a torn prefix of the last unsynced append.
//!
//! It deliberately models no latency, no errors and no reordering: the engine's ops are applied
//! in order, as the host contract promises. It is not part of the engine (it does "I/O").

#![allow(dead_code)]

use std::collections::BTreeMap;

use engine::api::{DiskImage, DiskOp, FileName};

/// One file's content. Appends only grow it and `Create` makes a new inode, so the durable
/// content is always a prefix of the written content.
#[derive(Clone, Debug, Default)]
struct Inode {
    bytes: Vec<u8>,
    /// Invariant: `durable_bytes <= bytes.len()`.
    durable_bytes: usize,
}

/// The last append since a sync, which a crash may tear.
#[derive(Clone, Copy, Debug)]
struct LastAppend {
    inode: usize,
    start: usize,
    length: usize,
}

/// The in-memory disk.
#[derive(Clone, Debug, Default)]
pub struct MemDisk {
    inodes: Vec<Inode>,
    /// The directory as written.
    directory: BTreeMap<FileName, usize>,
    /// The directory as of the last `SyncDir`.
    durable_directory: BTreeMap<FileName, usize>,
    last_append: Option<LastAppend>,
    /// Counters for tests and benchmarks.
    pub ops_count: u64,
    pub syncs_count: u64,
}

impl MemDisk {
    /// An empty disk.
    pub fn new() -> MemDisk {
        MemDisk::default()
    }

    /// A disk holding `image`, all of it durable.
    pub fn from_image(image: &DiskImage) -> MemDisk {
        let mut disk = MemDisk::new();
        for (name, bytes) in image {
            disk.inodes.push(Inode {
                bytes: bytes.clone(),
                durable_bytes: bytes.len(),
            });
            disk.directory.insert(name.clone(), disk.inodes.len() - 1);
        }
        disk.durable_directory = disk.directory.clone();
        disk
    }

    /// Applies one op. Panics on ops a correct engine never asks for (appending to a missing
    /// file, renaming a missing file), because those are engine bugs.
    pub fn apply(&mut self, op: &DiskOp) {
        self.ops_count += 1;
        match op {
            DiskOp::Create { file } => {
                self.inodes.push(Inode::default());
                self.directory.insert(file.clone(), self.inodes.len() - 1);
            }
            DiskOp::Append { file, bytes } => {
                let inode = *self.directory.get(file).expect("append to a missing file");
                let start = self.inodes[inode].bytes.len();
                self.inodes[inode].bytes.extend_from_slice(bytes);
                self.last_append = Some(LastAppend {
                    inode,
                    start,
                    length: bytes.len(),
                });
            }
            DiskOp::Sync { file } => {
                self.syncs_count += 1;
                let inode = *self.directory.get(file).expect("sync of a missing file");
                let state = &mut self.inodes[inode];
                state.durable_bytes = state.bytes.len();
                if self.last_append.is_some_and(|last| last.inode == inode) {
                    self.last_append = None;
                }
            }
            DiskOp::SyncDir => {
                self.syncs_count += 1;
                self.durable_directory = self.directory.clone();
            }
            DiskOp::Rename { from, to } => {
                let inode = self
                    .directory
                    .remove(from)
                    .expect("rename of a missing file");
                self.directory.insert(to.clone(), inode);
            }
            DiskOp::Remove { file } => {
                self.directory
                    .remove(file)
                    .expect("remove of a missing file");
            }
        }
    }

    /// Applies every op in order.
    pub fn apply_all(&mut self, ops: &[DiskOp]) {
        for op in ops {
            self.apply(op);
        }
    }

    /// What a host would read from the directory now (written state, durable or not).
    pub fn image(&self) -> DiskImage {
        self.directory
            .iter()
            .map(|(name, inode)| (name.clone(), self.inodes[*inode].bytes.clone()))
            .collect()
    }

    /// Crashes: keeps the durable directory and durable bytes only. With `tear_bytes`, the last
    /// unsynced append survives as its first `tear_bytes` bytes (with everything before it),
    /// as when a crash hits in the middle of a write.
    pub fn crash(&mut self, tear_bytes: Option<usize>) {
        let torn = tear_bytes.zip(self.last_append);
        for (index, inode) in self.inodes.iter_mut().enumerate() {
            let mut keep = inode.durable_bytes;
            if let Some((tear, last)) = torn {
                if last.inode == index {
                    keep = keep.max(last.start + tear.min(last.length));
                }
            }
            assert!(keep <= inode.bytes.len());
            inode.bytes.truncate(keep);
            inode.durable_bytes = keep;
        }
        self.directory = self.durable_directory.clone();
        self.last_append = None;
    }
}
