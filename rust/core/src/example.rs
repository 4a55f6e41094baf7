//! `tf.train.Example` decode (zero-copy for bytes) and encode.
//!
//! Wire layout: `Example { Features features = 1 }`, `Features { map<string, Feature> feature = 1 }`
//! (entries `{ key = 1, value = 2 }`), `Feature { oneof { BytesList bytes_list = 1;
//! FloatList float_list = 2; Int64List int64_list = 3 } }`, each list `repeated value = 1`.
//!
//! Decoding follows protobuf semantics: fields in any order; unknown fields (and known field
//! numbers with an unexpected wire type) are skipped by wire type, groups included; the last
//! duplicate map key wins; a message field that occurs twice is merged (lists of the same kind are
//! concatenated, a different `oneof` member replaces the earlier one); packed and unpacked
//! float/int64 lists are both accepted; negative int64 values are 10-byte varints. A `Feature`
//! with no kind set decodes as an empty [`Feature::Bytes`]. An empty record is a valid, empty
//! Example. Errors are [`ErrorKind::Protobuf`](crate::error::ErrorKind::Protobuf) at offset 0:
//! callers shift them to the record's offset with [`Error::shifted`].

use std::collections::HashMap;

use crate::error::{Error, Result};

/// One feature value list. Bytes values borrow the record buffer (no copies of image bytes).
#[derive(Debug, Clone, PartialEq)]
pub enum Feature<'a> {
    /// `bytes_list`: e.g. an encoded JPEG tile or a UTF-8 slide name.
    Bytes(Vec<&'a [u8]>),
    /// `float_list`.
    Float(Vec<f32>),
    /// `int64_list`: e.g. `loc_x`, `loc_y`, labels.
    Int64(Vec<i64>),
}

impl<'a> Feature<'a> {
    /// The `oneof` field number of this kind (1 bytes, 2 float, 3 int64).
    fn field_number(&self) -> u32 {
        match self {
            Feature::Bytes(_) => 1,
            Feature::Float(_) => 2,
            Feature::Int64(_) => 3,
        }
    }

    /// Number of values in the list.
    pub fn len(&self) -> usize {
        match self {
            Feature::Bytes(v) => v.len(),
            Feature::Float(v) => v.len(),
            Feature::Int64(v) => v.len(),
        }
    }

    /// True when the list holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The single bytes value, if this is a bytes list of exactly one value.
    pub fn as_single_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Feature::Bytes(v) if v.len() == 1 => Some(v[0]),
            _ => None,
        }
    }

    /// The single int64 value, if this is an int64 list of exactly one value.
    pub fn as_single_i64(&self) -> Option<i64> {
        match self {
            Feature::Int64(v) if v.len() == 1 => Some(v[0]),
            _ => None,
        }
    }
}

/// A decoded Example: `(key, feature)` pairs in first-seen order, keys unique (last value wins).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Example<'a> {
    /// The features; see [`Example::get`] for lookup by key.
    pub features: Vec<(&'a str, Feature<'a>)>,
}

impl<'a> Example<'a> {
    /// The feature stored under `key`.
    pub fn get(&self, key: &str) -> Option<&Feature<'a>> {
        self.features
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, f)| f)
    }
}

/// Builds an [`Example`] with last-key-wins inserts: a linear scan for the usual handful of
/// features, a hash index once there are many (so hostile records with millions of distinct
/// keys stay linear-time).
#[derive(Default)]
struct ExampleBuilder<'a> {
    example: Example<'a>,
    positions: Option<HashMap<&'a str, usize>>,
}

/// Feature count above which [`ExampleBuilder`] switches to a hash index.
const LINEAR_SCAN_LIMIT: usize = 32;

