//! `smelt convert NEW --like OLD`: delta-friendly requantization. Each tensor is quantized
//! fresh as usual, then compared block by block with OLD, the earlier quantized version of the
//! same model: wherever OLD's block still represents the new weights within the bound fresh
//! quantization guarantees (times `--like-tolerance`), its bytes are kept, so a slightly changed
//! tensor comes out mostly byte-identical and an OTA update between the two versions shrinks.
//! The rule is in [`blocks`]; OLD is opened and matched in [`old`].
//!
//! OLD is a smelt blob or a GGUF (what `smelt convert` writes for every scheme but the ONNX and
//! safetensors layouts), the output a blob or a GGUF. A tensor is looked up in OLD by the name
//! it gets in the output; when OLD lacks it or holds it with another scheme, group or shape it
//! is quantized fresh and the report says why. OLD is mapped and read one tensor at a time.

mod blocks;
mod old;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::Serialize;
use smelt_formats::Tensor;
use smelt_quant::nf4::Nf4Absmax;

pub use blocks::Counts;

#[cfg(test)]
mod tests;

use crate::encode::{Encoded, EncodedTensor};
use crate::plan::{OutputFormat, Plan, PlanEntry};
use crate::report::TensorReport;
use crate::ConvertError;
use old::{OldFile, OldTensor};

/// What `--like` was given.
#[derive(Clone, Debug)]
pub struct LikeOptions {
    /// The earlier quantized version.
    pub old: PathBuf,
    /// Multiplier on the bound fresh quantization guarantees (1.0: never worse than it).
    pub tolerance: f32,
}

/// Why `--like` cannot be used; every variant names OLD (or the flag).
#[derive(Debug, thiserror::Error)]
pub enum LikeError {
    /// OLD could not be read.
    #[error("--like {}: {source}", path.display())]
    Open {
        /// OLD.
        path: PathBuf,
        /// The reader's error.
        source: Box<smelt_formats::Error>,
    },
    /// OLD is a model smelt reads but not one it can reuse blocks from.
    #[error("--like {}: a {format} file; --like reuses blocks from a smelt blob (.smelt) or a GGUF (.gguf)", path.display())]
    OldFormat {
        /// OLD.
        path: PathBuf,
        /// Its format.
        format: &'static str,
    },
    /// The output format has no `--like` support.
    #[error("--like writes smelt blobs and GGUF files only, not {format}")]
    Output {
        /// The output format.
        format: &'static str,
    },
    /// A tolerance that is negative or not a number.
    #[error("--like-tolerance must be a finite number >= 0, not {0}")]
    Tolerance(f32),
    /// OLD shares no quantized tensor with the plan: almost surely the wrong file.
    #[error("--like {}: none of the {planned} quantized tensors matches OLD (first: '{first}': {why})", path.display())]
    NothingMatches {
        /// OLD.
        path: PathBuf,
        /// Quantized tensors in the plan.
        planned: usize,
        /// The first of them.
        first: String,
        /// Why it does not match.
        why: String,
    },
    /// One of OLD's tensors is damaged.
    #[error("--like {}: tensor '{tensor}': {why}", path.display())]
    Tensor {
        /// OLD.
        path: PathBuf,
        /// The tensor, by its name in OLD.
        tensor: String,
        /// What is wrong.
        why: String,
    },
}

impl LikeError {
    fn open(path: &Path, source: smelt_formats::Error) -> LikeError {
        LikeError::Open { path: path.to_path_buf(), source: Box::new(source) }
    }
}

/// Where a planned tensor lands in the output: its name there and, for GGUF from an HF
/// checkpoint, the head count its rows are permuted by (see [`crate::run::Sink::stored_as`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAs {
    /// Name in the output (and so in OLD).
    pub name: String,
    /// llama.cpp's Q/K row permutation, by this many heads.
    pub permute_heads: Option<u64>,
}

/// One tensor's `--like` line in the report.
#[derive(Clone, Debug, Serialize)]
pub struct LikeTensorReport {
    /// The name looked up in OLD.
    pub old_name: String,
    /// Whether OLD held the tensor with the same scheme and shape.
    pub matched: bool,
    /// Why the tensor was quantized fresh, when it did not match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why_fresh: Option<String>,
    /// Quantization blocks in the tensor (0 when not matched).
    pub blocks: u64,
    /// Blocks whose old bytes were kept.
    pub reused: u64,
    /// Blocks that kept the old scale with some codes changed.
    pub requantized: u64,
    /// Blocks quantized fresh.
    pub fresh: u64,
    /// SQNR of a fresh quantization, dB (the report's `sqnr_db` is the one written).
    pub fresh_sqnr_db: Option<f64>,
    /// Largest absolute error of a fresh quantization.
    pub fresh_max_abs: Option<f64>,
}

