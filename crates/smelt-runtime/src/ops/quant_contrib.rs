//! ONNX Runtime's contrib quantized matmuls (domain `com.microsoft`): MatMulNBits (2/4/8-bit
//! blocks, packed or float zero points, `g_idx`, bias) and MatMulBnb4 (NF4 and FP4).
//! Layouts are documented on smelt-kernels' `NBitsQ4` and `Bnb4Nf4`; every size is checked
//! here before a kernel is called, since the kernels assert on mismatched slices.
//!
//! When the weight is an initializer in a layout the 4-bit kernels take (MatMulNBits: 4 bits,
//! packed or no zero points, no `g_idx`; MatMulBnb4: NF4 with `block_size` dividing `K`), the
//! session repacks it once at load into smelt-kernels' `Packed4Bit` and releases the original
//! (the same results: the kernels pack the ONNX layout the same way on the fly).
//!
//! With act-order `g_idx` whose blocks each hold `block_size` elements (as GPTQ's act order
//! makes them: a permutation of `K` cut into blocks), the load sorts `K` by block instead
//! ([`ActOrder`]): the weight's columns are permuted so that block `b`'s elements sit at
//! `b·block_size..`, packed as above (or, at 8 bits, kept as below), and each call gathers
//! `A`'s columns in the same order.
//! Each output is then the same products summed in another order (within the kernels' bound),
//! and the call no longer dequantizes all of B into f32. Other `g_idx` take the general path.
//!
//! An 8-bit weight (any zero points) runs smelt-kernels' 8-bit kernels on its ONNX layout,
//! which needs no repacking; as an initializer its scales and zero points are converted to f32
//! once at load ([`Nbits8`]). 2-bit weights and 4-bit ones with float zero points (which the
//! 4-bit layout cannot hold) are widened to one byte per code and run the same kernels: the
//! same `(q - zp)·scale` per weight, up to four times B's bytes kept instead of eight times
//! written per call. Act-order `g_idx` as above works for all of them. The general path
//! (`g_idx` with unequal blocks, or with a fed B) dequantizes B into f32 on every call.

use std::sync::Arc;

use rayon::prelude::*;

use smelt_kernels::{Bnb4Nf4, NBitsQ4, NBitsQ8, Packed4Bit, NF4_CODE};

use crate::error::RuntimeError;
use crate::node::{FloatLike, OpCtx};
use crate::registry::{Prepared, Registry, MS_DOMAIN};
use crate::value::{Data, Value};

/// bitsandbytes' FP4 code (ONNX Runtime's `fp4_qaunt_map`).
const FP4_CODE: [f32; 16] = [
    0.0,
    5.208_333_3e-3,
    0.666_666_7,
    1.0,
    0.333_333_33,
    0.5,
    0.166_666_67,
    0.25,
    -0.0,
    -5.208_333_3e-3,
    -0.666_666_7,
    -1.0,
    -0.333_333_33,
    -0.5,
    -0.166_666_67,
    -0.25,
];

pub(crate) fn register(r: &mut Registry) {
    r.add_prepared(MS_DOMAIN, "MatMulNBits", 1, i64::MAX, matmul_nbits, prepare_matmul_nbits);
    r.add_prepared(MS_DOMAIN, "MatMulBnb4", 1, i64::MAX, matmul_bnb4, prepare_matmul_bnb4);
}

/// `Y = A · Wᵀ` on a weight packed at load, then the bias (input `bias`) and the output shape.
fn matmul_packed(c: &OpCtx<'_>, w: &Packed4Bit, bias: Option<usize>) -> Result<Vec<Value>, RuntimeError> {
    let a = c.input(0)?;
    let (m, av) = activations(c, a, w.k())?;
    let shape = out_shape(c, a, w.n())?;
    let y = w.matmul_vec(m, &av);
    finish(c, a, shape, y, bias.and_then(|i| c.opt(i)))
}

/// Whether every input in `inputs` the node has is an initializer (a load-time context holds
/// only those).
fn all_constant(c: &OpCtx<'_>, inputs: std::ops::RangeInclusive<usize>) -> bool {
    inputs.into_iter().all(|i| !c.has_input(i) || c.opt(i).is_some())
}

