//! The streaming path of [`crate::encode`]: schemes whose parameters are local to a row or a
//! block are encoded chunk after chunk straight from the tensor's stored bytes, so a tensor is
//! never held as f32 (nor its decoded copy) in whole. Per chunk: read as f32, refuse NaN/Inf,
//! quantize, decode, and add up the error sums; chunks run in parallel.
//!
//! Chunk boundaries are fixed (whole rows, or whole blocks for NF4, about
//! [`CHUNK_ELEMS`] elements) and results are joined in chunk order, so the bytes and the error
//! figures are the same whatever the thread count, and the same as the whole-tensor path's
//! bytes (every scheme here computes each row or block from that row or block alone).
//!
//! Schemes with a statistic over the whole tensor take two passes over the stored bytes (from
//! [`CHUNK_ELEMS`] elements on; smaller tensors stay on the whole-tensor path): per-tensor
//! INT8 first finds the range, ternary first sums |W| in torch's order with
//! `smelt_quant::rounding::StreamingSum` (the same f32 additions as the whole-tensor sum, so
//! the same scale to the bit), then both encode chunk by chunk as above.

use rayon::prelude::*;
use smelt_formats::Tensor;
use smelt_quant::int4::{Int4Mode, Int4Tensor};
use smelt_quant::int8::{Int8Mode, Int8Tensor};
use smelt_quant::metrics::ErrorSums;
use smelt_quant::nf4::{Nf4Absmax, Nf4Options, Nf4Tensor};
use smelt_quant::rounding::StreamingSum;
use smelt_quant::ternary::{ternary_codes_decode_into, ternary_scale, TernaryTensor};
use smelt_tensor::DType;

use crate::encode::{Encoded, EncodedTensor, CHUNK_ELEMS};

/// One chunk's part of ternary's first pass: each block's lane partial sums with its length,
/// and the |W| values after the chunk's last whole row.
type ChunkPartials = (Vec<([[f32; 8]; 4], usize)>, Vec<f32>);

/// Elements per piece of a chunk in [`Job::plain`]: 8192 f32 values and their decoded copy
/// take 64 KB, which stays in a core's L2 cache between the steps.
const PIECE_ELEMS: usize = 8192;
use crate::scheme::{Scheme, TernaryPacking};
use crate::ConvertError;

/// Encodes `t` chunk by chunk, or returns `None` when its scheme or dtype needs the
/// whole-tensor path.
pub fn encode_chunked(
    t: &Tensor,
    scheme: Scheme,
    allow_nonfinite: bool,
) -> Option<Result<EncodedTensor, ConvertError>> {
    // Plain float and integer inputs only: a ggml block input is dequantized whole.
    if t.dtype.is_ggml_block() || t.dtype.block_elems() != 1 || t.dtype.block_bytes() == 0 {
        return None;
    }
    let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
    let n = usize::try_from(t.numel()).ok()?;
    if n == 0 || shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(n) {
        return None;
    }
    let cols = *shape.last()?;
    let rows = n / cols;
    let job = Job { t, allow_nonfinite, cols };
    Some(match scheme {
        Scheme::Cast(d) => job.plain(d, 1, rows, |v, out, decoded| {
            cast_into(v, d, out);
            decode_plain_into(d, out, decoded).ok_or_else(|| format!("cannot decode {d}"))
        }),
        Scheme::Ggml(d) => {
            let be = d.block_elems() as usize;
            if cols % be != 0 {
                return None; // the whole-tensor path reports the shape error
            }
            job.plain(d, be, rows, |v, out, decoded| {
                smelt_quant::ggml::quantize_decode(d, v, out, decoded).map_err(|e| e.to_string())
            })
        }
        Scheme::Int8 { per_channel: true, symmetric } if shape.len() >= 2 => job.int8(rows, symmetric),
        Scheme::Int8 { per_channel: false, symmetric } if n >= CHUNK_ELEMS => {
            job.int8_per_tensor(&shape, n, symmetric)
        }
        Scheme::Int4 { group, symmetric } if shape.len() == 2 => job.int4(rows, group as usize, symmetric),
        Scheme::Nf4 { double_quant } => job.nf4(n, &shape, double_quant),
        // Small tensors are cheap to hold whole.
        Scheme::Ternary { packing } if n >= CHUNK_ELEMS => job.ternary(n, packing),
        _ => return None,
    })
}

#[derive(Clone, Copy)]
struct Job<'a> {
    t: &'a Tensor,
    allow_nonfinite: bool,
    cols: usize,
}

