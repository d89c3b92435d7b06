//! Per-architecture kernels. Each entry point returns `false` when it has no implementation
//! for the requested [`Isa`] (the caller then runs the scalar reference); the `Isa` it is
//! given is one the CPU has (`Isa::or_scalar` was applied), which is what makes calling the
//! `#[target_feature]` functions inside sound.
#![allow(clippy::too_many_arguments)]

use crate::dispatch::Isa;

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
    let _ = (isa, m, n, k, a, b, j0, j1, out, ld);
    false
}

/// f32 GEMM with `B` transposed, columns `j0..j1` (see `f32_gemm::gemm_f32_bt_cols_scalar`).
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
    let _ = (isa, m, k, a, b, j0, j1, out, ld);
    false
}
