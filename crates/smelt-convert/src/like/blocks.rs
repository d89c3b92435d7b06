//! The per-block rule of `--like`, and one engine per encoding that applies it to a tensor.
//!
//! A block is what shares quantization parameters: a ggml block (32 or 256 weights), an int4
//! group, an NF4 block of 64, an int8 row (per-channel) and, for per-tensor schemes (ternary,
//! per-tensor int8), the whole tensor. For each block, with `w` the new weights, `f` their fresh
//! quantization decoded and `o` the old block:
//!
//! - every weight `i` has a bound `b_i = tolerance × max(g_i, |w_i − f_i|)`, where `g_i` is what
//!   rounding to the fresh block's grid guarantees (half its step: `d/2` for ggml types and int4,
//!   `scale/2` for int8, `mean|W|/2` for ternary; for NF4 half the wider of the two gaps around
//!   the fresh code, times the fresh absmax); `|w_i − f_i|` covers the weights where fresh
//!   quantization itself goes past `g_i` (clamping at the end of the code range, an f16-rounded
//!   scale);
//! - the old block is **reused** (bytes copied) when every `|w_i − o_i| ≤ b_i`;
//! - else it is **requantized**: the old scale (and zero, offset) kept, each weight keeps its old
//!   code when that is within `b_i` and otherwise takes the nearest code of the old grid, and the
//!   block is accepted when every weight is then within `b_i` (only the moved codes differ);
//! - else the block is quantized **fresh**.
//!
//! So with `--like` no weight is ever further from its new value than `tolerance` times what
//! fresh quantization guarantees for it. Decisions depend on the block alone, so the bytes are
//! the same whatever the thread count; chunks of blocks run in parallel and their error sums are
//! joined in chunk order.

use rayon::prelude::*;
use smelt_quant::ggml::block_codes::{legacy_codes, set_legacy_codes, LegacyGrid, LEGACY_BLOCK};
use smelt_quant::int4::Int4Tensor;
use smelt_quant::int8::{Int8Mode, Int8Tensor};
use smelt_quant::metrics::ErrorSums;
use smelt_quant::nf4::NF4_CODE;
use smelt_quant::ternary::TernaryTensor;
use smelt_tensor::DType;

use crate::encode::CHUNK_ELEMS;
use crate::ConvertError;

/// Reads new weights `[start, start + len)` of the tensor as f32.
pub(crate) type Reader<'a> = dyn Fn(usize, usize) -> Result<Vec<f32>, ConvertError> + Sync + 'a;

/// Blocks by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Blocks in the tensor.
    pub blocks: u64,
    /// Old block bytes kept as they are.
    pub reused: u64,
    /// Old scale kept, some codes changed.
    pub requantized: u64,
    /// Quantized fresh.
    pub fresh: u64,
}

impl Counts {
    fn add(&mut self, o: Outcome) {
        self.blocks += 1;
        match o {
            Outcome::Reused => self.reused += 1,
            Outcome::Requantized => self.requantized += 1,
            Outcome::Fresh => self.fresh += 1,
        }
    }

    fn merge(mut self, o: Counts) -> Counts {
        self.blocks += o.blocks;
        self.reused += o.reused;
        self.requantized += o.requantized;
        self.fresh += o.fresh;
        self
    }
}

/// What became of one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Reused,
    Requantized,
    Fresh,
}

/// The values a block's codes decode to, as the format's dequantizer computes them.
pub(crate) trait Grid {
    fn value(&self, q: i32) -> f32;
    fn nearest(&self, x: f32) -> i32;
}

impl Grid for LegacyGrid {
    fn value(&self, q: i32) -> f32 {
        LegacyGrid::value(self, q)
    }
    fn nearest(&self, x: f32) -> i32 {
        LegacyGrid::nearest(self, x)
    }
}