fn dim_attr(c: &OpCtx<'_>, name: &str) -> Result<usize, RuntimeError> {
    let v = c.int(name, -1);
    if v <= 0 {
        return Err(c.err(format!("attribute {name} must be positive, found {v}")));
    }
    Ok(v as usize)
}

/// `A [.., K]` as f32 rows: (rows m, values), checking the last dim is `k`.
fn activations(c: &OpCtx<'_>, a: &Value, k: usize) -> Result<(usize, Vec<f32>), RuntimeError> {
    if !a.dtype().is_float_like() || a.shape.last() != Some(&k) {
        return Err(c.shape_err("A must be float with last dim K", &a.shape, &[k]));
    }
    Ok((a.numel() / k.max(1), a.data.to_f32_vec()))
}

/// `A`'s shape with the last dim `n`, refused before `Y` is allocated when too large (`N`
/// comes from an attribute).
fn out_shape(c: &OpCtx<'_>, a: &Value, n: usize) -> Result<Vec<usize>, RuntimeError> {
    let mut shape = a.shape.clone();
    if let Some(last) = shape.last_mut() {
        *last = n;
    }
    c.checked_numel(&shape)?;
    Ok(shape)
}

/// The product of `factors`, refused when it overflows (they come from attributes).
fn product(c: &OpCtx<'_>, what: &str, factors: &[usize]) -> Result<usize, RuntimeError> {
    factors
        .iter()
        .try_fold(1usize, |a, &f| a.checked_mul(f))
        .ok_or_else(|| c.err(format!("{what} overflows: {factors:?}")))
}

/// `y` (rows of `shape`'s last dim, `N`) plus the bias, as a value of `A`'s dtype; `shape`
/// from [`out_shape`], checked before `y` was allocated.
fn finish(
    c: &OpCtx<'_>,
    a: &Value,
    shape: Vec<usize>,
    mut y: Vec<f32>,
    bias: Option<&Value>,
) -> Result<Vec<Value>, RuntimeError> {
    // `activations` refused a scalar A, so `shape` has its last dim, N.
    let n = shape.last().copied().unwrap_or(1);
    if let Some(b) = bias {
        let bv = b.data.to_f32_vec();
        if bv.len() != n {
            return Err(c.shape_err("bias must have N elements", &b.shape, &[n]));
        }
        for row in y.chunks_mut(n.max(1)) {
            row.iter_mut().zip(&bv).for_each(|(o, b)| *o += b);
        }
    }
    let data = Data::F32(y).cast(a.dtype()).ok_or_else(|| c.err("cast"))?;
    Ok(vec![Value::new(shape, data)])
}

/// MatMulNBits' attributes and weight inputs (B, scales, zero points, g_idx), checked.
struct NBitsWeight<'v> {
    k: usize,
    n: usize,
    bits: usize,
    bs: usize,
    kb: usize,
    bq: &'v [u8],
    scales: Vec<f32>,
    zp: Option<&'v Value>,
    packed_zp: bool,
    g_idx: Option<Vec<i32>>,
}

