//! The seeded discrete-event simulator: virtual time, a network, disks, processes and clients
//! around a cluster of engine members, with fault injection and a recorder of histories and traces.
//!
//! One seed drives one run; every random choice flows from per-component `rand_chacha` streams
//! derived from that seed. It must never read the wall clock, spawn threads inside a run, or let
//! unordered iteration reach an output. May use: `engine`, `checkers`. (Being built.)
