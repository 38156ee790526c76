//! The member's data directory on a real disk: the lock that keeps a second process out, the
//! image a member recovers from, and the engine's `DiskOp`s carried out with real files, in
//! order, with fsync where the engine asks for durability.
//!
//! It decides nothing: a failed operation is reported to the engine as a `DiskFault`, and the
//! engine decides (a failed sync halts the member; it is never retried and ignored).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use engine::api::{DiskFault, DiskImage, DiskOp, FileName};

/// The lock file's name: held (flock) while a process serves this directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// An open data directory, locked for this process.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    /// Held for the life of the process: the OS releases the lock when it exits, even on kill -9.
    _lock: File,
    /// Files opened for appending, so each append does not reopen its file.
    appending: BTreeMap<FileName, File>,
}

impl DataDir {
    /// Creates `path` if missing and locks it; a second process on the same directory is refused.
    pub fn open(path: &Path) -> Result<DataDir, String> {
        std::fs::create_dir_all(path)
            .map_err(|error| format!("cannot create data dir {}: {error}", path.display()))?;
        let lock_path = path.join(LOCK_FILE_NAME);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|error| format!("cannot open {}: {error}", lock_path.display()))?;
        lock.try_lock().map_err(|_| {
            format!(
                "data dir {} is in use by another detcd process (its {LOCK_FILE_NAME} file is locked); stop that process or choose another --data-dir",
                path.display()
            )
        })?;
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
            appending: BTreeMap::new(),
        })
    }

    /// Every file of the directory (but the lock) with its bytes: what the member recovers from.
    pub fn image(&self) -> Result<DiskImage, String> {
        let mut image = DiskImage::new();
        let entries = std::fs::read_dir(&self.path)
            .map_err(|error| format!("cannot list {}: {error}", self.path.display()))?;
        for entry in entries {
            let entry =
                entry.map_err(|error| format!("cannot list {}: {error}", self.path.display()))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name == LOCK_FILE_NAME || !entry.path().is_file() {
                continue;
            }
            let bytes = std::fs::read(entry.path())
                .map_err(|error| format!("cannot read {}: {error}", entry.path().display()))?;
            image.insert(FileName(name.into()), bytes);
        }
        Ok(image)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file_path(&self, file: &FileName) -> PathBuf {
        assert!(
            !file.0.contains('/') && !file.0.is_empty() && &*file.0 != LOCK_FILE_NAME,
            "the engine names plain files: {:?}",
            file.0
        );
        self.path.join(&*file.0)
    }

    /// Carries out one disk operation.
    pub fn perform(&mut self, op: &DiskOp) -> Result<(), DiskFault> {
        let result = match op {
            DiskOp::Create { file } => {
                self.appending.remove(file);
                File::create(self.file_path(file)).map(|_| ())
            }
            DiskOp::Append { file, bytes } => self.append(file, bytes),
            DiskOp::Sync { file } => match self.appending.get(file) {
                Some(open) => open.sync_data(),
                None => File::open(self.file_path(file)).and_then(|open| open.sync_data()),
            },
            DiskOp::SyncDir => File::open(&self.path).and_then(|dir| dir.sync_all()),
            DiskOp::Rename { from, to } => {
                self.appending.remove(from);
                self.appending.remove(to);
                std::fs::rename(self.file_path(from), self.file_path(to))
            }
            DiskOp::Remove { file } => {
                self.appending.remove(file);
                std::fs::remove_file(self.file_path(file))
            }
        };
        result.map_err(fault)
    }

    /// Carries out `ops` in order as a group commit, pushing one result per operation onto
    /// `results` (which must be empty); returns how many files it fsynced (directory syncs are
    /// not counted: the WAL fsync metric counts file syncs, as etcd's does).
    ///
    /// Each run of consecutive appends to and syncs of one file is written with one `write`
    /// and made durable with one fsync at the run's end, so N queued proposals cost one fsync
    /// instead of N. Why this keeps the engine's durability: a sync is reported complete only
    /// after the fsync that covers it (it is only ever moved later, never dropped), and the
    /// run's bytes reach the file as one write, as they would had the engine put those records
    /// in one batch. A sync is never moved past anything but appends to and syncs of its own
    /// file: a create, rename, remove or directory sync still finds every earlier sync done.
    /// A run's operations share its outcome: one write, then one fsync if it holds a sync
    /// (after a failed write the fsync is not tried; the engine halts at the first failure).
    pub fn perform_group(
        &mut self,
        ops: &[&DiskOp],
        results: &mut Vec<Result<(), DiskFault>>,
    ) -> usize {
        assert!(results.is_empty(), "the results list starts empty");
        let mut fsyncs_count = 0;
        let mut position = 0;
        while position < ops.len() {
            let file = match ops[position] {
                DiskOp::Append { file, .. } | DiskOp::Sync { file } => file,
                other => {
                    results.push(self.perform(other));
                    position += 1;
                    continue;
                }
            };
            let run_end = ops[position..]
                .iter()
                .position(|op| {
                    !matches!(op, DiskOp::Append { file: other, .. } | DiskOp::Sync { file: other } if other == file)
                })
                .map_or(ops.len(), |offset| position + offset);
            let run = &ops[position..run_end];
            let mut bytes = Vec::new();
            for op in run {
                if let DiskOp::Append {
                    bytes: appended, ..
                } = op
                {
                    bytes.extend_from_slice(appended);
                }
            }
            let mut outcome = if bytes.is_empty() {
                Ok(())
            } else {
                self.append(file, &bytes).map_err(fault)
            };
            if outcome.is_ok() && run.iter().any(|op| matches!(op, DiskOp::Sync { .. })) {
                fsyncs_count += 1;
                outcome = self.perform(&DiskOp::Sync { file: file.clone() });
            }
            results.extend(run.iter().map(|_| outcome));
            position = run_end;
        }
        fsyncs_count
    }

    fn append(&mut self, file: &FileName, bytes: &[u8]) -> std::io::Result<()> {
        if !self.appending.contains_key(file) {
            let open = OpenOptions::new().append(true).open(self.file_path(file))?;
            self.appending.insert(file.clone(), open);
        }
        let open = self.appending.get_mut(file).expect("opened above");
        open.write_all(bytes)
    }
}

