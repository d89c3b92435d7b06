//! Per-architecture kernels behind safe entry points.
//!
//! Each entry point returns `false` when it has no implementation for the requested [`Isa`]
//! (the caller then runs the scalar reference). The `Isa` it receives went through
//! `Isa::or_scalar`, so it is one the CPU has: that is what makes calling the
//! `#[target_feature]` functions of the submodules sound.
#![allow(clippy::too_many_arguments)]
// Without x86-64 kernels (aarch64 has the f32 GEMMs, int8 and the 4-bit and ternary GEMVs) some operand
// descriptions below are built but never read.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

/// The 8-bit `MatMulNBits` GEMV driver both architectures share: weight rows in groups of
/// `nbits8::gemv_group(m)` (single rows at the end), each group run by
/// `$kernel::<M, R, ZP>(w, a, kp, j, out, ld)`, an `unsafe fn` whose contract is `isa`
/// available, `j + R ≤ n` and the slices `NBitsQ8::check_gemv` asserts.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! q8_gemv_groups {
    ($kernel:ident, $w:expr, $m:expr, $a:expr, $kp:expr, $out:expr, $ld:expr) => {{
        let (w, m, a, kp, out, ld) = ($w, $m, $a, $kp, $out, $ld);
        let zp = w.zero_points.is_some();
        let group = crate::nbits8::gemv_group(m);
        let mut j = 0;
        while j < w.n && m > 0 {
            let full = j + group <= w.n;
            macro_rules! run {
                ($mm:literal, $r:literal) => {
                    // SAFETY: the caller checked the ISA and called `check_gemv`, whose
                    // assertions bound every load: rows `j..j + R` of codes, scales and zero
                    // points (`j + R ≤ n`), `a` by `M·kp` and `out` by `(M-1)·ld + n`.
                    unsafe {
                        if zp {
                            $kernel::<$mm, $r, true>(w, a, kp, j, out, ld)
                        } else {
                            $kernel::<$mm, $r, false>(w, a, kp, j, out, ld)
                        }
                    }
                };
            }
            match (m, full) {
                (1, true) => run!(1, 4),
                (1, false) => run!(1, 1),
                (2, true) => run!(2, 2),
                (2, false) => run!(2, 1),
                (3, _) => run!(3, 1),
                _ => run!(4, 1),
            }
            j += if full { group } else { 1 };
        }
    }};
}

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86_64;

use crate::dispatch::Isa;
use crate::nbits8::NBitsQ8;
use crate::packed4::Tiles4;
use crate::ternary::TernaryTiles;

/// The bounds every f32 column kernel's raw loads and stores rely on: `a` holds `m×k`, `b`
/// `k×n` (or `n×k`), columns `j0..j1` of `n`, and `out` `m` rows of stride `ld ≥ j1 - j0`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn check_cols(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    j0: usize,
    j1: usize,
    out: &[f32],
    ld: usize,
) {
    assert!(a.len() >= m * k && b.len() >= k * n && j0 <= j1 && j1 <= n);
    assert!(m == 0 || out.len() >= (m - 1) * ld + (j1 - j0));
    assert!(ld >= j1 - j0);
}

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
    #[cfg(target_arch = "aarch64")]
    {
        aarch64::f32::gemm_cols(isa, m, n, k, a, b, j0, j1, out, ld)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (isa, m, n, k, a, b, j0, j1, out, ld);
        false
    }
}

/// One row `a` (`k`) against consecutive 32-column `k×32` panels of a `PackedF32`
/// (`panels`, zero columns past `width`): `out[j] = Σ a[kk]·B[kk, j]` for `j < width`, each
/// element the same in-order FMA chain as [`gemm_f32_cols`], several panels per pass.
pub(crate) fn gemv_f32_panels(
    isa: Isa,
    k: usize,
    a: &[f32],
    panels: &[f32],
    width: usize,
    out: &mut [f32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::f32::gemv_panels(isa, k, a, panels, width, out)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, k, a, panels, width, out);
        false
    }
}

