//! The conversion report: per tensor what was done and what it cost, totals, timings, and the
//! hashes that tie the output to its inputs. Serialized as JSON (schema
//! `smelt.convert-report/1`, docs/convert-report.md) and rendered as a table for people.

use std::fmt::Write as _;

use serde::Serialize;

/// One tensor's line in the report.
#[derive(Clone, Debug, Serialize)]
pub struct TensorReport {
    /// Input name.
    pub name: String,
    /// Name in the output, when the format renames (HF → GGUF).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_name: Option<String>,
    /// Input dtype.
    pub dtype: String,
    /// Row-major shape.
    pub shape: Vec<u64>,
    /// Scheme applied.
    pub scheme: String,
    /// Why that scheme.
    pub reason: String,
    /// True when the plan fell back from the wanted scheme.
    pub fallback: bool,
    /// Stored input bytes.
    pub bytes_in: u64,
    /// Stored output bytes (data and statistics, without container overhead).
    pub bytes_out: u64,
    /// Signal-to-quantization-noise ratio in dB (`null`: kept bytes, or an infinite ratio).
    pub sqnr_db: Option<f64>,
    /// Cosine similarity with the input values.
    pub cosine: Option<f64>,
    /// Largest absolute error.
    pub max_abs: Option<f64>,
    /// Mean absolute error.
    pub mean_abs: Option<f64>,
    /// Seconds spent encoding this tensor.
    pub seconds: f64,
    /// With `--like`, for quantized tensors: blocks reused from OLD and the error fresh
    /// quantization would have made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub like: Option<crate::like::LikeTensorReport>,
}

/// A file and its hash.
#[derive(Clone, Debug, Serialize)]
pub struct FileHash {
    /// Path as given or found.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// BLAKE3, hex.
    pub blake3: String,
}

/// Totals over the model.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    /// Tensors.
    pub tensors: usize,
    /// Tensors quantized (not kept or cast).
    pub quantized: usize,
    /// Tensors that fell back from the wanted scheme.
    pub fallbacks: usize,
    /// Parameters.
    pub parameters: u64,
    /// Stored input tensor bytes.
    pub bytes_in: u64,
    /// Stored output tensor bytes.
    pub bytes_out: u64,
    /// Output file size.
    pub file_bytes: u64,
    /// Output tensor bits per parameter.
    pub bits_per_weight: f64,
}

/// Wall-clock timings in seconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timings {
    /// Opening and parsing the input.
    pub read: f64,
    /// Encoding and writing tensors.
    pub convert: f64,
    /// Hashing inputs and output.
    pub hash: f64,
    /// Everything.
    pub total: f64,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Always `smelt.convert-report/1`.
    pub schema: &'static str,
    /// smelt's version.
    pub tool_version: &'static str,
    /// Input format.
    pub input_format: String,
    /// Every input file with its hash.
    pub inputs: Vec<FileHash>,
    /// The output file with its hash.
    pub output: FileHash,
    /// Output format.
    pub output_format: String,
    /// The recipe text (empty when none was given).
    pub recipe: String,
    /// Worker threads used.
    pub threads: usize,
    /// Totals.
    pub totals: Totals,
    /// Timings.
    pub timings: Timings,
    /// With `--like`: OLD, the tolerance and the blocks reused over the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub like: Option<crate::like::LikeTotals>,
    /// One entry per tensor, in input order.
    pub tensors: Vec<TensorReport>,
}

impl Report {
    /// The report as a table for people.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let name_w = self.tensors.iter().map(|t| t.name.len()).max().unwrap_or(6).clamp(6, 56);
        let _ = writeln!(
            out,
            "{:<name_w$}  {:<22} {:>10} {:>10} {:>9} {:>9} {:>10}",
            "tensor", "scheme", "in", "out", "SQNR dB", "cosine", "max abs"
        );
        for t in &self.tensors {
            let f = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |x| format!("{x:.prec$}"));
            let _ = writeln!(
                out,
                "{:<name_w$}  {:<22} {:>10} {:>10} {:>9} {:>9} {:>10}{}",
                t.name,
                t.scheme,
                t.bytes_in,
                t.bytes_out,
                f(t.sqnr_db, 2),
                f(t.cosine, 5),
                t.max_abs.map_or("-".to_string(), |x| format!("{x:.3e}")),
                if t.fallback { "  (fallback)" } else { "" }
            );
        }
        let s = &self.totals;
        let _ = writeln!(
            out,
            "\n{} tensors ({} quantized, {} fallbacks), {} parameters: {} -> {} bytes of tensors, \
             {:.3} bits per weight; file {} bytes, {:.2} s",
            s.tensors,
            s.quantized,
            s.fallbacks,
            s.parameters,
            s.bytes_in,
            s.bytes_out,
            s.bits_per_weight,
            s.file_bytes,
            self.timings.total
        );
        if let Some(like) = &self.like {
            out.push_str(&crate::like::render_table(like, &self.tensors));
        }
        out
    }
}
