//! Record indexes: `(offset, framed length)` of every record, plus tile locations.
//!
//! This is the content of Slideflow's `{name}.index.npz` (`arr_0` and `locations`); the Python
//! layer writes and validates the files. Scanning verifies both CRCs of every record, so a file
//! that indexes cleanly is also a file that reads cleanly. [`scan_files`] runs over many files in
//! parallel with rayon.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::example::{parse_selected, Feature};
use crate::framing::{parse_header, record_at, HEADER_LEN};
use crate::stream::{open_file, FileRecords};

/// Records whose headers [`index_matches`] re-reads (spread evenly, first and last included).
const SAMPLED_HEADERS: usize = 16;

/// The index of one uncompressed TFRecord file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileIndex {
    /// `[offset, framed_len]` of every record, in file order (Slideflow's `arr_0`).
    pub records: Vec<[i64; 2]>,
    /// `[loc_x, loc_y]` of every record (the first value of each), present only when every
    /// record has non-empty int64 `loc_x` and `loc_y` features and the file is not empty.
    pub locations: Option<Vec<[i64; 2]>>,
}

fn first_i64(feature: &Option<Feature<'_>>) -> Option<i64> {
    match feature {
        Some(Feature::Int64(v)) => v.first().copied(),
        _ => None,
    }
}

/// Scans one file. With `with_locations`, every record is parsed as a `tf.train.Example` (a
/// record that is not one is an error naming its offset) and `loc_x`/`loc_y` are collected.
/// Compressed files are refused: their byte offsets would not be file offsets.
pub fn scan_file(path: &Path, with_locations: bool) -> Result<FileIndex> {
    match scan_file_partial(path, with_locations) {
        (index, None) => Ok(index),
        (_, Some(e)) => Err(e),
    }
}

/// Like [`scan_file`], but keeps what was readable: the index of every record before the first
/// bad one (all verified), and that error, if any. A file that cannot be opened (or is
/// compressed) gives an empty index and the error. Used by loaders that skip damaged files.
pub fn scan_file_partial(path: &Path, with_locations: bool) -> (FileIndex, Option<Error>) {
    let mut index = FileIndex::default();
    let mut reader = match FileRecords::open_uncompressed(path, true) {
        Ok(reader) => reader,
        Err(e) => return (index, Some(e)),
    };
    let mut locations = with_locations.then(Vec::new);
    let error = loop {
        let rec = match reader.next_record() {
            Ok(Some(rec)) => rec,
            Ok(None) => break None,
            Err(e) => break Some(e),
        };
        if let Some(locs) = &mut locations {
            let (offset, data) = (rec.offset, rec.data);
            match parse_selected(data, &["loc_x", "loc_y"]) {
                Ok(sel) => match (first_i64(&sel[0]), first_i64(&sel[1])) {
                    (Some(x), Some(y)) => locs.push([x, y]),
                    _ => locations = None,
                },
                Err(e) => break Some(e.shifted(offset).with_path(path)),
            }
        }
        index
            .records
            .push([rec.offset as i64, rec.framed_len as i64]);
    };
    index.locations = locations.filter(|l| !l.is_empty() && l.len() == index.records.len());
    (index, error)
}

/// Scans many files in parallel (rayon's global pool); one result per path, in input order.
pub fn scan_files(paths: &[PathBuf], with_locations: bool) -> Vec<Result<FileIndex>> {
    paths
        .par_iter()
        .map(|p| scan_file(p, with_locations))
        .collect()
}

/// [`scan_file_partial`] over many files in parallel; one result per path, in input order.
pub fn scan_files_partial(
    paths: &[PathBuf],
    with_locations: bool,
) -> Vec<(FileIndex, Option<Error>)> {
    paths
        .par_iter()
        .map(|p| scan_file_partial(p, with_locations))
        .collect()
}

