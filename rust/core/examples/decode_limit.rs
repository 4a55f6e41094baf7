//! The decode limit of a tile set: every `image_raw` of the given TFRecords decoded in memory,
//! one thread, into the 64 slots of a batch buffer, repeatedly for `--seconds`. No reading,
//! parsing or Python: the ceiling per core that experiments/bench_loader.py compares the loader
//! with. `--decoder jaxwsi` (default) uses the loader's decoder (libjpeg-turbo for JPEG);
//! `--decoder zune` uses zune-jpeg, the pure-Rust alternative it was chosen over.
//!
//! Run: cargo run --release -p jaxwsi-core --example decode_limit -- [--seconds 3]
//!      [--decoder jaxwsi|zune] a.tfrecords ...
//! Prints `tiles seconds`.
use std::time::Instant;

use jaxwsi_core::decode::{decode_rgb_into, read_size};
use jaxwsi_core::example::{parse_selected, Feature};
use jaxwsi_core::framing::records;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut seconds = 3.0;
    let mut zune = false;
    while args.first().is_some_and(|a| a.starts_with("--")) {
        match args[0].as_str() {
            "--seconds" => seconds = args[1].parse()?,
            "--decoder" => zune = args[1] == "zune",
            other => return Err(format!("unknown option {other}").into()),
        }
        args.drain(..2);
    }
    let mut tiles = Vec::new();
    for path in &args {
        let buf = std::fs::read(path)?;
        for record in records(&buf, true) {
            let features = parse_selected(record?.data, &["image_raw"])?;
            let image = features[0].as_ref().and_then(Feature::as_single_bytes);
            tiles.push(image.ok_or("record without image_raw")?.to_vec());
        }
    }
    let size = read_size(tiles.first().ok_or("no tiles")?)?;
    let slot = size.rgb_bytes();
    let mut batch = vec![0u8; 64 * slot];
    let (start, mut decoded) = (Instant::now(), 0usize);
    while start.elapsed().as_secs_f64() < seconds {
        for tile in &tiles {
            let k = decoded % 64;
            let out = &mut batch[k * slot..(k + 1) * slot];
            if zune {
                decode_zune(tile, out)?;
            } else {
                decode_rgb_into(tile, size, out)?;
            }
            decoded += 1;
        }
    }
    println!("{decoded} {}", start.elapsed().as_secs_f64());
    Ok(())
}

fn decode_zune(tile: &[u8], out: &mut [u8]) -> Result<(), Box<dyn std::error::Error>> {
    use zune_core::{bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions};
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(tile), options);
    decoder.decode_headers().map_err(|e| format!("{e:?}"))?;
    decoder.decode_into(out).map_err(|e| format!("{e:?}"))?;
    Ok(())
}
