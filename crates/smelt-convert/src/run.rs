//! The conversion itself: open, plan, encode tensor after tensor into a format's sink that
//! writes to an [`AtomicFile`], commit, hash, report.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use smelt_formats::{Model, Tensor};

use crate::atomic::AtomicFile;
use crate::encode::{encode, Encoded, EncodedTensor};
use crate::like::{Like, LikeOptions, LikeTensorReport, StoredAs};
use crate::plan::{OutputFormat, Plan, PlanEntry, Reason};
use crate::recipe::Recipe;
use crate::report::{FileHash, Report, TensorReport, Timings, Totals};
use crate::ConvertError;

/// Encodes planned tensors for a sink. It is apart from the [`Sink`] so that the next tensor
/// encodes while the sink writes the previous one.
pub trait TensorEncoder: Send + Sync {
    /// Encodes one planned tensor.
    fn encode(
        &self,
        entry: &PlanEntry,
        tensor: &Tensor,
        allow_nonfinite: bool,
    ) -> Result<EncodedTensor, ConvertError> {
        encode(tensor, entry.scheme, allow_nonfinite)
    }
}

/// The encoder of every format that stores tensors in their own orientation.
pub struct PlainEncoder;

impl TensorEncoder for PlainEncoder {}

/// Where encoded tensors go: one implementation per output format.
pub trait Sink: Send {
    /// The encoder for this sink's tensors. Sinks whose layout needs the values in another
    /// orientation (ONNX MatMul weights are `[K, N]`) return their own.
    fn encoder(&self) -> Arc<dyn TensorEncoder> {
        Arc::new(PlainEncoder)
    }
    /// Where plan entry `index` lands in the output, for `--like` to find it in OLD: the same
    /// name, rows as encoded, unless the format renames or permutes (GGUF from HF).
    fn stored_as(&self, index: usize, entry: &PlanEntry) -> StoredAs {
        let _ = index;
        StoredAs { name: entry.name.clone(), permute_heads: None }
    }
    /// Writes one tensor, in plan order. Returns the name it has in the output when the
    /// format renames tensors.
    fn write(&mut self, entry: &PlanEntry, encoded: &Encoded) -> Result<Option<String>, ConvertError>;
    /// Writes whatever comes after the tensors and hands back the file to commit.
    fn finish(self: Box<Self>) -> Result<AtomicFile, ConvertError>;
}

/// Everything a sink may need to write its header before the first tensor.
pub struct SinkContext<'a> {
    /// The input model.
    pub model: &'a Model,
    /// The plan.
    pub plan: &'a Plan,
    /// The recipe.
    pub recipe: &'a Recipe,
    /// The input path as given.
    pub input: &'a Path,
    /// The output path.
    pub output: &'a Path,
}

/// Options of one conversion.
pub struct ConvertJob<'a> {
    /// Input model path.
    pub input: &'a Path,
    /// Output path.
    pub output: &'a Path,
    /// Recipe.
    pub recipe: &'a Recipe,
    /// Output format.
    pub format: OutputFormat,
    /// Worker threads (`None`: all cores).
    pub threads: Option<usize>,
    /// Called before each tensor with (index, count, name), for progress display.
    pub progress: Option<&'a ProgressFn<'a>>,
    /// Reuse blocks of an earlier quantized version (`--like`).
    pub like: Option<&'a LikeOptions>,
}

/// A progress callback: (tensor index, tensor count, tensor name).
pub type ProgressFn<'a> = dyn Fn(usize, usize, &str) + Sync + 'a;

/// How much of the output's start is read back to hash it rather than hashed as it is written
/// (see [`crate::write_hash`]): the blob's header and directory and the safetensors header are
/// written last, over room reserved at the start, and must fit in it for the streamed hash to
/// hold (otherwise the finished file is read again).
const OUTPUT_HASH_PREFIX: u64 = 16 << 20;

/// Runs a conversion and returns its report. On any error the output does not exist (not even
/// a temporary file).
pub fn convert(job: &ConvertJob<'_>) -> Result<Report, ConvertError> {
    convert_hashing(job, OUTPUT_HASH_PREFIX).map(|(report, _)| report)
}

