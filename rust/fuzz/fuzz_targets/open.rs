//! Arbitrary bytes through the real entry point, `FileRecords::open` on a file: the payload plain
//! or wrapped in GZIP/ZLIB (first byte % 3: 0 plain, 1 GZIP, 2 ZLIB; an odd second byte cuts the
//! compressed stream short; the payload follows). Every record is read; then the index scan and its staleness check.
//! Invariants: nothing panics; the file exists and is readable, so no error may be an I/O error
//! (a corrupt or truncated stream is a format error, `TFRecordError` in Python); the partial
//! scan agrees with the stream reader on plain files; a clean scan's index is current.
#![no_main]

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use flate2::write::{GzEncoder, ZlibEncoder};
use jaxwsi_core::index::{index_matches, scan_file_partial};
use jaxwsi_core::stream::{Compression, FileRecords};
use libfuzzer_sys::fuzz_target;

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("jaxwsi-fuzz-open-{}.tfrecords", std::process::id()))
    })
}

fn file_bytes(data: &[u8]) -> Vec<u8> {
    let (mode, cut, payload) = match data {
        [mode, cut, rest @ ..] => (*mode % 3, *cut, rest),
        _ => return data.to_vec(),
    };
    let mut out = match mode {
        0 => return payload.to_vec(),
        1 => {
            let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(payload).unwrap();
            e.finish().unwrap()
        }
        _ => {
            let mut e = ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(payload).unwrap();
            e.finish().unwrap()
        }
    };
    if cut & 1 == 1 {
        out.truncate(out.len() * usize::from(cut) / 256);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let bytes = file_bytes(data);
    let p = path();
    std::fs::write(p, &bytes).unwrap();
    let mut reader = FileRecords::open(p, true).expect("an existing file always opens");
    let compression = reader.compression();
    let mut records = Vec::new();
    let mut error = None;
    loop {
        match reader.next_record() {
            Ok(Some(r)) => records.push([r.offset as i64, r.framed_len as i64]),
            Ok(None) => break,
            Err(e) => {
                assert!(e.io_kind().is_none(), "I/O error for bad content: {e:?}");
                assert_eq!(e.path.as_deref(), Some(p.as_path()), "{e}");
                error = Some(e);
                break;
            }
        }
    }
    let (index, scan_error) = scan_file_partial(p, false);
    if compression == Compression::None {
        assert_eq!(index.records, records);
        assert_eq!(
            scan_error.as_ref().map(|e| e.offset),
            error.map(|e| e.offset)
        );
        if scan_error.is_none() {
            assert!(index_matches(p, &index.records).unwrap());
        }
    } else {
        assert!(index.records.is_empty() && scan_error.is_some());
    }
    let _ = scan_file_partial(p, true);
});