impl Job<'_> {
    /// Elements `[start, start + len)` as f32, checked for NaN/Inf unless allowed.
    fn values(&self, start: usize, len: usize) -> Result<Vec<f32>, ConvertError> {
        let mut v = vec![0f32; len];
        self.values_into(start, &mut v)?;
        Ok(v)
    }

    /// Elements `[start, start + out.len())` as f32 into `out`, checked for NaN/Inf unless
    /// allowed.
    fn values_into(&self, start: usize, out: &mut [f32]) -> Result<(), ConvertError> {
        if self.t.dtype == DType::BF16 && !out.is_empty() {
            // One range over all: the check folded into the decode (see `values_ranged_into`).
            let n = out.len();
            return self.values_ranged_into(start, out, n, n, &mut [(0.0, 0.0)]);
        }
        let size = self.t.dtype.block_bytes() as usize;
        let bytes = &self.t.data[start * size..(start + out.len()) * size];
        self.decode_into(bytes, out)?;
        if !self.allow_nonfinite {
            self.check_finite(start, out)?;
        }
        Ok(())
    }

    /// [`Job::values_into`], with `smelt_quant::int8::run_min_max` of every run into `ranges`
    /// (`out` taken as rows of `cols`, each cut into runs of `run`: see
    /// `smelt_quant::run_ranges`). BF16 is decoded with the ranges taken in the same pass,
    /// and then the NaN/Inf check only has to look at the ranges (a run with a NaN or an
    /// infinity has a bound that is not finite); only a tensor that has one is searched for
    /// the first.
    fn values_ranged_into(
        &self,
        start: usize,
        out: &mut [f32],
        cols: usize,
        run: usize,
        ranges: &mut [(f32, f32)],
    ) -> Result<(), ConvertError> {
        let size = self.t.dtype.block_bytes() as usize;
        let bytes = &self.t.data[start * size..(start + out.len()) * size];
        if self.t.dtype == DType::BF16 {
            smelt_quant::run_ranges::bf16_to_f32_run_ranges(bytes, cols, run, out, ranges);
        } else {
            self.decode_into(bytes, out)?;
            smelt_quant::run_ranges::run_ranges(out, cols, run, ranges);
        }
        if !self.allow_nonfinite && ranges.iter().any(|&(lo, hi)| !(lo.is_finite() && hi.is_finite())) {
            self.check_finite(start, out)?;
        }
        Ok(())
    }

    fn decode_into(&self, bytes: &[u8], out: &mut [f32]) -> Result<(), ConvertError> {
        let decoded = smelt_tensor::convert::float_to_f32_into(self.t.dtype, bytes, out) || {
            let v = smelt_tensor::convert::to_f32_vec(self.t.dtype, bytes, out.len());
            v.map(|v| out.copy_from_slice(&v)).is_some()
        };
        if !decoded {
            return Err(ConvertError::NotQuantizable { tensor: self.t.name.clone(), dtype: self.t.dtype });
        }
        Ok(())
    }

    /// The first NaN or infinity of `out` (elements from `start`) as an error.
    fn check_finite(&self, start: usize, out: &[f32]) -> Result<(), ConvertError> {
        match first_nonfinite(out) {
            Some(i) => {
                Err(ConvertError::NonFinite { tensor: self.t.name.clone(), index: start + i, value: out[i] })
            }
            None => Ok(()),
        }
    }

    /// Elements `[start, start + len)` in pieces of `piece` (the last may be shorter): each is
    /// read (and checked) into a reused buffer, handed to `f` with its offset from `start` and
    /// a reused buffer for its decoded values, and its error sums are taken while both are in
    /// the core's cache. The sums come back in piece order.
    fn pieces(
        &self,
        start: usize,
        len: usize,
        piece: usize,
        mut f: impl FnMut(usize, &[f32], &mut [f32]) -> Result<(), ConvertError>,
    ) -> Result<Vec<ErrorSums>, ConvertError> {
        self.pieces_ranged(start, len, piece, None, |p, v, _, decoded| f(p, v, decoded))
    }

    /// [`Job::pieces`], with `runs: Some((cols, run))` also handing `f` the ranges of the
    /// piece's runs ([`Job::values_ranged_into`]; pieces are whole rows).
    fn pieces_ranged(
        &self,
        start: usize,
        len: usize,
        piece: usize,
        runs: Option<(usize, usize)>,
        mut f: impl FnMut(usize, &[f32], &[(f32, f32)], &mut [f32]) -> Result<(), ConvertError>,
    ) -> Result<Vec<ErrorSums>, ConvertError> {
        let (mut v, mut decoded) = (vec![0f32; piece.min(len)], vec![0f32; piece.min(len)]);
        let mut ranges = match runs {
            Some((cols, run)) => {
                vec![(0f32, 0f32); smelt_quant::run_ranges::run_count(piece.min(len), cols, run)]
            }
            None => Vec::new(),
        };
        let mut sums = Vec::with_capacity(len.div_ceil(piece.max(1)));
        for p in (0..len).step_by(piece.max(1)) {
            let n = piece.min(len - p);
            let (v, decoded) = (&mut v[..n], &mut decoded[..n]);
            let ranges = match runs {
                Some((cols, run)) => {
                    let ranges = &mut ranges[..smelt_quant::run_ranges::run_count(n, cols, run)];
                    self.values_ranged_into(start + p, v, cols, run, ranges)?;
                    &ranges[..]
                }
                None => {
                    self.values_into(start + p, v)?;
                    &[]
                }
            };
            f(p, v, ranges, decoded)?;
            sums.push(ErrorSums::of(v, decoded));
        }
        Ok(sums)
    }

    fn rows_per_chunk(&self) -> usize {
        (CHUNK_ELEMS / self.cols).max(1)
    }

    fn quant_err(&self, message: String) -> ConvertError {
        ConvertError::Shape { tensor: self.t.name.clone(), why: message }
    }

    /// Casts and ggml types: every chunk writes its own slice of one output buffer. Within a
    /// chunk, pieces of about [`PIECE_ELEMS`] elements go through read, quantize and decode
    /// (`f` writes the bytes and the decoded values), and error sums while they are in the
    /// core's cache, in two buffers reused piece after piece.
    fn plain(
        &self,
        d: DType,
        block: usize,
        rows: usize,
        f: impl Fn(&[f32], &mut [u8], &mut [f32]) -> Result<(), String> + Sync,
    ) -> Result<EncodedTensor, ConvertError> {
        let block_bytes = d.block_bytes() as usize;
        let row_bytes = self.cols / block * block_bytes;
        let rpc = self.rows_per_chunk();
        // Whole blocks per piece (blocks of a ggml type may span rows: the output is one
        // sequence of blocks over the concatenated rows).
        let piece = (PIECE_ELEMS / block).max(1) * block;
        let mut out = crate::buffers::take(rows * row_bytes);
        let parts = out
            .par_chunks_mut(rpc * row_bytes)
            .enumerate()
            .map(|(c, o)| -> Result<Vec<ErrorSums>, ConvertError> {
                let len = o.len() / row_bytes * self.cols;
                self.pieces(c * rpc * self.cols, len, piece, |p, v, decoded| {
                    let o = &mut o[p / block * block_bytes..(p + v.len()) / block * block_bytes];
                    f(v, o, decoded).map_err(|m| self.quant_err(m))
                })
            })
            .collect::<Vec<_>>();
        let sums = first_error(parts)?.into_iter().flatten().collect();
        Ok(finish(Encoded::Plain { dtype: d, data: crate::buffers::into_bytes(out) }, sums))
    }

    /// Per-row INT8: chunks of whole rows write their slices of the codes, scales and zero
    /// points; within a chunk, pieces of about [`PIECE_ELEMS`] elements (whole rows) go
    /// through read, quantize and decode, and error sums in two reused buffers, as in
    /// [`Job::plain`].
    fn int8(&self, rows: usize, symmetric: bool) -> Result<EncodedTensor, ConvertError> {
        let mode = if symmetric { Int8Mode::Symmetric } else { Int8Mode::Asymmetric };
        let cols = self.cols;
        let rpc = self.rows_per_chunk();
        let piece_rows = (PIECE_ELEMS / cols).max(1);
        let mut codes = crate::buffers::take(rows * cols);
        let (mut scales, mut zero_points) = (vec![0f32; rows], vec![0u8; rows]);
        let parts = codes
            .par_chunks_mut(rpc * cols)
            .zip(scales.par_chunks_mut(rpc).zip(zero_points.par_chunks_mut(rpc)))
            .enumerate()
            .map(|(c, (codes, (scales, zps)))| -> Result<Vec<ErrorSums>, ConvertError> {
                let runs = Some((cols, cols));
                self.pieces_ranged(
                    c * rpc * cols,
                    codes.len(),
                    piece_rows * cols,
                    runs,
                    |p, v, ranges, decoded| {
                        let (r0, r1) = (p / cols, (p + v.len()) / cols);
                        smelt_quant::int8::quantize_rows_ranged_into(
                            v,
                            cols,
                            ranges,
                            mode,
                            &mut codes[p..p + v.len()],
                            &mut scales[r0..r1],
                            &mut zps[r0..r1],
                            decoded,
                        );
                        Ok(())
                    },
                )
            })
            .collect::<Vec<_>>();
        let sums = first_error(parts)?.into_iter().flatten().collect();
        let shape: Vec<usize> = self.t.shape.iter().map(|&d| d as usize).collect();
        let q = Int8Tensor { mode, shape, axis: Some(0), codes, scales, zero_points };
        Ok(finish(Encoded::Int8(q), sums))
    }

    /// Block int4: as [`Job::int8`], chunks of whole rows into slices of reused buffers.
    fn int4(&self, rows: usize, group: usize, symmetric: bool) -> Result<EncodedTensor, ConvertError> {
        let mode = if symmetric { Int4Mode::Symmetric } else { Int4Mode::Asymmetric };
        let cols = self.cols;
        let gpr = cols.div_ceil(group);
        let rpc = self.rows_per_chunk();
        let piece_rows = (PIECE_ELEMS / cols).max(1);
        let mut codes = crate::buffers::take(rows * cols);
        let (mut scales, mut zeros) = (vec![0f32; rows * gpr], vec![0u8; rows * gpr]);
        let parts = codes
            .par_chunks_mut(rpc * cols)
            .zip(scales.par_chunks_mut(rpc * gpr).zip(zeros.par_chunks_mut(rpc * gpr)))
            .enumerate()
            .map(|(c, (codes, (scales, zeros)))| -> Result<Vec<ErrorSums>, ConvertError> {
                let runs = Some((cols, group));
                self.pieces_ranged(
                    c * rpc * cols,
                    codes.len(),
                    piece_rows * cols,
                    runs,
                    |p, v, ranges, decoded| {
                        let (g0, g1) = (p / cols * gpr, (p + v.len()) / cols * gpr);
                        smelt_quant::int4::quantize_int4_rows_ranged_into(
                            v,
                            cols,
                            group,
                            ranges,
                            mode,
                            &mut codes[p..p + v.len()],
                            &mut scales[g0..g1],
                            &mut zeros[g0..g1],
                            decoded,
                        )
                        .map_err(|source| ConvertError::Scheme { tensor: self.t.name.clone(), source })
                    },
                )
            })
            .collect::<Vec<_>>();
        let sums = first_error(parts)?.into_iter().flatten().collect();
        let q = Int4Tensor { rows, cols, group_size: group, mode, codes, scales, zeros };
        Ok(finish(Encoded::Int4(q), sums))
    }

    fn nf4(&self, n: usize, shape: &[usize], double_quant: bool) -> Result<EncodedTensor, ConvertError> {
        let opts = Nf4Options { double_quant: false, ..Nf4Options::default() };
        // Whole blocks per chunk, and an even element count so no chunk but the last pads a
        // nibble: bitsandbytes' blocks run over the flattened tensor, across rows.
        let per = (CHUNK_ELEMS / opts.block_size).max(1) * opts.block_size;
        let bs = opts.block_size;
        // Whole blocks go through the in-place quantizer in pieces of about PIECE_ELEMS, in
        // slices of one pooled buffer; a last partial block (bitsandbytes divides it by its
        // absmax instead) takes the whole-tensor quantizer on its own.
        let full = n / bs * bs;
        let mut packed = crate::buffers::take(n.div_ceil(2));
        let mut absmax = vec![0f32; n.div_ceil(bs)];
        let piece = (PIECE_ELEMS / bs).max(1) * bs;
        let parts = packed[..full / 2]
            .par_chunks_mut(per / 2)
            .zip(absmax[..full / bs].par_chunks_mut(per / bs))
            .enumerate()
            .map(|(c, (packed, absmax))| -> Result<Vec<ErrorSums>, ConvertError> {
                self.pieces(c * per, packed.len() * 2, piece, |p, v, decoded| {
                    let m = v.len();
                    smelt_quant::nf4::quantize_nf4_blocks_into(
                        v,
                        bs,
                        &mut packed[p / 2..(p + m) / 2],
                        &mut absmax[p / bs..(p + m) / bs],
                        decoded,
                    )
                    .map_err(|source| ConvertError::Scheme { tensor: self.t.name.clone(), source })
                })
            })
            .collect::<Vec<_>>();
        let mut sums: Vec<ErrorSums> = first_error(parts)?.into_iter().flatten().collect();
        if full < n {
            let v = self.values(full, n - full)?;
            let q = smelt_quant::nf4::quantize_nf4(&v, &[n - full], opts)
                .map_err(|source| ConvertError::Scheme { tensor: self.t.name.clone(), source })?;
            packed[full / 2..].copy_from_slice(&q.packed);
            match &q.absmax {
                Nf4Absmax::Plain(a) => absmax[full / bs..].copy_from_slice(a),
                Nf4Absmax::Double(_) => unreachable!("quantized without double quantization"),
            }
            sums.push(ErrorSums::of(&v, &q.dequantize()));
        }
        let absmax = if double_quant {
            Nf4Absmax::Double(smelt_quant::nf4::double_quantize(&absmax, opts.reduction))
        } else {
            Nf4Absmax::Plain(absmax)
        };
        let q = Nf4Tensor { shape: shape.to_vec(), block_size: opts.block_size, packed, absmax };
        if double_quant {
            // The error is that of the stored (double-quantized) absmax: the values are read
            // again, piece by piece, beside their decoding with it (`Nf4Tensor::dequantize`'s
            // `NF4_CODE[q] · absmax`, without a decoded copy of the whole tensor).
            let am = q.block_absmax();
            let packed = &q.packed;
            let sums = (0..n.div_ceil(per))
                .into_par_iter()
                .map(|c| {
                    let start = c * per;
                    self.pieces(start, per.min(n - start), piece, |p, v, decoded| {
                        let e0 = start + p; // a whole block: `piece` and `per` are whole blocks
                        for (i, d) in decoded.iter_mut().enumerate() {
                            let (e, byte) = (e0 + i, packed[(e0 + i) / 2]);
                            let code = if e % 2 == 0 { byte >> 4 } else { byte & 0xF };
                            *d = smelt_quant::nf4::NF4_CODE[code as usize] * am[e / bs];
                        }
                        debug_assert_eq!(v.len(), decoded.len());
                        Ok(())
                    })
                })
                .collect::<Vec<_>>();
            let sums = first_error(sums)?.into_iter().flatten().collect();
            return Ok(finish(Encoded::Nf4(q), sums));
        }
        Ok(finish(Encoded::Nf4(q), sums))
    }
}

