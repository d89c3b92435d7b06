//! Per-architecture kernels behind safe entry points.
//!
//! Each entry point returns `false` when it has no implementation for the requested [`Isa`]
//! (the caller then runs the scalar reference). The `Isa` it receives went through
//! `Isa::or_scalar`, so it is one the CPU has: that is what makes calling the
//! `#[target_feature]` functions of the submodules sound. Everything here outside the
//! submodules is safe, portable code shared by the SIMD kernels (operand permutations).
#![allow(clippy::too_many_arguments)]
// Without x86-64 kernels (e.g. aarch64, scalar only for now) the operand descriptions below
// are built but never read.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

#[cfg(target_arch = "x86_64")]
mod x86_64;

use crate::bnb4::Bnb4Nf4;
use crate::dispatch::Isa;
use crate::nbits::NBitsQ4;

/// f32 GEMM columns `j0..j1` (see `f32_gemm::gemm_f32_cols_scalar`).
pub(crate) fn gemm_f32_cols(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    j0: usize,
    j1: usize,
    out: &mut [f32],
    ld: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::f32::gemm_cols(isa, m, n, k, a, b, j0, j1, out, ld)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, m, n, k, a, b, j0, j1, out, ld);
        false
    }
}

/// f32 GEMM with `B` as `n×k`, columns `j0..j1` (see `f32_gemm::gemm_f32_bt_cols_scalar`).
pub(crate) fn gemm_f32_bt_cols(
    isa: Isa,
    m: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    j0: usize,
    j1: usize,
    out: &mut [f32],
    ld: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::f32::gemm_bt_cols(isa, m, k, a, b, j0, j1, out, ld)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, m, k, a, b, j0, j1, out, ld);
        false
    }
}

/// `Σ a'·b'` of `m` padded unsigned rows against one VNNI-packed `B` panel, `w` columns (see
/// `int8_packed::int8_packed_panel_scalar`).
pub(crate) fn int8_packed_panel(
    isa: Isa,
    m: usize,
    k4: usize,
    ap: &[u8],
    panel: &[u8],
    w: usize,
    out: &mut [i32],
    ld: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::int8_packed::panel(isa, m, k4, ap, panel, w, out, ld)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, m, k4, ap, panel, w, out, ld);
        false
    }
}

/// Signedness of the int8 operands and whether column sums of `B` are wanted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Int8Plan {
    pub(crate) a_signed: bool,
    pub(crate) b_signed: bool,
    pub(crate) need_b_sums: bool,
}

/// Raw `Σ_k a·b` (true values, i32 wrapping) into `out` and, with `plan.need_b_sums`,
/// `Σ_k b` per column into `b_sums`, for columns `j0..j1` of `B` given as `n×k` bytes.
/// `a_sums[i]` is the (wrapping) sum of row `i` of `A`.
pub(crate) fn int8_dot_cols(
    isa: Isa,
    plan: Int8Plan,
    m: usize,
    k: usize,
    a: &[u8],
    b: &[u8],
    a_sums: &[i32],
    j0: usize,
    j1: usize,
    out: &mut [i32],
    ld: usize,
    b_sums: &mut [i32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::int8::dot_cols(isa, plan, m, k, a, b, a_sums, j0, j1, out, ld, b_sums)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, plan, m, k, a, b, a_sums, j0, j1, out, ld, b_sums);
        false
    }
}