impl<'a> ExampleBuilder<'a> {
    fn insert(&mut self, key: &'a str, feature: Feature<'a>) {
        let features = &mut self.example.features;
        if self.positions.is_none() && features.len() >= LINEAR_SCAN_LIMIT {
            let index = features
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (*k, i))
                .collect();
            self.positions = Some(index);
        }
        let found = match &self.positions {
            Some(index) => index.get(key).copied(),
            None => features.iter().position(|(k, _)| *k == key),
        };
        match found {
            Some(i) => features[i].1 = feature,
            None => {
                if let Some(index) = &mut self.positions {
                    index.insert(key, features.len());
                }
                features.push((key, feature));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Wire-format reading.

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_START_GROUP: u8 = 3;
const WIRE_END_GROUP: u8 = 4;
const WIRE_FIXED32: u8 = 5;
/// Nesting limit for skipping (deprecated) groups, so hostile input cannot exhaust the stack.
const MAX_GROUP_DEPTH: u32 = 64;

/// Where in an Example a message sits, for error text; formatted only when an error occurs.
#[derive(Clone, Copy)]
enum Field<'k> {
    /// A fixed message name (`example`, `features`, `features.feature`).
    Named(&'static str),
    /// The `Feature` under a key.
    Feature(&'k str),
    /// A value list of the `Feature` under a key (`bytes_list`, `float_list`, `int64_list`).
    List(&'k str, &'static str),
}

impl std::fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Field::Named(name) => f.write_str(name),
            Field::Feature(key) => write!(f, "features.feature[{key}]"),
            Field::List(key, list) => write!(f, "features.feature[{key}].{list}"),
        }
    }
}

/// A cursor over one protobuf message; `field` names the message for error text.
struct Wire<'a, 'f> {
    buf: &'a [u8],
    pos: usize,
    field: Field<'f>,
}

impl<'a, 'f> Wire<'a, 'f> {
    fn new(buf: &'a [u8], field: Field<'f>) -> Self {
        Wire { buf, pos: 0, field }
    }

