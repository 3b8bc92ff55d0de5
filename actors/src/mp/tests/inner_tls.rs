//! inner_tls
