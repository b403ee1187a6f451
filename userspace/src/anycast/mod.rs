//! Anycast control (DESIGN §5): probe the node's health, announce the service prefixes only while
//! it is healthy, and let the operator drain it.
pub mod announce;
pub mod state;
