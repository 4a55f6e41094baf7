//! Opening a TFRecord file for streaming: OS errors with the path, compression detection, and a
//! reader whose errors name the file.
//!
//! TensorFlow can write GZIP- or ZLIB-compressed TFRecords. They are recognised by their magic
//! bytes *only when* the file does not start with a valid record header (a plain TFRecord whose
//! first length happens to begin `1f 8b` stays a plain TFRecord), and are read as a stream. Byte
//! offsets in errors of compressed files count decompressed bytes.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::read::{MultiGzDecoder, ZlibDecoder};

use crate::error::{Error, ErrorKind, Result};
use crate::framing::{starts_with_valid_header, Record, RecordReader, HEADER_LEN};

/// Read-buffer size for files: large enough that tile records rarely straddle two reads.
const READ_BUFFER: usize = 1 << 20;

/// How the records of a file are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain TFRecord framing; byte offsets are file offsets (indexable).
    None,
    /// A GZIP stream of TFRecord framing (TensorFlow `compression_type="GZIP"`).
    Gzip,
    /// A ZLIB stream of TFRecord framing (TensorFlow `compression_type="ZLIB"`).
    Zlib,
}

impl Compression {
    /// Lower-case name: `none`, `gzip`, `zlib`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zlib => "zlib",
        }
    }
}

/// Guesses the compression from the first bytes of a file (at least 12 when available).
pub fn detect_compression(prefix: &[u8]) -> Compression {
    if starts_with_valid_header(prefix) {
        return Compression::None;
    }
    match prefix {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        // ZLIB header: CM = 8 (deflate), CINFO <= 7, and the 16-bit header is a multiple of 31.
        [cmf, flg, ..]
            if cmf & 0x0f == 8
                && cmf >> 4 <= 7
                && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0 =>
        {
            Compression::Zlib
        }
        _ => Compression::None,
    }
}

/// Opens `path` for reading, mapping OS errors (missing, permission, a directory) to [`Error`]s
/// that name the path. Returns the file and its size.
pub fn open_file(path: &Path) -> Result<(File, u64)> {
    let io_err = |e: io::Error| Error::io(&e, Some(path), 0);
    let file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        let e = io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a directory, not a TFRecord file",
        );
        return Err(io_err(e));
    }
    Ok((file, meta.len()))
}

/// Streams the records of one file, plain or compressed; every error names the file.
pub struct FileRecords {
    path: PathBuf,
    compression: Compression,
    reader: RecordReader<Box<dyn Read + Send>>,
}

impl std::fmt::Debug for FileRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileRecords")
            .field("path", &self.path)
            .field("compression", &self.compression)
            .field("position", &self.reader.position())
            .finish()
    }
}

impl FileRecords {
    /// Opens `path`, detecting GZIP/ZLIB; `verify` checks both CRCs of every record.
    pub fn open(path: &Path, verify: bool) -> Result<Self> {
        let (mut file, size) = open_file(path)?;
        let mut prefix = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < prefix.len() {
            match file.read(&mut prefix[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(&e, Some(path), 0)),
            }
        }
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(&e, Some(path), 0))?;
        let compression = detect_compression(&prefix[..got]);
        let buffered = BufReader::with_capacity(READ_BUFFER, file);
        let reader: RecordReader<Box<dyn Read + Send>> = match compression {
            Compression::None => RecordReader::with_size(Box::new(buffered), size, verify),
            Compression::Gzip => RecordReader::new(Box::new(MultiGzDecoder::new(buffered)), verify),
            Compression::Zlib => RecordReader::new(Box::new(ZlibDecoder::new(buffered)), verify),
        };
        Ok(FileRecords {
            path: path.to_path_buf(),
            compression,
            reader,
        })
    }

    /// Opens `path` and refuses compressed files (for byte-offset indexes and random access).
    pub fn open_uncompressed(path: &Path, verify: bool) -> Result<Self> {
        let records = FileRecords::open(path, verify)?;
        if records.compression != Compression::None {
            let reason = format!(
                "{}: {}-compressed TFRecord; byte-offset indexes and random access need an \
                 uncompressed file (read it as a stream, or rewrite it uncompressed)",
                path.display(),
                records.compression.name().to_uppercase()
            );
            return Err(Error::new(ErrorKind::Unsupported { reason }, 0).with_path(path));
        }
        Ok(records)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The detected compression.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The record most recently returned by [`FileRecords::next_record`], if any.
    pub fn last_record(&self) -> Option<Record<'_>> {
        self.reader.last_record()
    }

    /// The next record (`Ok(None)` at the end); errors name the file and the record offset.
    /// A decoder failure of a compressed file is a format error ([`ErrorKind::Compressed`]),
    /// not an I/O error: flate2 reports bad streams as `InvalidInput`/`InvalidData`.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>> {
        let (path, compression) = (&self.path, self.compression);
        self.reader
            .next_record()
            .map_err(|e| decoder_error(e, compression).with_path(path))
    }
}