/// The code in `lo..=hi` nearest to `x` among the neighbours of `approx` (the lower on a tie);
/// `fallback` for NaN.
fn nearest_around(x: f32, approx: f32, lo: i32, hi: i32, fallback: i32, value: impl Fn(i32) -> f32) -> i32 {
    if approx.is_nan() || x.is_nan() {
        return fallback.clamp(lo, hi);
    }
    let centre = approx.round().clamp(lo as f32, hi as f32) as i32;
    let (mut best, mut best_err) = (centre, (x - value(centre)).abs());
    for q in [centre - 1, centre + 1] {
        if (lo..=hi).contains(&q) {
            let e = (x - value(q)).abs();
            if e < best_err || (e == best_err && q < best) {
                (best, best_err) = (q, e);
            }
        }
    }
    best
}

/// INT8: `(q − zero) as f32 × scale` (ONNX DequantizeLinear).
struct Int8Grid {
    scale: f32,
    zero: i32,
    lo: i32,
    hi: i32,
}

impl Int8Grid {
    fn new(scale: f32, zero_stored: u8, mode: Int8Mode) -> Int8Grid {
        let (lo, hi) = mode.saturation_range();
        Int8Grid { scale, zero: stored_to_i32(zero_stored, mode), lo, hi }
    }
}

impl Grid for Int8Grid {
    fn value(&self, q: i32) -> f32 {
        (q - self.zero) as f32 * self.scale
    }
    fn nearest(&self, x: f32) -> i32 {
        nearest_around(x, x / self.scale + self.zero as f32, self.lo, self.hi, self.zero, |q| self.value(q))
    }
}

fn stored_to_i32(b: u8, mode: Int8Mode) -> i32 {
    match mode {
        Int8Mode::Symmetric => b as i8 as i32,
        Int8Mode::Asymmetric => b as i32,
    }
}

fn i32_to_stored(q: i32, mode: Int8Mode) -> u8 {
    match mode {
        Int8Mode::Symmetric => q as i8 as u8,
        Int8Mode::Asymmetric => q as u8,
    }
}

/// Block int4: `scale × (q − zero)` in f32, as GPTQ.
struct Int4Grid {
    scale: f32,
    zero: u8,
}

impl Grid for Int4Grid {
    fn value(&self, q: i32) -> f32 {
        self.scale * (q as f32 - self.zero as f32)
    }
    fn nearest(&self, x: f32) -> i32 {
        nearest_around(x, x / self.scale + self.zero as f32, 0, 15, self.zero as i32, |q| self.value(q))
    }
}

/// NF4: `NF4_CODE[q] × absmax`.
struct Nf4Grid {
    absmax: f32,
}

impl Grid for Nf4Grid {
    fn value(&self, q: i32) -> f32 {
        NF4_CODE[q as usize] * self.absmax
    }
    fn nearest(&self, x: f32) -> i32 {
        let mut best = 7;
        let mut best_err = (x - self.value(7)).abs();
        for q in 0..16 {
            let e = (x - self.value(q)).abs();
            if e < best_err {
                (best, best_err) = (q, e);
            }
        }
        best
    }
}

/// Half the wider gap around NF4 code `q`: the largest error rounding to the code can make.
fn nf4_half_cell(q: usize) -> f32 {
    let below = if q > 0 { NF4_CODE[q] - NF4_CODE[q - 1] } else { 0.0 };
    let above = if q < 15 { NF4_CODE[q + 1] - NF4_CODE[q] } else { 0.0 };
    below.max(above) / 2.0
}

/// Ternary: `q as f32 / scale`, `q` in {-1, 0, 1}.
struct TernaryGrid {
    scale: f32,
}

impl Grid for TernaryGrid {
    fn value(&self, q: i32) -> f32 {
        q as f32 / self.scale
    }
    fn nearest(&self, x: f32) -> i32 {
        nearest_around(x, x * self.scale, -1, 1, 0, |q| self.value(q))
    }
}