impl Job<'_> {
    /// Per-tensor INT8 in two passes: the tensor's range (NaN-propagating min and max, which
    /// do not depend on the order they are combined in), then the codes with its parameters.
    fn int8_per_tensor(
        &self,
        shape: &[usize],
        n: usize,
        symmetric: bool,
    ) -> Result<EncodedTensor, ConvertError> {
        use smelt_quant::int8::{int8_params, nan_max, nan_min, quantize_run, run_min_max};
        let mode = if symmetric { Int8Mode::Symmetric } else { Int8Mode::Asymmetric };
        let ranges = (0..n.div_ceil(CHUNK_ELEMS))
            .into_par_iter()
            .map(|c| {
                self.values(c * CHUNK_ELEMS, CHUNK_ELEMS.min(n - c * CHUNK_ELEMS)).map(|v| run_min_max(&v))
            })
            .collect::<Vec<_>>();
        let (lo, hi) = first_error(ranges)?
            .into_iter()
            .reduce(|(a, b), (c, d)| (nan_min(a, c), nan_max(b, d)))
            .unwrap_or((0.0, 0.0));
        let p = int8_params(lo, hi, mode);
        let mut codes = vec![0u8; n];
        let sums = codes
            .par_chunks_mut(CHUNK_ELEMS)
            .enumerate()
            .map(|(c, out)| -> Result<ErrorSums, ConvertError> {
                let v = self.values(c * CHUNK_ELEMS, out.len())?;
                quantize_run(&v, p, mode, out);
                let decoded: Vec<f32> = match mode {
                    Int8Mode::Symmetric => {
                        out.iter().map(|&b| (b as i8 as i32 - p.zero_point) as f32 * p.scale).collect()
                    }
                    Int8Mode::Asymmetric => {
                        out.iter().map(|&b| (b as i32 - p.zero_point) as f32 * p.scale).collect()
                    }
                };
                Ok(ErrorSums::of(&v, &decoded))
            })
            .collect::<Vec<_>>();
        let sums = first_error(sums)?;
        let zp = if symmetric { p.zero_point as i8 as u8 } else { p.zero_point as u8 };
        let q = Int8Tensor {
            mode,
            shape: shape.to_vec(),
            axis: None,
            codes,
            scales: vec![p.scale],
            zero_points: vec![zp],
        };
        Ok(finish(Encoded::Int8(q), sums))
    }

    /// Ternary in two passes over the stored bytes. First `Σ|W|` in torch's order
    /// ([`StreamingSum`]: the same f32 additions as the whole-tensor `TorchReduction::sum`, so
    /// the same scale to the bit): the sum's independent blocks in parallel, joined in order
    /// (or, if its blocks do not divide a chunk, chunks fed in order while the next ones are
    /// read in parallel); then the codes, decoded values and error sums per chunk, in parallel.
    fn ternary(&self, n: usize, packing: TernaryPacking) -> Result<EncodedTensor, ConvertError> {
        let chunks = n.div_ceil(CHUNK_ELEMS);
        let mut sum = StreamingSum::new(n);
        let (block, rows_end) = (sum.block_elems(), sum.row_elems());
        if CHUNK_ELEMS % block == 0 {
            // The sum's blocks (whole rows, a power of two that divides a chunk) are summed
            // apart on every thread, each |W| piece read into a reused buffer, then handed
            // over in order: the same f32 additions as feeding the values one after the other.
            let parts = (0..chunks)
                .into_par_iter()
                .map(|c| -> Result<ChunkPartials, ConvertError> {
                    let (start, end) = (c * CHUNK_ELEMS, ((c + 1) * CHUNK_ELEMS).min(n));
                    let rows = end.min(rows_end).max(start);
                    let mut partials = Vec::with_capacity((rows - start).div_ceil(block));
                    let mut v = vec![0f32; block.min(rows - start)];
                    for b in (start..rows).step_by(block) {
                        let len = block.min(rows - b);
                        // BF16 (what checkpoints hold): |W| summed straight from the stored
                        // bits, which also finds NaN/Inf; other dtypes, and a block holding a
                        // non-finite weight (to name it), are read as f32 first.
                        if self.t.dtype == DType::BF16 {
                            let bytes = &self.t.data[2 * b..2 * (b + len)];
                            if let Some(p) = StreamingSum::block_partial_abs_bf16(bytes) {
                                partials.push((p, len));
                                continue;
                            }
                        }
                        let v = &mut v[..len];
                        self.values_into(b, v)?;
                        v.iter_mut().for_each(|x| *x = x.abs());
                        partials.push((StreamingSum::block_partial(v), v.len()));
                    }
                    // The tail after the last whole row (fewer than 32 values).
                    let mut tail = vec![0f32; end - rows];
                    self.values_into(rows, &mut tail)?;
                    tail.iter_mut().for_each(|x| *x = x.abs());
                    Ok((partials, tail))
                })
                .collect::<Vec<_>>();
            for (partials, tail) in first_error(parts)? {
                for (p, len) in partials {
                    if !sum.feed_partial(&p, len) {
                        return Err(self.quant_err("ternary: a block of the sum out of order".into()));
                    }
                }
                sum.feed(&tail);
            }
        } else {
            let abs_chunk = |c: usize| {
                let start = c * CHUNK_ELEMS;
                self.values(start, CHUNK_ELEMS.min(n - start)).map(|mut v| {
                    v.iter_mut().for_each(|x| *x = x.abs());
                    v
                })
            };
            let window = rayon::current_num_threads().max(1);
            for first in (0..chunks).step_by(window) {
                let abs =
                    (first..(first + window).min(chunks)).into_par_iter().map(abs_chunk).collect::<Vec<_>>();
                for a in abs {
                    sum.feed(&a?);
                }
            }
        }
        let total = sum.finish().ok_or_else(|| self.quant_err("ternary: streamed sum lost count".into()))?;
        let (mean_abs, scale) = ternary_scale(total, n);
        // From the pool (every code is written below): no fresh pages to fault in and zero.
        let mut codes: Vec<i8> = bytemuck::allocation::cast_vec(crate::buffers::take(n));
        // The first pass read every value and refused NaN/Inf (unless allowed): no need to
        // look again.
        let checked = Job { allow_nonfinite: true, ..*self };
        let sums = codes
            .par_chunks_mut(CHUNK_ELEMS)
            .enumerate()
            .map(|(c, out)| -> Result<Vec<ErrorSums>, ConvertError> {
                checked.pieces(c * CHUNK_ELEMS, out.len(), PIECE_ELEMS, |p, v, decoded| {
                    ternary_codes_decode_into(v, scale, &mut out[p..p + v.len()], decoded);
                    Ok(())
                })
            })
            .collect::<Vec<_>>();
        let sums = first_error(sums)?.into_iter().flatten().collect();
        Ok(finish(Encoded::Ternary(TernaryTensor { codes, mean_abs, scale }, packing), sums))
    }
}

