//! The scenario format, its parser, and the library of named scenarios (data files) that the
//! simulator runs. A scenario describes a cluster, a workload and a fault schedule and budget; it
//! never contains engine code. May use: `sim`. (Work on this crate comes after the simulator.)