/// The rule of the module documentation for one block: `old` codes on `grid` against new
/// weights `w`, whose fresh quantization decodes to `fresh` and guarantees `guarantee(i)`.
/// Writes the codes to keep into `out` (untouched when the outcome is `Fresh`).
pub(crate) fn decide<G: Grid>(
    w: &[f32],
    fresh: &[f32],
    guarantee: impl Fn(usize) -> f32,
    tolerance: f32,
    old: &[i32],
    grid: &G,
    out: &mut [i32],
) -> Outcome {
    let mut changed = false;
    for i in 0..w.len() {
        let bound = tolerance * guarantee(i).max((w[i] - fresh[i]).abs());
        let keep = old[i];
        // Written so that NaN anywhere fails the test.
        if (w[i] - grid.value(keep)).abs() <= bound {
            out[i] = keep;
            continue;
        }
        let q = grid.nearest(w[i]);
        if (w[i] - grid.value(q)).abs() <= bound {
            out[i] = q;
            changed = true;
            continue;
        }
        return Outcome::Fresh;
    }
    if changed {
        Outcome::Requantized
    } else {
        Outcome::Reused
    }
}

fn join(parts: Vec<Result<(Counts, ErrorSums), ConvertError>>) -> Result<(Counts, ErrorSums), ConvertError> {
    let mut counts = Counts::default();
    let mut sums = ErrorSums::default();
    for p in parts {
        let (c, s) = p?;
        counts = counts.merge(c);
        sums = sums.merge(&s);
    }
    Ok((counts, sums))
}

fn quant_err(name: &str, source: smelt_quant::QuantError) -> ConvertError {
    ConvertError::Quant { tensor: name.to_string(), source }
}

/// ggml block types: legacy blocks by the full rule, the others (TQ1_0, TQ2_0) reused whole or
/// quantized fresh. `fresh` becomes the result; `old` has the same length and layout.
pub(crate) fn ggml(
    name: &str,
    read: &Reader<'_>,
    dtype: DType,
    cols: usize,
    tolerance: f32,
    fresh: &mut [u8],
    old: &[u8],
) -> Result<(Counts, ErrorSums), ConvertError> {
    let (be, bb) = (dtype.block_elems() as usize, dtype.block_bytes() as usize);
    let row_bytes = cols / be * bb;
    if row_bytes == 0 || fresh.len() != old.len() || fresh.len() % row_bytes != 0 {
        return Err(ConvertError::Shape {
            tensor: name.into(),
            why: format!("{dtype} data is not whole rows"),
        });
    }
    let rpc = (CHUNK_ELEMS / cols).max(1);
    let legacy = be == LEGACY_BLOCK && legacy_codes(dtype, &old[..bb], &mut [0; LEGACY_BLOCK]).is_some();
    let parts = fresh
        .par_chunks_mut(rpc * row_bytes)
        .zip(old.par_chunks(rpc * row_bytes))
        .enumerate()
        .map(|(c, (f, o))| -> Result<(Counts, ErrorSums), ConvertError> {
            let n = f.len() / bb * be;
            let w = read(c * rpc * cols, n)?;
            let mut fd = vec![0f32; n];
            smelt_quant::ggml::dequantize(dtype, f, &mut fd).map_err(|e| quant_err(name, e))?;
            let mut counts = Counts::default();
            let mut od = vec![0f32; be];
            for (b, (fb, ob)) in f.chunks_exact_mut(bb).zip(o.chunks_exact(bb)).enumerate() {
                let (wb, fdb) = (&w[b * be..(b + 1) * be], &fd[b * be..(b + 1) * be]);
                let outcome = if legacy {
                    let mut old_codes = [0i32; LEGACY_BLOCK];
                    let mut fresh_codes = [0i32; LEGACY_BLOCK];
                    let grid = legacy_codes(dtype, ob, &mut old_codes).expect("legacy block");
                    let fresh_grid = legacy_codes(dtype, fb, &mut fresh_codes).expect("legacy block");
                    let g = fresh_grid.d.abs() / 2.0;
                    let mut out = [0i32; LEGACY_BLOCK];
                    let outcome = decide(wb, fdb, |_| g, tolerance, &old_codes, &grid, &mut out);
                    match outcome {
                        Outcome::Reused => fb.copy_from_slice(ob),
                        Outcome::Requantized => {
                            fb.copy_from_slice(ob);
                            set_legacy_codes(dtype, fb, &out);
                        }
                        Outcome::Fresh => {}
                    }
                    outcome
                } else {
                    // TQ1_0 / TQ2_0 keep their f16 scale in the last two bytes.
                    let d = smelt_quant::ggml::float::f16_le_to_f32([fb[bb - 2], fb[bb - 1]]);
                    smelt_quant::ggml::dequantize(dtype, ob, &mut od).map_err(|e| quant_err(name, e))?;
                    let g = d.abs() / 2.0;
                    let fits =
                        (0..be).all(|i| (wb[i] - od[i]).abs() <= tolerance * g.max((wb[i] - fdb[i]).abs()));
                    if fits {
                        fb.copy_from_slice(ob);
                        Outcome::Reused
                    } else {
                        Outcome::Fresh
                    }
                };
                counts.add(outcome);
            }
            smelt_quant::ggml::dequantize(dtype, f, &mut fd).map_err(|e| quant_err(name, e))?;
            Ok((counts, ErrorSums::of(&w, &fd)))
        })
        .collect::<Vec<_>>();
    join(parts)
}

