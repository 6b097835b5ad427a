//! One module per subcommand.

pub mod analyze;
pub mod compare;
pub mod demo;
pub mod free_energy;
pub mod generate;
pub mod inspect;
pub mod phi4_args;
pub mod run_args;
pub mod sample;
pub mod train;
