//! The `elt` command's library: local-mode building blocks shared by the command, its tests and
//! its benchmark.

pub mod commands;
pub mod fanout;
pub mod gen;
pub mod health;
pub mod lake;
pub mod plan;
pub mod verify;