/// The old side of an INT8 tensor: codes as stored, one scale and zero per channel.
pub(crate) struct OldInt8<'a> {
    pub codes: &'a [u8],
    pub scales: &'a [f32],
    pub zeros: &'a [u8],
}

/// Per-channel INT8 (axis 0): one block per channel. `fresh` becomes the result.
pub(crate) fn int8_per_channel(
    read: &Reader<'_>,
    tolerance: f32,
    fresh: &mut Int8Tensor,
    old: &OldInt8<'_>,
) -> Result<(Counts, ErrorSums), ConvertError> {
    let channels = fresh.scales.len();
    let n = fresh.codes.len();
    if channels == 0 || n % channels != 0 {
        return Ok((Counts::default(), ErrorSums::default()));
    }
    let run = n / channels;
    let rpc = (CHUNK_ELEMS / run.max(1)).max(1);
    let mode = fresh.mode;
    let parts = fresh
        .codes
        .par_chunks_mut(rpc * run)
        .zip(fresh.scales.par_chunks_mut(rpc))
        .zip(fresh.zero_points.par_chunks_mut(rpc))
        .enumerate()
        .map(|(c, ((codes, scales), zeros))| -> Result<(Counts, ErrorSums), ConvertError> {
            let w = read(c * rpc * run, codes.len())?;
            let mut counts = Counts::default();
            let mut decoded = Vec::with_capacity(w.len());
            let mut old_codes = vec![0i32; run];
            let mut out = vec![0i32; run];
            let mut fd = vec![0f32; run];
            for (k, codes) in codes.chunks_mut(run).enumerate() {
                let ch = c * rpc + k;
                let wk = &w[k * run..(k + 1) * run];
                let fresh_grid = Int8Grid::new(scales[k], zeros[k], mode);
                for (d, &b) in fd.iter_mut().zip(codes.iter()) {
                    *d = fresh_grid.value(stored_to_i32(b, mode));
                }
                let grid = Int8Grid::new(old.scales[ch], old.zeros[ch], mode);
                for (q, &b) in old_codes.iter_mut().zip(&old.codes[ch * run..(ch + 1) * run]) {
                    *q = stored_to_i32(b, mode);
                }
                let g = fresh_grid.scale / 2.0;
                let outcome = decide(wk, &fd, |_| g, tolerance, &old_codes, &grid, &mut out);
                if outcome != Outcome::Fresh {
                    for (b, &q) in codes.iter_mut().zip(&out) {
                        *b = i32_to_stored(q, mode);
                    }
                    scales[k] = old.scales[ch];
                    zeros[k] = old.zeros[ch];
                }
                counts.add(outcome);
                let g = Int8Grid::new(scales[k], zeros[k], mode);
                decoded.extend(codes.iter().map(|&b| g.value(stored_to_i32(b, mode))));
            }
            Ok((counts, ErrorSums::of(&w, &decoded)))
        })
        .collect::<Vec<_>>();
    join(parts)
}

