//! One module per subcommand.

pub mod analyze;
pub mod demo;
pub mod generate;
pub mod inspect;
