//! The lessor: leases with time-to-live driven by logical time on the leader. (Being built.)