impl NBitsWeight<'_> {
    /// The packed zero points, when the zero points are packed u8.
    fn zp_bytes(&self) -> Option<&[u8]> {
        match self.zp.map(|z| &z.data) {
            Some(Data::U8(v)) if self.packed_zp => Some(v),
            _ => None,
        }
    }

    /// The zero points as one f32 per block (`n · k_blocks`), as the 8-bit kernels take them:
    /// unpacked from the packed u8 ones (`8 / bits` per byte, low bits first) or the floats;
    /// `2^(bits-1)` each when absent.
    fn zero_points_f32(&self) -> Vec<f32> {
        let (n, kb, bits) = (self.n, self.kb, self.bits);
        if let Some(z) = self.zp_bytes() {
            let (per, zp_row) = (8 / bits, (kb * bits).div_ceil(8));
            let mask = ((1u16 << bits) - 1) as u8;
            return (0..n * kb)
                .map(|e| (e / kb, e % kb))
                .map(|(j, blk)| f32::from((z[j * zp_row + blk / per] >> ((blk % per) * bits)) & mask))
                .collect();
        }
        match self.zp {
            Some(z) => z.data.to_f32_vec(),
            None => vec![(1u32 << (bits - 1)) as f32; n * kb],
        }
    }

    /// The weight with one byte per code, as the 8-bit kernels read it (rows of
    /// `k_blocks·block_size` codes, zero points as f32), when no 4-bit layout suits it: 8
    /// bits (the bytes as they are), 2 bits, and 4 bits with float zero points. The codes
    /// keep their positions (`g_idx`, if any, is the caller's).
    fn widened(&self) -> Option<Nbits8> {
        if self.packs_4bit() {
            return None;
        }
        let b = if self.bits == 8 {
            self.bq.to_vec()
        } else {
            let (bits, per) = (self.bits, 8 / self.bits);
            let mask = ((1u16 << bits) - 1) as u8;
            (0..self.n * self.kb * self.bs).map(|e| (self.bq[e / per] >> ((e % per) * bits)) & mask).collect()
        };
        // 8 bits without zero points keeps `None` (the kernels' default, 128); the narrower
        // widths spell theirs out.
        let zero_points = (self.bits != 8 || self.zp.is_some()).then(|| self.zero_points_f32());
        Some(Nbits8 {
            n: self.n,
            k: self.k,
            block_size: self.bs,
            b,
            scales: self.scales.clone(),
            zero_points,
        })
    }

    /// Whether the 4-bit packed layout holds this weight: 4 bits, integer zero points or none.
    fn packs_4bit(&self) -> bool {
        self.bits == 4 && (self.zp.is_none() || self.packed_zp)
    }

    /// The weight the 4-bit kernels take, when it is one.
    fn q4(&self) -> Option<NBitsQ4<'_>> {
        (self.packs_4bit() && self.g_idx.is_none()).then(|| NBitsQ4 {
            n: self.n,
            k: self.k,
            block_size: self.bs,
            b: self.bq,
            scales: &self.scales,
            zero_points: self.zp_bytes(),
        })
    }
}

fn nbits_weight<'v>(c: &OpCtx<'v>) -> Result<NBitsWeight<'v>, RuntimeError> {
    let (k, n) = (dim_attr(c, "K")?, dim_attr(c, "N")?);
    let bits = c.int("bits", 4);
    let bs = dim_attr(c, "block_size")?;
    if !matches!(bits, 2 | 4 | 8) || bs < 16 || !bs.is_power_of_two() {
        return Err(c.err(format!(
            "bits {bits} / block_size {bs} not supported (bits 2, 4 or 8; block a power of two >= 16)"
        )));
    }
    let bits = bits as usize;
    let b = c.input(1)?;
    let Data::U8(bq) = &b.data else { return Err(c.err("B must be uint8")) };
    let kb = k.div_ceil(bs);
    let blob = product(c, "block_size*bits", &[bs, bits])? / 8;
    if bq.len() != product(c, "N*ceil(K/block_size)*block_size*bits/8", &[n, kb, blob])? {
        return Err(c.shape_err(
            "B must be [N, ceil(K/block_size), block_size*bits/8]",
            &b.shape,
            &[n, kb, blob],
        ));
    }
    // n·kb·blob fits (it is B's length) and blob >= 2, so the products below do too.
    let scales = c.input(2)?.data.to_f32_vec();
    if scales.len() != n * kb {
        return Err(c.shape_err(
            "scales must have N*ceil(K/block_size) elements",
            &c.input(2)?.shape,
            &[n * kb],
        ));
    }
    let zp = c.opt(3);
    let g_idx: Option<Vec<i32>> = match c.opt(4) {
        Some(g) if g.numel() > 0 => {
            let v: Vec<i32> = g.data.to_i64_vec().into_iter().map(|x| x as i32).collect();
            if v.len() != k || v.iter().any(|&x| x < 0 || x as usize >= kb) {
                return Err(c.err(format!("g_idx must hold K={k} block indices in 0..{kb}")));
            }
            Some(v)
        }
        _ => None,
    };
    let zp_row = (kb * bits).div_ceil(8);
    let packed_zp = match zp {
        Some(z) if z.dtype() == smelt_tensor::DType::U8 => {
            if z.numel() != n * zp_row {
                return Err(c.shape_err(
                    "uint8 zero_points must be N*ceil(k_blocks*bits/8)",
                    &z.shape,
                    &[n * zp_row],
                ));
            }
            true
        }
        Some(z) if z.numel() != n * kb => {
            return Err(c.shape_err("float zero_points must be N*k_blocks", &z.shape, &[n * kb]))
        }
        _ => false,
    };
    Ok(NBitsWeight { k, n, bits, bs, kb, bq, scales, zp, packed_zp, g_idx })
}

