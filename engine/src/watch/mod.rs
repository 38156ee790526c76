//! Watches over the MVCC store: synced and catching-up watchers, filters, progress and
//! fragmentation. (Being built.)
