//! NF4 (4-bit NormalFloat, QLoRA) quantization, bit for bit as bitsandbytes computes it on
//! CPU, so a checkpoint smelt writes is the one bitsandbytes/transformers would have written.
//!
//! `quantize_4bit(A, blocksize=64, quant_type="nf4")` in bitsandbytes 0.50.2 runs, on CPU, the
//! pure-torch kernel `backends/default/ops.py`; reproduced here exactly:
//! - `A` is flattened; blocks of `block_size` (64 by default) consecutive elements, the last
//!   one possibly shorter;
//! - a full block: `absmax = max |x|` (NaN propagates, as `torch.max`), stored as is (0 for an
//!   all-zero block); values scaled by `x · (1 / max(absmax, 1e-38))` (a multiplication by the
//!   f32 reciprocal);
//! - the last, partial block: `absmax = max(max |x|, 1e-38)`, stored **clamped** (an all-zero
//!   tail stores 1e-38 as f32, 0x006CE3EE), values scaled by a true division `x / absmax`;
//! - scaled values clamped to [-1, 1], then coded by `torch.bucketize` against the 15
//!   midpoints `(code[i] + code[i+1]) / 2` of the NF4 code: the code index is the number of
//!   midpoints strictly below the value, so a value exactly on a midpoint takes the **lower**
//!   code; NaN takes code 15 (and a NaN anywhere in a block makes the whole block NaN);
//! - two codes per byte, the **first element in the high nibble** (`(q[2k] << 4) | q[2k+1]`);
//!   an odd count is padded with the code of 0.0 (7) in the last low nibble.
//!
//! Double quantization (`compress_statistics=True`): `offset = absmax.mean()` (torch's f32
//! summation order, [`TorchReduction`]), then `absmax - offset` is quantized by
//! `quantize_blockwise` in blocks of 256 to the signed dynamic map ([`blockwise8`]), giving
//! u8 codes and an f32 absmax per 256 blocks.
//!
//! Dequantization is the formula, `NF4_CODE[q] · absmax[block]` in f32, where a
//! double-quantized absmax is first `dynamic[q] · nested_absmax[j / 256] + offset` (two f32
//! roundings, as bitsandbytes). It is not bitsandbytes' CPU `dequantize_4bit`, which is wrong
//! for some shapes whose last dimension is not a multiple of the block size.
//!
//! The serialized layout bitsandbytes writes is in [`bnb_state`].

pub mod blockwise8;
pub mod bnb_state;

use smelt_tensor::DType;

use crate::named_tensor::NamedTensor;
use crate::rounding::TorchReduction;
use crate::scheme_error::{check_shape, SchemeError};

/// bitsandbytes' NF4 code (`get_4bit_type("nf4")`), f32 bit patterns, index order (one
/// table for the quantizer and the kernels that decode it).
pub use smelt_kernels::NF4_CODE_BITS;

/// The NF4 code as f32 values: -1.0, -0.6961928, ..., 0.0 (index 7), ..., 0.7229568, 1.0.
pub const NF4_CODE: [f32; 16] = {
    let mut v = [0.0f32; 16];
    let mut i = 0;
    while i < 16 {
        v[i] = f32::from_bits(NF4_CODE_BITS[i]);
        i += 1;
    }
    v
};

/// bitsandbytes' default NF4 block size.
pub const NF4_BLOCK_SIZE: usize = 64;

/// Block sizes bitsandbytes' `quantize_4bit` accepts.
pub const NF4_BLOCK_SIZES: &[usize] = &[32, 64, 128, 256, 512, 1024, 2048, 4096];

/// Block size of the second (absmax) stage of double quantization.
pub const NESTED_BLOCK_SIZE: usize = 256;

/// The code of 0.0, used to pad an odd element count.
const ZERO_CODE: u8 = 7;

/// bitsandbytes' lower bound on an absmax before dividing (`clamp(min=1e-38)`).
const ABSMAX_FLOOR: f32 = 1e-38;

/// How to quantize.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nf4Options {
    /// Elements per absmax block (one of [`NF4_BLOCK_SIZES`]; 64 by default).
    pub block_size: usize,
    /// Quantize the absmax values too (bitsandbytes' `compress_statistics`).
    pub double_quant: bool,
    /// How torch would sum the absmax values for the double-quantization offset: bitsandbytes
    /// takes `absmax.mean()`, whose last bits depend on torch's thread count from 32768 blocks
    /// on (2M weights at block size 64). Set `threads` to the `torch.get_num_threads()` of the
    /// run to be matched; below that size any value gives the same result.
    pub reduction: TorchReduction,
}