/// At load: a constant 4-bit weight the kernels take, packed (B, scales and zero points are
/// then not read again); any other width (or float zero points) a byte per code for the 8-bit
/// kernels ([`Nbits8`]); with act-order `g_idx`, either permuted into blocks first
/// ([`ActOrder`]).
fn prepare_matmul_nbits(c: &OpCtx<'_>) -> Option<Prepared> {
    if !all_constant(c, 1..=4) {
        return None;
    }
    let w = nbits_weight(c).ok()?;
    // Widening writes up to four times B's bytes: within the element cap, or left to the
    // call (which refuses it).
    if !w.packs_4bit() {
        c.checked_numel(&[w.n, w.kb * w.bs]).ok()?;
    }
    if w.g_idx.is_none() {
        if let Some(w8) = w.widened() {
            return Some(Prepared { state: Arc::new(w8), replaces_inputs: vec![1, 2, 3] });
        }
    }
    if w.g_idx.is_some() {
        let act = ActOrder::new(&w)?;
        return Some(Prepared { state: Arc::new(act), replaces_inputs: vec![1, 2, 3, 4] });
    }
    let packed = Packed4Bit::from_nbits(&w.q4()?);
    Some(Prepared { state: Arc::new(packed), replaces_inputs: vec![1, 2, 3] })
}

/// An 8-bit MatMulNBits weight as smelt-kernels' `NBitsQ8` reads it, owned.
struct Nbits8 {
    n: usize,
    k: usize,
    block_size: usize,
    b: Vec<u8>,
    scales: Vec<f32>,
    zero_points: Option<Vec<f32>>,
}

impl Nbits8 {
    fn view(&self) -> NBitsQ8<'_> {
        NBitsQ8 {
            n: self.n,
            k: self.k,
            block_size: self.block_size,
            b: &self.b,
            scales: &self.scales,
            zero_points: self.zero_points.as_deref(),
        }
    }
}

/// `Y = A · Wᵀ` for an 8-bit weight, then the bias and the output shape.
fn matmul_q8(c: &OpCtx<'_>, w: &NBitsQ8<'_>) -> Result<Vec<Value>, RuntimeError> {
    let a = c.input(0)?;
    let (m, av) = activations(c, a, w.k)?;
    let shape = out_shape(c, a, w.n)?;
    product_q8(c, a, shape, m, &av, w)
}

/// [`matmul_q8`] on `A`'s rows `av` (`m` of them) already read, its output shape checked.
fn product_q8(
    c: &OpCtx<'_>,
    a: &Value,
    shape: Vec<usize>,
    m: usize,
    av: &[f32],
    w: &NBitsQ8<'_>,
) -> Result<Vec<Value>, RuntimeError> {
    let mut y = vec![0f32; m * w.n];
    smelt_kernels::matmul_nbits_q8_f32(m, av, w, &mut y);
    finish(c, a, shape, y, c.opt(5))
}

/// A 4- or 8-bit MatMulNBits weight with act-order `g_idx`, its `K` sorted by block: packed
/// column `i` is original column `perm[i]`, and `g_idx[perm[i]] = i / block_size`.
struct ActOrder {
    w: Sorted,
    perm: Vec<usize>,
}

/// The sorted weight, as the kernels of its width take it.
enum Sorted {
    Q4(Packed4Bit),
    Q8(Nbits8),
}