    fn err(&self, reason: impl Into<String>) -> Error {
        Error::protobuf(0, self.field.to_string(), reason)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.err("truncated varint"));
            };
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err(self.err("varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    /// Reads a tag; returns (field number, wire type).
    fn tag(&mut self) -> Result<(u32, u8)> {
        let tag = self.varint()?;
        let number = tag >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(self.err(format!("invalid field number {number}")));
        }
        Ok((number as u32, (tag & 7) as u8))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let left = self.buf.len() - self.pos;
        if n > left {
            return Err(self.err(format!("field needs {n} bytes, only {left} left")));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn length_delimited(&mut self) -> Result<&'a [u8]> {
        let len = self.varint()?;
        let n = usize::try_from(len).map_err(|_| self.err("length does not fit in memory"))?;
        self.take(n)
    }

    fn fixed32(&mut self) -> Result<[u8; 4]> {
        let b = self.take(4)?;
        Ok([b[0], b[1], b[2], b[3]])
    }

    /// Skips one field of wire type `wire` (the tag is already read).
    fn skip(&mut self, number: u32, wire: u8, depth: u32) -> Result<()> {
        match wire {
            WIRE_VARINT => self.varint().map(|_| ()),
            WIRE_FIXED64 => self.take(8).map(|_| ()),
            WIRE_LEN => self.length_delimited().map(|_| ()),
            WIRE_FIXED32 => self.take(4).map(|_| ()),
            WIRE_START_GROUP => {
                if depth >= MAX_GROUP_DEPTH {
                    return Err(self.err("groups nested too deeply"));
                }
                loop {
                    if self.at_end() {
                        return Err(self.err(format!("unterminated group {number}")));
                    }
                    let (n, w) = self.tag()?;
                    if w == WIRE_END_GROUP {
                        if n == number {
                            return Ok(());
                        }
                        return Err(self.err(format!("group {number} ended by group {n}")));
                    }
                    self.skip(n, w, depth + 1)?;
                }
            }
            WIRE_END_GROUP => Err(self.err(format!("unexpected end of group {number}"))),
            other => Err(self.err(format!("invalid wire type {other}"))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding.

fn parse_bytes_list<'a>(buf: &'a [u8], field: Field<'_>, out: &mut Vec<&'a [u8]>) -> Result<()> {
    let mut w = Wire::new(buf, field);
    while !w.at_end() {
        let (number, wire) = w.tag()?;
        if number == 1 && wire == WIRE_LEN {
            out.push(w.length_delimited()?);
        } else {
            w.skip(number, wire, 0)?;
        }
    }
    Ok(())
}

fn parse_float_list(buf: &[u8], field: Field<'_>, out: &mut Vec<f32>) -> Result<()> {
    let mut w = Wire::new(buf, field);
    while !w.at_end() {
        let (number, wire) = w.tag()?;
        match (number, wire) {
            (1, WIRE_LEN) => {
                let packed = w.length_delimited()?;
                if packed.len() % 4 != 0 {
                    return Err(w.err(format!(
                        "packed floats of {} bytes (not a multiple of 4)",
                        packed.len()
                    )));
                }
                out.extend(
                    packed
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
            }
            (1, WIRE_FIXED32) => out.push(f32::from_le_bytes(w.fixed32()?)),
            _ => w.skip(number, wire, 0)?,
        }
    }
    Ok(())
}

fn parse_int64_list(buf: &[u8], field: Field<'_>, out: &mut Vec<i64>) -> Result<()> {
    let mut w = Wire::new(buf, field);
    while !w.at_end() {
        let (number, wire) = w.tag()?;
        match (number, wire) {
            (1, WIRE_LEN) => {
                let packed = w.length_delimited()?;
                let mut p = Wire::new(packed, field);
                while !p.at_end() {
                    out.push(p.varint()? as i64);
                }
            }
            (1, WIRE_VARINT) => out.push(w.varint()? as i64),
            _ => w.skip(number, wire, 0)?,
        }
    }
    Ok(())
}

/// Merges one serialized `Feature` message into `state` (protobuf merge semantics).
fn merge_feature<'a>(buf: &'a [u8], key: &str, state: &mut Option<Feature<'a>>) -> Result<()> {
    let mut w = Wire::new(buf, Field::Feature(key));
    while !w.at_end() {
        let (number, wire) = w.tag()?;
        if wire != WIRE_LEN || !(1..=3).contains(&number) {
            w.skip(number, wire, 0)?;
            continue;
        }
        let list = w.length_delimited()?;
        if state.as_ref().map(Feature::field_number) != Some(number) {
            *state = Some(match number {
                1 => Feature::Bytes(Vec::new()),
                2 => Feature::Float(Vec::new()),
                _ => Feature::Int64(Vec::new()),
            });
        }
        match state {
            Some(Feature::Bytes(v)) => parse_bytes_list(list, Field::List(key, "bytes_list"), v)?,
            Some(Feature::Float(v)) => parse_float_list(list, Field::List(key, "float_list"), v)?,
            Some(Feature::Int64(v)) => parse_int64_list(list, Field::List(key, "int64_list"), v)?,
            None => {}
        }
    }
    Ok(())
}

/// One map entry: its key and the serialized `Feature` messages under it (usually exactly one,
/// kept without allocating; further occurrences, merged in order, go to `more`).
struct Entry<'a> {
    key: &'a str,
    value: Option<&'a [u8]>,
    more: Vec<&'a [u8]>,
}

fn parse_entry(buf: &[u8]) -> Result<Entry<'_>> {
    let mut w = Wire::new(buf, Field::Named("features.feature"));
    let mut key: &[u8] = b"";
    let mut value = None;
    let mut more = Vec::new();
    while !w.at_end() {
        let (number, wire) = w.tag()?;
        match (number, wire) {
            (1, WIRE_LEN) => key = w.length_delimited()?,
            (2, WIRE_LEN) => {
                let v = w.length_delimited()?;
                if value.is_none() {
                    value = Some(v);
                } else {
                    more.push(v);
                }
            }
            _ => w.skip(number, wire, 0)?,
        }
    }
    let key = std::str::from_utf8(key).map_err(|_| {
        Error::protobuf(
            0,
            "features.feature",
            format!("key is not UTF-8: {:?}", String::from_utf8_lossy(key)),
        )
    })?;
    Ok(Entry { key, value, more })
}

/// Calls `on_entry` for every map entry of every `features` field of the Example in `data`.
fn for_each_entry<'a>(
    data: &'a [u8],
    mut on_entry: impl FnMut(Entry<'a>) -> Result<()>,
) -> Result<()> {
    let mut example = Wire::new(data, Field::Named("example"));
    while !example.at_end() {
        let (number, wire) = example.tag()?;
        if number != 1 || wire != WIRE_LEN {
            example.skip(number, wire, 0)?;
            continue;
        }
        let mut features = Wire::new(example.length_delimited()?, Field::Named("features"));
        while !features.at_end() {
            let (number, wire) = features.tag()?;
            if number == 1 && wire == WIRE_LEN {
                on_entry(parse_entry(features.length_delimited()?)?)?;
            } else {
                features.skip(number, wire, 0)?;
            }
        }
    }
    Ok(())
}

fn decode_entry<'a>(entry: &Entry<'a>) -> Result<Feature<'a>> {
    let mut state = None;
    for value in entry.value.iter().chain(&entry.more) {
        merge_feature(value, entry.key, &mut state)?;
    }
    Ok(state.unwrap_or(Feature::Bytes(Vec::new())))
}

/// Decodes a serialized `tf.train.Example`; bytes values borrow `data`.
pub fn parse_example(data: &[u8]) -> Result<Example<'_>> {
    let mut builder = ExampleBuilder::default();
    for_each_entry(data, |entry| {
        let feature = decode_entry(&entry)?;
        builder.insert(entry.key, feature);
        Ok(())
    })?;
    Ok(builder.example)
}

