//! Procedural macros of ops.
