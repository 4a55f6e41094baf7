//! Masked CRC32C (Castagnoli), the checksum TFRecord framing uses.
//!
//! TensorFlow stores `mask(crc32c(bytes))` where `mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8`
//! (wrapping). The CRC is CRC-32C, not zlib's CRC-32; the `crc32c` crate uses SSE4.2 / ARMv8
//! instructions when the CPU has them.

/// The constant TensorFlow adds when masking a CRC.
pub const MASK_DELTA: u32 = 0xa282_ead8;

/// Plain (unmasked) CRC32C of `data`.
#[inline]
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// Masks a CRC the way TFRecord stores it: rotate right by 15, then add [`MASK_DELTA`].
#[inline]
pub fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// Inverse of [`mask`].
#[inline]
pub fn unmask(masked: u32) -> u32 {
    masked.wrapping_sub(MASK_DELTA).rotate_left(15)
}

/// The masked CRC32C of `data`, as stored in a TFRecord file.
#[inline]
pub fn masked_crc32c(data: &[u8]) -> u32 {
    mask(crc32c(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_published_check_values() {
        // The CRC catalogue's check value for CRC-32C and the RFC 3720 (iSCSI) test vectors.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let ascending: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&ascending), 0x46dd_794e);
    }

    #[test]
    fn mask_is_rotate_plus_delta_and_unmask_inverts_it() {
        assert_eq!(mask(0), MASK_DELTA);
        assert_eq!(mask(1), (1u32 << 17).wrapping_add(MASK_DELTA));
        for c in [0u32, 1, 0xdead_beef, u32::MAX, 0x8000_0000] {
            assert_eq!(unmask(mask(c)), c);
        }
    }

    #[test]
    fn masked_crc_matches_tensorflow_fixture_header() {
        // slide_a.tfrecords record 0: length 2267, stored masked length CRC 3549744371
        // (tests/fixtures/tfrecords/manifest.json, written by TensorFlow).
        assert_eq!(masked_crc32c(&2267u64.to_le_bytes()), 3_549_744_371);
    }
}