impl Default for Nf4Options {
    fn default() -> Self {
        Nf4Options { block_size: NF4_BLOCK_SIZE, double_quant: false, reduction: TorchReduction::default() }
    }
}

/// The per-block absmax, plain or double-quantized.
#[derive(Clone, Debug, PartialEq)]
pub enum Nf4Absmax {
    /// One f32 per block.
    Plain(Vec<f32>),
    /// 8-bit codes plus the nested statistics.
    Double(DoubleQuantized),
}

/// Absmax values quantized by bitsandbytes' double quantization.
#[derive(Clone, Debug, PartialEq)]
pub struct DoubleQuantized {
    /// One dynamic-map code per NF4 block.
    pub codes: Vec<u8>,
    /// One f32 absmax per [`NESTED_BLOCK_SIZE`] codes.
    pub nested_absmax: Vec<f32>,
    /// The mean subtracted before quantizing.
    pub offset: f32,
}

impl DoubleQuantized {
    /// The absmax values back: `dynamic[q] · nested_absmax[i / 256] + offset` in f32.
    pub fn dequantize(&self) -> Vec<f32> {
        blockwise8::dequantize_blockwise_dynamic(&self.codes, &self.nested_absmax, NESTED_BLOCK_SIZE)
            .into_iter()
            .map(|a| a + self.offset)
            .collect()
    }
}

/// bitsandbytes' double quantization of per-block absmax values.
pub fn double_quantize(absmax: &[f32], reduction: TorchReduction) -> DoubleQuantized {
    let offset = reduction.mean(absmax);
    let centred: Vec<f32> = absmax.iter().map(|a| a - offset).collect();
    let (codes, nested_absmax) = blockwise8::quantize_blockwise_dynamic(&centred, NESTED_BLOCK_SIZE);
    DoubleQuantized { codes, nested_absmax, offset }
}

/// An NF4-quantized tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Nf4Tensor {
    /// Shape of the original tensor (recorded in bitsandbytes' quant state).
    pub shape: Vec<usize>,
    /// Elements per block.
    pub block_size: usize,
    /// Codes, two per byte, first element in the high nibble; `ceil(n / 2)` bytes.
    pub packed: Vec<u8>,
    /// Per-block absmax.
    pub absmax: Nf4Absmax,
}

/// Quantizes `values` (row-major, of `shape`) to NF4 as bitsandbytes' `quantize_4bit` does on
/// CPU.
///
/// Errors: `values.len()` is not the element count of `shape`; a block size bitsandbytes
/// refuses.
pub fn quantize_nf4(values: &[f32], shape: &[usize], options: Nf4Options) -> Result<Nf4Tensor, SchemeError> {
    quantize_nf4_tiered(smelt_tensor::simd::tier(), values, shape, options)
}

smelt_tensor::tiered!(fn quantize_nf4_tiered(values: &[f32], shape: &[usize], options: Nf4Options) -> Result<Nf4Tensor, SchemeError> = quantize_nf4_body);

#[inline(always)]
fn quantize_nf4_body(values: &[f32], shape: &[usize], options: Nf4Options) -> Result<Nf4Tensor, SchemeError> {
    check_shape(shape, values.len())?;
    let bs = options.block_size;
    if !NF4_BLOCK_SIZES.contains(&bs) {
        return Err(SchemeError::BlockSize { found: bs, allowed: NF4_BLOCK_SIZES });
    }
    let bounds = midpoints();
    let full = values.len() - values.len() % bs;
    let mut absmax = Vec::with_capacity(values.len().div_ceil(bs));
    // Plain indexed loops over preallocated buffers (no iterator adapters), so that the
    // SIMD copies of this function inline and vectorize them whole.
    let mut codes = vec![ZERO_CODE; values.len() + values.len() % 2];
    for (block, out) in values[..full].chunks_exact(bs).zip(codes.chunks_exact_mut(bs)) {
        let m = torch_absmax(block);
        absmax.push(m);
        let r = 1.0 / clamp_min(m, ABSMAX_FLOOR);
        for (o, &x) in out.iter_mut().zip(block) {
            *o = bucketize((x * r).clamp(-1.0, 1.0), &bounds);
        }
    }
    let tail = &values[full..];
    if !tail.is_empty() {
        let m = clamp_min(torch_absmax(tail), ABSMAX_FLOOR);
        absmax.push(m);
        for (o, &x) in codes[full..].iter_mut().zip(tail) {
            *o = bucketize((x / m).clamp(-1.0, 1.0), &bounds);
        }
    }
    let mut packed = vec![0u8; codes.len() / 2];
    for (p, c) in packed.iter_mut().zip(codes.chunks_exact(2)) {
        *p = (c[0] << 4) | c[1];
    }
    let absmax = if options.double_quant {
        Nf4Absmax::Double(double_quantize(&absmax, options.reduction))
    } else {
        Nf4Absmax::Plain(absmax)
    };
    Ok(Nf4Tensor { shape: shape.to_vec(), block_size: bs, packed, absmax })
}