/// Cheap check that an index still describes `path` (used to detect stale indexes).
///
/// True when the records are contiguous from offset 0 and end exactly at the file size, the
/// headers of up to 16 evenly spread records (first and last included) have valid length CRCs
/// and the indexed lengths, and the last record's data CRC verifies. Reads a few kilobytes.
pub fn index_matches(path: &Path, records: &[[i64; 2]]) -> Result<bool> {
    let (file, size) = open_file(path)?;
    let mut end: i64 = 0;
    for &[offset, framed] in records {
        if offset != end || framed < (HEADER_LEN as i64 + 4) {
            return Ok(false);
        }
        end = match end.checked_add(framed) {
            Some(e) => e,
            None => return Ok(false),
        };
    }
    if u64::try_from(end).ok() != Some(size) {
        return Ok(false);
    }
    let n = records.len();
    let step = n.div_ceil(SAMPLED_HEADERS).max(1);
    let sampled = (0..n).step_by(step).chain(n.checked_sub(1));
    let read_at = |buf: &mut [u8], offset: u64| {
        file.read_exact_at(buf, offset)
            .map_err(|e| Error::io(&e, Some(path), offset))
    };
    for i in sampled {
        let [offset, framed] = records[i];
        let offset = offset as u64;
        let mut header = [0u8; HEADER_LEN];
        read_at(&mut header, offset)?;
        match parse_header(&header, offset, true) {
            Ok(len) if len.saturating_add(16) == framed as u64 => {}
            _ => return Ok(false),
        }
    }
    if let Some(&[offset, framed]) = records.last() {
        let mut last = vec![0u8; framed as usize];
        read_at(&mut last, offset as u64)?;
        if record_at(&last, 0, true).is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::example::encode_example;
    use crate::framing::RecordWriter;

    fn write_tiles(path: &Path, n: i64, with_loc: bool) {
        let mut w = RecordWriter::new(Vec::new());
        for i in 0..n {
            let mut feats = vec![("image_raw", Feature::Bytes(vec![b"jpeg"]))];
            if with_loc {
                feats.push(("loc_x", Feature::Int64(vec![i * 10])));
                feats.push(("loc_y", Feature::Int64(vec![-i])));
            }
            let mut data = Vec::new();
            encode_example(&feats, &mut data);
            w.write_record(&data).unwrap();
        }
        std::fs::write(path, w.into_inner()).unwrap();
    }

    #[test]
    fn scans_offsets_and_locations_in_parallel() {
        let dir = std::env::temp_dir();
        let a = dir.join(format!("jaxwsi-index-a-{}", std::process::id()));
        let b = dir.join(format!("jaxwsi-index-b-{}", std::process::id()));
        write_tiles(&a, 3, true);
        write_tiles(&b, 2, false);
        let out = scan_files(&[a.clone(), b.clone()], true);
        let ia = out[0].as_ref().unwrap();
        // Offsets are contiguous, the last record ends at the file size.
        assert_eq!(ia.records.len(), 3);
        assert_eq!(ia.records[0][0], 0);
        for w in ia.records.windows(2) {
            assert_eq!(w[1][0], w[0][0] + w[0][1]);
        }
        let end = ia.records[2][0] + ia.records[2][1];
        assert_eq!(end as u64, std::fs::metadata(&a).unwrap().len());
        assert_eq!(ia.locations, Some(vec![[0, 0], [10, -1], [20, -2]]));
        assert!(index_matches(&a, &ia.records).unwrap());
        let mut shifted = ia.records.clone();
        shifted[1][1] += 1;
        assert!(!index_matches(&a, &shifted).unwrap());
        assert!(!index_matches(&a, &ia.records[..2]).unwrap());
        let mut bytes = std::fs::read(&a).unwrap();
        let last = bytes.len() - 5;
        bytes[last] ^= 1;
        std::fs::write(&a, &bytes).unwrap();
        assert!(!index_matches(&a, &ia.records).unwrap());
        let ib = out[1].as_ref().unwrap();
        assert_eq!(ib.records.len(), 2);
        assert_eq!(ib.locations, None);
        std::fs::remove_file(a).unwrap();
        std::fs::remove_file(b).unwrap();
    }

    #[test]
    fn partial_scan_keeps_the_records_before_a_truncation() {
        let p = std::env::temp_dir().join(format!("jaxwsi-index-p-{}", std::process::id()));
        write_tiles(&p, 4, true);
        let full = scan_file(&p, true).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let cut = full.records[2][0] as usize + 5; // inside the header of record 2
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let (index, error) = scan_file_partial(&p, true);
        assert_eq!(index.records, full.records[..2]);
        assert_eq!(
            index.locations.as_deref(),
            Some(&full.locations.unwrap()[..2])
        );
        let e = error.unwrap();
        assert_eq!(e.offset, full.records[2][0] as u64);
        assert!(scan_file(&p, true).is_err());
        std::fs::remove_file(&p).unwrap();
        let (index, error) = scan_file_partial(&p, true);
        assert!(index.records.is_empty());
        assert_eq!(error.unwrap().io_kind(), Some(std::io::ErrorKind::NotFound));
    }
}
