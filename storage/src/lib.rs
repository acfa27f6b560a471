//! edgecc-storage (being built).