/// Plain NF4 (no double quantization) of whole blocks into the caller's buffers: the bytes
/// and absmax values [`quantize_nf4`] gives for the same values, and the decoded values
/// ([`Nf4Tensor::dequantize`]) into `decoded`. For converters that stream a tensor a few blocks
/// at a time into buffers they reuse. On AVX-512 an explicit kernel does the blocks
/// (`smelt_kernels`), the reference those holding a NaN or an infinity.
///
/// Errors: a block size bitsandbytes refuses, `values` not whole blocks, or buffers whose
/// lengths disagree (`values.len() / 2` packed bytes, one absmax per block, `values.len()`
/// decoded values).
pub fn quantize_nf4_blocks_into(
    values: &[f32],
    block_size: usize,
    packed: &mut [u8],
    absmax: &mut [f32],
    decoded: &mut [f32],
) -> Result<(), SchemeError> {
    quantize_nf4_blocks_into_with(smelt_tensor::simd::tier(), values, block_size, packed, absmax, decoded)
}

/// [`quantize_nf4_blocks_into`] at a given [`smelt_tensor::simd::Tier`] (the same bytes and
/// bits at every one).
pub fn quantize_nf4_blocks_into_with(
    tier: smelt_tensor::simd::Tier,
    values: &[f32],
    block_size: usize,
    packed: &mut [u8],
    absmax: &mut [f32],
    decoded: &mut [f32],
) -> Result<(), SchemeError> {
    let bs = block_size;
    if !NF4_BLOCK_SIZES.contains(&bs) {
        return Err(SchemeError::BlockSize { found: bs, allowed: NF4_BLOCK_SIZES });
    }
    let n = values.len();
    if n % bs != 0 {
        return Err(SchemeError::NotMultiple { what: "values", found: n, multiple: bs });
    }
    if packed.len() != n / 2 || absmax.len() != n / bs || decoded.len() != n {
        return Err(SchemeError::PackedLength { count: n, expected: n / 2, found: packed.len() });
    }
    let isa = match tier {
        smelt_tensor::simd::Tier::Avx512 => Some(smelt_kernels::Isa::Avx512),
        smelt_tensor::simd::Tier::Avx2 => Some(smelt_kernels::Isa::Avx2),
        smelt_tensor::simd::Tier::Scalar => None,
    };
    if let Some(isa) = isa {
        let bounds = midpoints();
        let slow = smelt_kernels::explicit::quantize_nf4_with(
            isa,
            values,
            bs,
            &NF4_CODE,
            &bounds,
            ABSMAX_FLOOR,
            packed,
            absmax,
            decoded,
        );
        if let Some(slow) = slow {
            for b in slow {
                nf4_blocks_body(
                    &values[b * bs..(b + 1) * bs],
                    bs,
                    &mut packed[b * bs / 2..(b + 1) * bs / 2],
                    &mut absmax[b..b + 1],
                    &mut decoded[b * bs..(b + 1) * bs],
                );
            }
            return Ok(());
        }
    }
    nf4_blocks_tiered(tier, values, bs, packed, absmax, decoded);
    Ok(())
}

smelt_tensor::tiered!(fn nf4_blocks_tiered(values: &[f32], bs: usize, packed: &mut [u8], absmax: &mut [f32], decoded: &mut [f32]) = nf4_blocks_body);

