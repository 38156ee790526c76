//! History types (`shared/specs/history.md`) and the checkers that judge them: linearizability,
//! watch guarantees, raft invariants, durability and liveness.
//!
//! It knows nothing of the engine: it reads histories, which any system can produce. A checker
//! answers pass, violation (with evidence) or unknown (budget exhausted); unknown is never a pass.
//! (Being built.)