/// Rows of `A` per packed tile of the blocked f32 GEMM on `isa`, `None` without one.
pub(crate) fn blocked_row_tile(isa: Isa) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::blocked::row_tile(isa)
    }
    #[cfg(target_arch = "aarch64")]
    {
        aarch64::f32::row_tile(isa)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = isa;
        None
    }
}

/// Packs columns `0..done` of the `mr`-row block `src` (`mr × k`, row-major) into `tile` as
/// `tile[kk·mr + r] = src[r·k + kk]` and returns `done` (0 where `isa` has no such copy; the
/// caller packs the rest).
pub(crate) fn pack_a_tile(isa: Isa, mr: usize, k: usize, src: &[f32], tile: &mut [f32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::blocked::pack_a_tile(isa, mr, k, src, tile)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, mr, k, src, tile);
        0
    }
}

/// Asks for the cache lines of `data` to be brought into L2 (a hint: no effect on any result;
/// nothing on targets without a stable prefetch instruction).
pub(crate) fn prefetch_l2<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        let (p, len) = (data.as_ptr().cast::<i8>(), std::mem::size_of_val(data));
        let mut off = 0;
        while off < len {
            // SAFETY: a hint, issued only for addresses inside `data`; SSE is baseline on x86_64.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(p.add(off)) };
            off += 64;
        }
        if len > 0 {
            // The last line, when `data` does not start on a line boundary.
            // SAFETY: as above.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(p.add(len - 1)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = data;
    }
}

/// The blocked GEMM's micro-kernels over one `kc × 32` panel `b` (row stride 32): for every
/// row `i < m`, `out[i, 0..w] (+)= Σ_{kk < kc} A[i, kc0 + kk]·b[kk, 0..w]`, `A` packed in row
/// tiles by `blocked::pack_a` (`pa`, `k` columns), accumulating onto `out` when `kc0 > 0`.
/// `next` is the panel the caller runs after this one (empty if none or not in memory yet):
/// a kernel may prefetch it, which changes no result.
#[allow(clippy::too_many_arguments)]
pub(crate) fn blocked_panel(
    isa: Isa,
    m: usize,
    k: usize,
    kc0: usize,
    kc: usize,
    pa: &[f32],
    b: &[f32],
    next: &[f32],
    w: usize,
    out: &mut [f32],
    ld: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::blocked::panel(isa, m, k, kc0, kc, pa, b, next, w, out, ld)
    }
    #[cfg(target_arch = "aarch64")]
    {
        let _ = next;
        aarch64::f32::panel(isa, m, k, kc0, kc, pa, b, w, out, ld)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (isa, m, k, kc0, kc, pa, b, next, w, out, ld);
        false
    }
}

/// Rows of tiles `tile0..tile0 + 8` of `t` (32 weight rows, zeros past `t.tiles`) dequantized
/// into a `B` panel of the blocked GEMM: `buf[kk - kc0][c]` = element `kk` of row `c`, for
/// `kk` in `kc0..` the end of the 16-element group holding `kc0 + kc - 1`.
pub(crate) fn q4_dequant_panel(
    isa: Isa,
    t: &Tiles4<'_>,
    tile0: usize,
    kc0: usize,
    kc: usize,
    buf: &mut [f32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::blocked::q4_dequant_panel(isa, t, tile0, kc0, kc, buf)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, t, tile0, kc0, kc, buf);
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
    #[cfg(target_arch = "aarch64")]
    {
        aarch64::f32::gemm_bt_cols(isa, m, k, a, b, j0, j1, out, ld)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
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

/// [`int8_packed_panel`] with `A` packed in tiles of 8 rows (`int8_packed::tile_a`): the
/// same sums, blocked along `k` for many rows. `next` is the panel computed after this one
/// (empty for the last), which the kernel may prefetch; it does not change the result.
#[allow(clippy::too_many_arguments)]
pub(crate) fn int8_packed_panel_tiled(
    isa: Isa,
    m: usize,
    k4: usize,
    apt: &[u8],
    panel: &[u8],
    next: &[u8],
    w: usize,
    out: &mut [i32],
    ld: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::int8_packed::panel_tiled(isa, m, k4, apt, panel, next, w, out, ld)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, m, k4, apt, panel, next, w, out, ld);
        false
    }
}