/// The reference of [`quantize_nf4_blocks_into`]: [`quantize_nf4_body`]'s block loop and
/// [`Nf4Tensor::dequantize`]'s, block by block (lengths checked by the caller).
#[inline(always)]
fn nf4_blocks_body(values: &[f32], bs: usize, packed: &mut [u8], absmax: &mut [f32], decoded: &mut [f32]) {
    let bounds = midpoints();
    let blocks =
        values.chunks_exact(bs).zip(packed.chunks_exact_mut(bs / 2)).zip(decoded.chunks_exact_mut(bs));
    for (((block, out), dec), a) in blocks.zip(absmax.iter_mut()) {
        let m = torch_absmax(block);
        *a = m;
        let r = 1.0 / clamp_min(m, ABSMAX_FLOOR);
        for ((o, x), y) in out.iter_mut().zip(block.chunks_exact(2)).zip(dec.chunks_exact_mut(2)) {
            let c0 = bucketize((x[0] * r).clamp(-1.0, 1.0), &bounds);
            let c1 = bucketize((x[1] * r).clamp(-1.0, 1.0), &bounds);
            *o = (c0 << 4) | c1;
            y[0] = NF4_CODE[c0 as usize] * m;
            y[1] = NF4_CODE[c1 as usize] * m;
        }
    }
}

/// The 15 f32 midpoints between consecutive NF4 codes, `(a + b) / 2`.
fn midpoints() -> [f32; 15] {
    let mut m = [0.0f32; 15];
    for (i, v) in m.iter_mut().enumerate() {
        *v = (NF4_CODE[i] + NF4_CODE[i + 1]) / 2.0;
    }
    m
}

/// `torch.bucketize(x, bounds, right=False)`: the number of bounds strictly below `x`; NaN
/// compares as above every bound (torch's lower-bound search tests `!(bound >= x)`).
#[allow(clippy::neg_cmp_op_on_partial_ord)] // `!(b >= x)` is how torch treats NaN
#[inline(always)]
fn bucketize(x: f32, bounds: &[f32; 15]) -> u8 {
    // The bounds ascend, so the bounds below `x` are a prefix and its length is the count of
    // bounds below `x`: fifteen compares with no branch and no data-dependent load, which
    // vectorize (NaN passes every test and gets 15, as torch's search gives).
    bounds.iter().fold(0u8, |n, &b| n + u8::from(!(b >= x)))
}

/// `x.abs().max()` as torch computes it: NaN propagates.
#[inline(always)]
fn torch_absmax(block: &[f32]) -> f32 {
    // On the bits: |x| of non-NaN floats orders as the integer of its bits, and every NaN's
    // |x| bits lie above infinity's, so an integer max (which vectorizes, with no branch)
    // gives the largest |x|, or a NaN when there is one.
    let m = block.iter().fold(0u32, |m, x| m.max(x.to_bits() & 0x7fff_ffff));
    if m > 0x7f80_0000 {
        f32::NAN
    } else {
        f32::from_bits(m)
    }
}

/// `torch.clamp(x, min=lo)`: NaN stays NaN.
#[inline(always)]
fn clamp_min(x: f32, lo: f32) -> f32 {
    if x.is_nan() {
        x
    } else {
        x.max(lo)
    }
}

impl Nf4Tensor {
    /// Number of elements (the product of the shape; saturates instead of overflowing on a
    /// hand-built tensor).
    pub fn len(&self) -> usize {
        self.shape.iter().fold(1usize, |a, &d| a.saturating_mul(d))
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Code of element `i` (None past the end).
    pub fn code(&self, i: usize) -> Option<u8> {
        if i >= self.len() {
            return None;
        }
        let byte = *self.packed.get(i / 2)?;
        Some(if i % 2 == 0 { byte >> 4 } else { byte & 0xF })
    }

    /// The f32 absmax of every block (dequantized first under double quantization).
    pub fn block_absmax(&self) -> Vec<f32> {
        match &self.absmax {
            Nf4Absmax::Plain(a) => a.clone(),
            Nf4Absmax::Double(d) => d.dequantize(),
        }
    }

    /// The dequantized values, `NF4_CODE[q] · absmax[block]` in f32, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        nf4tensor_dequantize_tiered(smelt_tensor::simd::tier(), self)
    }

