//! A human-readable summary of any fieldflow file (`fieldflow inspect`).
//!
//! [`inspect`] reads the header (any schema version, so that files of a newer
//! fieldflow can still be looked at), lists every dataset with its shape and
//! element type, and every attribute of groups and datasets below the root.
//! Its [`Display`](std::fmt::Display) shows the configuration text abbreviated
//! to its first [`CONFIG_LINES`] lines.

use crate::error::{read_err, Result};
use crate::files::{is_partial, open_hdf5};
use crate::header::{read_attr, Header};
use hdf5::types::{FloatSize, IntSize, TypeDescriptor};
use hdf5::{Group, Location, LocationType};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// Lines of the configuration text shown by [`FileSummary`]'s `Display`.
pub const CONFIG_LINES: usize = 6;

/// Longest attribute value shown by [`FileSummary`]'s `Display`, in characters.
const VALUE_CHARS: usize = 72;

/// One dataset of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetSummary {
    /// Absolute path inside the file, e.g. `/adam/m`.
    pub path: String,
    /// Current shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// Element type, e.g. `f64`, `u8`, `str`.
    pub dtype: String,
}

/// What [`inspect`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSummary {
    /// The file.
    pub path: PathBuf,
    /// Whether it is an unfinished `.partial` file.
    pub partial: bool,
    /// Root attributes.
    pub header: Header,
    /// Every dataset, depth first in name order.
    pub datasets: Vec<DatasetSummary>,
    /// Attributes of groups and datasets below the root: (`/path@name`, value as text).
    pub attributes: Vec<(String, String)>,
}

/// A short name for an HDF5 element type.
pub(crate) fn type_name(t: &TypeDescriptor) -> String {
    match t {
        TypeDescriptor::Float(FloatSize::U8) => "f64".into(),
        TypeDescriptor::Float(FloatSize::U4) => "f32".into(),
        TypeDescriptor::Unsigned(s) => format!("u{}", int_bits(*s)),
        TypeDescriptor::Integer(s) => format!("i{}", int_bits(*s)),
        TypeDescriptor::VarLenUnicode | TypeDescriptor::VarLenAscii => "str".into(),
        other => other.to_string(),
    }
}

fn int_bits(s: IntSize) -> usize {
    8 * s as usize
}

fn attrs_of(loc: &Location, at: &str, path: &Path, out: &mut Vec<(String, String)>) -> Result<()> {
    for name in loc.attr_names().map_err(read_err(path))? {
        let text = match read_attr(loc, &name, path)? {
            Some(v) => v.to_string(),
            None => {
                let a = loc.attr(&name).map_err(read_err(path))?;
                let t = a.dtype().and_then(|t| t.to_descriptor());
                let t = t.map(|t| type_name(&t)).unwrap_or_else(|_| "?".into());
                format!("<{t} {:?}>", a.shape())
            }
        };
        out.push((format!("{at}@{name}"), text));
    }
    Ok(())
}

fn visit(group: &Group, prefix: &str, path: &Path, s: &mut FileSummary) -> Result<()> {
    let rerr = read_err(path);
    for name in group.member_names().map_err(&rerr)? {
        let full = format!("{prefix}/{name}");
        match group.loc_type_by_name(&name).map_err(&rerr)? {
            LocationType::Dataset => {
                let ds = group.dataset(&name).map_err(&rerr)?;
                let t = ds.dtype().and_then(|t| t.to_descriptor()).map_err(&rerr)?;
                s.datasets.push(DatasetSummary {
                    path: full.clone(),
                    shape: ds.shape(),
                    dtype: type_name(&t),
                });
                attrs_of(&ds, &full, path, &mut s.attributes)?;
            }
            LocationType::Group => {
                let g = group.group(&name).map_err(&rerr)?;
                attrs_of(&g, &full, path, &mut s.attributes)?;
                visit(&g, &full, path, s)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Summarizes the fieldflow file at `path` (finished or `.partial`, any schema version).
pub fn inspect(path: impl AsRef<Path>) -> Result<FileSummary> {
    let path = path.as_ref();
    let file = open_hdf5(path, false)?;
    let header = Header::read(&file, path, false)?;
    let mut s = FileSummary {
        path: path.to_path_buf(),
        partial: is_partial(path),
        header,
        datasets: Vec::new(),
        attributes: Vec::new(),
    };
    visit(&file, "", path, &mut s)?;
    Ok(s)
}

fn abbreviate(s: &str) -> String {
    let one = s.replace('\n', "\\n");
    if one.chars().count() <= VALUE_CHARS {
        one
    } else {
        let head: String = one.chars().take(VALUE_CHARS - 1).collect();
        format!("{head}…")
    }
}

impl fmt::Display for FileSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.header;
        write!(
            f,
            "{}: fieldflow {} file, schema version {}",
            self.path.display(),
            h.kind,
            h.schema_version
        )?;
        if self.partial {
            write!(f, " (UNFINISHED .partial: still being written, or interrupted)")?;
        }
        writeln!(f)?;
        writeln!(f, "  program   fieldflow {}", h.fieldflow_version)?;
        writeln!(f, "  created   {}", h.created)?;
        writeln!(f, "  seed      {}", h.seed)?;
        writeln!(f, "  target    {}", h.target)?;
        let lines: Vec<&str> = h.config.lines().collect();
        for (i, line) in lines.iter().take(CONFIG_LINES).enumerate() {
            let label = if i == 0 { "config" } else { "" };
            writeln!(f, "  {label:<9} | {line}")?;
        }
        if lines.len() > CONFIG_LINES {
            writeln!(f, "            | … ({} more lines)", lines.len() - CONFIG_LINES)?;
        }
        if !h.extra.is_empty() {
            writeln!(f, "  root attributes")?;
            for (name, value) in &h.extra {
                writeln!(f, "    {name} = {}", abbreviate(&value.to_string()))?;
            }
        }
        writeln!(f, "  datasets")?;
        let width = self.datasets.iter().map(|d| d.path.len()).max().unwrap_or(0);
        for d in &self.datasets {
            writeln!(f, "    {:<width$}  {:<4} {:?}", d.path, d.dtype, d.shape)?;
        }
        if !self.attributes.is_empty() {
            writeln!(f, "  attributes")?;
            for (name, value) in &self.attributes {
                writeln!(f, "    {name} = {}", abbreviate(value))?;
            }
        }
        Ok(())
    }
}
