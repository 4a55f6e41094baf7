//! The interleaving loader: plan → read → verify → parse → decode, one batch per call.
//!
//! Each tile is read with one positioned read of its framed record (offsets come from the
//! index, so there is no seeking and no scanning), its CRCs are verified, the `tf.train.Example`
//! is parsed zero-copy for `image_raw`, `slide`, `loc_x`, `loc_y`, and the image is decoded
//! straight into its slot of the caller's batch buffer. Reading, parsing and decoding run on a
//! rayon pool of `num_threads`; the caller (the Python binding) releases the GIL around
//! [`Loader::next_batch`].
//!
//! Bad records follow [`OnError`]: `Raise` stops with an error naming the file and record;
//! `Skip` leaves the record out, fills the batch from the plan, and reports what was skipped.
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::decode::{decode_rgb_into, read_size, DecodeError, Size};
use crate::error::Error as RecordError;
use crate::example::{parse_selected, Feature};
use crate::framing::record_at;
use crate::plan::{Item, Part, Plan, PlanError, PlanSpec, PlanState};

/// The Example features the loader reads.
const KEYS: [&str; 4] = ["image_raw", "slide", "loc_x", "loc_y"];

/// What to do with a record that cannot be read, parsed or decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    Raise,
    Skip,
}

/// Everything a loader needs; `records[f]` is file `f`'s index, `(offset, framed_len)` pairs,
/// and `plan.counts[f]` must be its length.
#[derive(Clone, Debug)]
pub struct LoaderConfig {
    pub paths: Vec<PathBuf>,
    pub records: Vec<Vec<[u64; 2]>>,
    /// What is sampled: weights, clip, seed, shard, finite or infinite.
    pub plan: PlanSpec,
    pub batch_size: usize,
    pub drop_remainder: bool,
    pub decode: bool,
    /// Slide names that have labels, mapped to their row in the caller's label table.
    pub label_rows: Option<HashMap<String, u32>>,
    pub on_error: OnError,
    pub num_threads: usize,
}

/// A loader failure. Record-layer errors keep their own type (path and byte offset).
#[derive(Debug)]
pub enum LoaderError {
    Plan(PlanError),
    Record(RecordError),
    /// A bad tile or Example content: which file and record, and why.
    Tile {
        path: PathBuf,
        record: u64,
        offset: u64,
        reason: String,
    },
    /// The record's slide has no entry in the labels.
    MissingLabel {
        path: PathBuf,
        record: u64,
        slide: String,
    },
    Config(String),
}