/// [`convert`], hashing the output as it is written with a read-back prefix of `prefix` bytes;
/// also says whether that streamed hash held (`false`: the finished file was read again).
fn convert_hashing(job: &ConvertJob<'_>, prefix: u64) -> Result<(Report, bool), ConvertError> {
    let start = Instant::now();
    crate::atomic::check_destination(job.output)
        .map_err(|source| ConvertError::Io { path: job.output.display().to_string(), source })?;
    let model = smelt_formats::open(job.input)?;
    let plan = crate::plan::plan(&model, job.recipe, job.format)?;
    let like = job.like.map(|o| Like::open(o, job.format)).transpose()?;
    let read_s = start.elapsed().as_secs_f64();

    let threads = job.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| {
        ConvertError::Write { path: job.output.display().to_string(), message: e.to_string() }
    })?;

    // The inputs are hashed on a thread of their own while the tensors convert: it has the
    // CPU time the conversion leaves (the sink writes one tensor at a time, in order).
    // A failed conversion stops it (the guard sets the flag when this function returns).
    let input_paths = model.files.clone();
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let flag = Arc::clone(&stop.0);
    let input_hashes = std::thread::spawn(move || {
        input_paths.iter().map(|p| hash_file(p, false, &flag)).collect::<Result<Vec<_>, _>>()
    });

    let t_convert = Instant::now();
    let file = AtomicFile::create_hashed(job.output, prefix)
        .map_err(|source| ConvertError::Io { path: job.output.display().to_string(), source })?;
    let ctx =
        SinkContext { model: &model, plan: &plan, recipe: job.recipe, input: job.input, output: job.output };
    let mut sink = crate::sinks::open(job.format, file, &ctx)?;
    let encoder = sink.encoder();
    // --like: where each tensor lands in the output (and so in OLD), asked before the sink
    // moves to the writer thread.
    let stored: Vec<StoredAs> = match &like {
        Some(like) => {
            let stored: Vec<StoredAs> =
                plan.entries.iter().enumerate().map(|(i, e)| sink.stored_as(i, e)).collect();
            like.check_plan(&plan, |i| stored[i].clone())?;
            stored
        }
        None => Vec::new(),
    };
    let mut like_lines: Vec<Option<LikeTensorReport>> = vec![None; plan.entries.len()];
    // Two stages: this thread encodes tensor after tensor (each on the pool) while a writer
    // thread hands the previous one to the sink; a channel of one keeps at most three encoded
    // tensors alive (being written, waiting, being encoded). Order is plan order throughout.
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, EncodedTensor, f64)>(1);
    let entries = &plan.entries;
    let (encoded, written) = std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> Result<_, ConvertError> {
            let mut done = Vec::with_capacity(entries.len());
            for (i, enc, seconds) in rx {
                let output_name = sink.write(&entries[i], &enc.encoded)?;
                done.push((enc.metrics, enc.encoded.stored_bytes(), output_name, seconds));
                enc.encoded.recycle();
            }
            Ok((sink, done))
        });
        let encoded = pool.install(|| -> Result<(), ConvertError> {
            for (i, entry) in plan.entries.iter().enumerate() {
                if let Some(p) = job.progress {
                    p(i, plan.entries.len(), &entry.name);
                }
                let t0 = Instant::now();
                let tensor = &model.tensors[entry.index];
                let enc = encoder.encode(entry, tensor, job.recipe.allow_nonfinite)?;
                let enc = match &like {
                    Some(like) => {
                        let (enc, line) = like.apply(entry, tensor, &stored[i], enc)?;
                        like_lines[i] = line;
                        enc
                    }
                    None => enc,
                };
                // Done with this tensor's input: its pages leave the resident set (memory
                // stays bounded by a few tensors, not by the input file).
                smelt_tensor::storage::release_pages(&tensor.data);
                if tx.send((i, enc, t0.elapsed().as_secs_f64())).is_err() {
                    break; // the writer failed: its error is the one to report
                }
            }
            Ok(())
        });
        drop(tx);
        (encoded, writer.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    });
    let (sink, written) = match (encoded, written) {
        (_, Err(e)) | (Err(e), _) => return Err(e),
        (Ok(()), Ok(w)) => w,
    };
    let tensors: Vec<TensorReport> = plan
        .entries
        .iter()
        .zip(written)
        .zip(like_lines)
        .map(|((entry, (metrics, bytes_out, output_name, seconds)), like)| TensorReport {
            name: entry.name.clone(),
            output_name,
            dtype: entry.dtype.name().to_string(),
            shape: entry.shape.clone(),
            scheme: entry.scheme.to_string(),
            reason: entry.reason.to_string(),
            fallback: matches!(entry.reason, Reason::Fallback { .. }),
            bytes_in: entry.in_bytes,
            bytes_out,
            sqnr_db: metrics.as_ref().map(|m| m.sqnr_db).filter(|v| v.is_finite()),
            cosine: metrics.as_ref().map(|m| m.cosine),
            max_abs: metrics.as_ref().map(|m| m.max_abs),
            mean_abs: metrics.as_ref().map(|m| m.mean_abs),
            seconds,
            like,
        })
        .collect();
    let mut file = sink.finish()?;
    let out_io = |source| ConvertError::Io { path: job.output.display().to_string(), source };
    file.flush().map_err(out_io)?;
    let convert_s = t_convert.elapsed().as_secs_f64();

    // The output was hashed as it was written; only when its writer went back over bytes
    // past the prefix is it read again from the finished temporary file (before the rename:
    // a file only this process knows), with every thread of the pool.
    let t_hash = Instant::now();
    let streamed = file.written_hash().map_err(out_io)?;
    let mut output = match streamed {
        Some(d) => FileHash { path: String::new(), bytes: d.bytes, blake3: d.blake3.to_hex().to_string() },
        None => pool.install(|| hash_file(file.temp_path(), true, &AtomicBool::new(false)))?,
    };
    output.path = job.output.display().to_string();
    file.commit().map_err(out_io)?;
    let inputs = input_hashes.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
    let hash_s = t_hash.elapsed().as_secs_f64();

    let parameters = plan.parameters();
    let bytes_out: u64 = tensors.iter().map(|t| t.bytes_out).sum();
    let totals = Totals {
        tensors: tensors.len(),
        quantized: plan.entries.iter().filter(|e| e.scheme.is_quantized()).count(),
        fallbacks: tensors.iter().filter(|t| t.fallback).count(),
        parameters,
        bytes_in: plan.in_bytes(),
        bytes_out,
        file_bytes: output.bytes,
        bits_per_weight: if parameters == 0 { 0.0 } else { bytes_out as f64 * 8.0 / parameters as f64 },
    };
    let report = Report {
        schema: "smelt.convert-report/1",
        tool_version: env!("CARGO_PKG_VERSION"),
        input_format: model.format.name().to_string(),
        inputs,
        output,
        output_format: job.format.name().to_string(),
        recipe: job.recipe.source.clone(),
        threads,
        totals,
        timings: Timings {
            read: read_s,
            convert: convert_s,
            hash: hash_s,
            total: start.elapsed().as_secs_f64(),
        },
        like: like.map(|l| l.totals(&tensors)),
        tensors,
    };
    Ok((report, streamed.is_some()))
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// BLAKE3 of a file, read through a map in pieces whose pages are released once hashed (so a
/// hash adds a piece, not the file, to the resident set). `parallel` hashes each piece with
/// every thread of the current rayon pool (BLAKE3's tree makes the hash the same whatever
/// the split).
fn hash_file(path: &Path, parallel: bool, stop: &AtomicBool) -> Result<FileHash, ConvertError> {
    hash_file_in_pieces(path, parallel, stop, 32 << 20)
}

