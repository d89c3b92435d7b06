//! aarch64 kernels (Advanced SIMD, which every aarch64 CPU has): the f32 GEMMs (including the
//! blocked micro-kernel for many rows), int8 `MatMulInteger`, the 4-bit and ternary GEMVs over
//! the packed layouts, and the 8-bit `MatMulNBits` GEMV.
//!
//! Every `#[target_feature]` function here is private to its module and reached only through
//! a safe entry point that receives [`Isa::Neon`](crate::Isa::Neon) or
//! [`Isa::NeonDot`](crate::Isa::NeonDot) (see `arch/mod.rs`) and asserts the slice lengths the
//! raw loads rely on.

pub(crate) mod f32;
pub(crate) mod int8;
pub(crate) mod q4;
pub(crate) mod q8;
pub(crate) mod ternary;
