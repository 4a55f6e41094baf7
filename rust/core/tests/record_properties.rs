//! Property tests of the record layer: encode → parse round trips, and arbitrary bytes never
//! panic (they frame/parse or give an error at a sane offset).

use std::io::Cursor;

use jaxwsi_core::example::{encode_example, parse_example, parse_selected, Feature};
use jaxwsi_core::framing::{encode_record, records, RecordReader};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum OwnedFeature {
    Bytes(Vec<Vec<u8>>),
    Float(Vec<f32>),
    Int64(Vec<i64>),
}

impl OwnedFeature {
    fn borrowed(&self) -> Feature<'_> {
        match self {
            OwnedFeature::Bytes(v) => Feature::Bytes(v.iter().map(Vec::as_slice).collect()),
            OwnedFeature::Float(v) => Feature::Float(v.clone()),
            OwnedFeature::Int64(v) => Feature::Int64(v.clone()),
        }
    }
}

fn feature() -> impl Strategy<Value = OwnedFeature> {
    prop_oneof![
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..4)
            .prop_map(OwnedFeature::Bytes),
        // Finite floats so that equality is exact (NaN is covered by the fuzz target).
        prop::collection::vec(-1e30f32..1e30f32, 0..6).prop_map(OwnedFeature::Float),
        prop::collection::vec(any::<i64>(), 0..6).prop_map(OwnedFeature::Int64),
    ]
}

fn features() -> impl Strategy<Value = Vec<(String, OwnedFeature)>> {
    prop::collection::btree_map("[a-z_]{0,8}", feature(), 0..6)
        .prop_map(|m| m.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encode_then_parse_round_trips(feats in features()) {
        let borrowed: Vec<(&str, Feature<'_>)> =
            feats.iter().map(|(k, f)| (k.as_str(), f.borrowed())).collect();
        let mut bytes = Vec::new();
        encode_example(&borrowed, &mut bytes);
        let parsed = parse_example(&bytes).unwrap();
        prop_assert_eq!(&parsed.features, &borrowed);
        let keys: Vec<&str> = borrowed.iter().map(|(k, _)| *k).collect();
        let selected = parse_selected(&bytes, &keys).unwrap();
        for ((_, want), got) in borrowed.iter().zip(selected) {
            prop_assert_eq!(Some(want.clone()), got);
        }
    }

    #[test]
    fn framed_payloads_round_trip_through_all_readers(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..6)
    ) {
        let mut file = Vec::new();
        for p in &payloads {
            encode_record(p, &mut file);
        }
        let from_buffer: Vec<Vec<u8>> =
            records(&file, true).map(|r| r.unwrap().data.to_vec()).collect();
        prop_assert_eq!(&from_buffer, &payloads);
        let mut reader = RecordReader::with_size(Cursor::new(&file), file.len() as u64, true);
        let mut streamed = Vec::new();
        while let Some(r) = reader.next_record().unwrap() {
            streamed.push(r.data.to_vec());
        }
        prop_assert_eq!(&streamed, &payloads);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_example(&data);
        let _ = parse_selected(&data, &["image_raw", "loc_x"]);
        let mut last_offset = 0;
        for r in records(&data, true) {
            match r {
                Ok(rec) => {
                    last_offset = rec.offset + rec.framed_len;
                    let _ = parse_example(rec.data);
                }
                Err(e) => prop_assert_eq!(e.offset, last_offset),
            }
        }
    }

    #[test]
    fn single_byte_corruption_is_always_detected(
        payload in prop::collection::vec(any::<u8>(), 1..200),
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut file = Vec::new();
        encode_record(&payload, &mut file);
        let i = position.index(file.len());
        file[i] ^= flip;
        // CRC32C detects every burst error up to 32 bits, so one changed byte never verifies.
        let outcome: Vec<_> = records(&file, true).collect();
        prop_assert!(outcome.iter().any(|r| r.is_err()), "byte {} ^ {} undetected", i, flip);
    }
}