/// The `--like` totals of the report.
#[derive(Clone, Debug, Serialize)]
pub struct LikeTotals {
    /// OLD, as given.
    pub old: String,
    /// `--like-tolerance`.
    pub tolerance: f64,
    /// Quantized tensors in the plan.
    pub tensors: usize,
    /// Of those, the ones OLD held with the same scheme and shape.
    pub matched: usize,
    /// Blocks over the matched tensors.
    pub blocks: u64,
    /// Blocks whose old bytes were kept.
    pub reused: u64,
    /// Blocks that kept the old scale with some codes changed.
    pub requantized: u64,
    /// Blocks quantized fresh.
    pub fresh: u64,
    /// The largest SQNR lost to reuse by one tensor, dB (fresh minus written).
    pub max_sqnr_loss_db: f64,
    /// The largest absolute error written, over the matched tensors.
    pub max_abs: f64,
    /// The largest absolute error a fresh quantization makes on the same tensors.
    pub fresh_max_abs: f64,
}

/// An opened `--like`.
pub(crate) struct Like {
    options: LikeOptions,
    old: OldFile,
}

impl Like {
    /// Opens OLD for output `format`: refused for outputs other than blob and GGUF, for OLD in
    /// another format, and for a tolerance that is not a number >= 0.
    pub(crate) fn open(options: &LikeOptions, format: OutputFormat) -> Result<Like, LikeError> {
        if !(options.tolerance.is_finite() && options.tolerance >= 0.0) {
            return Err(LikeError::Tolerance(options.tolerance));
        }
        if !matches!(format, OutputFormat::Blob | OutputFormat::Gguf) {
            return Err(LikeError::Output { format: format.name() });
        }
        Ok(Like { options: options.clone(), old: old::open(&options.old)? })
    }

    /// Refuses an OLD that shares no quantized tensor with the plan.
    pub(crate) fn check_plan(
        &self,
        plan: &Plan,
        stored_as: impl Fn(usize) -> StoredAs,
    ) -> Result<(), LikeError> {
        let mut planned = 0;
        let mut first = None;
        for (i, e) in plan.entries.iter().enumerate() {
            if !e.scheme.is_quantized() {
                continue;
            }
            planned += 1;
            match self.old.check(&stored_as(i).name, e.scheme, &e.shape) {
                Ok(()) => return Ok(()),
                Err(why) => {
                    first.get_or_insert((e.name.clone(), why));
                }
            }
        }
        match first {
            Some((first, why)) => {
                Err(LikeError::NothingMatches { path: self.options.old.clone(), planned, first, why })
            }
            None => Ok(()),
        }
    }

    /// Applies the rule of [`blocks`] to one freshly encoded tensor: returns what to write and
    /// the tensor's report line (`None` for tensors that are kept or cast).
    pub(crate) fn apply(
        &self,
        entry: &PlanEntry,
        tensor: &Tensor,
        stored_as: &StoredAs,
        mut enc: EncodedTensor,
    ) -> Result<(EncodedTensor, Option<LikeTensorReport>), ConvertError> {
        if !entry.scheme.is_quantized() {
            return Ok((enc, None));
        }
        let fresh_metrics = enc.metrics;
        let mut line = LikeTensorReport {
            old_name: stored_as.name.clone(),
            matched: false,
            why_fresh: None,
            blocks: 0,
            reused: 0,
            requantized: 0,
            fresh: 0,
            fresh_sqnr_db: fresh_metrics.as_ref().map(|m| m.sqnr_db).filter(|v| v.is_finite()),
            fresh_max_abs: fresh_metrics.as_ref().map(|m| m.max_abs),
        };
        if let Err(why) = self.old.check(&stored_as.name, entry.scheme, &entry.shape) {
            line.why_fresh = Some(why);
            return Ok((enc, Some(line)));
        }
        let old = self.old.load(&stored_as.name, entry.scheme, stored_as.permute_heads)?;
        let layout = |why: &str| {
            ConvertError::from(LikeError::Tensor {
                path: self.options.old.clone(),
                tensor: stored_as.name.clone(),
                why: why.to_string(),
            })
        };
        let counts = reuse(tensor, &old, self.options.tolerance, &mut enc, layout)?;
        old.release();
        let Some(counts) = counts else {
            line.matched = true;
            line.why_fresh = Some("OLD's ternary multiplier has no f32 reciprocal".into());
            return Ok((enc, Some(line)));
        };
        line.matched = true;
        line.blocks = counts.blocks;
        line.reused = counts.reused;
        line.requantized = counts.requantized;
        line.fresh = counts.fresh;
        Ok((enc, Some(line)))
    }

