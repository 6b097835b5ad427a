//! Errors shared by the configuration validators of every crate.

use std::fmt;

/// A configuration value that cannot be used, named by its field.
///
/// Displays as one line, e.g. `hmc.step_size = -0.1: must be > 0`, which is
/// what the command-line tool prints before exiting with a non-zero code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Dotted path of the offending field, e.g. `phi4.lambda`.
    pub field: String,
    /// The value as the user wrote it (or as it was resolved).
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    /// Builds an error for `field = value` with a human-readable `problem`.
    pub fn new(field: impl Into<String>, value: impl fmt::Display, problem: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            value: value.to_string(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}: {}", self.field, self.value, self.problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_field_value_and_problem_on_one_line() {
        let e = ConfigError::new("hmc.step_size", -0.1, "must be > 0");
        assert_eq!(e.to_string(), "hmc.step_size = -0.1: must be > 0");
    }
}
