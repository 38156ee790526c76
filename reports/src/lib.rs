//! Run and campaign reports: JSON, JUnit XML and HTML with timelines, built from simulator
//! summaries and checker verdicts. May use: `checkers`. It never runs a simulation itself.
//! (Work on this crate comes after campaigns.)