    /// Totals over the report's tensor lines.
    pub(crate) fn totals(&self, tensors: &[TensorReport]) -> LikeTotals {
        let mut t = LikeTotals {
            old: self.options.old.display().to_string(),
            tolerance: self.options.tolerance as f64,
            tensors: 0,
            matched: 0,
            blocks: 0,
            reused: 0,
            requantized: 0,
            fresh: 0,
            max_sqnr_loss_db: 0.0,
            max_abs: 0.0,
            fresh_max_abs: 0.0,
        };
        for r in tensors {
            let Some(l) = &r.like else { continue };
            t.tensors += 1;
            if !l.matched {
                continue;
            }
            t.matched += 1;
            t.blocks += l.blocks;
            t.reused += l.reused;
            t.requantized += l.requantized;
            t.fresh += l.fresh;
            if let (Some(f), Some(w)) = (l.fresh_sqnr_db, r.sqnr_db) {
                t.max_sqnr_loss_db = t.max_sqnr_loss_db.max(f - w);
            }
            t.max_abs = t.max_abs.max(r.max_abs.unwrap_or(0.0));
            t.fresh_max_abs = t.fresh_max_abs.max(l.fresh_max_abs.unwrap_or(0.0));
        }
        t
    }
}

/// Applies the rule of [`blocks`] to `enc`, the fresh encoding of `tensor`, against `old`:
/// `enc` becomes what to write, with its error metrics. `layout` makes the error for an OLD
/// whose sections do not fit the encoding (a damaged file). `Ok(None)`: nothing reusable (a
/// ternary multiplier with no f32 reciprocal), `enc` untouched.
pub(crate) fn reuse(
    tensor: &Tensor,
    old: &OldTensor,
    tol: f32,
    enc: &mut EncodedTensor,
    layout: impl Fn(&str) -> ConvertError,
) -> Result<Option<Counts>, ConvertError> {
    let read = |start: usize, len: usize| read_values(tensor, start, len);
    let cols = tensor.shape.last().map_or(1, |&c| c as usize);
    let (counts, sums) = match (&mut enc.encoded, old) {
        (Encoded::Plain { dtype, data }, OldTensor::Ggml { data: od }) if dtype.is_ggml_block() => {
            if od.len() != data.len() {
                return Err(layout("data length differs from the plan's"));
            }
            let mut bytes = data.to_vec();
            let (c, s) = blocks::ggml(&tensor.name, &read, *dtype, cols, tol, &mut bytes, od)?;
            *data = Bytes::from(bytes);
            (c, Some(s))
        }
        (Encoded::Int8(t), OldTensor::Int8 { codes, scales, zeros }) => {
            if codes.len() != t.codes.len() || scales.len() != t.scales.len() || zeros.len() != t.scales.len()
            {
                return Err(layout("int8 sections differ in length from the plan's"));
            }
            let o = blocks::OldInt8 { codes, scales, zeros };
            match t.axis {
                Some(_) => blocks::int8_per_channel(&read, tol, t, &o).map(|(c, s)| (c, Some(s)))?,
                None => blocks::int8_per_tensor(&read, tol, t, &o)?,
            }
        }
        (Encoded::Int4(t), OldTensor::Int4 { packed, scales, zeros }) => {
            if packed.len() != t.rows * t.cols.div_ceil(2)
                || scales.len() != t.scales.len()
                || zeros.len() != t.zeros.len()
            {
                return Err(layout("int4 sections differ in length from the plan's"));
            }
            let (c, s) = blocks::int4(&read, tol, t, &blocks::OldInt4 { packed, scales, zeros })?;
            (c, Some(s))
        }
        (Encoded::Nf4(t), OldTensor::Nf4 { packed, absmax: old_absmax }) => {
            let (n, bs) = (t.len(), t.block_size);
            let Nf4Absmax::Plain(absmax) = &mut t.absmax else {
                return Err(layout("nf4 with double quantization is not reused"));
            };
            if packed.len() != t.packed.len() || old_absmax.len() != absmax.len() {
                return Err(layout("nf4 sections differ in length from the plan's"));
            }
            let o = blocks::OldNf4 { packed, absmax: old_absmax };
            let (c, s) = blocks::nf4(&read, tol, n, bs, &mut t.packed, absmax, &o)?;
            (c, Some(s))
        }
        (Encoded::Ternary(t, _), OldTensor::Ternary { codes, multiplier }) => {
            if codes.len() != t.codes.len() {
                return Err(layout("ternary code count differs from the plan's"));
            }
            let Some(scale) = old::scale_for_multiplier(*multiplier) else { return Ok(None) };
            blocks::ternary(&read, tol, t, codes, scale)?
        }
        _ => return Err(layout("OLD's layout does not match the encoding")),
    };
    if let Some(s) = sums {
        enc.metrics = Some(s.metrics());
    }
    Ok(Some(counts))
}