    #[inline(always)]
    fn dequantize_impl(&self) -> Vec<f32> {
        let absmax = self.block_absmax();
        // A hand-built tensor may claim more elements than it holds codes for.
        let n = self.len().min(self.packed.len().saturating_mul(2));
        let bs = self.block_size.max(1);
        if bs % 2 == 0 {
            // Blocks start on whole bytes: two values per byte, high nibble first.
            let mut out = vec![0f32; n + n % 2];
            for (b, (bytes, out)) in
                self.packed[..n.div_ceil(2)].chunks(bs / 2).zip(out.chunks_mut(bs)).enumerate()
            {
                let a = absmax.get(b).copied().unwrap_or(f32::NAN);
                for (&byte, o) in bytes.iter().zip(out.chunks_exact_mut(2)) {
                    o[0] = NF4_CODE[(byte >> 4) as usize] * a;
                    o[1] = NF4_CODE[(byte & 0xF) as usize] * a;
                }
            }
            out.truncate(n);
            return out;
        }
        let mut out = Vec::with_capacity(n);
        for (b, start) in (0..n).step_by(bs).enumerate() {
            let a = absmax.get(b).copied().unwrap_or(f32::NAN);
            out.extend((start..n.min(start + bs)).map(|i| {
                let byte = self.packed[i / 2];
                let q = if i % 2 == 0 { byte >> 4 } else { byte & 0xF };
                NF4_CODE[q as usize] * a
            }));
        }
        out
    }

    /// The tensors bitsandbytes' `Linear4bit` state dict holds for this weight, keyed under
    /// `weight_name` (see [`bnb_state`]); `source_dtype` is the weight's dtype before
    /// quantization (F32, F16 or BF16).
    ///
    /// Errors: any other source dtype.
    pub fn bnb_state_dict(
        &self,
        weight_name: &str,
        source_dtype: DType,
    ) -> Result<Vec<NamedTensor>, SchemeError> {
        bnb_state::state_dict(self, weight_name, source_dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-place block quantizer (explicit AVX-512 and AVX2 kernels, tiered copies) gives the bytes,
    /// absmax values and decoded bits of `quantize_nf4` and `dequantize`, on every level, over
    /// random blocks at many scales, all-zero blocks, blocks below the absmax floor, values on
    /// the midpoints, and blocks holding NaN or infinities.
    #[test]
    fn blocks_into_matches_quantize_nf4() {
        use smelt_tensor::simd::Tier;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let bounds = midpoints();
        for bs in [32usize, 64, 128] {
            let blocks = 37;
            let mut v = Vec::with_capacity(blocks * bs);
            for b in 0..blocks {
                let scale = 2f32.powi((next() % 180) as i32 - 140);
                for j in 0..bs {
                    let r = ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0;
                    v.push(match b % 7 {
                        0 => 0.0,
                        1 => r * 1e-39,
                        // Scaled so that x·r lands on the midpoints (block max 1).
                        2 if j == 0 => 1.0,
                        2 => bounds[(next() % 15) as usize] * if j % 2 == 0 { 1.0 } else { -1.0 },
                        3 if j == 5 => f32::NAN,
                        4 if j == 9 => f32::NEG_INFINITY,
                        _ => r * scale,
                    });
                }
            }
            let want =
                quantize_nf4(&v, &[v.len()], Nf4Options { block_size: bs, ..Nf4Options::default() }).unwrap();
            let want_dec = want.dequantize();
            let Nf4Absmax::Plain(want_absmax) = &want.absmax else { unreachable!() };
            for tier in Tier::ALL {
                let (mut packed, mut absmax, mut dec) =
                    (vec![0u8; v.len() / 2], vec![0f32; blocks], vec![0f32; v.len()]);
                quantize_nf4_blocks_into_with(tier, &v, bs, &mut packed, &mut absmax, &mut dec).unwrap();
                assert!(packed == want.packed, "bs {bs} {}: bytes differ", tier.name());
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&absmax), bits(want_absmax), "bs {bs} {}: absmax", tier.name());
                assert_eq!(bits(&dec), bits(&want_dec), "bs {bs} {}: decoded", tier.name());
            }
        }
    }

