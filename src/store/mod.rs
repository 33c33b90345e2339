//! Where rules are kept and published.

pub mod redis;
