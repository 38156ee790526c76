//! The one place where payloads are turned into bytes and back (bincode 2 today), so the codec can
//! be swapped without touching callers. Framing, checksums and versions are the WAL's and the
//! snapshot's business, not this module's.
