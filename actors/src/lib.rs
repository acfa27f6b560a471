//! edgecc-actors (being built).
