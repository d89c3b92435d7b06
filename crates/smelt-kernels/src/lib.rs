//! smelt's compute kernels: the arithmetic the reference runner spends its time in.
//!
//! Every operation has a scalar reference (written for clarity, and the fallback on any CPU)
//! and SIMD versions chosen once at run time from the CPU's features ([`selected`]); setting
//! `SMELT_FORCE_SCALAR=1` in the environment forces the scalar path. Integer kernels match
//! their scalar reference bit for bit; float kernels differ from it only by summation order
//! and FMA rounding (see each function for the bound the tests hold it to).
//!
//! Operations, all on row-major contiguous slices with `C` overwritten:
//! - f32 GEMM/GEMV: [`gemm_f32`] (`B` is `k×n`), [`gemm_f32_bt`] (`B` is `n×k`, a Linear
//!   weight `[out, in]`), [`gemm_f32_packed`] (a constant `B` packed once, [`PackedF32`]);
//! - int8 → i32, exact, ONNX `MatMulInteger`: [`matmul_integer`], [`matmul_integer_bt`], and
//!   [`matmul_integer_packed`] (a constant `B` packed once, [`PackedInt8`]), and
//!   [`matmul_integer_packed_scaled`] (the same followed by `Cast` to f32 and a scale);
//! - block int4 and int8 dequantize-matmul over ONNX Runtime's `com.microsoft.MatMulNBits`
//!   layout: [`matmul_nbits_q4_f32`], [`matmul_nbits_q8_f32`];
//! - NF4 dequantize-matmul over `com.microsoft.MatMulBnb4`'s layout: [`matmul_bnb4_nf4_f32`];
//! - ternary matmul over smelt's 2-bit ternary packing: [`matmul_ternary2_f32`];
//! - round-to-nearest affine quantization of a run sharing one scale and zero point, with its
//!   decoded values (INT8 and block int4 weights in `smelt convert`): [`quantize_affine_scalar`];
//! - ONNX `DynamicQuantizeLinear` (f32 → u8 with its scale and zero point), exact:
//!   [`dynamic_quantize_u8`];
//! - the logistic sigmoid and softmax's `exp(x - max)` in f64 for f32 data: [`sigmoid_f32`],
//!   [`exp_shifted_f64`];
//! - the same three on weights repacked once for the GEMV kernels (what a runtime keeps for a
//!   constant weight): [`Packed4Bit`] (int4 and NF4) and [`PackedTernary2`].
//!
//! Threads: large calls run on rayon's pool, split over output columns only (never over the
//! reduction dimension) in chunks whose boundaries do not depend on the thread count, and each
//! output element is computed by the same instruction sequence wherever its chunk starts, so
//! results are bit-identical whatever the number of threads.
//!
//! Panics: every function panics when a slice is shorter or longer than its shape says
//! (`assert!`, documented per function); callers check shapes first. No other input panics.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod affine_quant;
mod arch;
mod blocked;
mod bnb4;
mod dispatch;
mod dql;
mod exp;
mod f32_gemm;
mod int8;
mod int8_packed;
mod legacy_quant;
mod nbits;
mod nbits8;
mod nf4_quant;
mod packed4;
mod parallel;
mod q8_0;
mod rows;
mod stats;
mod ternary;
mod transpose;

pub use affine_quant::{quantize_affine_scalar, AffineParams};
pub use blocked::GEMM_ROWS_REGIME;
pub use bnb4::{dequantize_bnb4_nf4, matmul_bnb4_nf4_f32, Bnb4Nf4, NF4_CODE, NF4_CODE_BITS};
pub use dispatch::{selected, Isa, Selection};
pub use dql::dynamic_quantize_u8;
pub use exp::{exp_shifted_f64, sigmoid_f32};
pub use f32_gemm::{
    gemm_f32, gemm_f32_batch_vec, gemm_f32_bt, gemm_f32_packed, gemm_f32_packed_vec, PackedF32,
};
pub use int8::{matmul_integer, matmul_integer_bt, transpose_bytes, Int8Matrix, ZeroPoints};
pub use int8_packed::{
    matmul_integer_packed, matmul_integer_packed_scaled, matmul_integer_packed_scaled_vec, PackedInt8,
};
pub use legacy_quant::{LegacyType, LEGACY_BLOCK};
pub use nbits::{dequantize_nbits_q4, matmul_nbits_q4_f32, NBitsQ4};
pub use nbits8::{dequantize_nbits_q8, matmul_nbits_q8_f32, NBitsQ8, NBITS8_DEFAULT_ZERO_POINT};
pub use packed4::{Code4, Packed4Bit, TILE_ROWS};
pub use q8_0::{Q8_0_BLOCK, Q8_0_BYTES};
pub use rows::row_sums_of_squares_f64;
pub use stats::{error_lanes, ErrorLanes, ERROR_LANES};
pub use ternary::{dequantize_ternary2, matmul_ternary2_f32, PackedTernary2, Ternary2, TERNARY_TILE_ROWS};
pub use transpose::transpose;

/// The same operations with the instruction set chosen by the caller instead of by
/// [`selected`]: for differential tests and benchmarks. An [`Isa`] the CPU lacks falls back
/// to scalar (never executes unsupported instructions).
pub mod explicit {
    pub use crate::affine_quant::{quantize_affine_groups_with, quantize_affine_with};
    pub use crate::bnb4::matmul_bnb4_nf4_f32_with;
    pub use crate::dql::dynamic_quantize_u8_with;
    pub use crate::exp::{exp_shifted_f64_with, sigmoid_f32_with};
    pub use crate::f32_gemm::{gemm_f32_bt_with, gemm_f32_packed_with, gemm_f32_with};
    pub use crate::int8::{matmul_integer_bt_with, matmul_integer_with};
    pub use crate::int8_packed::{matmul_integer_packed_scaled_with, matmul_integer_packed_with};
    pub use crate::legacy_quant::quantize_legacy_with;
    pub use crate::nbits::matmul_nbits_q4_f32_with;
    pub use crate::nbits8::matmul_nbits_q8_f32_with;
    pub use crate::nf4_quant::quantize_nf4_with;
    pub use crate::packed4::matmul_packed4_f32_with;
    pub use crate::q8_0::quantize_q8_0_with;
    pub use crate::rows::row_sums_of_squares_f64_with;
    pub use crate::stats::error_lanes_with;
    pub use crate::ternary::{matmul_packed_ternary2_f32_with, matmul_ternary2_f32_with};
}
