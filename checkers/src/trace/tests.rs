//! Trace checker tests.
