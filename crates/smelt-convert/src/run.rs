//! The conversion itself: open, plan, encode tensor after tensor into a format's sink that
//! writes to an [`AtomicFile`], commit, hash, report.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use smelt_formats::{Model, Tensor};

use crate::atomic::AtomicFile;
use crate::encode::{encode, Encoded, EncodedTensor};
use crate::plan::{OutputFormat, Plan, PlanEntry, Reason};
use crate::recipe::Recipe;
use crate::report::{FileHash, Report, Timings, TensorReport, Totals};
use crate::ConvertError;

/// Where encoded tensors go: one implementation per output format.
pub trait Sink: Send {
    /// Encodes one planned tensor. Sinks whose layout needs the values in another orientation
    /// (ONNX MatMul weights are `[K, N]`) override it.
    fn encode(&self, entry: &PlanEntry, tensor: &Tensor, allow_nonfinite: bool) -> Result<EncodedTensor, ConvertError> {
        encode(tensor, entry.scheme, allow_nonfinite)
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
    pub progress: Option<&'a (dyn Fn(usize, usize, &str) + Sync)>,
}

/// Runs a conversion and returns its report. On any error the output does not exist (not even
/// a temporary file).
pub fn convert(job: &ConvertJob<'_>) -> Result<Report, ConvertError> {
    let start = Instant::now();
    crate::atomic::check_destination(job.output)
        .map_err(|source| ConvertError::Io { path: job.output.display().to_string(), source })?;
    let model = smelt_formats::open(job.input)?;
    let plan = crate::plan::plan(&model, job.recipe, job.format)?;
    let read_s = start.elapsed().as_secs_f64();

    let threads = job.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| ConvertError::Write { path: job.output.display().to_string(), message: e.to_string() })?;

    let t_convert = Instant::now();
    let file = AtomicFile::create(job.output)
        .map_err(|source| ConvertError::Io { path: job.output.display().to_string(), source })?;
    let ctx = SinkContext { model: &model, plan: &plan, recipe: job.recipe, input: job.input, output: job.output };
    let mut sink = crate::sinks::open(job.format, file, &ctx)?;
    let mut tensors = Vec::with_capacity(plan.entries.len());
    pool.install(|| -> Result<(), ConvertError> {
        for (i, entry) in plan.entries.iter().enumerate() {
            if let Some(p) = job.progress {
                p(i, plan.entries.len(), &entry.name);
            }
            let t0 = Instant::now();
            let tensor = &model.tensors[entry.index];
            let enc = sink.encode(entry, tensor, job.recipe.allow_nonfinite)?;
            let output_name = sink.write(entry, &enc.encoded)?;
            // Done with this tensor's input: its pages leave the resident set (memory stays
            // bounded by a few tensors, not by the input file).
            smelt_tensor::storage::release_pages(&tensor.data);
            tensors.push(TensorReport {
                name: entry.name.clone(),
                output_name,
                dtype: entry.dtype.name().to_string(),
                shape: entry.shape.clone(),
                scheme: entry.scheme.to_string(),
                reason: entry.reason.to_string(),
                fallback: matches!(entry.reason, Reason::Fallback { .. }),
                bytes_in: entry.in_bytes,
                bytes_out: enc.encoded.stored_bytes(),
                sqnr_db: enc.metrics.as_ref().map(|m| m.sqnr_db).filter(|v| v.is_finite()),
                cosine: enc.metrics.as_ref().map(|m| m.cosine),
                max_abs: enc.metrics.as_ref().map(|m| m.max_abs),
                mean_abs: enc.metrics.as_ref().map(|m| m.mean_abs),
                seconds: t0.elapsed().as_secs_f64(),
            });
        }
        Ok(())
    })?;
    let file = sink.finish()?;
    file.commit().map_err(|source| ConvertError::Io { path: job.output.display().to_string(), source })?;
    let convert_s = t_convert.elapsed().as_secs_f64();

    let t_hash = Instant::now();
    let (inputs, output) = pool.install(|| {
        let inputs = model.files.iter().map(|p| hash_file(p)).collect::<Result<Vec<_>, _>>()?;
        Ok::<_, ConvertError>((inputs, hash_file(job.output)?))
    })?;
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
    Ok(Report {
        schema: "smelt.convert-report/1",
        tool_version: env!("CARGO_PKG_VERSION"),
        input_format: model.format.name().to_string(),
        inputs,
        output,
        output_format: job.format.name().to_string(),
        recipe: job.recipe.source.clone(),
        threads,
        totals,
        timings: Timings { read: read_s, convert: convert_s, hash: hash_s, total: start.elapsed().as_secs_f64() },
        tensors,
    })
}

fn hash_file(path: &Path) -> Result<FileHash, ConvertError> {
    let io = |source| ConvertError::Io { path: path.display().to_string(), source };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = blake3::Hasher::new();
    // Large reads hashed with every thread of the pool (BLAKE3's tree makes the hash the
    // same whatever the split).
    let mut buf = vec![0u8; 16 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update_rayon(&buf[..n]);
        bytes += n as u64;
    }
    Ok(FileHash { path: path.display().to_string(), bytes, blake3: h.finalize().to_hex().to_string() })
}