impl fmt::Display for LoaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoaderError::Plan(e) => write!(f, "{e}"),
            LoaderError::Record(e) => write!(f, "{e}"),
            LoaderError::Tile {
                path,
                record,
                offset,
                reason,
            } => write!(
                f,
                "{}: record {record} (byte offset {offset}): {reason}",
                path.display()
            ),
            LoaderError::MissingLabel {
                path,
                record,
                slide,
            } => write!(
                f,
                "{}: record {record} has slide {slide:?}, which has no label",
                path.display()
            ),
            LoaderError::Config(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for LoaderError {}

impl From<PlanError> for LoaderError {
    fn from(e: PlanError) -> Self {
        LoaderError::Plan(e)
    }
}

/// One batch of tiles. `images` is the caller's buffer, `[size, H, W, 3]` when decoding;
/// `encoded` holds the image bytes instead when not decoding.
#[derive(Debug, Default)]
pub struct Batch {
    pub size: usize,
    pub tile: Option<Size>,
    pub encoded: Vec<Vec<u8>>,
    pub slides: Vec<String>,
    pub label_rows: Vec<u32>,
    pub locations: Vec<[i64; 2]>,
    /// Messages of the records left out under [`OnError::Skip`].
    pub skipped: Vec<String>,
}

/// What one tile's record holds, before its image is decoded.
struct Parsed {
    slide: String,
    location: [i64; 2],
    /// The read buffer holding the record, and where the image bytes lie in it.
    run: usize,
    image: std::ops::Range<usize>,
    size: Option<Size>,
}

/// One positioned read: records that lie back to back in a file are read together.
struct Run {
    file: usize,
    offset: u64,
    len: u64,
}

/// Largest coalesced read.
const MAX_RUN_BYTES: u64 = 16 << 20;

/// Groups `items` into reads of adjacent records (sorted by file and offset); returns the runs
/// and, per item, its run and its start within the run.
fn plan_reads(records: &[Vec<[u64; 2]>], items: &[Item]) -> (Vec<Run>, Vec<(usize, usize)>) {
    let mut order: Vec<usize> = (0..items.len()).collect();
    let at = |i: usize| records[items[i].file][items[i].record as usize];
    order.sort_by_key(|&i| (items[i].file, at(i)[0]));
    let mut runs: Vec<Run> = Vec::new();
    let mut placement = vec![(0, 0); items.len()];
    for i in order {
        let (file, [offset, len]) = (items[i].file, at(i));
        let last = runs.len().wrapping_sub(1);
        match runs.last_mut() {
            Some(run)
                if run.file == file
                    && run.offset + run.len == offset
                    && run.len + len <= MAX_RUN_BYTES =>
            {
                placement[i] = (last, (offset - run.offset) as usize);
                run.len += len;
            }
            _ => {
                placement[i] = (runs.len(), 0);
                runs.push(Run { file, offset, len });
            }
        }
    }
    (runs, placement)
}

/// The loader of one shard.
pub struct Loader {
    config: LoaderConfig,
    plan: Plan,
    pool: rayon::ThreadPool,
    /// Reused read buffers, one per coalesced read of a batch.
    raw: Vec<Vec<u8>>,
    /// Files kept open between batches (open failures are retried, never kept).
    open: HashMap<usize, std::io::Result<File>>,
}

impl Loader {
    /// Validates the configuration and builds the plan and the thread pool.
    pub fn new(config: LoaderConfig) -> Result<Loader, LoaderError> {
        if config.records.len() != config.paths.len() {
            return Err(LoaderError::Config(format!(
                "{} indexes for {} files",
                config.records.len(),
                config.paths.len()
            )));
        }
        if config.batch_size == 0 {
            return Err(LoaderError::Config("batch_size must be at least 1".into()));
        }
        let counts: Vec<u64> = config.records.iter().map(|r| r.len() as u64).collect();
        if counts != config.plan.counts {
            return Err(LoaderError::Config(
                "the plan's record counts differ from the indexes' lengths".into(),
            ));
        }
        let plan = Plan::new(&config.plan)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.num_threads.max(1))
            .thread_name(|i| format!("jaxwsi-loader-{i}"))
            .build()
            .map_err(|e| LoaderError::Config(format!("cannot start decode threads: {e}")))?;
        let raw = vec![Vec::new(); config.batch_size];
        Ok(Loader {
            config,
            plan,
            pool,
            raw,
            open: HashMap::new(),
        })
    }

    /// Records per epoch in this shard.
    pub fn records_per_epoch(&self) -> u64 {
        self.plan.len()
    }

    /// Batches per epoch in this shard (finite streams), before any skipped records.
    /// With `drop_remainder`, every shard yields the same number of batches (that of the
    /// smallest shard), so all hosts of a data-parallel job run the same number of steps.
    pub fn batches_per_epoch(&self) -> u64 {
        let b = self.config.batch_size as u64;
        if self.config.drop_remainder {
            self.plan.smallest_shard_len() / b
        } else {
            self.plan.len().div_ceil(b)
        }
    }

    pub fn state(&self) -> PlanState {
        self.plan.state()
    }

    pub fn set_state(&mut self, state: &PlanState) -> Result<(), LoaderError> {
        Ok(self.plan.set_state(state)?)
    }

    pub fn start_epoch(&mut self, epoch: u64) {
        self.plan.start_epoch(epoch)
    }

    pub fn epoch(&self) -> u64 {
        self.plan.epoch()
    }

    /// This shard's clipped records, file by file.
    pub fn parts(&self) -> &[Part] {
        self.plan.parts()
    }

    /// The next batch from the plan, decoded into `images` (resized as needed), or `None` at the
    /// end of a finite epoch (including a short last batch under `drop_remainder`). When a
    /// batch is dropped or an error is raised, the plan state is left where it was before.
    pub fn next_batch(&mut self, images: &mut Vec<u8>) -> Result<Option<Batch>, LoaderError> {
        let before = self.plan.state();
        let result = self.fill_batch(images);
        match &result {
            Ok(None) | Err(_) => self.plan.set_state(&before)?,
            Ok(Some(_)) => {}
        }
        result
    }

    fn fill_batch(&mut self, images: &mut Vec<u8>) -> Result<Option<Batch>, LoaderError> {
        let b = self.config.batch_size as u64;
        let equal_batches = !self.config.plan.infinite && self.config.drop_remainder;
        if equal_batches && self.plan.step() / b >= self.batches_per_epoch() {
            return Ok(None);
        }
        let mut batch = Batch::default();
        while batch.size < self.config.batch_size {
            let want = self.config.batch_size - batch.size;
            let items: Vec<Item> = self.plan.by_ref().take(want).collect();
            if items.is_empty() {
                break;
            }
            self.load_into(&items, images, &mut batch)?;
        }
        images.truncate(batch.size * batch.tile.map_or(0, |t| t.rgb_bytes()));
        let full = batch.size == self.config.batch_size;
        if batch.size == 0 || (!full && self.config.drop_remainder) {
            return Ok(None);
        }
        Ok(Some(batch))
    }

    /// Loads exactly `items` (for random access): a batch of `items.len()` tiles minus skips.
    pub fn load(&mut self, items: &[Item], images: &mut Vec<u8>) -> Result<Batch, LoaderError> {
        if let Some(bad) = items.iter().find(|it| {
            it.file >= self.config.records.len()
                || it.record >= self.config.records[it.file].len() as u64
        }) {
            return Err(LoaderError::Config(format!(
                "no record {} in file {}",
                bad.record, bad.file
            )));
        }
        if self.raw.len() < items.len() {
            self.raw.resize(items.len(), Vec::new());
        }
        let mut batch = Batch::default();
        self.load_into(items, images, &mut batch)?;
        images.truncate(batch.size * batch.tile.map_or(0, |t| t.rgb_bytes()));
        Ok(batch)
    }

    /// Reads, parses and decodes `items` and appends the good ones to `batch`.
    fn load_into(
        &mut self,
        items: &[Item],
        images: &mut Vec<u8>,
        batch: &mut Batch,
    ) -> Result<(), LoaderError> {
        let config = &self.config;
        open_files(&mut self.open, &config.paths, items);
        let files = &self.open;
        let (runs, placement) = plan_reads(&config.records, items);
        if self.raw.len() < runs.len() {
            self.raw.resize(runs.len(), Vec::new());
        }
        let buffers = &mut self.raw[..runs.len()];
        let read_errors: Vec<Option<RecordError>> = self.pool.install(|| {
            buffers
                .par_iter_mut()
                .zip(runs.par_iter())
                .map(|(buf, run)| read_run(config, files, run, buf).err())
                .collect()
        });
        let raw = &self.raw;
        let parsed: Vec<Result<Parsed, LoaderError>> = self.pool.install(|| {
            items
                .par_iter()
                .zip(placement.par_iter())
                .map(|(item, &(run, start))| match &read_errors[run] {
                    Some(e) => Err(LoaderError::Record(e.clone())),
                    None => parse(config, *item, &raw[run], run, start),
                })
                .collect()
        });
        // Decide which items stay, and the tile size of the batch.
        let mut keep = Vec::with_capacity(items.len());
        for (i, result) in parsed.into_iter().enumerate() {
            match result {
                Ok(p) => keep.push((i, p)),
                Err(e) => skip_or_raise(config.on_error, e, batch)?,
            }
        }
        if config.decode {
            for (i, p) in &keep {
                let size = p.size.expect("decoding reads sizes");
                match batch.tile {
                    None => batch.tile = Some(size),
                    Some(t) if t != size => {
                        return Err(tile_error(
                            config,
                            items[*i],
                            format!(
                                "tile is {}x{} but earlier tiles of this batch are {}x{}; \
                                 tiles of one batch must have one size",
                                size.height, size.width, t.height, t.width
                            ),
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        let decoded = if config.decode && !keep.is_empty() {
            let tile_bytes = batch.tile.expect("set above").rgb_bytes();
            let (start, end) = (
                batch.size * tile_bytes,
                (batch.size + keep.len()) * tile_bytes,
            );
            if images.len() < end {
                images.resize(end, 0);
            }
            let slots = images[start..end].par_chunks_mut(tile_bytes);
            let raw = &self.raw;
            let size = batch.tile.expect("set above");
            self.pool.install(|| {
                slots
                    .zip(keep.par_iter())
                    .map(|(slot, (i, p))| {
                        decode_rgb_into(&raw[p.run][p.image.clone()], size, slot)
                            .map_err(|DecodeError(reason)| tile_error(config, items[*i], reason))
                    })
                    .collect::<Vec<_>>()
            })
        } else {
            keep.iter().map(|_| Ok(())).collect()
        };
        let tile_bytes = batch.tile.map_or(0, |t| t.rgb_bytes());
        let base = batch.size;
        for (k, ((i, p), result)) in keep.into_iter().zip(decoded).enumerate() {
            if let Err(e) = result {
                skip_or_raise(config.on_error, e, batch)?;
                continue;
            }
            if config.decode && batch.size != base + k {
                // Close the gap left by a skipped tile.
                let from = (base + k) * tile_bytes;
                images.copy_within(from..from + tile_bytes, batch.size * tile_bytes);
            }
            let row = match &config.label_rows {
                Some(rows) => *rows
                    .get(&p.slide)
                    .ok_or_else(|| LoaderError::MissingLabel {
                        path: config.paths[items[i].file].clone(),
                        record: items[i].record,
                        slide: p.slide.clone(),
                    })?,
                None => 0,
            };
            if !config.decode {
                batch.encoded.push(self.raw[p.run][p.image].to_vec());
            }
            batch.label_rows.push(row);
            batch.slides.push(p.slide);
            batch.locations.push(p.location);
            batch.size += 1;
        }
        Ok(())
    }
}

/// Records a skippable error under [`OnError::Skip`]; returns it otherwise.
fn skip_or_raise(
    on_error: OnError,
    error: LoaderError,
    batch: &mut Batch,
) -> Result<(), LoaderError> {
    match (on_error, &error) {
        (OnError::Skip, LoaderError::Record(_) | LoaderError::Tile { .. }) => {
            batch.skipped.push(error.to_string());
            Ok(())
        }
        _ => Err(error),
    }
}

fn tile_error(config: &LoaderConfig, item: Item, reason: String) -> LoaderError {
    LoaderError::Tile {
        path: config.paths[item.file].clone(),
        record: item.record,
        offset: config.records[item.file][item.record as usize][0],
        reason,
    }
}

/// Files a loader keeps open at most; beyond this the cache starts over.
const MAX_OPEN_FILES: usize = 256;

/// `EMFILE`: the process has as many files open as its limit allows.
const TOO_MANY_OPEN_FILES: i32 = 24;

/// Makes sure every file of `items` is in `open`: cached handles are reused, failed opens are
/// retried (an open failure is reported per item, as a read error would be). When the process
/// runs out of file descriptors, the cached handles this batch does not need are closed and the
/// open is tried again.
fn open_files(open: &mut HashMap<usize, std::io::Result<File>>, paths: &[PathBuf], items: &[Item]) {
    open.retain(|_, f| f.is_ok());
    if open.len() + items.len() > MAX_OPEN_FILES {
        open.clear();
    }
    for item in items {
        if open.contains_key(&item.file) {
            continue;
        }
        let mut file = File::open(&paths[item.file]);
        if matches!(&file, Err(e) if e.raw_os_error() == Some(TOO_MANY_OPEN_FILES)) {
            open.retain(|k, _| items.iter().any(|it| it.file == *k));
            file = File::open(&paths[item.file]);
        }
        open.insert(item.file, file);
    }
}

/// The error of a failed open, with advice when the open-file limit is the cause.
fn open_error(e: &std::io::Error, path: &Path, offset: u64) -> RecordError {
    if e.raw_os_error() != Some(TOO_MANY_OPEN_FILES) {
        return RecordError::io(e, Some(path), offset);
    }
    let advice = std::io::Error::new(
        e.kind(),
        format!(
            "{e}: the process may open too few files for this loader (it keeps up to \
             {MAX_OPEN_FILES} TFRecords open, plus what else is open); raise the limit \
             (`ulimit -n 4096`) or use fewer loader workers"
        ),
    );
    RecordError::io(&advice, Some(path), offset)
}

/// Reads one run of adjacent records into `buf`.
fn read_run(
    config: &LoaderConfig,
    files: &HashMap<usize, std::io::Result<File>>,
    run: &Run,
    buf: &mut Vec<u8>,
) -> Result<(), RecordError> {
    let path: &Path = &config.paths[run.file];
    let file = files[&run.file]
        .as_ref()
        .map_err(|e| open_error(e, path, run.offset))?;
    buf.resize(run.len as usize, 0);
    read_exact_at(file, buf, run.offset).map_err(|e| RecordError::io(&e, Some(path), run.offset))
}

/// Verifies and parses the framed record of `item`, which starts at `start` of `buf` (the
/// read buffer `run`).
fn parse(
    config: &LoaderConfig,
    item: Item,
    buf: &[u8],
    run: usize,
    start: usize,
) -> Result<Parsed, LoaderError> {
    let path: &Path = &config.paths[item.file];
    let [offset, framed_len] = config.records[item.file][item.record as usize];
    let framed = &buf[start..start + framed_len as usize];
    let record = record_at(framed, 0, true)
        .map_err(|e| LoaderError::Record(e.shifted(offset).with_path(path)))?;
    if record.framed_len != framed_len {
        return Err(tile_error(
            config,
            item,
            format!(
                "record is {} bytes framed but the index says {framed_len}; rebuild the index",
                record.framed_len
            ),
        ));
    }
    let features = parse_selected(record.data, &KEYS)
        .map_err(|e| LoaderError::Record(e.shifted(offset).with_path(path)))?;
    let image = features[0]
        .as_ref()
        .and_then(Feature::as_single_bytes)
        .ok_or_else(|| tile_error(config, item, "no single bytes value 'image_raw'".into()))?;
    let slide = match features[1].as_ref().and_then(Feature::as_single_bytes) {
        Some(s) => String::from_utf8_lossy(s).into_owned(),
        None => String::new(),
    };
    let loc = |f: &Option<Feature<'_>>| f.as_ref().and_then(Feature::as_single_i64);
    let location = [
        loc(&features[2]).unwrap_or(-1),
        loc(&features[3]).unwrap_or(-1),
    ];
    // `image` borrows `buf`: remember where it lies so the decoder can find it again.
    let image_start = image.as_ptr() as usize - buf.as_ptr() as usize;
    let size = if config.decode {
        Some(read_size(image).map_err(|DecodeError(reason)| tile_error(config, item, reason))?)
    } else {
        None
    };
    Ok(Parsed {
        slide,
        location,
        run,
        image: image_start..image_start + image.len(),
        size,
    })
}

fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            std::io::Error::new(e.kind(), "file ends before the indexed record does")
        } else {
            e
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::testing::tiny_png;
    use crate::example::encode_example;
    use crate::framing::RecordWriter;

    /// The 2x2 RGB tile of record `i` of file `f`: every byte is `10 * f + i`.
    fn pixels(f: usize, i: usize) -> Vec<u8> {
        vec![(10 * f + i) as u8; 12]
    }

    /// Writes files of 2x2 PNG tiles (record `bad` of file 0 gets garbage image bytes, and
    /// record `big` of file 0 a 3x2 tile) and returns their paths and indexes.
    fn write(
        dir: &Path,
        counts: &[usize],
        bad: Option<usize>,
        big: Option<usize>,
    ) -> (Vec<PathBuf>, Vec<Vec<[u64; 2]>>) {
        let mut paths = Vec::new();
        let mut indexes = Vec::new();
        for (f, &n) in counts.iter().enumerate() {
            let path = dir.join(format!("f{f}.tfrecords"));
            let mut writer = RecordWriter::new(File::create(&path).unwrap());
            let mut index = Vec::new();
            for i in 0..n {
                let image = if f == 0 && bad == Some(i) {
                    b"\x89PNG\r\n\x1a\nnot really".to_vec()
                } else if f == 0 && big == Some(i) {
                    tiny_png(&[0; 18], 3, 2, 2)
                } else {
                    tiny_png(&pixels(f, i), 2, 2, 2)
                };
                let slide = format!("s{f}");
                let features = [
                    ("image_raw", Feature::Bytes(vec![&image[..]])),
                    ("slide", Feature::Bytes(vec![slide.as_bytes()])),
                    ("loc_x", Feature::Int64(vec![f as i64])),
                    ("loc_y", Feature::Int64(vec![i as i64])),
                ];
                let mut data = Vec::new();
                encode_example(&features, &mut data);
                let (offset, framed) = writer.write_record(&data).unwrap();
                index.push([offset, framed]);
            }
            paths.push(path);
            indexes.push(index);
        }
        (paths, indexes)
    }

    fn config(paths: Vec<PathBuf>, records: Vec<Vec<[u64; 2]>>, batch_size: usize) -> LoaderConfig {
        let plan = PlanSpec {
            counts: records.iter().map(|r| r.len() as u64).collect(),
            weights: None,
            clip: None,
            seed: 0,
            shard: 0,
            num_shards: 1,
            infinite: false,
            shuffle: true,
        };
        LoaderConfig {
            paths,
            records,
            plan,
            batch_size,
            drop_remainder: false,
            decode: true,
            label_rows: None,
            on_error: OnError::Raise,
            num_threads: 2,
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("jaxwsi-loader-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_finite_epoch_decodes_every_record_into_its_slot() {
        let dir = temp_dir("epoch");
        let (paths, records) = write(&dir, &[3, 4], None, None);
        let mut loader = Loader::new(config(paths, records, 3)).unwrap();
        let mut images = Vec::new();
        let mut seen = Vec::new();
        while let Some(batch) = loader.next_batch(&mut images).unwrap() {
            assert_eq!(images.len(), batch.size * 12);
            for (k, loc) in batch.locations.iter().enumerate() {
                let (f, i) = (loc[0] as usize, loc[1] as usize);
                assert_eq!(&images[k * 12..(k + 1) * 12], &pixels(f, i)[..]);
                assert_eq!(batch.slides[k], format!("s{f}"));
                seen.push((f, i));
            }
        }
        seen.sort_unstable();
        assert_eq!(
            seen,
            vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3)]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn skipped_records_leave_no_gap_and_raised_ones_keep_the_position() {
        let dir = temp_dir("skip");
        let (paths, records) = write(&dir, &[4], Some(1), None);
        let mut cfg = config(paths, records, 4);
        cfg.plan.shuffle = false;
        let mut raising = Loader::new(cfg.clone()).unwrap();
        let mut images = Vec::new();
        let err = raising.next_batch(&mut images).unwrap_err().to_string();
        assert!(err.contains("f0.tfrecords: record 1"), "{err}");
        assert_eq!(
            raising.state().step,
            0,
            "a failed batch does not advance the stream"
        );
        cfg.on_error = OnError::Skip;
        let mut skipping = Loader::new(cfg).unwrap();
        let batch = skipping.next_batch(&mut images).unwrap().unwrap();
        assert_eq!(batch.size, 3);
        assert_eq!(batch.skipped.len(), 1);
        assert_eq!(images, [pixels(0, 0), pixels(0, 2), pixels(0, 3)].concat());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn adjacent_records_are_read_together() {
        let records = vec![
            vec![[0, 10], [10, 5], [15, 7], [30, 4]],
            vec![[0, 3], [3, 3]],
        ];
        let item = |file, record| Item { file, record };
        let items = [
            item(0, 2),
            item(1, 1),
            item(0, 0),
            item(0, 1),
            item(0, 3),
            item(0, 1),
        ];
        let (runs, placement) = plan_reads(&records, &items);
        let spans: Vec<(usize, u64, u64)> =
            runs.iter().map(|r| (r.file, r.offset, r.len)).collect();
        // File 0: records 0 and 1 are back to back; the repeated record 1 starts a new read,
        // which record 2 extends; the gap before record 3 starts another. File 1: record 1.
        assert_eq!(spans, vec![(0, 0, 15), (0, 10, 12), (0, 30, 4), (1, 3, 3)]);
        assert_eq!(
            placement,
            vec![(1, 5), (3, 0), (0, 0), (0, 10), (2, 0), (1, 0)]
        );
    }

    #[test]
    fn tiles_of_two_sizes_in_one_batch_are_an_error() {
        let dir = temp_dir("sizes");
        let (paths, records) = write(&dir, &[3], None, Some(2));
        let mut loader = Loader::new(config(paths, records, 3)).unwrap();
        let err = loader.next_batch(&mut Vec::new()).unwrap_err().to_string();
        assert!(
            err.contains("tiles of one batch must have one size"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