impl ActOrder {
    /// `None` unless every block of `g_idx` holds exactly the elements a block holds
    /// (`block_size`, fewer in the last).
    fn new(w: &NBitsWeight<'_>) -> Option<ActOrder> {
        let g = w.g_idx.as_ref()?;
        let (k, n, bs, kb) = (w.k, w.n, w.bs, w.kb);
        let mut perm: Vec<usize> = (0..k).collect();
        perm.sort_by_key(|&kk| g[kk]);
        if perm.iter().enumerate().any(|(i, &kk)| g[kk] as usize != i / bs) {
            return None;
        }
        // The codes moved to their sorted columns, row by row.
        let row = kb * bs;
        let sorted = match w.widened() {
            Some(mut w8) => {
                for r in w8.b.chunks_mut(row) {
                    let src = r.to_vec();
                    for (i, &kk) in perm.iter().enumerate() {
                        r[i] = src[kk];
                    }
                }
                Sorted::Q8(w8)
            }
            None => {
                // 4 bits: element kk is nibble kk % 2, low first, of byte kk / 2 (bs is even).
                let mut b = vec![0u8; w.bq.len()];
                for (src, dst) in w.bq.chunks(row / 2).zip(b.chunks_mut(row / 2)) {
                    for (i, &kk) in perm.iter().enumerate() {
                        let code = (src[kk / 2] >> (4 * (kk % 2))) & 0xF;
                        dst[i / 2] |= code << (4 * (i % 2));
                    }
                }
                let q4 =
                    NBitsQ4 { n, k, block_size: bs, b: &b, scales: &w.scales, zero_points: w.zp_bytes() };
                Sorted::Q4(Packed4Bit::from_nbits(&q4))
            }
        };
        Some(ActOrder { w: sorted, perm })
    }

    fn k(&self) -> usize {
        self.perm.len()
    }
}

fn matmul_nbits(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    if let Some(w) = c.prepared::<Packed4Bit>() {
        return matmul_packed(c, w, Some(5));
    }
    if let Some(w) = c.prepared::<Nbits8>() {
        return matmul_q8(c, &w.view());
    }
    if let Some(act) = c.prepared::<ActOrder>() {
        let a = c.input(0)?;
        let k = act.k();
        let (m, av) = activations(c, a, k)?;
        let n = match &act.w {
            Sorted::Q4(w) => w.n(),
            Sorted::Q8(w) => w.n,
        };
        let shape = out_shape(c, a, n)?;
        let sorted: Vec<f32> =
            av.chunks(k.max(1)).take(m).flat_map(|r| act.perm.iter().map(move |&kk| r[kk])).collect();
        return match &act.w {
            Sorted::Q4(w) => finish(c, a, shape, w.matmul_vec(m, &sorted), c.opt(5)),
            Sorted::Q8(w) => product_q8(c, a, shape, m, &sorted, &w.view()),
        };
    }
    let a = c.input(0)?;
    let (m, av) = activations(c, a, dim_attr(c, "K")?)?;
    let wt = nbits_weight(c)?;
    let NBitsWeight { k, n, bits, bs, kb, bq, ref scales, zp, ref g_idx, .. } = wt;
    let shape = out_shape(c, a, n)?;
    if let Some(w) = wt.q4() {
        let mut y = vec![0f32; m * n];
        smelt_kernels::matmul_nbits_q4_f32(m, &av, &w, &mut y);
        return finish(c, a, shape, y, c.opt(5));
    }
    if g_idx.is_none() {
        if bits == 8 {
            // A fed 8-bit weight: read in place, zero points as f32.
            let zf = zp.is_some().then(|| wt.zero_points_f32());
            let w = NBitsQ8 { n, k, block_size: bs, b: bq, scales, zero_points: zf.as_deref() };
            return product_q8(c, a, shape, m, &av, &w);
        }
        c.checked_numel(&[n, kb * bs])?;
        if let Some(w8) = wt.widened() {
            // 2 bits, or 4 with float zero points: one byte per code (a quarter or half of
            // what dequantizing into f32 would write), then the 8-bit kernels.
            return product_q8(c, a, shape, m, &av, &w8.view());
        }
    }
    // The paths below dequantize all of B into f32 (up to 8 times its bytes) first.
    c.checked_numel(&[n, k])?;
    let mut y = vec![0f32; m * n];
    if wt.packs_4bit() {
        // With g_idx (act order): dequantize with each element's block, then the GEMM.
        let w = NBitsQ4 { n, k, block_size: bs, b: bq, scales, zero_points: wt.zp_bytes() };
        let wd = smelt_kernels::dequantize_nbits_q4(&w, g_idx.as_deref());
        smelt_kernels::gemm_f32_bt(m, n, k, &av, &wd, &mut y);
        return finish(c, a, shape, y, c.opt(5));
    }
    // Other widths and float zero points with g_idx: a byte per code and f32 zero points (as
    // the 8-bit kernels take them), dequantized row by row on the pool with each element's
    // block, then the GEMM. Every element is `(q - z)·scale` whatever the thread.
    c.checked_numel(&[n, kb * bs])?;
    let (Some(w8), Some(g)) = (wt.widened(), g_idx.as_deref()) else {
        return Err(c.err("MatMulNBits: no path for this weight"));
    };
    let zf = w8.zero_points.unwrap_or_else(|| wt.zero_points_f32());
    let mut wd = vec![0f32; n * k];
    wd.par_chunks_mut(k).with_min_len(64).enumerate().for_each(|(j, row)| {
        let codes = &w8.b[j * kb * bs..][..k];
        for ((w, &q), &blk) in row.iter_mut().zip(codes).zip(g) {
            let at = j * kb + blk as usize;
            *w = (q as f32 - zf[at]) * scales[at];
        }
    });
    smelt_kernels::gemm_f32_bt(m, n, k, &av, &wd, &mut y);
    finish(c, a, shape, y, c.opt(5))
}

