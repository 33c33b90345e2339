//! revokd
