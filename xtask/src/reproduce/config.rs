//! Run configurations: a TOML config of `data/configs/` parsed into a
//! `toml::Table`, the keys reproduce overrides set on it, and the values the
//! tables' notes quote.

use anyhow::{bail, Context, Result};
use std::path::Path;
use toml::{Table, Value};

/// A fieldflow config (sections addressed by dotted paths, "" = top level).
#[derive(Debug, Clone, PartialEq)]
pub struct Config(Table);

impl Config {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        Self::parse(&text).with_context(|| format!("{}: not a TOML config", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        Ok(Config(text.parse::<Table>()?))
    }

    /// The config as TOML text (what a run's `configs/<name>.toml` holds).
    pub fn text(&self) -> Result<String> {
        toml::to_string(&self.0).context("config cannot be written as TOML")
    }

    fn section(&self, section: &str) -> Option<&Table> {
        let mut t = &self.0;
        for part in section.split('.').filter(|p| !p.is_empty()) {
            t = t.get(part)?.as_table()?;
        }
        Some(t)
    }

    /// The table of `section`, created (with its parents) if missing.
    fn section_mut(&mut self, section: &str) -> Result<&mut Table> {
        let mut t = &mut self.0;
        for part in section.split('.').filter(|p| !p.is_empty()) {
            t = match t.entry(part).or_insert_with(|| Value::Table(Table::new())) {
                Value::Table(sub) => sub,
                other => bail!("config: `{section}` expected a table, found `{other}`"),
            };
        }
        Ok(t)
    }

    pub fn has(&self, section: &str) -> bool {
        self.section(section).is_some()
    }

    pub fn get(&self, section: &str, key: &str) -> Option<&Value> {
        self.section(section)?.get(key)
    }

    /// Sets `key = value` in `section` (the section is added if missing).
    pub fn set(&mut self, section: &str, key: &str, value: impl Into<Value>) -> Result<()> {
        self.section_mut(section)?.insert(key.to_string(), value.into());
        Ok(())
    }

    /// Sets a count (steps, sizes); fails if it exceeds a TOML integer.
    pub fn set_count(&mut self, section: &str, key: &str, n: u64) -> Result<()> {
        let v = i64::try_from(n).with_context(|| format!("{section}.{key} = {n}: too large for a TOML integer"))?;
        self.set(section, key, v)
    }

    /// A non-negative integer value.
    pub fn count(&self, section: &str, key: &str) -> Option<u64> {
        self.get(section, key)?.as_integer()?.try_into().ok()
    }

    /// The config with `train.loss = { preset = "<preset>" }`.
    pub fn with_loss(&self, preset: &str) -> Result<Self> {
        let mut c = self.clone();
        let loss: Table = [("preset".to_string(), Value::from(preset))].into_iter().collect();
        c.set("train", "loss", loss)?;
        Ok(c)
    }

    /// The config with the TOML text `overlay` merged over it: tables merge
    /// key by key (recursively, dotted keys included), any other value of
    /// the overlay replaces the config's.
    pub fn merged(&self, overlay: &str) -> Result<Self> {
        let over: Table = overlay
            .parse()
            .with_context(|| format!("config overrides `{}`: not TOML", overlay.replace('\n', "; ")))?;
        let mut c = self.clone();
        merge(&mut c.0, over);
        Ok(c)
    }

    /// The config trained for `steps` (None: unchanged): the step count of
    /// the training, its learning-rate schedule and (half of it) of its
    /// annealing; below 1000 steps a checkpoint at the end and two metrics
    /// records.
    pub fn with_steps(mut self, steps: Option<u64>) -> Result<Self> {
        let Some(s) = steps else { return Ok(self) };
        self.set_count("train", "steps", s)?;
        if self.has("train.lr_schedule") {
            self.set_count("train.lr_schedule", "total_steps", s)?;
        }
        if self.has("train.annealing") {
            self.set_count("train.annealing", "steps", (s / 2).max(1))?;
        }
        if s < 1000 {
            self.set_count("", "checkpoint_every", s)?;
            self.set_count("train", "metrics_every", (s / 2).max(1))?;
        }
        Ok(self)
    }

    /// The value of `key` as a note quotes it ("" if absent).
    pub fn show(&self, section: &str, key: &str) -> String {
        self.get(section, key).map(show).unwrap_or_default()
    }

    /// "key = value, …" of `section`: `kind` first (it names what the
    /// section configures), then the other keys in alphabetical order.
    pub fn section_text(&self, section: &str) -> String {
        let Some(t) = self.section(section) else {
            return String::new();
        };
        let mut keys: Vec<&String> = t.keys().collect();
        keys.sort_by_key(|k| (k.as_str() != "kind", k.as_str()));
        keys.iter()
            .map(|k| format!("{k} = {}", show(&t[k.as_str()])))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// "N steps, batch B, lr X (schedule)" of the training.
    pub fn steps_desc(&self) -> String {
        let kind = self.show("train.lr_schedule", "kind");
        format!(
            "{} steps, batch {}, lr {} ({})",
            self.show("train", "steps"),
            self.show("train", "batch_size"),
            self.show("train", "lr"),
            if kind.is_empty() {
                "constant"
            } else {
                kind.trim_matches('"')
            }
        )
    }
}

/// Merges `over` into `base` (tables recursively, other values replaced).
fn merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// A value as a note quotes it: TOML's own form, small floats with an
/// exponent (2e-3 rather than 0.002, as the configs write learning rates).
fn show(v: &Value) -> String {
    match v {
        Value::Float(x) if *x != 0.0 && x.abs() < 1e-2 => format!("{x:e}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "seed = 1\n\n[train]\nsteps = 10 # c\nlr = 2e-3\n\n[train.lr_schedule]\n\
                        kind = \"cosine\"\ntotal_steps = 10\n\n[train.annealing]\nsteps = 5\nkind = \"geometric\"\n\
                        beta0 = 0.1\n";

    #[test]
    fn set_and_read_keys_in_sections() {
        let mut c = Config::parse(TEXT).unwrap();
        c.set_count("train", "steps", 5).unwrap();
        assert_eq!(c.count("train", "steps"), Some(5));
        assert_eq!(c.count("train.lr_schedule", "total_steps"), Some(10));
        c.set_count("", "checkpoint_every", 3).unwrap();
        assert_eq!(c.count("", "checkpoint_every"), Some(3));
        c.set_count("data", "n_train", 7).unwrap();
        assert_eq!(c.show("data", "n_train"), "7");
        assert!(c.set_count("data", "n_train", u64::MAX).is_err());
        assert!(c.set("seed.x", "y", 1).unwrap_err().to_string().contains("`seed.x`"));
        let l = c.with_loss("fkl").unwrap();
        assert_eq!(l.get("train", "loss").unwrap().to_string(), "{ preset = \"fkl\" }");
        // The written text reads back as the same config.
        assert_eq!(Config::parse(&l.text().unwrap()).unwrap(), l);
    }

    #[test]
    fn steps_override_rescales_the_schedule() {
        let c = Config::parse(TEXT).unwrap().with_steps(Some(300)).unwrap();
        assert_eq!(c.count("train", "steps"), Some(300));
        assert_eq!(c.count("train.lr_schedule", "total_steps"), Some(300));
        assert_eq!(c.count("train.annealing", "steps"), Some(150));
        assert_eq!(c.count("", "checkpoint_every"), Some(300));
        assert_eq!(c.count("train", "metrics_every"), Some(150));
        let same = Config::parse(TEXT).unwrap();
        assert_eq!(same.clone().with_steps(None).unwrap(), same);
        let long = same.with_steps(Some(2000)).unwrap();
        assert_eq!(
            (long.count("", "checkpoint_every"), long.count("train", "metrics_every")),
            (None, None)
        );
    }

    #[test]
    fn overlays_merge_tables_and_replace_values() {
        let c = Config::parse(TEXT).unwrap();
        let m = c
            .merged("seed = 7\ntrain.loss = { preset = \"rkl\" }\n[train.annealing]\nbeta0 = 0.5\n")
            .unwrap();
        assert_eq!(m.count("", "seed"), Some(7));
        assert_eq!(m.get("train", "loss").unwrap().to_string(), "{ preset = \"rkl\" }");
        // Merged key by key: the other keys of the tables stay.
        assert_eq!(m.count("train", "steps"), Some(10));
        assert_eq!(
            m.section_text("train.annealing"),
            "kind = \"geometric\", beta0 = 0.5, steps = 5"
        );
        // A non-table value replaces a table and vice versa.
        let r = m.merged("train = 3").unwrap();
        assert_eq!(r.show("", "train"), "3");
        assert_eq!(c.merged("").unwrap(), c);
        let e = c.merged("train.loss = \n").unwrap_err().to_string();
        assert!(e.starts_with("config overrides `train.loss = ; `: not TOML"), "{e}");
    }

    #[test]
    fn notes_quote_values_as_configs_write_them() {
        let c = Config::parse(TEXT).unwrap();
        assert_eq!(
            c.section_text("train.annealing"),
            "kind = \"geometric\", beta0 = 0.1, steps = 5"
        );
        assert_eq!(c.steps_desc(), "10 steps, batch , lr 2e-3 (cosine)");
        assert_eq!(c.section_text("nope"), "");
        let plain = Config::parse("[train]\nsteps = 4\nbatch_size = 8\nlr = 0.5\n").unwrap();
        assert_eq!(plain.steps_desc(), "4 steps, batch 8, lr 0.5 (constant)");
    }
}
