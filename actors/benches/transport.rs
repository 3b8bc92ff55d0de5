//! Transport benchmarks (filled in below).
fn main() {}
