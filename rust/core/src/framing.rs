//! TFRecord framing: `u64 len LE | u32 masked_crc32c(len) | data | u32 masked_crc32c(data)`.
//!
//! Three ways in:
//! - [`record_at`] / [`records`]: verify records in a byte buffer (zero-copy slices);
//! - [`RecordReader`]: stream records from any `Read` (a file, a GZIP decoder) with one reused
//!   buffer, reading in chunks, so a corrupt length field never causes an allocation larger than
//!   the data that is really there;
//! - [`RecordWriter`] / [`encode_record`]: write records TensorFlow reads.
//!
//! Error offsets are always the offset of the record's length header (see [`crate::error`]).

use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::crc::masked_crc32c;
use crate::error::{Error, ErrorKind, Result};

/// Bytes before the data: 8 length bytes + 4 bytes of masked length CRC.
pub const HEADER_LEN: usize = 12;
/// Bytes after the data: 4 bytes of masked data CRC.
pub const FOOTER_LEN: usize = 4;
/// Largest record a stream of unknown size may hold (2 GiB); bigger length fields are rejected
/// as [`ErrorKind::LengthTooLarge`] before anything is read (a guard against GZIP bombs).
pub const MAX_STREAM_RECORD_LEN: u64 = 1 << 31;
/// Chunk size for reading record data of streams, so allocation follows the bytes really read.
const STREAM_CHUNK: usize = 1 << 20;

/// The framed length of a record holding `data_len` bytes: `8 + 4 + data_len + 4`.
#[inline]
pub const fn framed_len(data_len: u64) -> u64 {
    data_len.saturating_add((HEADER_LEN + FOOTER_LEN) as u64)
}

/// One record inside a buffer or just read by a [`RecordReader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Offset of the record's length header (in the buffer, or in the file for readers).
    pub offset: u64,
    /// Whole framed length, `8 + 4 + data.len() + 4`.
    pub framed_len: u64,
    /// The record payload (normally a serialized `tf.train.Example`).
    pub data: &'a [u8],
}

fn read_u32(bytes: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(b)
}

/// Decodes a 12-byte header at `offset`; checks the length CRC when `verify`. Returns the data
/// length.
pub fn parse_header(header: &[u8; HEADER_LEN], offset: u64, verify: bool) -> Result<u64> {
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&header[..8]);
    if verify {
        let stored = read_u32(&header[8..]);
        let computed = masked_crc32c(&len_bytes);
        if stored != computed {
            return Err(Error::new(
                ErrorKind::BadLengthCrc { stored, computed },
                offset,
            ));
        }
    }
    Ok(u64::from_le_bytes(len_bytes))
}

/// True when `bytes` starts with a 12-byte TFRecord header whose length CRC is valid.
pub fn starts_with_valid_header(bytes: &[u8]) -> bool {
    match bytes.get(..HEADER_LEN) {
        Some(h) => {
            let mut header = [0u8; HEADER_LEN];
            header.copy_from_slice(h);
            parse_header(&header, 0, true).is_ok()
        }
        None => false,
    }
}

fn check_data_crc(data: &[u8], footer: &[u8], offset: u64) -> Result<()> {
    let stored = read_u32(footer);
    let computed = masked_crc32c(data);
    if stored == computed {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::BadDataCrc { stored, computed },
            offset,
        ))
    }
}

/// Verifies (when `verify`) and returns the record whose header is at `offset` of `buf`.
///
/// The length is checked against the bytes left in `buf` before any slicing, so a length field of
/// 2^40 is a [`ErrorKind::Truncated`] error, not an allocation.
pub fn record_at(buf: &[u8], offset: usize, verify: bool) -> Result<Record<'_>> {
    let at = offset as u64;
    let available = buf.len().saturating_sub(offset) as u64;
    let header_bytes = buf
        .get(offset..)
        .and_then(|rest| rest.get(..HEADER_LEN))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Truncated {
                    needed: HEADER_LEN as u64,
                    available,
                },
                at,
            )
        })?;
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(header_bytes);
    let data_len = parse_header(&header, at, verify)?;
    let framed = framed_len(data_len);
    if framed > available {
        return Err(Error::new(
            ErrorKind::Truncated {
                needed: framed,
                available,
            },
            at,
        ));
    }
    // framed <= available <= usize::MAX, so these conversions and slices are in bounds.
    let start = offset + HEADER_LEN;
    let end = start + data_len as usize;
    let data = &buf[start..end];
    if verify {
        check_data_crc(data, &buf[end..end + FOOTER_LEN], at)?;
    }
    Ok(Record {
        offset: at,
        framed_len: framed,
        data,
    })
}

