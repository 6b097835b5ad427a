//! The provenance header shared by every fieldflow file: root attributes.
//!
//! | attribute           | HDF5 type              | meaning |
//! |---------------------|------------------------|---------|
//! | `fieldflow_schema`  | variable-length UTF-8  | `ensemble`, `samples`, `model` or `analysis` |
//! | `schema_version`    | u64                    | [`SCHEMA_VERSION`] (1) |
//! | `fieldflow_version` | variable-length UTF-8  | version of the program that wrote the file |
//! | `config`            | variable-length UTF-8  | the fully resolved run configuration (TOML or JSON text) |
//! | `seed`              | u64                    | the run's master seed |
//! | `created`           | variable-length UTF-8  | UTC time of creation, `YYYY-MM-DDTHH:MM:SSZ` |
//! | `target`            | variable-length UTF-8  | one-line description of the target density |
//!
//! Any further root attribute is an *extra* attribute ([`AttrValue`]): a
//! variable-length UTF-8 string, an f64 or a u64 scalar. Strings are stored as
//! variable-length UTF-8 so that h5py returns them as Python `str`.

use crate::error::{IoError, Result};
use hdf5::types::{TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::Location;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The schema version this crate writes, and the newest it reads.
pub const SCHEMA_VERSION: u64 = 1;

/// Names of the root attributes every fieldflow file carries, in display order.
pub const RESERVED_ATTRIBUTES: [&str; 7] = [
    "fieldflow_schema",
    "schema_version",
    "fieldflow_version",
    "config",
    "seed",
    "created",
    "target",
];

/// What a fieldflow file holds (root attribute `fieldflow_schema`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// Markov-chain configurations (HMC, Metropolis).
    Ensemble,
    /// Samples of a flow sampler (IMH, hybrid, importance sampling); same layout as an ensemble.
    Samples,
    /// A trained flow: parameters, optimizer and RNG state, training metrics.
    Model,
    /// Γ-method results for observables of one or more input files.
    Analysis,
}

impl FileKind {
    /// The string stored in `fieldflow_schema`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Ensemble => "ensemble",
            FileKind::Samples => "samples",
            FileKind::Model => "model",
            FileKind::Analysis => "analysis",
        }
    }

    /// Parses the string stored in `fieldflow_schema`.
    pub fn parse(s: &str) -> Option<FileKind> {
        match s {
            "ensemble" => Some(FileKind::Ensemble),
            "samples" => Some(FileKind::Samples),
            "model" => Some(FileKind::Model),
            "analysis" => Some(FileKind::Analysis),
            _ => None,
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value of an extra root attribute.
///
/// Serialized (serde) untagged: as a plain JSON string or number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttrValue {
    /// A variable-length UTF-8 string.
    Str(String),
    /// A 64-bit unsigned integer.
    U64(u64),
    /// A 64-bit float.
    F64(f64),
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Str(s) => write!(f, "{s:?}"),
            AttrValue::F64(x) => write!(f, "{x}"),
            AttrValue::U64(n) => write!(f, "{n}"),
        }
    }
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::Str(s.to_owned())
    }
}

impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Str(s)
    }
}

impl From<f64> for AttrValue {
    fn from(x: f64) -> Self {
        AttrValue::F64(x)
    }
}

impl From<u64> for AttrValue {
    fn from(n: u64) -> Self {
        AttrValue::U64(n)
    }
}

/// The provenance of a file: its root attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// `fieldflow_schema`.
    pub kind: FileKind,
    /// `schema_version`; [`Header::new`] sets [`SCHEMA_VERSION`].
    pub schema_version: u64,
    /// `fieldflow_version`; [`Header::new`] sets this crate's version, which is
    /// the workspace's (all fieldflow crates share one version).
    pub fieldflow_version: String,
    /// `config`: the resolved configuration text (TOML or JSON).
    pub config: String,
    /// `seed`: the master seed.
    pub seed: u64,
    /// `created`: UTC ISO-8601 time, `YYYY-MM-DDTHH:MM:SSZ`.
    pub created: String,
    /// `target`: one-line description of the target.
    pub target: String,
    /// Further root attributes, by name (names must not be in [`RESERVED_ATTRIBUTES`]).
    pub extra: BTreeMap<String, AttrValue>,
}

