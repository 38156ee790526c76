//! Watch checker tests.