/// Decodes only the features named in `keys` (others are framed but not decoded).
///
/// Returns one slot per key, `None` where the Example lacks that key. This is the cheap path for
/// loaders that need e.g. `image_raw`, `slide`, `loc_x`, `loc_y`.
pub fn parse_selected<'a>(data: &'a [u8], keys: &[&str]) -> Result<Vec<Option<Feature<'a>>>> {
    let mut out: Vec<Option<Feature<'a>>> = vec![None; keys.len()];
    for_each_entry(data, |entry| {
        if let Some(i) = keys.iter().position(|k| *k == entry.key) {
            out[i] = Some(decode_entry(&entry)?);
        }
        Ok(())
    })?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Encoding.

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Length of a length-delimited field (tag byte + length varint + payload).
fn len_field(payload: usize) -> usize {
    1 + varint_len(payload as u64) + payload
}

fn packed_payload_len(feature: &Feature<'_>) -> usize {
    match feature {
        Feature::Bytes(_) => 0,
        Feature::Float(v) => 4 * v.len(),
        Feature::Int64(v) => v.iter().map(|x| varint_len(*x as u64)).sum(),
    }
}

/// Length of the list message (`BytesList`/`FloatList`/`Int64List`).
fn list_len(feature: &Feature<'_>) -> usize {
    match feature {
        Feature::Bytes(v) => v.iter().map(|b| len_field(b.len())).sum(),
        _ if feature.is_empty() => 0,
        _ => len_field(packed_payload_len(feature)),
    }
}

fn feature_len(feature: &Feature<'_>) -> usize {
    len_field(list_len(feature))
}

fn entry_len(key: &str, feature: &Feature<'_>) -> usize {
    len_field(key.len()) + len_field(feature_len(feature))
}