/// The engine's fault for an I/O error: ENOSPC is the one fault it tells apart.
fn fault(error: std::io::Error) -> DiskFault {
    if error.raw_os_error() == Some(28) {
        DiskFault::NoSpace
    } else {
        DiskFault::Io
    }
}

/// The host contract's disk on real files (`server/tests/host_conformance.rs`).
impl host::disk::HostDisk for DataDir {
    fn perform(&mut self, op: &DiskOp) -> Result<(), DiskFault> {
        DataDir::perform(self, op)
    }

    fn image(&mut self) -> Result<DiskImage, String> {
        DataDir::image(self)
    }

    /// A process crash: open files are closed; what the OS holds stays (a power cut is not
    /// something a test can cause).
    fn crash(&mut self) {
        self.appending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::DataDir;
    use engine::api::{DiskOp, FileName};

    /// Goal: the operations do what the engine's contract says on real files (create, append in
    /// order, rename replacing, remove), the image reads them back without the lock file, and a
    /// second open of a locked directory is refused with a message naming it.
    /// Method: run a sequence in a temporary directory and read the image.
    #[test]
    fn operations_on_real_files_and_the_lock() {
        let path = std::env::temp_dir().join(format!("detcd-disk-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let mut dir = DataDir::open(&path).expect("opens");
        let name = |text: &str| FileName(text.into());
        let ops = [
            DiskOp::Create {
                file: name("a.tmp"),
            },
            DiskOp::Append {
                file: name("a.tmp"),
                bytes: b"hello ".to_vec(),
            },
            DiskOp::Append {
                file: name("a.tmp"),
                bytes: b"world".to_vec(),
            },
            DiskOp::Sync {
                file: name("a.tmp"),
            },
            DiskOp::Rename {
                from: name("a.tmp"),
                to: name("a"),
            },
            DiskOp::SyncDir,
            DiskOp::Create { file: name("b") },
            DiskOp::Remove { file: name("b") },
        ];
        for op in &ops {
            dir.perform(op).expect("performs");
        }
        let image = dir.image().expect("reads");
        assert_eq!(image.len(), 1, "{:?}", image.keys().collect::<Vec<_>>());
        assert_eq!(image[&name("a")], b"hello world");
        assert!(dir
            .perform(&DiskOp::Sync {
                file: name("missing")
            })
            .is_err());
        let second = DataDir::open(&path).unwrap_err();
        assert!(
            second.contains("in use by another detcd process"),
            "{second}"
        );
        drop(dir);
        assert!(
            DataDir::open(&path).is_ok(),
            "the lock goes with its holder"
        );
        std::fs::remove_dir_all(&path).expect("cleans up");
    }

    /// Goal: a group commit makes one fsync per run of appends to and syncs of one file, never
    /// moves a sync past anything else (a create, a rename, another file), writes the bytes in
    /// order, and reports one result per operation, a failure included.
    /// Method: perform a group of two runs split by other operations; count the fsyncs; read
    /// the image back; then a group whose sync names a missing file.
    #[test]
    fn group_commit_one_fsync_per_run() {
        let path = std::env::temp_dir().join(format!("detcd-group-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let mut dir = DataDir::open(&path).expect("opens");
        let name = |text: &str| FileName(text.into());
        let append = |file: &str, bytes: &[u8]| DiskOp::Append {
            file: name(file),
            bytes: bytes.to_vec(),
        };
        let sync = |file: &str| DiskOp::Sync { file: name(file) };
        let ops = [
            DiskOp::Create { file: name("wal") },
            append("wal", b"one "),
            sync("wal"),
            append("wal", b"two "),
            sync("wal"),
            DiskOp::Create {
                file: name("snap.tmp"),
            },
            append("snap.tmp", b"snap"),
            sync("snap.tmp"),
            DiskOp::Rename {
                from: name("snap.tmp"),
                to: name("snap"),
            },
            DiskOp::SyncDir,
            append("wal", b"three"),
            sync("wal"),
        ];
        let borrowed: Vec<&DiskOp> = ops.iter().collect();
        let mut results = Vec::new();
        let fsyncs_count = dir.perform_group(&borrowed, &mut results);
        assert_eq!(results.len(), ops.len());
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        // wal (two syncs, one fsync), snap.tmp (not moved past its rename), wal again (not
        // merged across the snapshot's operations).
        assert_eq!(fsyncs_count, 3);
        let image = dir.image().expect("reads");
        assert_eq!(image[&name("wal")], b"one two three");
        assert_eq!(image[&name("snap")], b"snap");

        let failing = [append("wal", b"!"), sync("missing"), sync("wal")];
        let borrowed: Vec<&DiskOp> = failing.iter().collect();
        results.clear();
        let fsyncs_count = dir.perform_group(&borrowed, &mut results);
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok() && results[1].is_err() && results[2].is_ok());
        assert_eq!(
            fsyncs_count, 2,
            "the missing file's sync is tried and counted"
        );
        drop(dir);
        std::fs::remove_dir_all(&path).expect("cleans up");
    }
}