/// Index of the first NaN or infinity. Blocks of 64 are tested whole first (an exponent test
/// with no early exit, which vectorizes, compiled for the CPU's SIMD level); only a block that
/// has one is searched.
pub(crate) fn first_nonfinite(v: &[f32]) -> Option<usize> {
    first_nonfinite_with(smelt_tensor::simd::tier(), v)
}

/// [`first_nonfinite`] with its loop compiled for a given tier (the same answer at every one).
pub(crate) fn first_nonfinite_with(tier: smelt_tensor::simd::Tier, v: &[f32]) -> Option<usize> {
    let b = first_nonfinite_block(tier, v)?;
    v[b * 64..].iter().position(|x| !x.is_finite()).map(|i| b * 64 + i)
}

smelt_tensor::tiered!(fn first_nonfinite_block(v: &[f32]) -> Option<usize> = first_nonfinite_block_body);

/// The first block of 64 holding a NaN or an infinity.
#[inline(always)]
fn first_nonfinite_block_body(v: &[f32]) -> Option<usize> {
    const EXP: u32 = 0x7f80_0000;
    v.chunks(64).position(|block| block.iter().fold(false, |a, x| a | (x.to_bits() & EXP == EXP)))
}

/// The chunks' results in order, or the error of the first chunk that failed (the first bad
/// element of the tensor, whatever thread found it first).
fn first_error<T>(parts: Vec<Result<T, ConvertError>>) -> Result<Vec<T>, ConvertError> {
    parts.into_iter().collect()
}