fn hash_file_in_pieces(
    path: &Path,
    parallel: bool,
    stop: &AtomicBool,
    piece: usize,
) -> Result<FileHash, ConvertError> {
    let io = |source| ConvertError::Io { path: path.display().to_string(), source };
    let f = std::fs::File::open(path).map_err(io)?;
    let bytes = smelt_tensor::storage::map_file(&f).map_err(io)?;
    let mut h = blake3::Hasher::new();
    for piece in bytes.chunks(piece) {
        if stop.load(Ordering::Relaxed) {
            return Err(io(std::io::Error::new(std::io::ErrorKind::Interrupted, "conversion stopped")));
        }
        if parallel {
            h.update_rayon(piece);
        } else {
            h.update(piece);
        }
        smelt_tensor::storage::release_pages(piece);
    }
    Ok(FileHash {
        path: path.display().to_string(),
        bytes: bytes.len() as u64,
        blake3: h.finalize().to_hex().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Piecewise hashing, one thread or the pool's, gives BLAKE3's one-shot hash; a set stop
    /// flag ends it with an error; an empty file hashes as the empty input.
    #[test]
    fn hash_in_pieces_is_the_hash_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3_000_017u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let want = blake3::hash(&data).to_hex().to_string();
        let go = AtomicBool::new(false);
        for (parallel, piece) in [(false, 1 << 20), (true, 1 << 20), (true, 4096), (false, 32 << 20)] {
            let h = hash_file_in_pieces(&path, parallel, &go, piece).unwrap();
            assert_eq!(
                (h.blake3.as_str(), h.bytes),
                (want.as_str(), data.len() as u64),
                "{parallel} {piece}"
            );
        }
        assert!(hash_file_in_pieces(&path, false, &AtomicBool::new(true), 1 << 20).is_err());
        std::fs::write(&path, b"").unwrap();
        assert_eq!(hash_file(&path, false, &go).unwrap().blake3, blake3::hash(b"").to_hex().to_string());
    }

    fn fixture(rel: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(rel)
    }

    /// Converts `input` to `format` with `scheme`, hashing with a read-back prefix of `prefix`
    /// bytes; returns the report's output hash and length, the file's own, and whether the
    /// streamed hash held.
    fn convert_and_hash(
        input: &Path,
        format: OutputFormat,
        scheme: &str,
        prefix: u64,
    ) -> ((String, u64), (String, u64), bool) {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join(format!("out.{}", format.name()));
        let opts = crate::scheme::SchemeOptions::default();
        let recipe = Recipe::with_quant(Some(crate::scheme::Scheme::parse(scheme, &opts).unwrap()));
        let job = ConvertJob {
            input,
            output: &output,
            recipe: &recipe,
            format,
            threads: Some(2),
            progress: None,
            like: None,
        };
        let (report, streamed) = convert_hashing(&job, prefix).unwrap();
        let bytes = std::fs::read(&output).unwrap();
        (
            (report.output.blake3, report.output.bytes),
            (blake3::hash(&bytes).to_hex().to_string(), bytes.len() as u64),
            streamed,
        )
    }

    /// For every output format, the report's output hash is BLAKE3 of the file's bytes, with
    /// read-back prefixes from 1 KiB to the default. From the case's `streams` on (room for
    /// the header the blob and safetensors writers patch last) the hash is taken as written,
    /// over a file of several regions; below it the streamed hash gives up and the file is
    /// read again, which must give the same figures.
    #[test]
    fn output_hash_is_the_hash_of_the_file_for_every_format() {
        let llama = fixture("hf/tiny-llama-f32");
        let onnx = fixture("onnx/gemm-mix.onnx");
        let cases = [
            (&llama, OutputFormat::Blob, "q8_0", 4096),
            (&llama, OutputFormat::Blob, "int4", 4096),
            (&llama, OutputFormat::Gguf, "q4_0", 1024),
            (&llama, OutputFormat::Safetensors, "nf4", 32768),
            (&llama, OutputFormat::Safetensors, "f16", 8192),
            (&onnx, OutputFormat::Onnx, "int8", 1024),
            (&onnx, OutputFormat::OnnxQdq, "int4", 1024),
        ];
        for (input, format, scheme, streams) in cases {
            for prefix in [1024, 4096, 8192, 32768, OUTPUT_HASH_PREFIX] {
                let (report, file, streamed) = convert_and_hash(input, format, scheme, prefix);
                assert_eq!(report, file, "{format:?} {scheme} prefix {prefix}");
                assert_eq!(streamed, prefix >= streams, "{format:?} {scheme} prefix {prefix}");
            }
            assert!(
                convert_and_hash(input, format, scheme, streams).1 .1 > 2 * streams,
                "{format:?} {scheme}: the file spans more than one region past the prefix"
            );
        }
    }
}