/// [`int8_packed_panel_tiled`] with the zero-point correction and the scale applied as each
/// tile's sums are finished, into `f32` (see [`crate::int8_packed::Finish`]); `false` when
/// `isa` has no such kernel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn int8_packed_panel_tiled_scaled(
    isa: Isa,
    m: usize,
    k4: usize,
    apt: &[u8],
    panel: &[u8],
    next: &[u8],
    w: usize,
    fin: &crate::int8_packed::Finish<'_>,
    block: &mut crate::parallel::ColBlock<'_, f32>,
    col: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::int8_packed::panel_tiled_scaled(isa, m, k4, apt, panel, next, w, fin, block, col)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, m, k4, apt, panel, next, w, fin, block, col);
        false
    }
}

/// Rows per tile of `A` for [`int8_pairs_panel`].
pub(crate) const INT8_PAIRS_TILE: usize = 6;

/// `Σ a'·b'` of `m` rows of `A` in tiles of 6 (`int8_packed::tile_pairs`) against one pair
/// panel (16 columns, see `int8_packed.rs`), `w` columns into `out` (row stride `ld`);
/// `false` when `isa` has no such kernel. `next` is the panel computed after this one (empty
/// for the last), which the kernel may prefetch; it does not change the result.
#[allow(clippy::too_many_arguments)]
pub(crate) fn int8_pairs_panel(
    isa: Isa,
    m: usize,
    k2: usize,
    apt: &[u32],
    panel: &[u8],
    next: &[u8],
    w: usize,
    out: &mut [i32],
    ld: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::int8_pairs::panel(isa, m, k2, apt, panel, next, w, out, ld)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, m, k2, apt, panel, next, w, out, ld);
        false
    }
}

/// [`int8_pairs_panel`] with the zero-point correction and the scale applied as each tile's
/// sums are finished, into `f32` (see [`crate::int8_packed::Finish`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn int8_pairs_panel_scaled(
    isa: Isa,
    m: usize,
    k2: usize,
    apt: &[u32],
    panel: &[u8],
    next: &[u8],
    w: usize,
    fin: &crate::int8_packed::Finish<'_>,
    block: &mut crate::parallel::ColBlock<'_, f32>,
    col: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::int8_pairs::panel_scaled(isa, m, k2, apt, panel, next, w, fin, block, col)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, m, k2, apt, panel, next, w, fin, block, col);
        false
    }
}

/// Leading rows of [`crate::row_sums_of_squares_f64`] done with SIMD (0 without).
pub(crate) fn row_sums_of_squares(isa: Isa, x: &[f32], len: usize, sums: &mut [f64]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::rows::sums_of_squares(isa, x, len, sums)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, x, len, sums);
        0
    }
}

/// Leading elements of [`crate::sigmoid_f32`] done with SIMD (whole vectors; 0 without).
pub(crate) fn sigmoid_f32(isa: Isa, x: &[f32], out: &mut [f32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::exp::sigmoid_f32(isa, x, out)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, x, out);
        0
    }
}

/// Leading elements of [`crate::exp_shifted_f64`] done with SIMD (whole vectors; 0 without).
pub(crate) fn exp_shifted_f64(isa: Isa, x: &[f32], shift: f64, out: &mut [f64]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::exp::exp_shifted_f64(isa, x, shift, out)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, x, shift, out);
        0
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
    #[cfg(target_arch = "aarch64")]
    {
        aarch64::int8::dot_cols(isa, plan, m, k, a, b, a_sums, j0, j1, out, ld, b_sums)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (isa, plan, m, k, a, b, a_sums, j0, j1, out, ld, b_sums);
        false
    }
}

