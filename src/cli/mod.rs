//! Subcommands of the `revokd` binary that live outside `main.rs`.

pub(crate) mod gate;
