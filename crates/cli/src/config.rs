//! TOML configuration files with command-line overrides.
//!
//! A command reads its config file (if any) into a TOML table, applies the
//! flags given on the command line as overrides of single keys, and only then
//! deserializes the table into the command's typed config (`deny_unknown_fields`
//! everywhere, so a misspelt key is an error naming it). The resolved table is
//! what the output file stores as provenance.

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use std::path::Path;
use toml::{Table, Value};

/// Reads a TOML file into a table (an empty table without a file).
pub fn load_table(path: Option<&Path>) -> Result<Table> {
    let Some(path) = path else {
        return Ok(Table::new());
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read config", path.display()))?;
    text.parse::<Table>()
        .map_err(|e| anyhow::anyhow!("{}: invalid TOML: {}", path.display(), one_line(&e.to_string())))
}

/// Sets `dotted.key = value` in `table`, creating sub-tables as needed.
pub fn set(table: &mut Table, dotted: &str, value: impl Into<Value>) {
    let mut parts: Vec<&str> = dotted.split('.').collect();
    let last = parts.pop().expect("non-empty key");
    let mut t = table;
    for p in parts {
        t = t
            .entry(p.to_string())
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .expect("config section is a table");
    }
    t.insert(last.to_string(), value.into());
}

/// Removes `dotted.key` from `table` if present.
pub fn remove(table: &mut Table, dotted: &str) {
    let mut parts: Vec<&str> = dotted.split('.').collect();
    let last = parts.pop().expect("non-empty key");
    let mut t = table;
    for p in parts {
        match t.get_mut(p).and_then(Value::as_table_mut) {
            Some(sub) => t = sub,
            None => return,
        }
    }
    t.remove(last);
}

/// Deserializes the resolved table into a typed config; errors name the key.
pub fn parse<T: DeserializeOwned>(table: &Table, what: &str) -> Result<T> {
    T::deserialize(Value::Table(table.clone()))
        .map_err(|e| anyhow::anyhow!("{what} config: {}", one_line(&e.to_string())))
}

/// Parses a lattice shape written as `16x16` or `8,8,16`.
pub fn parse_shape(s: &str) -> Result<Vec<usize>> {
    s.split(['x', 'X', ','])
        .map(|p| {
            p.trim()
                .parse::<usize>()
                .map_err(|_| anyhow::anyhow!("--lattice {s}: expected extents like 16x16"))
        })
        .collect()
}

/// Collapses a multi-line message into one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_keys_create_and_remove_sections() {
        let mut t = Table::new();
        set(&mut t, "phi4.m2", -4.0);
        set(&mut t, "phi4.lambda", 8.0);
        remove(&mut t, "phi4.lambda");
        remove(&mut t, "missing.key");
        assert_eq!(toml::to_string(&t).unwrap().trim(), "[phi4]\nm2 = -4.0");
        assert_eq!(parse_shape("16x8").unwrap(), vec![16, 8]);
        assert!(parse_shape("16xx").is_err());
    }
}
