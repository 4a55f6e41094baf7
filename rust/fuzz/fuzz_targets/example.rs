//! Arbitrary bytes through the `tf.train.Example` parser: never a panic; whatever parses
//! re-encodes to bytes that parse to the same features, and the selected-keys path agrees with
//! the full parse.
#![no_main]

use jaxwsi_core::example::{encode_example, parse_example, parse_selected, Feature};
use libfuzzer_sys::fuzz_target;

/// Feature equality with floats compared bit for bit (NaN payloads included).
fn same(a: &Feature<'_>, b: &Feature<'_>) -> bool {
    match (a, b) {
        (Feature::Float(x), Feature::Float(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(example) = parse_example(data) else {
        return;
    };
    let mut encoded = Vec::new();
    encode_example(&example.features, &mut encoded);
    let again = parse_example(&encoded).expect("re-encoded Example must parse");
    assert_eq!(again.features.len(), example.features.len());
    for ((k1, f1), (k2, f2)) in example.features.iter().zip(&again.features) {
        assert_eq!(k1, k2);
        assert!(same(f1, f2), "{k1}: {f1:?} != {f2:?}");
    }
    let keys: Vec<&str> = example.features.iter().map(|(k, _)| *k).collect();
    let selected = parse_selected(data, &keys).expect("selected parse must agree");
    for ((_, f), s) in example.features.iter().zip(&selected) {
        assert!(same(f, s.as_ref().expect("key present")));
    }
});