/// The old side of a block-int4 tensor: the blob's packing (two codes per byte, first in the
/// low nibble, rows padded to a byte), scales and zeros per (row, group).
pub(crate) struct OldInt4<'a> {
    pub packed: &'a [u8],
    pub scales: &'a [f32],
    pub zeros: &'a [u8],
}

/// Block int4: one block per (row, group). `fresh` becomes the result.
pub(crate) fn int4(
    read: &Reader<'_>,
    tolerance: f32,
    fresh: &mut Int4Tensor,
    old: &OldInt4<'_>,
) -> Result<(Counts, ErrorSums), ConvertError> {
    let (cols, gs) = (fresh.cols, fresh.group_size.max(1));
    if cols == 0 {
        return Ok((Counts::default(), ErrorSums::default()));
    }
    let groups = fresh.groups();
    let row_bytes = cols.div_ceil(2);
    let rpc = (CHUNK_ELEMS / cols).max(1);
    let parts = fresh
        .codes
        .par_chunks_mut(rpc * cols)
        .zip(fresh.scales.par_chunks_mut(rpc * groups))
        .zip(fresh.zeros.par_chunks_mut(rpc * groups))
        .enumerate()
        .map(|(c, ((codes, scales), zeros))| -> Result<(Counts, ErrorSums), ConvertError> {
            let w = read(c * rpc * cols, codes.len())?;
            let mut counts = Counts::default();
            let mut decoded = Vec::with_capacity(w.len());
            for (r, row) in codes.chunks_mut(cols).enumerate() {
                let abs_row = c * rpc + r;
                let packed = &old.packed[abs_row * row_bytes..(abs_row + 1) * row_bytes];
                for (g, group) in row.chunks_mut(gs).enumerate() {
                    let k = r * groups + g;
                    let ko = abs_row * groups + g;
                    let start = r * cols + g * gs;
                    let wg = &w[start..start + group.len()];
                    let fresh_grid = Int4Grid { scale: scales[k], zero: zeros[k] };
                    let fd: Vec<f32> = group.iter().map(|&q| fresh_grid.value(q as i32)).collect();
                    let old_codes: Vec<i32> = (g * gs..g * gs + group.len())
                        .map(|col| {
                            let byte = packed[col / 2];
                            (if col % 2 == 0 { byte & 0x0f } else { byte >> 4 }) as i32
                        })
                        .collect();
                    let grid = Int4Grid { scale: old.scales[ko], zero: old.zeros[ko] };
                    let gbound = fresh_grid.scale.abs() / 2.0;
                    let mut out = vec![0i32; group.len()];
                    let outcome = decide(wg, &fd, |_| gbound, tolerance, &old_codes, &grid, &mut out);
                    if outcome != Outcome::Fresh {
                        for (q, &o) in group.iter_mut().zip(&out) {
                            *q = o as u8;
                        }
                        scales[k] = old.scales[ko];
                        zeros[k] = old.zeros[ko];
                    }
                    counts.add(outcome);
                    let g = Int4Grid { scale: scales[k], zero: zeros[k] };
                    decoded.extend(group.iter().map(|&q| g.value(q as i32)));
                }
            }
            Ok((counts, ErrorSums::of(&w, &decoded)))
        })
        .collect::<Vec<_>>();
    join(parts)
}

/// The old side of an NF4 tensor without double quantization.
pub(crate) struct OldNf4<'a> {
    pub packed: &'a [u8],
    pub absmax: &'a [f32],
}

fn nibble(packed: &[u8], i: usize) -> usize {
    let byte = packed[i / 2];
    (if i % 2 == 0 { byte >> 4 } else { byte & 0x0f }) as usize
}

fn set_nibble(packed: &mut [u8], i: usize, q: u8) {
    let byte = &mut packed[i / 2];
    *byte = if i % 2 == 0 { (*byte & 0x0f) | (q << 4) } else { (*byte & 0xf0) | q };
}

