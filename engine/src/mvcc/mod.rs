//! The multi-version key-value store: revisions, the key index with generations, range, put,
//! delete, txn and compaction. (Being built.)
