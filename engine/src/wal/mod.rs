//! The write-ahead log: record framing (length, type, CRC32C), segments, and recovery from the
//! bytes a disk really held. (Being built.)
