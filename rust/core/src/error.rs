//! The one error type of the record layer: what went wrong, in which file, at which byte offset.
//!
//! Every malformed input (bad framing, bad CRC, truncation, bad protobuf) and every I/O failure
//! becomes an [`Error`]. Its `Display` reads like
//! `slide_a.tfrecords: bad data CRC32C in record at byte offset 4548 (data at byte offset 4560)`,
//! so a user can find the bad record without reading code. The offset is always the offset of the
//! record's 8-byte length header (the number TensorFlow reports for truncated and length-CRC
//! errors); for data-CRC errors the message also names the data offset TensorFlow reports.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Result alias used throughout `jaxwsi-core`.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong; the location (path and offset) lives in [`Error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file or stream ended inside a record: `needed` bytes were required from the record
    /// start, only `available` were there.
    Truncated {
        /// Bytes the record needs, counted from its header offset.
        needed: u64,
        /// Bytes that were actually present from the header offset to the end.
        available: u64,
    },
    /// The masked CRC32C of the 8 length bytes does not match (often: not a TFRecord file).
    BadLengthCrc {
        /// The CRC stored in the file (masked).
        stored: u32,
        /// The CRC computed from the length bytes (masked).
        computed: u32,
    },
    /// The masked CRC32C of the record data does not match.
    BadDataCrc {
        /// The CRC stored in the file (masked).
        stored: u32,
        /// The CRC computed from the data (masked).
        computed: u32,
    },
    /// The length field (with a valid CRC) claims more bytes than the file can hold, or more than
    /// the reader's limit; nothing of that size was allocated.
    LengthTooLarge {
        /// The data length the header claims.
        length: u64,
        /// Bytes available after the header (or the configured limit for streams).
        limit: u64,
    },
    /// The record data is not a valid `tf.train.Example`.
    Protobuf {
        /// Where in the message the problem is, e.g. `features.feature[loc_x].int64_list`.
        field: String,
        /// What is wrong, e.g. `varint longer than 10 bytes`.
        reason: String,
    },
    /// The operation needs an uncompressed file (e.g. a byte-offset index of a GZIP file).
    Unsupported {
        /// Why the file cannot be handled.
        reason: String,
    },
    /// A GZIP/ZLIB stream that does not decompress (bad header, corrupt deflate data); the
    /// offset counts decompressed bytes up to the record being read.
    Compressed {
        /// `GZIP` or `ZLIB`.
        format: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// An operating-system I/O error (missing file, permission, a directory, a read failure).
    Io {
        /// The `std::io::ErrorKind`, kept so bindings can map it (e.g. to `FileNotFoundError`).
        kind: io::ErrorKind,
        /// The OS message.
        message: String,
    },
}

/// An error of the record layer, with the file (when known) and byte offset of the bad record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The file the error is about; `None` for in-memory buffers until [`Error::with_path`].
    pub path: Option<PathBuf>,
    /// Byte offset of the offending record's length header (0 for whole-file I/O errors).
    pub offset: u64,
    /// What went wrong.
    pub kind: ErrorKind,
}

impl Error {
    /// A new error at `offset` with no path yet.
    pub fn new(kind: ErrorKind, offset: u64) -> Self {
        Error {
            path: None,
            offset,
            kind,
        }
    }

    /// A protobuf error at `offset` about `field`.
    pub fn protobuf(offset: u64, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::new(
            ErrorKind::Protobuf {
                field: field.into(),
                reason: reason.into(),
            },
            offset,
        )
    }

    /// An I/O error at `offset` of the file `path`.
    pub fn io(err: &io::Error, path: Option<&Path>, offset: u64) -> Self {
        Error {
            path: path.map(Path::to_path_buf),
            offset,
            kind: ErrorKind::Io {
                kind: err.kind(),
                message: err.to_string(),
            },
        }
    }

    /// The same error, naming `path` (kept if a path is already set).
    pub fn with_path(mut self, path: &Path) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_path_buf());
        }
        self
    }

    /// The same error with its offset shifted by `base` (for buffers cut out of a larger file).
    pub fn shifted(mut self, base: u64) -> Self {
        self.offset = self.offset.saturating_add(base);
        self
    }

    /// The I/O error kind if this is an I/O error.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match &self.kind {
            ErrorKind::Io { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{}: ", p.display())?,
            None => write!(f, "<buffer>: ")?,
        }
        let at = self.offset;
        match &self.kind {
            ErrorKind::Truncated { needed, available } => write!(
                f,
                "truncated record at byte offset {at}: needs {needed} bytes, only {available} left"
            ),
            ErrorKind::BadLengthCrc { stored, computed } => {
                write!(
                    f,
                    "corrupted record at byte offset {at}: bad length CRC32C \
                     (stored {stored:#010x}, computed {computed:#010x})"
                )?;
                if at == 0 {
                    write!(f, " (is this a TFRecord file?)")?;
                }
                Ok(())
            }
            ErrorKind::BadDataCrc { stored, computed } => write!(
                f,
                "corrupted record at byte offset {at}: bad data CRC32C \
                 (data at byte offset {}; stored {stored:#010x}, computed {computed:#010x})",
                at.saturating_add(12)
            ),
            ErrorKind::LengthTooLarge { length, limit } => write!(
                f,
                "corrupted record at byte offset {at}: length field {length} exceeds the \
                 {limit} bytes available"
            ),
            ErrorKind::Protobuf { field, reason } => write!(
                f,
                "bad tf.train.Example in record at byte offset {at}: {field}: {reason}"
            ),
            ErrorKind::Unsupported { reason } => write!(f, "{reason}"),
            ErrorKind::Compressed { format, message } => write!(
                f,
                "corrupted {format} stream before decompressed byte offset {at}: {message}"
            ),
            ErrorKind::Io { message, .. } => {
                write!(f, "I/O error at byte offset {at}: {message}")
            }
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_path_and_offsets() {
        let e = Error::new(
            ErrorKind::BadDataCrc {
                stored: 1,
                computed: 2,
            },
            4548,
        )
        .with_path(Path::new("x.tfrecords"));
        let s = e.to_string();
        assert!(s.starts_with("x.tfrecords: "), "{s}");
        assert!(s.contains("byte offset 4548"), "{s}");
        assert!(s.contains("byte offset 4560"), "{s}");
    }

    #[test]
    fn with_path_keeps_first_path_and_shift_adds() {
        let e = Error::new(
            ErrorKind::Truncated {
                needed: 9,
                available: 3,
            },
            5,
        )
        .with_path(Path::new("a"))
        .with_path(Path::new("b"))
        .shifted(10);
        assert_eq!(e.path.as_deref(), Some(Path::new("a")));
        assert_eq!(e.offset, 15);
    }
}
