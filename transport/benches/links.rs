//! Link benchmarks (vchan ring versus Unix sockets); filled in with the links.

fn main() {}