/// Elements `[start, start + len)` of `t` as f32 (ggml inputs: the covering blocks dequantized).
fn read_values(t: &Tensor, start: usize, len: usize) -> Result<Vec<f32>, ConvertError> {
    let not = || ConvertError::NotQuantizable { tensor: t.name.clone(), dtype: t.dtype };
    let (be, bb) = (t.dtype.block_elems() as usize, t.dtype.block_bytes() as usize);
    if be == 0 || bb == 0 {
        return Err(not());
    }
    let (first, last) = (start / be, (start + len).div_ceil(be));
    let bytes = t.data.get(first * bb..last * bb).ok_or_else(not)?;
    if t.dtype.is_ggml_block() {
        let mut v = smelt_quant::ggml::dequantize_to_vec(t.dtype, bytes)
            .map_err(|source| ConvertError::Quant { tensor: t.name.clone(), source })?;
        v.drain(..start - first * be);
        v.truncate(len);
        return Ok(v);
    }
    smelt_tensor::convert::to_f32_vec(t.dtype, bytes, len).ok_or_else(not)
}

/// The `--like` part of the table for people: one line per quantized tensor, then totals.
pub fn render_table(totals: &LikeTotals, tensors: &[TensorReport]) -> String {
    let mut out = String::new();
    let name_w = tensors.iter().map(|t| t.name.len()).max().unwrap_or(6).clamp(6, 56);
    let _ = writeln!(out, "\n--like {} (tolerance {}):", totals.old, totals.tolerance);
    let _ = writeln!(
        out,
        "{:<name_w$}  {:>8} {:>8} {:>8} {:>8}  {:>17}  {:>21}",
        "tensor", "blocks", "reused", "requant", "fresh", "SQNR dB like/fresh", "max abs like/fresh"
    );
    for t in tensors {
        let (name, Some(l)) = (&t.name, &t.like) else { continue };
        if !l.matched {
            let _ =
                writeln!(out, "{name:<name_w$}  quantized fresh: {}", l.why_fresh.as_deref().unwrap_or(""));
            continue;
        }
        let f2 = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}"));
        let e3 = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.3e}"));
        let (sqnr, max_abs) = (t.sqnr_db, t.max_abs);
        let _ = writeln!(
            out,
            "{name:<name_w$}  {:>8} {:>8} {:>8} {:>8}  {:>17}  {:>21}",
            l.blocks,
            l.reused,
            l.requantized,
            l.fresh,
            format!("{}/{}", f2(sqnr), f2(l.fresh_sqnr_db)),
            format!("{}/{}", e3(max_abs), e3(l.fresh_max_abs)),
        );
    }
    let pct = |k: u64| if totals.blocks == 0 { 0.0 } else { 100.0 * k as f64 / totals.blocks as f64 };
    let _ = writeln!(
        out,
        "{} of {} quantized tensors matched OLD; {} blocks: {} reused ({:.1}%), {} requantized ({:.1}%), {} fresh ({:.1}%); \
         largest SQNR loss {:.2} dB, max abs {:.3e} (fresh {:.3e})",
        totals.matched,
        totals.tensors,
        totals.blocks,
        totals.reused,
        pct(totals.reused),
        totals.requantized,
        pct(totals.requantized),
        totals.fresh,
        pct(totals.fresh),
        totals.max_sqnr_loss_db,
        totals.max_abs,
        totals.fresh_max_abs
    );
    out
}