/// NF4 (plain absmax): one block per `block_size` elements of the flattened tensor. `fresh`
/// (`packed`, `absmax`) becomes the result.
pub(crate) fn nf4(
    read: &Reader<'_>,
    tolerance: f32,
    n: usize,
    block_size: usize,
    packed: &mut [u8],
    absmax: &mut [f32],
    old: &OldNf4<'_>,
) -> Result<(Counts, ErrorSums), ConvertError> {
    if n == 0 || block_size == 0 || block_size % 2 != 0 {
        return Ok((Counts::default(), ErrorSums::default()));
    }
    let per = (CHUNK_ELEMS / block_size).max(1) * block_size;
    let parts = packed
        .par_chunks_mut(per / 2)
        .zip(absmax.par_chunks_mut(per / block_size))
        .enumerate()
        .map(|(c, (p, a))| -> Result<(Counts, ErrorSums), ConvertError> {
            let start = c * per;
            let len = per.min(n - start);
            let w = read(start, len)?;
            let mut counts = Counts::default();
            let mut decoded = Vec::with_capacity(len);
            for (b, am) in a.iter_mut().enumerate() {
                let lo = b * block_size;
                let hi = (lo + block_size).min(len);
                let wb = &w[lo..hi];
                let fresh_codes: Vec<usize> = (lo..hi).map(|i| nibble(p, i)).collect();
                let fresh_grid = Nf4Grid { absmax: *am };
                let fd: Vec<f32> = fresh_codes.iter().map(|&q| fresh_grid.value(q as i32)).collect();
                let ob = c * per / block_size + b;
                let old_codes: Vec<i32> =
                    (start + lo..start + hi).map(|i| nibble(old.packed, i) as i32).collect();
                let grid = Nf4Grid { absmax: old.absmax[ob] };
                let fresh_abs = am.abs();
                let mut out = vec![0i32; wb.len()];
                let outcome = decide(
                    wb,
                    &fd,
                    |i| fresh_abs * nf4_half_cell(fresh_codes[i]),
                    tolerance,
                    &old_codes,
                    &grid,
                    &mut out,
                );
                if outcome != Outcome::Fresh {
                    for (i, &q) in out.iter().enumerate() {
                        set_nibble(p, lo + i, q as u8);
                    }
                    *am = old.absmax[ob];
                }
                counts.add(outcome);
                let g = Nf4Grid { absmax: *am };
                decoded.extend((lo..hi).map(|i| g.value(nibble(p, i) as i32)));
            }
            Ok((counts, ErrorSums::of(&w, &decoded)))
        })
        .collect::<Vec<_>>();
    join(parts)
}

/// The outcome of a tensor-wide block, before it is applied.
struct Whole<T> {
    codes: Vec<T>,
    outcome: Outcome,
    sums: ErrorSums,
}

/// Stored codes and the grid they index.
struct Side<'a, T, G> {
    codes: &'a [T],
    grid: &'a G,
}

/// One block over the whole tensor, streamed: each chunk decided under the old grid, the block
/// kept only when every chunk fits. `code_of`/`store` convert between stored and integer codes.
fn whole_tensor<T: Copy + Send + Sync + Default, G: Grid + Sync>(
    read: &Reader<'_>,
    tolerance: f32,
    fresh: Side<'_, T, G>,
    old: Side<'_, T, G>,
    guarantee: f32,
    code_of: impl Fn(T) -> i32 + Sync,
    store: impl Fn(i32) -> T + Sync,
) -> Result<Whole<T>, ConvertError> {
    let (fresh_codes, fresh_grid, old_codes, grid) = (fresh.codes, fresh.grid, old.codes, old.grid);
    let n = fresh_codes.len();
    let mut codes = vec![T::default(); n];
    let parts = codes
        .par_chunks_mut(CHUNK_ELEMS)
        .enumerate()
        .map(|(c, out)| -> Result<(Outcome, ErrorSums), ConvertError> {
            let start = c * CHUNK_ELEMS;
            let w = read(start, out.len())?;
            let fd: Vec<f32> =
                fresh_codes[start..start + out.len()].iter().map(|&q| fresh_grid.value(code_of(q))).collect();
            let old: Vec<i32> = old_codes[start..start + out.len()].iter().map(|&q| code_of(q)).collect();
            let mut chosen = vec![0i32; out.len()];
            let outcome = decide(&w, &fd, |_| guarantee, tolerance, &old, grid, &mut chosen);
            for (o, &q) in out.iter_mut().zip(&chosen) {
                *o = store(q);
            }
            let decoded: Vec<f32> = chosen.iter().map(|&q| grid.value(q)).collect();
            Ok((outcome, ErrorSums::of(&w, &decoded)))
        })
        .collect::<Vec<_>>();
    let mut outcome = Outcome::Reused;
    let mut sums = ErrorSums::default();
    for p in parts {
        let (o, s) = p?;
        outcome = match (outcome, o) {
            (Outcome::Fresh, _) | (_, Outcome::Fresh) => Outcome::Fresh,
            (Outcome::Requantized, _) | (_, Outcome::Requantized) => Outcome::Requantized,
            _ => Outcome::Reused,
        };
        sums = sums.merge(&s);
    }
    Ok(Whole { codes, outcome, sums })
}

