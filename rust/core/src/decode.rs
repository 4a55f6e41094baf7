//! Tile decode: JPEG (libjpeg-turbo 3 through `turbojpeg`, built from source) and PNG
//! (zune-png) to RGB uint8, straight into a caller's slot of a batch buffer. The format is
//! sniffed from the magic bytes, as Slideflow does.
//!
//! libjpeg-turbo was measured at about 1.3× zune-jpeg's tiles per CPU-second on 299 px q95
//! tiles (see BENCHMARKS.md, "Loader"); its default ISLOW DCT with fancy upsampling gives the
//! same pixels as Pillow and as TensorFlow's `dct_method="INTEGER_ACCURATE"`.
use std::cell::RefCell;
use std::fmt;

use turbojpeg::{Decompressor, Image, PixelFormat};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_png::PngDecoder;

thread_local! {
    /// One TurboJPEG decompressor per thread (creating one allocates).
    static JPEG: RefCell<Option<Decompressor>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's decompressor.
fn with_jpeg<T>(
    f: impl FnOnce(&mut Decompressor) -> turbojpeg::Result<T>,
) -> Result<T, DecodeError> {
    let jpeg_error = |e: turbojpeg::Error| DecodeError(format!("JPEG: {e}"));
    JPEG.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(Decompressor::new().map_err(jpeg_error)?);
        }
        f(slot.as_mut().expect("set above")).map_err(jpeg_error)
    })
}

/// Encoded image formats the decoder understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
}

/// Why an image could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Height and width in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub height: usize,
    pub width: usize,
}

impl Size {
    /// Bytes of the decoded RGB image.
    pub fn rgb_bytes(&self) -> usize {
        self.height * self.width * 3
    }
}

/// The format of `bytes`, from its magic number.
pub fn sniff(bytes: &[u8]) -> Result<ImageFormat, DecodeError> {
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Ok(ImageFormat::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Ok(ImageFormat::Png)
    } else {
        let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
        Err(DecodeError(format!(
            "image bytes are neither JPEG nor PNG (first bytes: {})",
            head.join(" ")
        )))
    }
}

fn png_options() -> DecoderOptions {
    DecoderOptions::default()
        .png_set_strip_to_8bit(true)
        .set_max_width(1 << 16)
        .set_max_height(1 << 16)
}

/// Reads only the header of an encoded image: its size.
pub fn read_size(bytes: &[u8]) -> Result<Size, DecodeError> {
    match sniff(bytes)? {
        ImageFormat::Jpeg => with_jpeg(|d| d.read_header(bytes)).map(|h| Size {
            height: h.height,
            width: h.width,
        }),
        ImageFormat::Png => {
            let mut decoder = PngDecoder::new_with_options(ZCursor::new(bytes), png_options());
            decoder
                .decode_headers()
                .map_err(|e| DecodeError(format!("PNG: {e:?}")))?;
            let (width, height) = decoder.dimensions().expect("headers were decoded");
            Ok(Size { height, width })
        }
    }
}

/// Decodes `bytes` as RGB into `out`, which must hold exactly `size.rgb_bytes()`; the image
/// must have that size.
pub fn decode_rgb_into(bytes: &[u8], size: Size, out: &mut [u8]) -> Result<(), DecodeError> {
    let found = read_size(bytes)?;
    if found != size {
        return Err(DecodeError(format!(
            "tile is {}x{} but the batch holds {}x{} tiles; tiles of one batch must have one size",
            found.height, found.width, size.height, size.width
        )));
    }
    if out.len() != size.rgb_bytes() {
        return Err(DecodeError(format!(
            "output slot holds {} bytes, a {}x{} RGB tile needs {}",
            out.len(),
            size.height,
            size.width,
            size.rgb_bytes()
        )));
    }
    match sniff(bytes)? {
        ImageFormat::Jpeg => with_jpeg(|d| {
            let image = Image {
                pixels: out,
                width: size.width,
                pitch: size.width * 3,
                height: size.height,
                format: PixelFormat::RGB,
            };
            d.decompress(bytes, image)
        }),
        ImageFormat::Png => decode_png_into(bytes, out),
    }
}

