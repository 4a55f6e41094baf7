//! The record layer against the files TensorFlow 2.21 wrote (tests/fixtures/tfrecords). The
//! expected numbers are TensorFlow's, from tests/fixtures/tfrecords/manifest.json.

use std::path::PathBuf;

use jaxwsi_core::error::ErrorKind;
use jaxwsi_core::example::parse_example;
use jaxwsi_core::index::scan_file;
use jaxwsi_core::stream::FileRecords;
use jaxwsi_core::verify::verify_file;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/tfrecords")
        .join(name)
}

#[test]
fn good_files_have_tensorflows_record_counts_and_sizes() {
    for (name, records, bytes) in [
        ("slide_a.tfrecords", 10, 21972),
        ("slide_b.tfrecords", 25, 52991),
        ("slide_c.tfrecords", 7, 15121),
        ("png_tiles.tfrecords", 5, 39681),
        ("empty.tfrecords", 0, 0),
    ] {
        let summary = verify_file(&fixture(name), true).unwrap();
        assert_eq!((summary.records, summary.bytes), (records, bytes), "{name}");
    }
}

#[test]
fn slide_a_first_record_matches_manifest() {
    let mut r = FileRecords::open(&fixture("slide_a.tfrecords"), true).unwrap();
    let rec = r.next_record().unwrap().unwrap();
    assert_eq!(
        (rec.offset, rec.framed_len, rec.data.len()),
        (0, 2283, 2267)
    );
    let ex = parse_example(rec.data).unwrap();
    let keys: Vec<&str> = ex.features.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, ["slide", "loc_y", "loc_x", "image_raw"]);
    assert_eq!(
        ex.get("slide").unwrap().as_single_bytes(),
        Some(&b"slide_a"[..])
    );
    assert_eq!(ex.get("loc_x").unwrap().as_single_i64(), Some(48));
    assert_eq!(
        ex.get("image_raw")
            .unwrap()
            .as_single_bytes()
            .unwrap()
            .len(),
        2187
    );
    let index = scan_file(&fixture("slide_a.tfrecords"), true).unwrap();
    assert_eq!(index.records[..2], [[0, 2283], [2283, 2265]]);
    assert_eq!(index.locations.unwrap()[..2], [[48, 48], [144, 48]]);
}

#[test]
fn corrupt_files_fail_where_tensorflow_failed() {
    for (name, readable, offset) in [
        ("corrupt/truncated.tfrecords", 3, 6655),
        ("corrupt/bad_length_crc.tfrecords", 2, 4548),
        ("corrupt/bad_data_crc.tfrecords", 2, 4548),
        ("corrupt/garbage.tfrecords", 0, 0),
    ] {
        let path = fixture(name);
        let mut r = FileRecords::open(&path, true).unwrap();
        let mut n = 0;
        let err = loop {
            match r.next_record() {
                Ok(Some(_)) => n += 1,
                Ok(None) => panic!("{name}: no error"),
                Err(e) => break e,
            }
        };
        assert_eq!((n, err.offset), (readable, offset), "{name}");
        assert_eq!(err.path.as_deref(), Some(path.as_path()));
        let expected_kind = match name {
            "corrupt/truncated.tfrecords" => matches!(err.kind, ErrorKind::Truncated { .. }),
            "corrupt/bad_data_crc.tfrecords" => matches!(err.kind, ErrorKind::BadDataCrc { .. }),
            _ => matches!(err.kind, ErrorKind::BadLengthCrc { .. }),
        };
        assert!(expected_kind, "{name}: {err}");
        assert_eq!(scan_file(&path, true).unwrap_err().offset, offset);
    }
}