impl Header {
    /// A header for a new file, created now, with no extra attributes.
    pub fn new(kind: FileKind, config: impl Into<String>, seed: u64, target: impl Into<String>) -> Self {
        Header {
            kind,
            schema_version: SCHEMA_VERSION,
            fieldflow_version: env!("CARGO_PKG_VERSION").to_owned(),
            config: config.into(),
            seed,
            created: utc_now_iso8601(),
            target: target.into(),
            extra: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) an extra root attribute.
    pub fn with_attr(mut self, name: impl Into<String>, value: impl Into<AttrValue>) -> Self {
        self.extra.insert(name.into(), value.into());
        self
    }

    /// Writes all attributes to the root of `file` (replacing existing ones).
    pub(crate) fn write(&self, root: &Location, path: &Path) -> Result<()> {
        for name in self.extra.keys() {
            check_attr_name(name, path)?;
        }
        let werr = crate::error::write_err(path);
        let w = || -> hdf5::Result<()> {
            write_str_attr(root, "fieldflow_schema", self.kind.as_str())?;
            write_u64_attr(root, "schema_version", self.schema_version)?;
            write_str_attr(root, "fieldflow_version", &self.fieldflow_version)?;
            write_str_attr(root, "config", &self.config)?;
            write_u64_attr(root, "seed", self.seed)?;
            write_str_attr(root, "created", &self.created)?;
            write_str_attr(root, "target", &self.target)?;
            for (name, value) in &self.extra {
                write_attr(root, name, value)?;
            }
            Ok(())
        };
        w().map_err(werr)
    }

    /// Reads and validates the header of an open file.
    ///
    /// With `check_version`, a `schema_version` newer than [`SCHEMA_VERSION`]
    /// is an error ([`IoError::NewerSchema`]); `inspect` reads newer files anyway.
    pub(crate) fn read(root: &Location, path: &Path, check_version: bool) -> Result<Header> {
        let names = root.attr_names().map_err(crate::error::read_err(path))?;
        let has = |n: &str| names.iter().any(|m| m == n);
        if !has("fieldflow_schema") {
            return Err(IoError::NotFieldflow {
                path: path.to_path_buf(),
                attribute: "fieldflow_schema",
            });
        }
        let kind_str = read_str_attr(root, "fieldflow_schema", path)?;
        let kind = FileKind::parse(&kind_str).ok_or_else(|| IoError::Malformed {
            path: path.to_path_buf(),
            problem: format!("unknown fieldflow_schema {kind_str:?}"),
        })?;
        for n in RESERVED_ATTRIBUTES {
            if !has(n) {
                return Err(IoError::Missing {
                    path: path.to_path_buf(),
                    what: format!("attribute {n}"),
                });
            }
        }
        let schema_version = read_u64_attr(root, "schema_version", path)?;
        if check_version && schema_version > SCHEMA_VERSION {
            return Err(IoError::NewerSchema {
                path: path.to_path_buf(),
                found: schema_version,
                supported: SCHEMA_VERSION,
            });
        }
        let mut extra = BTreeMap::new();
        for name in names.iter().filter(|n| !RESERVED_ATTRIBUTES.contains(&n.as_str())) {
            if let Some(v) = read_attr(root, name, path)? {
                extra.insert(name.clone(), v);
            }
        }
        Ok(Header {
            kind,
            schema_version,
            fieldflow_version: read_str_attr(root, "fieldflow_version", path)?,
            config: read_str_attr(root, "config", path)?,
            seed: read_u64_attr(root, "seed", path)?,
            created: read_str_attr(root, "created", path)?,
            target: read_str_attr(root, "target", path)?,
            extra,
        })
    }
}

/// Rejects extra attribute names that are empty or collide with the schema's.
pub(crate) fn check_attr_name(name: &str, path: &Path) -> Result<()> {
    let problem = if name.is_empty() {
        "empty"
    } else if RESERVED_ATTRIBUTES.contains(&name) {
        "reserved by the fieldflow schema"
    } else {
        return Ok(());
    };
    Err(IoError::InvalidName {
        path: path.to_path_buf(),
        name: name.to_owned(),
        problem,
    })
}

fn has_attr(loc: &Location, name: &str) -> hdf5::Result<bool> {
    Ok(loc.attr_names()?.iter().any(|n| n == name))
}

/// Writes (or replaces) a scalar variable-length UTF-8 string attribute.
pub(crate) fn write_str_attr(loc: &Location, name: &str, value: &str) -> hdf5::Result<()> {
    let v: VarLenUnicode = value
        .parse()
        .map_err(|e| hdf5::Error::from(format!("attribute {name}: {e}")))?;
    if has_attr(loc, name)? {
        loc.delete_attr(name)?;
    }
    loc.new_attr::<VarLenUnicode>().create(name)?.write_scalar(&v)
}

/// Writes (or replaces) a scalar u64 attribute.
pub(crate) fn write_u64_attr(loc: &Location, name: &str, value: u64) -> hdf5::Result<()> {
    if has_attr(loc, name)? {
        loc.delete_attr(name)?;
    }
    loc.new_attr::<u64>().create(name)?.write_scalar(&value)
}

/// Writes (or replaces) a scalar f64 attribute.
pub(crate) fn write_f64_attr(loc: &Location, name: &str, value: f64) -> hdf5::Result<()> {
    if has_attr(loc, name)? {
        loc.delete_attr(name)?;
    }
    loc.new_attr::<f64>().create(name)?.write_scalar(&value)
}

/// Writes (or replaces) an attribute of any [`AttrValue`] type.
pub(crate) fn write_attr(loc: &Location, name: &str, value: &AttrValue) -> hdf5::Result<()> {
    match value {
        AttrValue::Str(s) => write_str_attr(loc, name, s),
        AttrValue::F64(x) => write_f64_attr(loc, name, *x),
        AttrValue::U64(n) => write_u64_attr(loc, name, *n),
    }
}

fn open_attr(loc: &Location, name: &str, path: &Path) -> Result<hdf5::Attribute> {
    if !has_attr(loc, name).map_err(crate::error::read_err(path))? {
        return Err(IoError::Missing {
            path: path.to_path_buf(),
            what: format!("attribute {}@{name}", loc.name()),
        });
    }
    loc.attr(name).map_err(crate::error::read_err(path))
}

fn not_type(loc: &Location, name: &str, path: &Path, ty: &str) -> IoError {
    IoError::Malformed {
        path: path.to_path_buf(),
        problem: format!("attribute {}@{name} is not a scalar {ty}", loc.name()),
    }
}

/// Reads a scalar string attribute (variable-length UTF-8 or ASCII).
pub(crate) fn read_str_attr(loc: &Location, name: &str, path: &Path) -> Result<String> {
    let a = open_attr(loc, name, path)?;
    let rerr = crate::error::read_err(path);
    if !a.is_scalar() {
        return Err(not_type(loc, name, path, "string"));
    }
    match a.dtype().and_then(|t| t.to_descriptor()).map_err(&rerr)? {
        TypeDescriptor::VarLenUnicode => Ok(a.read_scalar::<VarLenUnicode>().map_err(&rerr)?.as_str().to_owned()),
        TypeDescriptor::VarLenAscii => Ok(a.read_scalar::<VarLenAscii>().map_err(&rerr)?.as_str().to_owned()),
        _ => Err(not_type(loc, name, path, "string")),
    }
}

/// Reads a scalar integer attribute as u64.
pub(crate) fn read_u64_attr(loc: &Location, name: &str, path: &Path) -> Result<u64> {
    let a = open_attr(loc, name, path)?;
    let rerr = crate::error::read_err(path);
    if !a.is_scalar() {
        return Err(not_type(loc, name, path, "unsigned integer"));
    }
    match a.dtype().and_then(|t| t.to_descriptor()).map_err(&rerr)? {
        TypeDescriptor::Unsigned(_) => a.read_scalar::<u64>().map_err(&rerr),
        TypeDescriptor::Integer(_) => {
            let v = a.read_scalar::<i64>().map_err(&rerr)?;
            u64::try_from(v).map_err(|_| not_type(loc, name, path, "unsigned integer"))
        }
        _ => Err(not_type(loc, name, path, "unsigned integer")),
    }
}

/// Reads a scalar float attribute as f64.
pub(crate) fn read_f64_attr(loc: &Location, name: &str, path: &Path) -> Result<f64> {
    let a = open_attr(loc, name, path)?;
    let rerr = crate::error::read_err(path);
    match a.dtype().and_then(|t| t.to_descriptor()).map_err(&rerr)? {
        TypeDescriptor::Float(_) if a.is_scalar() => a.read_scalar::<f64>().map_err(&rerr),
        _ => Err(not_type(loc, name, path, "float")),
    }
}

/// Reads a scalar attribute of a type [`AttrValue`] can hold; `None` for any
/// other type (arrays, compounds, fixed-length strings).
pub(crate) fn read_attr(loc: &Location, name: &str, path: &Path) -> Result<Option<AttrValue>> {
    let a = open_attr(loc, name, path)?;
    let rerr = crate::error::read_err(path);
    if !a.is_scalar() {
        return Ok(None);
    }
    Ok(match a.dtype().and_then(|t| t.to_descriptor()).map_err(&rerr)? {
        TypeDescriptor::VarLenUnicode | TypeDescriptor::VarLenAscii => {
            Some(AttrValue::Str(read_str_attr(loc, name, path)?))
        }
        TypeDescriptor::Float(_) => Some(AttrValue::F64(a.read_scalar().map_err(&rerr)?)),
        TypeDescriptor::Unsigned(_) => Some(AttrValue::U64(a.read_scalar().map_err(&rerr)?)),
        TypeDescriptor::Integer(_) => {
            let v: i64 = a.read_scalar().map_err(&rerr)?;
            u64::try_from(v).ok().map(AttrValue::U64)
        }
        _ => None,
    })
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now_iso8601() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format_utc(secs)
}

/// Formats seconds since 1970-01-01T00:00:00Z (ignoring leap seconds, as Unix time does).
pub(crate) fn format_utc(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let sod = unix_secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Proleptic Gregorian date of day number `z` (0 = 1970-01-01).
///
/// Shifts the epoch to 0000-03-01 so that the leap day ends a year, splits the
/// day count into 400-year eras of 146 097 days, then the day of the era into
/// year of era (365-day years with a leap day every 4 years, except every
/// 100, except every 400) and day of the year; months of the March-based year
/// have 153 days per 5 months, which maps the day of the year to the month.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of March-based year, [0, 365]
    let mp = (5 * doy + 2) / 153; // month, March = 0, [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting_matches_known_dates() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(951_955_199), "2000-03-01T23:59:59Z");
        assert_eq!(format_utc(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(format_utc(4_102_444_800), "2100-01-01T00:00:00Z");
        assert_eq!(format_utc(-1), "1969-12-31T23:59:59Z");
        let now = utc_now_iso8601();
        assert_eq!(now.len(), 20);
        assert!(now.starts_with("20") && now.ends_with('Z'));
    }

    #[test]
    fn headers_serialize_to_plain_json() {
        let h = Header::new(FileKind::Samples, "a = 1", 7, "gaussian dim=2")
            .with_attr("n", 3u64)
            .with_attr("x", 0.5)
            .with_attr("s", "hi");
        let json = serde_json::to_string(&h).unwrap();
        assert!(json.contains(r#""kind":"samples""#), "{json}");
        assert!(json.contains(r#""extra":{"n":3,"s":"hi","x":0.5}"#), "{json}");
        let back: Header = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in [
            FileKind::Ensemble,
            FileKind::Samples,
            FileKind::Model,
            FileKind::Analysis,
        ] {
            assert_eq!(FileKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(FileKind::parse("Ensemble"), None);
    }
}
