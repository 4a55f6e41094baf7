//! The decode limit of a tile set: every `image_raw` of the given TFRecords decoded in memory,
//! one thread, with the loader's decoder (libjpeg-turbo for JPEG) into the 64 slots of a batch
//! buffer, repeatedly for `--seconds`. No reading, parsing or Python: the ceiling per core that
//! the loader is compared with in experiments/bench_loader.py.
//!
//! Run: cargo run --release -p jaxwsi-core --example decode_limit -- --seconds 3 a.tfrecords ...
//! Prints `tiles seconds`.
use std::time::Instant;

use jaxwsi_core::decode::{decode_rgb_into, read_size};
use jaxwsi_core::example::{parse_selected, Feature};
use jaxwsi_core::framing::records;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut seconds = 3.0;
    if args.first().map(String::as_str) == Some("--seconds") {
        seconds = args[1].parse()?;
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
            decode_rgb_into(tile, size, &mut batch[k * slot..(k + 1) * slot])?;
            decoded += 1;
        }
    }
    println!("{decoded} {}", start.elapsed().as_secs_f64());
    Ok(())
}
