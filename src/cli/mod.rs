//! The `quorate` command line's subcommands, as functions the binary calls.
//!
//! This is the edge of the deterministic core: these modules read and write
//! files and take the wall clock as an argument, so that nothing under
//! [`crate::sim`] ever does.

pub mod explore;
pub mod shrink;
pub mod timeline;