    #[test]
    fn code_table_is_bitsandbytes_nf4() {
        assert_eq!(NF4_CODE[0], -1.0);
        assert_eq!(NF4_CODE[7], 0.0);
        assert_eq!(NF4_CODE[15], 1.0);
        // The f64 literals bitsandbytes lists are these f32 values exactly.
        assert_eq!(NF4_CODE[1] as f64, -0.6961928009986877);
        assert_eq!(NF4_CODE[14] as f64, 0.7229568362236023);
        assert!(NF4_CODE.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn first_element_in_high_nibble() {
        let mut v = vec![0.0f32; 64];
        v[0] = 1.0; // code 15
        v[1] = -1.0; // code 0
        let t = quantize_nf4(&v, &[64], Nf4Options::default()).unwrap();
        assert_eq!(t.packed[0], 0xF0);
        assert_eq!(t.packed[1], 0x77);
        assert_eq!((t.code(0), t.code(1), t.code(64)), (Some(15), Some(0), None));
    }

    #[test]
    fn ties_take_the_lower_code_and_nan_takes_fifteen() {
        let b = midpoints();
        let mut v = vec![0.0f32; 64];
        v[0] = 1.0;
        v[1..16].copy_from_slice(&b);
        let t = quantize_nf4(&v, &[64], Nf4Options::default()).unwrap();
        for i in 1..16 {
            assert_eq!(t.code(i), Some(i as u8 - 1), "midpoint {i}");
        }
        let n = quantize_nf4(&[f32::NAN, 0.5, 0.25], &[3], Nf4Options::default()).unwrap();
        assert_eq!(n.packed, vec![0xFF, 0xF7]);
    }

    #[test]
    fn zero_blocks_and_tail() {
        let t = quantize_nf4(&[0.0; 65], &[65], Nf4Options::default()).unwrap();
        // Full block stores 0, the one-element tail stores the clamped 1e-38.
        assert_eq!(t.absmax, Nf4Absmax::Plain(vec![0.0, f32::from_bits(0x006C_E3EE)]));
        assert_eq!(t.packed, vec![0x77; 33]);
        assert_eq!(t.dequantize(), vec![0.0; 65]);
    }

    #[test]
    fn odd_shapes_and_bad_arguments() {
        for n in [0usize, 1, 63, 64, 65] {
            let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            for double_quant in [false, true] {
                let t = quantize_nf4(&v, &[n], Nf4Options { double_quant, ..Default::default() }).unwrap();
                assert_eq!(t.packed.len(), n.div_ceil(2));
                assert_eq!(t.dequantize().len(), n);
                t.bnb_state_dict("w", DType::F32).unwrap();
            }
        }
        assert!(matches!(
            quantize_nf4(&[0.0; 4], &[4], Nf4Options { block_size: 48, ..Default::default() }),
            Err(SchemeError::BlockSize { found: 48, .. })
        ));
        assert!(matches!(
            quantize_nf4(&[0.0; 4], &[5], Nf4Options::default()),
            Err(SchemeError::Shape { .. })
        ));
        let t = quantize_nf4(&[0.5; 4], &[2, 2], Nf4Options::default()).unwrap();
        assert!(matches!(
            t.bnb_state_dict("w", DType::I8),
            Err(SchemeError::SourceDType { dtype: DType::I8 })
        ));
    }

    #[test]
    fn state_dict_keys_and_json() {
        let v: Vec<f32> = (0..300).map(|i| (i as f32 * 0.1).cos()).collect();
        let t = quantize_nf4(&v, &[3, 100], Nf4Options::default()).unwrap();
        let sd = t.bnb_state_dict("lin.weight", DType::F32).unwrap();
        let keys: Vec<&str> = sd.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            keys,
            [
                "lin.weight",
                "lin.weight.absmax",
                "lin.weight.quant_map",
                "lin.weight.quant_state.bitsandbytes__nf4"
            ]
        );
        assert_eq!(sd[0].shape, vec![150, 1]);
        assert_eq!(
            std::str::from_utf8(&sd[3].bytes).unwrap(),
            r#"{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [3, 100]}"#
        );
    }
}

#[inline(always)]
fn nf4tensor_dequantize_body(t: &Nf4Tensor) -> Vec<f32> {
    t.dequantize_impl()
}
smelt_tensor::tiered!(fn nf4tensor_dequantize_tiered(t: &Nf4Tensor) -> Vec<f32> = nf4tensor_dequantize_body);
