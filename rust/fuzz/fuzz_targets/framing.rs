//! Arbitrary bytes through every framing path: the buffer iterator, the sized reader and the
//! stream reader must agree record for record and fail at the same offset; records that frame
//! cleanly are also run through the Example parser. Nothing may panic or over-allocate.
#![no_main]

use std::io::Cursor;

use jaxwsi_core::example::parse_example;
use jaxwsi_core::framing::{records, RecordReader};
use libfuzzer_sys::fuzz_target;

type Outcome = (Vec<(u64, u64, Vec<u8>)>, Option<u64>);

fn from_reader<R: std::io::Read>(mut reader: RecordReader<R>) -> Outcome {
    let mut out = Vec::new();
    loop {
        match reader.next_record() {
            Ok(Some(r)) => out.push((r.offset, r.framed_len, r.data.to_vec())),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e.offset)),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for verify in [true, false] {
        let mut from_buffer = Vec::new();
        let mut error = None;
        for rec in records(data, verify) {
            match rec {
                Ok(r) => {
                    let _ = parse_example(r.data);
                    from_buffer.push((r.offset, r.framed_len, r.data.to_vec()));
                }
                Err(e) => error = Some(e.offset),
            }
        }
        let expected = (from_buffer, error);
        let sized = RecordReader::with_size(Cursor::new(data), data.len() as u64, verify);
        assert_eq!(from_reader(sized), expected);
        let (stream_records, stream_error) =
            from_reader(RecordReader::new(Cursor::new(data), verify));
        assert_eq!(stream_records, expected.0);
        assert_eq!(stream_error, expected.1);
    }
});
