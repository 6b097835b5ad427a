//! Opening files with clear errors, and atomic output (`NAME.partial` → `NAME`).
//!
//! **Opening.** A path is checked in this order: it exists (else
//! [`IoError::NotFound`]); it carries the 8-byte HDF5 signature at offset 0,
//! 512, 1024, 2048, … (else [`IoError::NotHdf5`], or [`IoError::Corrupt`] for
//! a file shorter than the signature); the HDF5 library opens it (else
//! [`IoError::Corrupt`]: HDF5 compares the end-of-file address in the
//! superblock with the file's size, so a truncated file fails here); its root
//! attributes form a valid [`Header`] of an accepted kind and a supported
//! `schema_version`.
//!
//! **Output.** A new file is written as `NAME.partial` and renamed to `NAME`
//! when complete. Without `force`, an existing `NAME` is never touched and an
//! existing `NAME.partial` (an interrupted run that could be resumed) is not
//! discarded; with `force`, a stale `NAME.partial` is removed at once while an
//! existing `NAME` is replaced only by the final rename, so a run that fails
//! leaves the old output intact.

use crate::error::{read_err, IoError, Result};
use crate::header::{FileKind, Header};
use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The HDF5 format signature.
const HDF5_SIGNATURE: [u8; 8] = [0x89, b'H', b'D', b'F', b'\r', b'\n', 0x1a, b'\n'];

/// `NAME.partial` for `NAME`: where an unfinished output lives.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(".partial");
    PathBuf::from(s)
}

/// `NAME` for `NAME.partial`; any other path unchanged.
pub fn final_path(path: &Path) -> PathBuf {
    let stem = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".partial"))
        .filter(|s| !s.is_empty());
    match stem {
        Some(stem) => path.with_file_name(stem),
        None => path.to_path_buf(),
    }
}

/// Whether `path` names an unfinished output (ends in `.partial`).
pub fn is_partial(path: &Path) -> bool {
    path.as_os_str().to_string_lossy().ends_with(".partial")
}

fn fs_err(path: &Path, action: impl Into<String>) -> impl FnOnce(std::io::Error) -> IoError {
    let path = path.to_path_buf();
    let action = action.into();
    move |source| IoError::Fs { path, action, source }
}

/// Checks existence and the HDF5 signature, so that foreign files get a clear error.
fn check_signature(path: &Path) -> Result<()> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IoError::NotFound {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(fs_err(path, "open")(e)),
    };
    let meta = f.metadata().map_err(fs_err(path, "read metadata"))?;
    if meta.is_dir() {
        return Err(IoError::NotHdf5 {
            path: path.to_path_buf(),
        });
    }
    let len = meta.len();
    if len < HDF5_SIGNATURE.len() as u64 {
        return Err(IoError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("{len} bytes, shorter than the HDF5 signature"),
        });
    }
    let mut offset = 0u64;
    let mut buf = [0u8; 8];
    while offset + 8 <= len {
        f.seek(SeekFrom::Start(offset))
            .and_then(|_| f.read_exact(&mut buf))
            .map_err(fs_err(path, "read"))?;
        if buf == HDF5_SIGNATURE {
            return Ok(());
        }
        offset = if offset == 0 { 512 } else { offset * 2 };
    }
    Err(IoError::NotHdf5 {
        path: path.to_path_buf(),
    })
}

/// Opens an HDF5 file read-only (or read-write) after the signature check.
pub(crate) fn open_hdf5(path: &Path, writable: bool) -> Result<hdf5::File> {
    check_signature(path)?;
    let f = if writable {
        hdf5::File::open_rw(path)
    } else {
        hdf5::File::open(path)
    };
    f.map_err(read_err(path))
}

/// Opens a fieldflow file of one of the `accept`ed kinds and reads its header.
pub(crate) fn open_fieldflow(
    path: &Path,
    writable: bool,
    accept: &[FileKind],
    expected: &'static str,
) -> Result<(hdf5::File, Header)> {
    let file = open_hdf5(path, writable)?;
    let header = Header::read(&file, path, true)?;
    if !accept.contains(&header.kind) {
        return Err(IoError::WrongKind {
            path: path.to_path_buf(),
            found: header.kind.to_string(),
            expected,
        });
    }
    Ok((file, header))
}

/// Checks that a new output may be started at `path` and returns its `.partial` path.
///
/// Without `force`: fails if `path` or `path.partial` exists. With `force`:
/// removes a stale `path.partial`; `path` itself is left for [`publish`].
pub(crate) fn prepare_output(path: &Path, force: bool) -> Result<PathBuf> {
    if !force && path.exists() {
        return Err(IoError::Exists {
            path: path.to_path_buf(),
        });
    }
    let partial = partial_path(path);
    if partial.exists() {
        if !force {
            return Err(IoError::PartialExists { path: partial });
        }
        std::fs::remove_file(&partial).map_err(fs_err(&partial, "remove"))?;
    }
    Ok(partial)
}

/// Renames the finished `partial` to `path`; replaces an existing `path` only with `force`.
pub(crate) fn publish(partial: &Path, path: &Path, force: bool) -> Result<()> {
    if !force && path.exists() {
        return Err(IoError::Exists {
            path: path.to_path_buf(),
        });
    }
    std::fs::rename(partial, path).map_err(fs_err(partial, format!("rename to {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_names() {
        assert_eq!(
            partial_path(Path::new("dir/ens.h5")),
            PathBuf::from("dir/ens.h5.partial")
        );
        assert!(is_partial(Path::new("ens.h5.partial")));
        assert!(!is_partial(Path::new("ens.h5")));
        assert_eq!(final_path(Path::new("d/ens.h5.partial")), PathBuf::from("d/ens.h5"));
        assert_eq!(final_path(Path::new("ens.h5")), PathBuf::from("ens.h5"));
    }

    #[test]
    fn signature_check_tells_foreign_and_short_files_apart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.h5");
        assert!(matches!(check_signature(&p), Err(IoError::NotFound { .. })));
        std::fs::write(&p, b"hello, this is text and not HDF5 at all").unwrap();
        assert!(matches!(check_signature(&p), Err(IoError::NotHdf5 { .. })));
        std::fs::write(&p, b"").unwrap();
        assert!(matches!(check_signature(&p), Err(IoError::Corrupt { .. })));
        std::fs::write(&p, HDF5_SIGNATURE).unwrap();
        assert!(check_signature(&p).is_ok());
    }
}
