//! Whole-file verification: read every record, check both CRCs, decode every Example.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::Result;
use crate::example::parse_example;
use crate::stream::{Compression, FileRecords};

/// What a clean pass over a file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSummary {
    /// Number of records.
    pub records: u64,
    /// Bytes of framed records read (the file size for uncompressed files).
    pub bytes: u64,
    /// How the file is stored.
    pub compression: Compression,
}

/// Reads all of `path` (plain or compressed), verifying CRCs and, with `parse`, decoding every
/// record as a `tf.train.Example`. Fails at the first bad record, naming its offset.
pub fn verify_file(path: &Path, parse: bool) -> Result<FileSummary> {
    let mut reader = FileRecords::open(path, true)?;
    let mut summary = FileSummary {
        records: 0,
        bytes: 0,
        compression: reader.compression(),
    };
    while let Some(rec) = reader.next_record()? {
        if parse {
            let offset = rec.offset;
            parse_example(rec.data).map_err(|e| e.shifted(offset).with_path(path))?;
        }
        summary.records += 1;
        summary.bytes += rec.framed_len;
    }
    Ok(summary)
}

/// [`verify_file`] over many files in parallel; one result per path, in input order.
pub fn verify_files(paths: &[PathBuf], parse: bool) -> Vec<Result<FileSummary>> {
    paths.par_iter().map(|p| verify_file(p, parse)).collect()
}