fn decode_png_into(bytes: &[u8], out: &mut [u8]) -> Result<(), DecodeError> {
    let png_error = |e| DecodeError(format!("PNG: {e:?}"));
    let mut decoder = PngDecoder::new_with_options(ZCursor::new(bytes), png_options());
    decoder.decode_headers().map_err(png_error)?;
    let colorspace = decoder.colorspace().expect("headers were decoded");
    if colorspace == ColorSpace::RGB {
        return decoder.decode_into(out).map_err(png_error);
    }
    let pixels = decoder
        .decode()
        .map_err(png_error)?
        .u8()
        .ok_or_else(|| DecodeError("PNG: not 8-bit after stripping".into()))?;
    let channels = colorspace.num_components();
    for (rgb, px) in out.chunks_exact_mut(3).zip(pixels.chunks_exact(channels)) {
        match colorspace {
            ColorSpace::Luma | ColorSpace::LumaA => rgb.fill(px[0]),
            ColorSpace::RGBA => rgb.copy_from_slice(&px[..3]),
            other => {
                return Err(DecodeError(format!(
                    "PNG: unsupported colour space {other:?}"
                )))
            }
        }
    }
    Ok(())
}

/// Test images built by hand, shared with the loader's tests.
#[cfg(test)]
pub(crate) mod testing {
    /// A small 8-bit PNG (gray 0, RGB 2 or RGBA 6; stored deflate block) built by hand.
    pub fn tiny_png(pixels: &[u8], width: u32, height: u32, color_type: u8) -> Vec<u8> {
        let channels = match color_type {
            0 => 1,
            2 => 3,
            6 => 4,
            _ => unreachable!(),
        };
        let mut raw = Vec::new();
        for row in pixels.chunks(width as usize * channels) {
            raw.push(0u8);
            raw.extend_from_slice(row);
        }
        let mut zlib = vec![0x78, 0x01, 1];
        zlib.extend_from_slice(&(raw.len() as u16).to_le_bytes());
        zlib.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
        zlib.extend_from_slice(&raw);
        let (mut a, mut b) = (1u32, 0u32);
        for &x in &raw {
            a = (a + x as u32) % 65521;
            b = (b + a) % 65521;
        }
        zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8], data: &[u8]| {
            png.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut body = kind.to_vec();
            body.extend_from_slice(data);
            png.extend_from_slice(&body);
            png.extend_from_slice(&crc32_ieee(&body).to_be_bytes());
        };
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, color_type, 0, 0, 0]);
        chunk(b"IHDR", &ihdr);
        chunk(b"IDAT", &zlib);
        chunk(b"IEND", &[]);
        png
    }

    fn crc32_ieee(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= byte as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}

#[cfg(test)]
mod tests {
    use super::testing::tiny_png;
    use super::*;

    #[test]
    fn png_rgb_gray_and_rgba_decode_to_rgb() {
        let rgb: Vec<u8> = (0..18).collect();
        let size = Size {
            height: 2,
            width: 3,
        };
        let mut out = vec![0u8; 18];
        decode_rgb_into(&tiny_png(&rgb, 3, 2, 2), size, &mut out).unwrap();
        assert_eq!(out, rgb);

        let gray: Vec<u8> = vec![10, 20, 30, 40, 50, 60];
        decode_rgb_into(&tiny_png(&gray, 3, 2, 0), size, &mut out).unwrap();
        let expect: Vec<u8> = gray.iter().flat_map(|&g| [g, g, g]).collect();
        assert_eq!(out, expect);

        let rgba: Vec<u8> = (0..24).collect();
        decode_rgb_into(&tiny_png(&rgba, 3, 2, 6), size, &mut out).unwrap();
        let expect: Vec<u8> = rgba.chunks(4).flat_map(|p| p[..3].to_vec()).collect();
        assert_eq!(out, expect);
    }

    #[test]
    fn wrong_size_and_garbage_are_errors() {
        let png = tiny_png(&[0; 18], 3, 2, 2);
        let mut out = vec![0u8; 12];
        let err = decode_rgb_into(
            &png,
            Size {
                height: 2,
                width: 2,
            },
            &mut out,
        )
        .unwrap_err();
        assert!(err.0.contains("tile is 2x3"), "{err}");
        assert!(sniff(b"GIF89a").unwrap_err().0.contains("47 49 46 38"));
        let mut truncated = vec![0xff, 0xd8, 0xff, 0xe0];
        truncated.extend_from_slice(&[0; 20]);
        assert!(read_size(&truncated).is_err());
    }
}
