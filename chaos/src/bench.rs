//! `detcd bench serve`: etcd and detcd side by side under one load generator.
