//! edgecc daemon (being built).
fn main() {}