/// `Σ a·w` for up to 4 rows of `A` (`a`: `m` rows of `blocks · block_size` floats, zero
/// padded past `k`) against the packed 4-bit tiles `t`, into `width` (≤ tiles · 4) columns of
/// `out` (row stride `ld`).
pub(crate) fn q4_gemv_tiles(
    isa: Isa,
    t: &Tiles4<'_>,
    m: usize,
    a: &[f32],
    width: usize,
    out: &mut [f32],
    ld: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::q4::gemv_tiles(isa, t, m, a, width, out, ld)
    }
    #[cfg(target_arch = "aarch64")]
    {
        aarch64::q4::gemv_tiles(isa, t, m, a, width, out, ld)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (isa, t, m, a, width, out, ld);
        false
    }
}

/// `m` (≤ 4) rows of `A` (each `w.row_bytes()` long, zero past `k`) against every row of the
/// 8-bit `MatMulNBits` weight `w`, into `out` (row stride `ld`): `Σ_blocks scale · Σ a·(q - zp)`.
pub(crate) fn q8_gemv_rows(
    isa: Isa,
    w: &NBitsQ8<'_>,
    m: usize,
    a: &[f32],
    out: &mut [f32],
    ld: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::q8::gemv_rows(isa, w, m, a, out, ld)
    }
    #[cfg(target_arch = "aarch64")]
    {
        aarch64::q8::gemv_rows(isa, w, m, a, out, ld)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (isa, w, m, a, out, ld);
        false
    }
}

/// Rows `j0..j0 + 32` of the 8-bit weight `w` (zeros past `w.n`) dequantized into a `B`
/// panel of the blocked GEMM: `buf[kk - kc0][c]` = element `kk` of row `j0 + c`, bit for bit
/// `NBitsQ8::dequantize_part`'s `(q - zp)·scale`, for `kk` in `kc0..kc0 + kc` (`kc0` a
/// multiple of 8, `kc ≥ 1`; the rows of `buf` up to `kc` rounded up to 8 may be written too,
/// from the row's padding codes). `false` without a kernel for `isa` or for the range.
pub(crate) fn q8_dequant_panel(
    isa: Isa,
    w: &NBitsQ8<'_>,
    j0: usize,
    kc0: usize,
    kc: usize,
    buf: &mut [f32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::q8::dequant_panel(isa, w, j0, kc0, kc, buf)
    }
    #[cfg(target_arch = "aarch64")]
    {
        aarch64::q8::dequant_panel(isa, w, j0, kc0, kc, buf)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (isa, w, j0, kc0, kc, buf);
        false
    }
}

/// `scale · Σ a·q` for one row of `A` against the packed ternary tiles `t`, `tables` from
/// `ternary::pair_tables`, into `out` (≤ tiles · 16 columns).
pub(crate) fn ternary_gemv_tiles(
    isa: Isa,
    t: &TernaryTiles<'_>,
    tables: &[f32],
    scale: f32,
    out: &mut [f32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::ternary::gemv_tiles(isa, t, tables, scale, out)
    }
    #[cfg(target_arch = "aarch64")]
    {
        aarch64::ternary::gemv_tiles(isa, t, tables, scale, out)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (isa, t, tables, scale, out);
        false
    }
}

/// The pair tables of `ternary::pair_tables` for one row (`a`: `2·pairs` floats, `t`:
/// `16·pairs`), the same bits as `ternary::pair_tables_scalar`.
pub(crate) fn ternary_pair_tables(isa: Isa, a: &[f32], t: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::ternary::pair_tables(isa, a, t)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, a, t);
        false
    }
}
