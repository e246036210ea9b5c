//! Reading a small file from a place the store does not control (a lookaside store, a key
//! file, a signature next to an ACI, a policy): bounded, and never blocking on a FIFO.

use std::io::Read as _;
use std::path::Path;

/// Why [`read_capped`] read nothing.
#[derive(Debug)]
pub(crate) enum CappedError {
    /// Opening or reading failed (`NotFound` included).
    Io(std::io::Error),
    /// A FIFO, a directory, a device.
    NotRegular,
    /// Over the limit.
    TooLarge(u64),
}

impl CappedError {
    /// The file does not exist.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, CappedError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }

    /// As an `io::Error` (the refusals as `InvalidData`).
    pub(crate) fn into_io(self) -> std::io::Error {
        match self {
            CappedError::Io(e) => e,
            e => std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        }
    }
}

impl std::fmt::Display for CappedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CappedError::Io(e) => write!(f, "{e}"),
            CappedError::NotRegular => write!(f, "not a regular file"),
            CappedError::TooLarge(max) => write!(f, "larger than the limit of {max} bytes"),
        }
    }
}

/// The whole of the regular file `path` if it holds at most `max` bytes. The open does not
/// block on a FIFO, and a file growing while it is read is cut at `max + 1` bytes and refused.
pub(crate) fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, CappedError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(CappedError::Io)?;
    let meta = file.metadata().map_err(CappedError::Io)?;
    if !meta.is_file() {
        return Err(CappedError::NotRegular);
    }
    if meta.len() > max {
        return Err(CappedError::TooLarge(max));
    }
    let mut out = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut out)
        .map_err(CappedError::Io)?;
    if out.len() as u64 > max {
        return Err(CappedError::TooLarge(max));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_regular_files_only() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"12345").unwrap();
        assert_eq!(read_capped(&f, 5).unwrap(), b"12345");
        assert!(matches!(read_capped(&f, 4), Err(CappedError::TooLarge(4))));
        assert!(read_capped(&d.path().join("none"), 5)
            .unwrap_err()
            .is_not_found());
        assert!(matches!(
            read_capped(d.path(), 5),
            Err(CappedError::NotRegular)
        ));
        let fifo = d.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        assert!(matches!(
            read_capped(&fifo, 5),
            Err(CappedError::NotRegular)
        ));
    }
}