fn put_feature(out: &mut Vec<u8>, feature: &Feature<'_>) {
    out.push((feature.field_number() << 3) as u8 | WIRE_LEN);
    put_varint(out, list_len(feature) as u64);
    match feature {
        Feature::Bytes(values) => {
            for b in values {
                out.push(0x0a);
                put_varint(out, b.len() as u64);
                out.extend_from_slice(b);
            }
        }
        _ if feature.is_empty() => {}
        Feature::Float(values) => {
            out.push(0x0a);
            put_varint(out, packed_payload_len(feature) as u64);
            for x in values {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        Feature::Int64(values) => {
            out.push(0x0a);
            put_varint(out, packed_payload_len(feature) as u64);
            for x in values {
                put_varint(out, *x as u64);
            }
        }
    }
}

/// Appends the serialized `tf.train.Example` of `features` to `out`, in the given order, with
/// packed float/int64 lists (as TensorFlow writes them). Keys should be unique.
pub fn encode_example(features: &[(&str, Feature<'_>)], out: &mut Vec<u8>) {
    let features_len: usize = features
        .iter()
        .map(|(k, f)| len_field(entry_len(k, f)))
        .sum();
    out.reserve(len_field(features_len));
    out.push(0x0a);
    put_varint(out, features_len as u64);
    for (key, feature) in features {
        out.push(0x0a);
        put_varint(out, entry_len(key, feature) as u64);
        out.push(0x0a);
        put_varint(out, key.len() as u64);
        out.extend_from_slice(key.as_bytes());
        out.push(0x12);
        put_varint(out, feature_len(feature) as u64);
        put_feature(out, feature);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(features: &[(&str, Feature<'_>)]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_example(features, &mut out);
        out
    }

    #[test]
    fn encode_matches_protobuf_bytes_of_tensorflow() {
        // tf.train.Example(features=tf.train.Features(feature={'a': int64_list [1]}))
        // .SerializeToString() == b'\n\x0c\n\n\n\x01a\x12\x05\x1a\x03\n\x01\x01'
        let bytes = encoded(&[("a", Feature::Int64(vec![1]))]);
        assert_eq!(bytes, b"\n\x0c\n\n\n\x01a\x12\x05\x1a\x03\n\x01\x01");
        assert_eq!(encoded(&[]), b"\n\x00");
    }

    #[test]
    fn round_trip_all_kinds_and_negative_ints() {
        let img = vec![0xffu8, 0xd8, 0, 1, 2];
        let features = vec![
            ("image_raw", Feature::Bytes(vec![&img])),
            ("multi", Feature::Bytes(vec![b"x", b"", b"yz"])),
            ("f", Feature::Float(vec![1.5, -0.0, f32::MAX])),
            ("loc_x", Feature::Int64(vec![i64::MIN, -1, 0, 1, i64::MAX])),
            ("empty_i", Feature::Int64(vec![])),
            ("empty_f", Feature::Float(vec![])),
        ];
        let bytes = encoded(&features);
        let ex = parse_example(&bytes).unwrap();
        assert_eq!(ex.features, features);
        let sel = parse_selected(&bytes, &["loc_x", "nope", "image_raw"]).unwrap();
        assert_eq!(sel[0], Some(features[3].1.clone()));
        assert_eq!(sel[1], None);
        assert_eq!(sel[2].as_ref().unwrap().as_single_bytes(), Some(&img[..]));
    }

    #[test]
    fn empty_record_is_an_empty_example() {
        assert!(parse_example(b"").unwrap().features.is_empty());
    }

    #[test]
    fn unpacked_lists_unknown_fields_any_order_and_last_key_wins() {
        let mut b = Vec::new();
        // Example: unknown varint field 7, then features.
        b.extend_from_slice(&[0x38, 0x05]);
        let mut features = Vec::new();
        // entry 1: value before key; unpacked int64 [3, -2].
        let mut int_list = vec![0x08, 0x03, 0x08];
        int_list.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        let mut feature = vec![0x1a, int_list.len() as u8];
        feature.extend_from_slice(&int_list);
        let mut entry = vec![0x12, feature.len() as u8];
        entry.extend_from_slice(&feature);
        entry.extend_from_slice(&[0x0a, 0x01, b'k']);
        features.push(0x0a);
        features.push(entry.len() as u8);
        features.extend_from_slice(&entry);
        // entry 2: same key again, unpacked floats [2.0] and a fixed64 unknown field in the list.
        let mut float_list = vec![0x0d];
        float_list.extend_from_slice(&2.0f32.to_le_bytes());
        float_list.extend_from_slice(&[0x11, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut feature2 = vec![0x12, float_list.len() as u8];
        feature2.extend_from_slice(&float_list);
        let mut entry2 = vec![0x0a, 0x01, b'k', 0x12, feature2.len() as u8];
        entry2.extend_from_slice(&feature2);
        features.push(0x0a);
        features.push(entry2.len() as u8);
        features.extend_from_slice(&entry2);
        // A group field 9 { varint } inside Features is skipped.
        features.extend_from_slice(&[0x4b, 0x08, 0x01, 0x4c]);
        b.push(0x0a);
        b.push(features.len() as u8);
        b.extend_from_slice(&features);
        let ex = parse_example(&b).unwrap();
        assert_eq!(ex.features, vec![("k", Feature::Float(vec![2.0]))]);

        // Without the second entry the first one (unpacked, value-before-key) decodes.
        let mut only_first = vec![0x0a, (entry.len() + 2) as u8, 0x0a, entry.len() as u8];
        only_first.extend_from_slice(&entry);
        let ex = parse_example(&only_first).unwrap();
        assert_eq!(ex.get("k"), Some(&Feature::Int64(vec![3, -2])));
    }

    #[test]
    fn many_keys_keep_order_and_last_duplicate_wins() {
        let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
        let mut feats: Vec<(&str, Feature<'_>)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), Feature::Int64(vec![i as i64])))
            .collect();
        feats.push(("k5", Feature::Int64(vec![-5])));
        feats.push(("k150", Feature::Float(vec![1.5])));
        let bytes = encoded(&feats);
        let ex = parse_example(&bytes).unwrap();
        assert_eq!(ex.features.len(), 200);
        assert_eq!(ex.features[5], ("k5", Feature::Int64(vec![-5])));
        assert_eq!(ex.features[150], ("k150", Feature::Float(vec![1.5])));
        assert_eq!(ex.features[199], ("k199", Feature::Int64(vec![199])));
    }

    #[test]
    fn repeated_feature_message_merges_same_kind() {
        // Feature with bytes_list twice: values are concatenated.
        let feature = [0x0a, 0x03, 0x0a, 0x01, b'a', 0x0a, 0x03, 0x0a, 0x01, b'b'];
        let mut entry = vec![0x0a, 0x01, b'k', 0x12, feature.len() as u8];
        entry.extend_from_slice(&feature);
        let mut b = vec![0x0a, (entry.len() + 2) as u8, 0x0a, entry.len() as u8];
        b.extend_from_slice(&entry);
        let ex = parse_example(&b).unwrap();
        assert_eq!(ex.get("k"), Some(&Feature::Bytes(vec![b"a", b"b"])));
    }

    #[test]
    fn malformed_inputs_are_errors_naming_the_field() {
        let good = encoded(&[("loc_x", Feature::Float(vec![1.0, 2.0]))]);
        for cut in 1..good.len() {
            assert!(parse_example(&good[..cut]).is_err(), "cut {cut}");
        }
        // Packed floats whose length is not a multiple of 4.
        let mut bad = good.clone();
        let n = bad.len();
        // layout ends with: 0x0a 0x08 <8 float bytes>; shrink the packed length to 7 and drop one
        // byte from every enclosing length.
        bad[n - 9] = 7;
        bad.truncate(n - 1);
        for i in [1usize, 3, 12, 14] {
            bad[i] -= 1;
        }
        let err = parse_example(&bad).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("features.feature[loc_x].float_list"),
            "{text}"
        );
        assert!(text.contains("multiple of 4"), "{text}");
        // Over-long varint, field number 0, invalid wire type, stray end-group.
        let mut long_varint = vec![0x08];
        long_varint.extend_from_slice(&[0xff; 10]);
        long_varint.push(0x01);
        assert!(parse_example(&long_varint).is_err());
        let mut overflow = vec![0x08];
        overflow.extend_from_slice(&[0xff; 9]);
        overflow.push(0x02);
        assert!(parse_example(&overflow).is_err());
        assert!(parse_example(&[0x00, 0x00]).is_err());
        assert!(parse_example(&[0x0e, 0x00]).is_err());
        assert!(parse_example(&[0x0c]).is_err());
        // Non-UTF-8 key.
        let bad_key = [0x0a, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0xff];
        assert!(parse_example(&bad_key)
            .unwrap_err()
            .to_string()
            .contains("UTF-8"));
    }

    #[test]
    fn deep_groups_are_rejected_not_overflowing_the_stack() {
        let mut b = vec![0x0b; 10_000];
        b.extend(vec![0x0c; 10_000]);
        assert!(parse_example(&b).is_err());
    }
}
