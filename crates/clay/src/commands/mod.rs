//! One module per `clay` subcommand.

pub mod build;
pub mod inspect;
pub mod keys;
pub mod push;
pub mod registry;
pub mod run;
pub mod sign;
