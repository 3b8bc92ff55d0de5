//! The Identity and Access Manager of one node, as actors.

pub mod permissions;