/// A 4-bit weight whose blocks dequantize through a 16-entry table: `MatMulNBits` (table
/// `(q - zp)·scale`) or `MatMulBnb4` NF4 (table `NF4[q]·absmax`), rows whole blocks.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Lut4Weights<'a> {
    NBits(NBitsQ4<'a>),
    Nf4(Bnb4Nf4<'a>),
}

impl Lut4Weights<'_> {
    pub(crate) fn block_size(&self) -> usize {
        match self {
            Lut4Weights::NBits(w) => w.block_size,
            Lut4Weights::Nf4(w) => w.block_size,
        }
    }

    /// Blocks per row (NF4: `k / block_size`, only used when that divides exactly).
    pub(crate) fn blocks_per_row(&self) -> usize {
        match self {
            Lut4Weights::NBits(w) => w.k_blocks(),
            Lut4Weights::Nf4(w) => w.k / w.block_size,
        }
    }

    /// The packed codes of row `j` (whole blocks).
    pub(crate) fn row(&self, j: usize) -> &[u8] {
        match self {
            Lut4Weights::NBits(w) => &w.b[j * w.row_bytes()..(j + 1) * w.row_bytes()],
            Lut4Weights::Nf4(w) => &w.b[j * w.k / 2..(j + 1) * w.k / 2],
        }
    }

    /// Row `j`'s per-block scales (NF4: absmax) and packed zero points (`None`: NF4, or 8).
    pub(crate) fn row_params(&self, j: usize) -> (&[f32], Option<&[u8]>) {
        match self {
            Lut4Weights::NBits(w) => {
                let kb = w.k_blocks();
                let zb = kb.div_ceil(2);
                (&w.scales[j * kb..(j + 1) * kb], w.zero_points.map(|z| &z[j * zb..(j + 1) * zb]))
            }
            Lut4Weights::Nf4(w) => {
                let nb = w.k / w.block_size;
                (&w.absmax[j * nb..(j + 1) * nb], None)
            }
        }
    }

    pub(crate) fn is_nf4(&self) -> bool {
        matches!(self, Lut4Weights::Nf4(_))
    }
}

/// Elements per step of the 4-bit kernels: 32 (16 bytes) when a block holds that many, else 16.
pub(crate) fn lut4_group(block_size: usize) -> usize {
    if block_size >= 32 {
        32
    } else {
        16
    }
}

/// Rows of `A` (`m×k`) reordered to match how the 4-bit kernels load codes: per `group`
/// elements, first the elements in the bytes' low nibbles, then those in the high nibbles;
/// zero-padded from `k` to `kp`. `high_first`: the first element of each byte is in its high
/// nibble (NF4) rather than its low one (MatMulNBits).
pub(crate) fn permute_nibble_lanes(
    m: usize,
    k: usize,
    a: &[f32],
    kp: usize,
    group: usize,
    high_first: bool,
) -> Vec<f32> {
    let mut out = vec![0.0f32; m * kp];
    let half = group / 2;
    let (lo_off, hi_off) = if high_first { (1, 0) } else { (0, 1) };
    for i in 0..m {
        let (src, dst) = (&a[i * k..(i + 1) * k], &mut out[i * kp..(i + 1) * kp]);
        for g in (0..kp).step_by(group) {
            for t in 0..half {
                let (lo, hi) = (g + 2 * t + lo_off, g + 2 * t + hi_off);
                dst[g + t] = if lo < k { src[lo] } else { 0.0 };
                dst[g + half + t] = if hi < k { src[hi] } else { 0.0 };
            }
        }
    }
    out
}

/// `Σ a·w` for a table-dequantized 4-bit weight, columns `j0..j1`, `a_perm` from
/// [`permute_nibble_lanes`] (`m` rows of `blocks_per_row · block_size`).
pub(crate) fn lut4_gemv_cols(
    isa: Isa,
    w: &Lut4Weights<'_>,
    m: usize,
    a_perm: &[f32],
    j0: usize,
    j1: usize,
    out: &mut [f32],
    ld: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::lut4::gemv_cols(isa, w, m, a_perm, j0, j1, out, ld)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, w, m, a_perm, j0, j1, out, ld);
        false
    }
}

/// `Σ a·q` (codes only, no scale) for a 2-bit ternary weight with `k % 4 == 0`, columns
/// `j0..j1`.
pub(crate) fn ternary_gemv_cols(
    isa: Isa,
    m: usize,
    k: usize,
    a: &[f32],
    packed: &[u8],
    j0: usize,
    j1: usize,
    out: &mut [f32],
    ld: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::ternary::gemv_cols(isa, m, k, a, packed, j0, j1, out, ld)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, m, k, a, packed, j0, j1, out, ld);
        false
    }
}