/// Per-tensor INT8: one block. `fresh` becomes the result; `None` sums when quantized fresh.
pub(crate) fn int8_per_tensor(
    read: &Reader<'_>,
    tolerance: f32,
    fresh: &mut Int8Tensor,
    old: &OldInt8<'_>,
) -> Result<(Counts, Option<ErrorSums>), ConvertError> {
    let mode = fresh.mode;
    let fresh_grid = Int8Grid::new(fresh.scales[0], fresh.zero_points[0], mode);
    let grid = Int8Grid::new(old.scales[0], old.zeros[0], mode);
    let whole = whole_tensor(
        read,
        tolerance,
        Side { codes: &fresh.codes, grid: &fresh_grid },
        Side { codes: old.codes, grid: &grid },
        fresh_grid.scale / 2.0,
        |b| stored_to_i32(b, mode),
        |q| i32_to_stored(q, mode),
    )?;
    let mut counts = Counts::default();
    counts.add(whole.outcome);
    if whole.outcome == Outcome::Fresh {
        return Ok((counts, None));
    }
    fresh.codes = whole.codes;
    fresh.scales[0] = old.scales[0];
    fresh.zero_points[0] = old.zeros[0];
    Ok((counts, Some(whole.sums)))
}

/// Ternary: one block. `scale` is the multiplier whose reciprocal the old file stores.
/// `fresh` becomes the result; `None` sums when quantized fresh.
pub(crate) fn ternary(
    read: &Reader<'_>,
    tolerance: f32,
    fresh: &mut TernaryTensor,
    old_codes: &[i8],
    old_scale: f32,
) -> Result<(Counts, Option<ErrorSums>), ConvertError> {
    let fresh_grid = TernaryGrid { scale: fresh.scale };
    let grid = TernaryGrid { scale: old_scale };
    let whole = whole_tensor(
        read,
        tolerance,
        Side { codes: &fresh.codes, grid: &fresh_grid },
        Side { codes: old_codes, grid: &grid },
        fresh_grid.value(1).abs() / 2.0,
        |q| q as i32,
        |q| q as i8,
    )?;
    let mut counts = Counts::default();
    counts.add(whole.outcome);
    if whole.outcome == Outcome::Fresh {
        return Ok((counts, None));
    }
    fresh.codes = whole.codes;
    fresh.scale = old_scale;
    fresh.mean_abs = 1.0 / old_scale;
    Ok((counts, Some(whole.sums)))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Uniform;
    impl Grid for Uniform {
        fn value(&self, q: i32) -> f32 {
            q as f32
        }
        fn nearest(&self, x: f32) -> i32 {
            x.round() as i32
        }
    }

    #[test]
    fn a_block_within_the_bound_is_reused_else_requantized_else_fresh() {
        let mut out = [0i32; 3];
        // Old codes 0, 1, 2 on a unit grid; bound 0.5 per weight.
        let old = [0, 1, 2];
        let w = [0.2, 1.4, 1.6];
        let fresh = [0.0, 1.0, 2.0];
        assert_eq!(decide(&w, &fresh, |_| 0.5, 1.0, &old, &Uniform, &mut out), Outcome::Reused);
        assert_eq!(out, [0, 1, 2]);
        let (w, fresh) = ([0.2, 1.4, 3.1], [0.0, 1.0, 3.0]);
        assert_eq!(decide(&w, &fresh, |_| 0.5, 1.0, &old, &Uniform, &mut out), Outcome::Requantized);
        assert_eq!(out, [0, 1, 3]);
        // A tolerance of 3 keeps the old code of a weight 1.1 away.
        assert_eq!(decide(&w, &fresh, |_| 0.5, 3.0, &old, &Uniform, &mut out), Outcome::Reused);
        // Nothing on the grid is near a weight of 3.7 when the bound is 0.1.
        let (w, fresh) = ([0.0, 1.0, 3.7], [0.0, 1.0, 3.7]);
        assert_eq!(decide(&w, &fresh, |_| 0.1, 1.0, &old, &Uniform, &mut out), Outcome::Fresh);
        let (w, fresh) = ([0.0, f32::NAN, 2.0], [0.0, 1.0, 2.0]);
        assert_eq!(decide(&w, &fresh, |_| 0.5, 1.0, &old, &Uniform, &mut out), Outcome::Fresh);
    }

    #[test]
    fn the_bound_covers_weights_fresh_quantization_misses_by_more_than_half_a_step() {
        let mut out = [0i32; 1];
        // Fresh decodes 3.0 to 2.0 (clamped): error 1.0 > the half step 0.5, so an old code
        // 1.0 away is still within the bound.
        assert_eq!(decide(&[3.0], &[2.0], |_| 0.5, 1.0, &[2], &Uniform, &mut out), Outcome::Reused);
    }

    #[test]
    fn nearest_codes_are_the_closest_on_every_grid() {
        type Grid = Box<dyn Fn(f32) -> (i32, f32)>;
        let grids: Vec<Grid> = vec![
            Box::new(|x| {
                let g = Int8Grid::new(0.01, 3, Int8Mode::Asymmetric);
                let q = g.nearest(x);
                (
                    q,
                    (0..=255).map(|c| (x - g.value(c)).abs()).fold(f32::INFINITY, f32::min)
                        - (x - g.value(q)).abs(),
                )
            }),
            Box::new(|x| {
                let g = Int4Grid { scale: 0.07, zero: 8 };
                let q = g.nearest(x);
                (
                    q,
                    (0..=15).map(|c| (x - g.value(c)).abs()).fold(f32::INFINITY, f32::min)
                        - (x - g.value(q)).abs(),
                )
            }),
            Box::new(|x| {
                let g = Nf4Grid { absmax: 0.4 };
                let q = g.nearest(x);
                (
                    q,
                    (0..=15).map(|c| (x - g.value(c)).abs()).fold(f32::INFINITY, f32::min)
                        - (x - g.value(q)).abs(),
                )
            }),
            Box::new(|x| {
                let g = TernaryGrid { scale: 5.0 };
                let q = g.nearest(x);
                (
                    q,
                    (-1..=1).map(|c| (x - g.value(c)).abs()).fold(f32::INFINITY, f32::min)
                        - (x - g.value(q)).abs(),
                )
            }),
        ];
        for x in [-3.0f32, -0.51, -0.1, 0.0, 0.033, 0.2, 0.39, 2.5] {
            for g in &grids {
                assert_eq!(g(x).1, 0.0, "{x}");
            }
        }
    }

    #[test]
    fn nf4_half_cells() {
        assert_eq!(nf4_half_cell(0), (NF4_CODE[1] - NF4_CODE[0]) / 2.0);
        assert_eq!(nf4_half_cell(15), (NF4_CODE[15] - NF4_CODE[14]) / 2.0);
        assert!(nf4_half_cell(7) < nf4_half_cell(15));
    }
}
