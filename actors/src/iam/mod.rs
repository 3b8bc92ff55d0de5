//! The Identity and Access Manager of one node, as actors.

pub mod cert_handler;
pub mod cert_module;
pub mod client;
pub mod core;
pub mod nodes;
pub mod permissions;
pub mod provisioner;
pub mod server;
pub mod service;
pub mod validator;

#[cfg(test)]
pub(crate) mod test_support;