/// Reclassifies the I/O errors a GZIP/ZLIB decoder raises for a corrupt stream.
fn decoder_error(e: Error, compression: Compression) -> Error {
    let format = match compression {
        Compression::None => return e,
        Compression::Gzip => "GZIP",
        Compression::Zlib => "ZLIB",
    };
    match &e.kind {
        ErrorKind::Io {
            kind:
                io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof,
            message,
        } => Error {
            kind: ErrorKind::Compressed {
                format,
                message: message.clone(),
            },
            ..e
        },
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::encode_record;
    use std::io::Write;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("jaxwsi-core-{}-{name}", std::process::id()))
    }

    #[test]
    fn reads_plain_gzip_and_zlib_identically() {
        let mut plain = Vec::new();
        encode_record(b"one", &mut plain);
        encode_record(b"two", &mut plain);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).unwrap();
        let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zl.write_all(&plain).unwrap();
        for (name, bytes, kind) in [
            ("plain", plain.clone(), Compression::None),
            ("gz", gz.finish().unwrap(), Compression::Gzip),
            ("zlib", zl.finish().unwrap(), Compression::Zlib),
        ] {
            let p = temp_path(name);
            std::fs::write(&p, &bytes).unwrap();
            let mut r = FileRecords::open(&p, true).unwrap();
            assert_eq!(r.compression(), kind);
            let mut got = Vec::new();
            while let Some(rec) = r.next_record().unwrap() {
                got.push(rec.data.to_vec());
            }
            assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()], "{name}");
            assert_eq!(
                FileRecords::open_uncompressed(&p, true).is_ok(),
                kind == Compression::None
            );
            std::fs::remove_file(&p).unwrap();
        }
    }

    #[test]
    fn corrupt_gzip_and_zlib_are_format_errors() {
        // Valid magic bytes, then garbage: the decoder fails (flate2 says InvalidInput).
        for (name, bytes) in [
            (
                "badgz",
                vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff],
            ),
            (
                "badzl",
                vec![0x78, 0x9c, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],
            ),
        ] {
            let p = temp_path(name);
            std::fs::write(&p, &bytes).unwrap();
            let mut r = FileRecords::open(&p, true).unwrap();
            let e = r.next_record().unwrap_err();
            assert!(
                matches!(e.kind, ErrorKind::Compressed { .. }),
                "{name}: {e:?}"
            );
            assert!(e.to_string().contains(&*p.to_string_lossy()), "{e}");
            std::fs::remove_file(&p).unwrap();
        }
    }

    #[test]
    fn missing_file_and_directory_name_the_path() {
        let missing = temp_path("missing");
        let e = FileRecords::open(&missing, true).unwrap_err();
        assert_eq!(e.io_kind(), Some(io::ErrorKind::NotFound));
        assert!(e.to_string().contains(&*missing.to_string_lossy()));
        let dir = std::env::temp_dir();
        let e = FileRecords::open(&dir, true).unwrap_err();
        assert_eq!(e.io_kind(), Some(io::ErrorKind::IsADirectory));
    }

    #[test]
    fn plain_file_starting_with_gzip_magic_is_not_mistaken_for_gzip() {
        // A record of length 0x8b1f starts with the bytes 1f 8b.
        let mut plain = Vec::new();
        encode_record(&vec![7u8; 0x8b1f], &mut plain);
        assert_eq!(&plain[..2], &[0x1f, 0x8b]);
        assert_eq!(detect_compression(&plain), Compression::None);
    }
}