/// MatMulBnb4's attributes and weight inputs, checked.
struct Bnb4Weight<'v> {
    k: usize,
    n: usize,
    bs: usize,
    quant_type: i64,
    bq: &'v [u8],
    absmax: Vec<f32>,
}

fn bnb4_weight<'v>(c: &OpCtx<'v>) -> Result<Bnb4Weight<'v>, RuntimeError> {
    let (k, n) = (dim_attr(c, "K")?, dim_attr(c, "N")?);
    let bs = dim_attr(c, "block_size")?;
    let quant_type = c.int("quant_type", 1);
    if bs < 16 || !bs.is_power_of_two() || !matches!(quant_type, 0 | 1) {
        return Err(c.err(format!("block_size {bs} / quant_type {quant_type} not supported")));
    }
    let b = c.input(1)?;
    let Data::U8(bq) = &b.data else { return Err(c.err("B must be uint8")) };
    let absmax = c.input(2)?.data.to_f32_vec();
    let nk = product(c, "N*K", &[n, k])?;
    if bq.len() != nk.div_ceil(2) || absmax.len() != nk.div_ceil(bs) {
        return Err(c.shape_err(
            "B must be ceil(N*K/2) bytes and absmax ceil(N*K/block_size)",
            &b.shape,
            &[nk.div_ceil(2)],
        ));
    }
    Ok(Bnb4Weight { k, n, bs, quant_type, bq, absmax })
}

/// At load: a constant NF4 weight whose blocks do not straddle rows, packed.
fn prepare_matmul_bnb4(c: &OpCtx<'_>) -> Option<Prepared> {
    if !all_constant(c, 1..=2) {
        return None;
    }
    let Bnb4Weight { k, n, bs, quant_type, bq, absmax } = bnb4_weight(c).ok()?;
    if quant_type != 1 {
        return None;
    }
    let packed = Packed4Bit::from_nf4(&Bnb4Nf4 { n, k, block_size: bs, b: bq, absmax: &absmax })?;
    Some(Prepared { state: Arc::new(packed), replaces_inputs: vec![1, 2] })
}

fn matmul_bnb4(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    if let Some(w) = c.prepared::<Packed4Bit>() {
        return matmul_packed(c, w, None);
    }
    let a = c.input(0)?;
    let (m, av) = activations(c, a, dim_attr(c, "K")?)?;
    let Bnb4Weight { k, n, bs, quant_type, bq, absmax } = bnb4_weight(c)?;
    let shape = out_shape(c, a, n)?;
    let mut y = vec![0f32; m * n];
    if quant_type == 1 {
        let w = Bnb4Nf4 { n, k, block_size: bs, b: bq, absmax: &absmax };
        smelt_kernels::matmul_bnb4_nf4_f32(m, &av, &w, &mut y);
    } else {
        // FP4 dequantizes all of B into f32 (8 times its bytes) first.
        c.checked_numel(&[n, k])?;
        let wd: Vec<f32> = (0..n * k)
            .map(|e| {
                let byte = bq[e / 2];
                let q = if e % 2 == 0 { byte >> 4 } else { byte & 0xf };
                FP4_CODE[q as usize] * absmax[e / bs]
            })
            .collect();
        smelt_kernels::gemm_f32_bt(m, n, k, &av, &wd, &mut y);
    }
    let _ = NF4_CODE;
    finish(c, a, shape, y, None)
}