fn finish(encoded: Encoded, sums: Vec<ErrorSums>) -> EncodedTensor {
    let total = sums.into_iter().fold(ErrorSums::default(), |a, b| a.merge(&b));
    EncodedTensor { encoded, metrics: Some(total.metrics()) }
}

fn decode_plain_into(d: DType, bytes: &[u8], out: &mut [f32]) -> Option<()> {
    if d.is_ggml_block() {
        smelt_quant::ggml::dequantize(d, bytes, out).ok()
    } else {
        smelt_tensor::convert::float_to_f32_into(d, bytes, out).then_some(())
    }
}

/// f32 → F32/F16/BF16 bytes, round to nearest even.
pub(crate) fn cast_into(values: &[f32], to: DType, out: &mut [u8]) {
    let done = smelt_tensor::convert::f32_to_float_into(to, values, out);
    debug_assert!(done, "cast to {to}: the plan only casts to f32, f16 and bf16, with sized buffers");
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use smelt_formats::Location;

    fn bf16_tensor(rows: usize, cols: usize, seed: u64) -> (Tensor, Vec<f32>) {
        let mut x = seed;
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let v = ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1;
                // a few outliers and exact zeros
                if i % 997 == 0 {
                    v * 40.0
                } else if i % 331 == 0 {
                    0.0
                } else {
                    v
                }
            })
            .map(|v| half::bf16::from_f32(v).to_f32())
            .collect();
        let data: Vec<u8> = values.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect();
        let t = Tensor {
            name: "w".into(),
            dtype: DType::BF16,
            shape: vec![rows as u64, cols as u64],
            data: Bytes::from(data),
            location: Location { file: 0, offset: 0 },
        };
        (t, values)
    }

    /// The streamed encoding has the same bytes as the whole-tensor one, over tensors of
    /// several chunks whose last chunk is short, and the same error figures within rounding.
    #[test]
    fn chunked_encoding_equals_the_whole_tensor_path() {
        use crate::scheme::Scheme as S;
        let schemes = [
            S::Cast(DType::F16),
            S::Cast(DType::F32),
            S::Ggml(DType::Q8_0),
            S::Ggml(DType::Q4_1),
            S::Ggml(DType::Q5_0),
            S::Int8 { per_channel: true, symmetric: true },
            S::Int8 { per_channel: true, symmetric: false },
            S::Int4 { group: 32, symmetric: true },
            S::Int4 { group: 128, symmetric: false },
            S::Nf4 { double_quant: false },
            S::Nf4 { double_quant: true },
            S::Ternary { packing: TernaryPacking::TwoBit },
            S::Int8 { per_channel: false, symmetric: true },
            S::Int8 { per_channel: false, symmetric: false },
        ];
        // 1100 x 512: about 2.1 chunks of 2^18 elements; 3 x 96: one short chunk.
        for (rows, cols) in [(1100, 512), (3, 96), (1, 64)] {
            let (t, values) = bf16_tensor(rows, cols, rows as u64 * 31 + cols as u64);
            for scheme in schemes {
                let Some(got) = encode_chunked(&t, scheme, false) else {
                    let two_pass = matches!(scheme, S::Ternary { .. } | S::Int8 { per_channel: false, .. });
                    assert!(two_pass && rows * cols < CHUNK_ELEMS, "{scheme} not streamed");
                    continue;
                };
                let got = got.unwrap();
                let want = crate::encode::encode_values(&t.name, &values, &[rows, cols], scheme).unwrap();
                let same = match (&got.encoded, &want.encoded) {
                    (Encoded::Plain { dtype: a, data: x }, Encoded::Plain { dtype: b, data: y }) => {
                        a == b && x == y
                    }
                    (Encoded::Int8(a), Encoded::Int8(b)) => a == b,
                    (Encoded::Int4(a), Encoded::Int4(b)) => a == b,
                    (Encoded::Nf4(a), Encoded::Nf4(b)) => a == b,
                    (Encoded::Ternary(a, p), Encoded::Ternary(b, q)) => a == b && p == q,
                    _ => false,
                };
                assert!(same, "{scheme} on {rows}x{cols}: streamed bytes differ from the whole-tensor path");
                let (g, w) = (got.metrics.unwrap(), want.metrics.unwrap());
                assert_eq!(g.max_abs, w.max_abs, "{scheme}");
                // Pieces that split the tensor elsewhere than the whole path's f32 blocks (a
                // short tail, rows of odd length) round the sums differently: within the
                // bound smelt_kernels::error_lanes documents (4e-6 relative per sum, so about
                // 4e-5 dB and 1.2e-5 of cosine), in practice a few 1e-7.
                let close = |a: f64, b: f64, tol: f64| a == b || (a - b).abs() < tol;
                assert!(
                    close(g.sqnr_db, w.sqnr_db, 4e-5) && close(g.cosine, w.cosine, 1.2e-5),
                    "{scheme}: {g:?} vs {w:?}"
                );
            }
        }
    }

    /// Every tier finds the same first NaN or infinity (or none), at every position and
    /// length around the blocks of 64.
    #[test]
    fn first_nonfinite_is_the_same_at_every_tier() {
        use smelt_tensor::simd::Tier;
        for len in [0usize, 1, 63, 64, 65, 127, 128, 200] {
            let clean: Vec<f32> = (0..len).map(|i| i as f32 * 0.37 - 20.0).collect();
            for tier in Tier::ALL {
                assert_eq!(first_nonfinite_with(tier, &clean), None, "{len} {}", tier.name());
            }
            for at in 0..len {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut v = clean.clone();
                    v[at] = bad;
                    if at + 70 < len {
                        v[at + 70] = f32::NAN;
                    }
                    for tier in Tier::ALL {
                        assert_eq!(first_nonfinite_with(tier, &v), Some(at), "{len} {at} {}", tier.name());
                    }
                }
            }
        }
    }

    /// Ternary's parallel first pass gives the whole-tensor scale to the bit with 1, 2 and 3
    /// threads, on tensors whose length leaves a tail after the last whole row of the sum and
    /// a short last block.
    #[test]
    fn ternary_scale_is_the_whole_tensor_one_whatever_the_threads() {
        for (rows, cols) in [(1031, 509), (600, 437), (2049, 1000)] {
            let (t, values) = bf16_tensor(rows, cols, rows as u64 * 7 + cols as u64);
            let want = crate::encode::encode_values(
                &t.name,
                &values,
                &[rows, cols],
                Scheme::Ternary { packing: TernaryPacking::TwoBit },
            )
            .unwrap();
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let got = pool
                    .install(|| {
                        encode_chunked(&t, Scheme::Ternary { packing: TernaryPacking::TwoBit }, false)
                    })
                    .unwrap()
                    .unwrap();
                match (&got.encoded, &want.encoded) {
                    (Encoded::Ternary(a, _), Encoded::Ternary(b, _)) => {
                        assert_eq!(a.scale.to_bits(), b.scale.to_bits(), "{rows}x{cols}, {threads} threads");
                        assert_eq!(a.mean_abs.to_bits(), b.mean_abs.to_bits(), "{rows}x{cols}");
                        assert!(a.codes == b.codes, "{rows}x{cols}, {threads} threads");
                    }
                    _ => panic!("not ternary"),
                }
            }
        }
    }

    /// Whatever the scheme (per-channel INT8 and block int4 find it from the ranges taken
    /// while decoding), a NaN or an infinity, and the thread count.
    #[test]
    fn the_first_nonfinite_element_is_named_whatever_the_threads() {
        for bad in [half::bf16::NAN, half::bf16::INFINITY, half::bf16::NEG_INFINITY] {
            let (mut t, _) = bf16_tensor(1100, 512, 7);
            let mut data = t.data.to_vec();
            for i in [400_000usize, 300_001, 530_000] {
                data[2 * i..2 * i + 2].copy_from_slice(&bad.to_le_bytes());
            }
            t.data = Bytes::from(data);
            // Ternary finds it in its first pass, summing |W| from the BF16 bits.
            let ternary = Scheme::Ternary { packing: TernaryPacking::TwoBit };
            let int8 = Scheme::Int8 { per_channel: true, symmetric: true };
            let int4 = Scheme::Int4 { group: 128, symmetric: false };
            for scheme in [Scheme::Ggml(DType::Q8_0), ternary, int8, int4] {
                for threads in [1, 2, 3] {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    let err = pool.install(|| encode_chunked(&t, scheme, false).unwrap().err().unwrap());
                    assert!(
                        matches!(err, ConvertError::NonFinite { index: 300_001, .. }),
                        "{scheme} {bad} {err:?}"
                    );
                }
                assert!(encode_chunked(&t, scheme, true).unwrap().is_ok(), "{scheme} --allow-nonfinite");
            }
        }
    }
}
