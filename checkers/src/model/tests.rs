//! Unit tests of the sequential store.
