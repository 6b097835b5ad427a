//! The one error type of fieldflow-io.
//!
//! Every variant names the file it concerns and displays as a single line,
//! e.g. `ens.h5: not a fieldflow file (missing attribute fieldflow_schema)`,
//! which is what the command-line tool prints before exiting.

use std::path::{Path, PathBuf};

/// Everything that can go wrong while reading or writing a fieldflow file.
///
/// HDF5's own error type never appears in this API: its message is kept as
/// text (`detail`), so no other crate needs to know about HDF5.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The file (or directory) does not exist.
    #[error("{}: no such file", .path.display())]
    NotFound {
        /// The file that was asked for.
        path: PathBuf,
    },

    /// The output exists and the caller did not allow replacing it.
    #[error("{} exists; pass --force to overwrite", .path.display())]
    Exists {
        /// The existing output.
        path: PathBuf,
    },

    /// A `.partial` file of an earlier, unfinished run is in the way.
    #[error(
        "{} exists (an unfinished run); resume it or pass --force to start over",
        .path.display()
    )]
    PartialExists {
        /// The `NAME.partial` file.
        path: PathBuf,
    },

    /// `resume` found no `.partial` file to continue.
    #[error("{}: no unfinished run to resume (file not found)", .path.display())]
    NothingToResume {
        /// The `NAME.partial` file that was looked for.
        path: PathBuf,
    },

    /// The file does not start with the HDF5 signature.
    #[error("{}: not an HDF5 file", .path.display())]
    NotHdf5 {
        /// The offending file.
        path: PathBuf,
    },

    /// An HDF5 file that cannot be read: cut short, or damaged.
    #[error("{}: truncated or corrupt HDF5 file ({detail})", .path.display())]
    Corrupt {
        /// The offending file.
        path: PathBuf,
        /// What the HDF5 library or the size check reported.
        detail: String,
    },

    /// A valid HDF5 file that fieldflow did not write.
    #[error("{}: not a fieldflow file (missing attribute {attribute})", .path.display())]
    NotFieldflow {
        /// The offending file.
        path: PathBuf,
        /// The root attribute that is absent.
        attribute: &'static str,
    },

    /// A fieldflow file of another kind (e.g. a model where an ensemble was expected).
    #[error("{}: is a fieldflow {found} file, expected {expected}", .path.display())]
    WrongKind {
        /// The offending file.
        path: PathBuf,
        /// The kind stored in `fieldflow_schema`.
        found: String,
        /// The kind(s) the reader accepts.
        expected: &'static str,
    },

    /// Written by a newer fieldflow with a schema this version cannot read.
    #[error(
        "{}: schema_version {found} is newer than this fieldflow supports ({supported}); upgrade fieldflow",
        .path.display()
    )]
    NewerSchema {
        /// The offending file.
        path: PathBuf,
        /// The file's `schema_version`.
        found: u64,
        /// The newest version this crate reads.
        supported: u64,
    },

    /// A fieldflow file that lacks a dataset, group or attribute of its schema.
    #[error("{}: missing {what}", .path.display())]
    Missing {
        /// The offending file.
        path: PathBuf,
        /// What is absent, e.g. `dataset /configs` or `attribute /checkpoint@chains`.
        what: String,
    },

    /// A fieldflow file whose contents contradict its schema (shape, dtype, value).
    #[error("{}: {problem}", .path.display())]
    Malformed {
        /// The offending file.
        path: PathBuf,
        /// What is wrong, e.g. `/log_p has shape [2, 5], expected [2, 6]`.
        problem: String,
    },

    /// A name the caller chose cannot be stored (empty, contains `/`, reserved).
    #[error("{}: invalid name {name:?}: {problem}", .path.display())]
    InvalidName {
        /// The file being written.
        path: PathBuf,
        /// The rejected name.
        name: String,
        /// Why it is rejected.
        problem: &'static str,
    },

    /// The HDF5 library failed while writing (disk full, permissions, ...).
    #[error("{}: HDF5 error: {detail}", .path.display())]
    Hdf5 {
        /// The file being written.
        path: PathBuf,
        /// The HDF5 library's message.
        detail: String,
    },

    /// A file-system operation (rename, remove, read) failed.
    #[error("{}: cannot {action}: {source}", .path.display())]
    Fs {
        /// The file concerned.
        path: PathBuf,
        /// What was attempted, e.g. `rename to ens.h5`.
        action: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl IoError {
    /// The file this error concerns.
    pub fn path(&self) -> &Path {
        match self {
            IoError::NotFound { path }
            | IoError::Exists { path }
            | IoError::PartialExists { path }
            | IoError::NothingToResume { path }
            | IoError::NotHdf5 { path }
            | IoError::Corrupt { path, .. }
            | IoError::NotFieldflow { path, .. }
            | IoError::WrongKind { path, .. }
            | IoError::NewerSchema { path, .. }
            | IoError::Missing { path, .. }
            | IoError::Malformed { path, .. }
            | IoError::InvalidName { path, .. }
            | IoError::Hdf5 { path, .. }
            | IoError::Fs { path, .. } => path,
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = IoError> = std::result::Result<T, E>;

/// Converts HDF5 errors met while *writing* `path` into [`IoError::Hdf5`].
pub(crate) fn write_err(path: &Path) -> impl Fn(hdf5::Error) -> IoError + '_ {
    move |e| IoError::Hdf5 {
        path: path.to_path_buf(),
        detail: one_line(&e.to_string()),
    }
}

/// Converts HDF5 errors met while *reading* `path` into [`IoError::Corrupt`]:
/// a file that passed the signature and schema checks but cannot be read is
/// damaged.
pub(crate) fn read_err(path: &Path) -> impl Fn(hdf5::Error) -> IoError + '_ {
    move |e| IoError::Corrupt {
        path: path.to_path_buf(),
        detail: one_line(&e.to_string()),
    }
}

/// Collapses a multi-line library message into one line.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_and_name_the_file() {
        let e = IoError::NotFieldflow {
            path: "ens.h5".into(),
            attribute: "fieldflow_schema",
        };
        assert_eq!(
            e.to_string(),
            "ens.h5: not a fieldflow file (missing attribute fieldflow_schema)"
        );
        let e = IoError::Exists { path: "out.h5".into() };
        assert_eq!(e.to_string(), "out.h5 exists; pass --force to overwrite");
        assert_eq!(e.path(), Path::new("out.h5"));
        assert_eq!(one_line("a\n  b\tc"), "a b c");
    }
}