/// Iterator over every record of a buffer; stops after the first error.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    buf: &'a [u8],
    pos: usize,
    verify: bool,
    failed: bool,
}

/// All records of `buf`, in order. Yields an error (then stops) at the first bad record,
/// including trailing bytes too short to be a record.
pub fn records(buf: &[u8], verify: bool) -> Records<'_> {
    Records {
        buf,
        pos: 0,
        verify,
        failed: false,
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        match record_at(self.buf, self.pos, self.verify) {
            Ok(rec) => {
                // framed_len <= bytes left, so it fits in usize.
                self.pos += rec.framed_len as usize;
                Some(Ok(rec))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Reads into `buf` until it is full or the reader is at its end; returns the bytes read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Streams records from a reader with one reused buffer.
///
/// When the total size is known ([`RecordReader::with_size`]) each length field is checked
/// against the bytes left before reading; otherwise (streams) data is read in 1 MiB chunks and
/// capped at [`MAX_STREAM_RECORD_LEN`]. Either way memory follows the bytes that exist.
#[derive(Debug)]
pub struct RecordReader<R> {
    inner: R,
    pos: u64,
    size: Option<u64>,
    verify: bool,
    buf: Vec<u8>,
    data_len: usize,
    last_offset: Option<u64>,
    failed: bool,
}

impl<R: Read> RecordReader<R> {
    /// A reader over a stream of unknown length (e.g. a GZIP decoder).
    pub fn new(inner: R, verify: bool) -> Self {
        RecordReader {
            inner,
            pos: 0,
            size: None,
            verify,
            buf: Vec::new(),
            data_len: 0,
            last_offset: None,
            failed: false,
        }
    }

    /// A reader over `size` bytes (a file); length fields are checked against what is left.
    pub fn with_size(inner: R, size: u64, verify: bool) -> Self {
        let mut reader = RecordReader::new(inner, verify);
        reader.size = Some(size);
        reader
    }

    /// Offset of the next record's header (bytes consumed so far).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Reads the next record: `Ok(None)` at a clean end, an error (and then `Ok(None)`) at the
    /// first bad record. The returned data borrows the reader's buffer until the next call.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>> {
        self.last_offset = None;
        if self.failed {
            return Ok(None);
        }
        match self.advance() {
            Ok(Some((offset, framed))) => Ok(Some(Record {
                offset,
                framed_len: framed,
                data: &self.buf[..self.data_len],
            })),
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// The record most recently returned by [`RecordReader::next_record`] (its data stays in the
    /// reader's buffer until the next read), or `None` before the first or after an error.
    pub fn last_record(&self) -> Option<Record<'_>> {
        let offset = self.last_offset?;
        Some(Record {
            offset,
            framed_len: framed_len(self.data_len as u64),
            data: &self.buf[..self.data_len],
        })
    }

    fn truncated(&self, at: u64, needed: u64, available: u64) -> Error {
        Error::new(ErrorKind::Truncated { needed, available }, at)
    }

    /// Reads one record into `self.buf`; returns (offset, framed length).
    fn advance(&mut self) -> Result<Option<(u64, u64)>> {
        let at = self.pos;
        let mut header = [0u8; HEADER_LEN];
        let got = read_full(&mut self.inner, &mut header).map_err(|e| Error::io(&e, None, at))?;
        if got == 0 {
            return Ok(None);
        }
        if got < HEADER_LEN {
            return Err(self.truncated(at, HEADER_LEN as u64, got as u64));
        }
        let data_len = parse_header(&header, at, self.verify)?;
        let framed = framed_len(data_len);
        let known_left = self.size.map(|s| s.saturating_sub(at));
        match known_left {
            Some(left) if framed > left => return Err(self.truncated(at, framed, left)),
            None if data_len > MAX_STREAM_RECORD_LEN => {
                return Err(Error::new(
                    ErrorKind::LengthTooLarge {
                        length: data_len,
                        limit: MAX_STREAM_RECORD_LEN,
                    },
                    at,
                ))
            }
            _ => {}
        }
        // data_len <= file size or <= 2 GiB here, so it fits in usize on 64-bit targets.
        let data_len = usize::try_from(data_len).map_err(|_| {
            Error::new(
                ErrorKind::LengthTooLarge {
                    length: data_len,
                    limit: usize::MAX as u64,
                },
                at,
            )
        })?;
        let total = data_len + FOOTER_LEN;
        // A file's size bounds the length already; a stream grows the buffer chunk by chunk.
        let chunk = if self.size.is_some() {
            total
        } else {
            STREAM_CHUNK
        };
        let mut filled = 0;
        while filled < total {
            let want = (total - filled).min(chunk);
            if self.buf.len() < filled + want {
                self.buf.resize(filled + want, 0);
            }
            let n = read_full(&mut self.inner, &mut self.buf[filled..filled + want])
                .map_err(|e| Error::io(&e, None, at))?;
            filled += n;
            if n < want {
                let available = (HEADER_LEN + filled) as u64;
                return Err(self.truncated(at, framed, available));
            }
        }
        if self.verify {
            check_data_crc(&self.buf[..data_len], &self.buf[data_len..total], at)?;
        }
        self.data_len = data_len;
        self.last_offset = Some(at);
        self.pos = at + framed;
        Ok(Some((at, framed)))
    }
}

impl<R: Read + Seek> RecordReader<R> {
    /// Moves to `offset` (a record header, e.g. from an index) and clears any earlier error.
    pub fn seek_to(&mut self, offset: u64) -> Result<()> {
        self.inner
            .seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io(&e, None, offset))?;
        self.pos = offset;
        self.failed = false;
        Ok(())
    }
}

/// Appends the framed form of `data` to `out`.
pub fn encode_record(data: &[u8], out: &mut Vec<u8>) {
    let len = (data.len() as u64).to_le_bytes();
    out.reserve(data.len() + HEADER_LEN + FOOTER_LEN);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
}

/// Writes framed records to any `Write`, tracking offsets.
#[derive(Debug)]
pub struct RecordWriter<W: Write> {
    inner: W,
    written: u64,
}

impl<W: Write> RecordWriter<W> {
    /// A writer starting at offset 0 of `inner`.
    pub fn new(inner: W) -> Self {
        RecordWriter { inner, written: 0 }
    }

    /// Writes one record; returns its (offset, framed length).
    pub fn write_record(&mut self, data: &[u8]) -> io::Result<(u64, u64)> {
        let len = (data.len() as u64).to_le_bytes();
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(&len);
        header[8..].copy_from_slice(&masked_crc32c(&len).to_le_bytes());
        self.inner.write_all(&header)?;
        self.inner.write_all(data)?;
        self.inner.write_all(&masked_crc32c(data).to_le_bytes())?;
        let offset = self.written;
        let framed = framed_len(data.len() as u64);
        self.written += framed;
        Ok((offset, framed))
    }

    /// Bytes written so far (the offset of the next record).
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    /// The underlying writer (not flushed).
    pub fn into_inner(self) -> W {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode_record(p, &mut out);
        }
        out
    }

    #[test]
    fn round_trip_buffer_and_reader() {
        let buf = framed(&[b"abc", b"", b"hello world"]);
        let recs: Vec<_> = records(&buf, true).collect::<Result<_>>().unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].data, b"abc");
        assert_eq!(recs[1].data, b"");
        assert_eq!(recs[1].offset, 19);
        assert_eq!(recs[2].offset, 19 + 16);
        assert_eq!(recs[2].framed_len, 27);
        let mut rd = RecordReader::with_size(Cursor::new(&buf), buf.len() as u64, true);
        let mut seen = Vec::new();
        while let Some(r) = rd.next_record().unwrap() {
            seen.push((r.offset, r.data.to_vec()));
        }
        assert_eq!(
            seen,
            vec![
                (0, b"abc".to_vec()),
                (19, vec![]),
                (35, b"hello world".to_vec())
            ]
        );
    }

    #[test]
    fn writer_matches_encode_record() {
        let mut w = RecordWriter::new(Vec::new());
        assert_eq!(w.write_record(b"xy").unwrap(), (0, 18));
        assert_eq!(w.write_record(b"z").unwrap(), (18, 17));
        assert_eq!(w.into_inner(), framed(&[b"xy", b"z"]));
    }

    #[test]
    fn bad_crcs_and_truncation_name_the_record_offset() {
        let good = framed(&[b"first", b"second"]);
        let second = 21u64;
        let mut bad_len = good.clone();
        bad_len[second as usize + 8] ^= 0xff;
        let errs: Vec<_> = records(&bad_len, true).collect();
        assert_eq!(errs.len(), 2);
        let e = errs[1].clone().unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadLengthCrc { .. }));
        assert_eq!(e.offset, second);

        let mut bad_data = good.clone();
        bad_data[second as usize + 13] ^= 0x01;
        let e = records(&bad_data, true).nth(1).unwrap().unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadDataCrc { .. }));
        assert_eq!(e.offset, second);
        // Without verification the corrupted payload is returned as is.
        assert_eq!(records(&bad_data, false).count(), 2);

        for cut in 1..good.len() - 21 {
            let e = records(&good[..21 + cut], true)
                .nth(1)
                .unwrap()
                .unwrap_err();
            assert!(matches!(e.kind, ErrorKind::Truncated { .. }), "cut {cut}");
            assert_eq!(e.offset, second);
            let mut rd =
                RecordReader::with_size(Cursor::new(&good[..21 + cut]), 21 + cut as u64, true);
            rd.next_record().unwrap();
            assert_eq!(rd.next_record().unwrap_err().offset, second);
            assert!(rd.next_record().unwrap().is_none());
            let mut stream = RecordReader::new(Cursor::new(&good[..21 + cut]), true);
            stream.next_record().unwrap();
            assert_eq!(stream.next_record().unwrap_err().offset, second);
        }
    }

    #[test]
    fn huge_length_with_valid_crc_is_rejected_without_allocating() {
        let len = (1u64 << 40).to_le_bytes();
        let mut buf = len.to_vec();
        buf.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        buf.extend_from_slice(&[0u8; 100]);
        let e = record_at(&buf, 0, true).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Truncated { needed, .. } if needed == (1 << 40) + 16));
        let mut rd = RecordReader::with_size(Cursor::new(&buf), buf.len() as u64, true);
        assert!(matches!(
            rd.next_record().unwrap_err().kind,
            ErrorKind::Truncated { .. }
        ));
        let mut stream = RecordReader::new(Cursor::new(&buf), true);
        assert!(matches!(
            stream.next_record().unwrap_err().kind,
            ErrorKind::LengthTooLarge { .. }
        ));
        assert!(stream.buf.capacity() < 1 << 20);
    }

    #[test]
    fn max_length_field_does_not_overflow() {
        let len = u64::MAX.to_le_bytes();
        let mut buf = len.to_vec();
        buf.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        assert!(record_at(&buf, 0, true).is_err());
        assert!(record_at(&buf, usize::MAX, true).is_err());
        let mut rd = RecordReader::with_size(Cursor::new(&buf), 12, true);
        assert!(rd.next_record().is_err());
    }

    #[test]
    fn valid_header_detection() {
        let buf = framed(&[b"x"]);
        assert!(starts_with_valid_header(&buf));
        assert!(!starts_with_valid_header(&[
            0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0
        ]));
        assert!(!starts_with_valid_header(&buf[..11]));
    }

    #[test]
    fn seek_to_reads_a_record_from_its_offset() {
        let buf = framed(&[b"aa", b"bbb"]);
        let mut rd = RecordReader::with_size(Cursor::new(&buf), buf.len() as u64, true);
        rd.seek_to(18).unwrap();
        assert_eq!(rd.next_record().unwrap().unwrap().data, b"bbb");
        let last = rd.last_record().unwrap();
        assert_eq!(
            (last.offset, last.framed_len, last.data),
            (18, 19, &b"bbb"[..])
        );
        assert!(rd.next_record().unwrap().is_none());
        assert!(rd.last_record().is_none());
    }
}
