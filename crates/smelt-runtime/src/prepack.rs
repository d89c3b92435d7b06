//! Constant matmul weights prepared once at load, as ONNX Runtime's kernels pre-pack theirs.
//!
//! A `MatMul`, `Gemm` (`transB=0`) or `MatMulInteger` whose `B` is a 2-D initializer gets that
//! `B` transposed to `[n, k]` ([`PackedB`]) when the session loads, so every run calls the
//! dot-product kernels (`gemm_f32_bt`, `matmul_integer_bt`) instead of transposing `B` again
//! (smelt-kernels' `gemm_f32` for 8 rows or more and `matmul_integer` transpose on every
//! call). The node then reads the packed copy instead of its `B` input, and an initializer no
//! node reads any more is dropped, so the weights are held once.
//!
//! The kernels compute each output element with the same instructions either way
//! (`gemm_f32`'s SIMD path from 8 rows on *is* `gemm_f32_bt` on a transposed copy; integer
//! products are exact), except `gemm_f32` below 8 rows, which accumulates along `k` in order
//! where the dot product uses lane partial sums: both are within the kernels' documented
//! bound of the scalar reference.

use std::sync::Arc;

use smelt_kernels::{transpose, Int8Matrix};

use crate::value::{Data, Value};

/// A matmul's constant `B` (`[k, n]` in the graph), stored transposed.
#[derive(Clone, Debug, PartialEq)]
pub enum PackedB {
    /// f32 `B` of `MatMul` / `Gemm`.
    F32 {
        /// Inner dimension.
        k: usize,
        /// Output columns.
        n: usize,
        /// `Bᵀ`, `n×k` row-major.
        bt: Vec<f32>,
    },
    /// int8 or uint8 `B` of `MatMulInteger`.
    Int8 {
        /// Inner dimension.
        k: usize,
        /// Output columns.
        n: usize,
        /// `Bᵀ`, `n×k` row-major: `Data::I8` or `Data::U8`.
        bt: Data,
    },
}

impl PackedB {
    /// The graph's shape of `B`, `[k, n]`.
    pub fn shape(&self) -> [usize; 2] {
        match self {
            PackedB::F32 { k, n, .. } | PackedB::Int8 { k, n, .. } => [*k, *n],
        }
    }

    /// `Bᵀ` as the int8 kernels take it (`None` for f32).
    pub fn int8_bt(&self) -> Option<Int8Matrix<'_>> {
        match self {
            PackedB::Int8 { bt: Data::I8(v), .. } => Some(Int8Matrix::I8(v)),
            PackedB::Int8 { bt: Data::U8(v), .. } => Some(Int8Matrix::U8(v)),
            _ => None,
        }
    }
}

/// Whether `op_type` (default domain) with these attributes reads a packable `B` as input 1.
pub(crate) fn packs_b(op_type: &str, trans_b: bool) -> bool {
    matches!(op_type, "MatMul" | "MatMulInteger") || (op_type == "Gemm" && !trans_b)
}

/// `B` transposed, when it is a 2-D tensor of a type the op's packed path handles.
pub(crate) fn pack(op_type: &str, b: &Value) -> Option<Arc<PackedB>> {
    let [k, n] = b.shape[..] else { return None };
    let packed = match (&b.data, op_type) {
        (Data::F32(v), "MatMul" | "Gemm") => PackedB::F32 { k, n, bt: transpose(k, n, v) },
        (Data::I8(v), "MatMulInteger") => PackedB::Int8 { k, n, bt: Data::I8(transpose(k, n, v)) },
        (Data::U8(v), "MatMulInteger") => PackedB::Int8 { k, n, bt: Data::U8(transpose(k, n, v)) },
        _ => return None,
    };
    Some(Arc::new(packed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_2d_b_transposed_and_nothing_else() {
        let b = Value::f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let p = pack("MatMul", &b).unwrap();
        assert_eq!(*p, PackedB::F32 { k: 2, n: 3, bt: vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0] });
        assert_eq!(p.shape(), [2, 3]);
        let q = Value::new(vec![2, 2], Data::I8(vec![1, -2, 3, -4]));
        assert_eq!(pack("MatMulInteger", &q).unwrap().int8_bt().map(|m| m.len()), Some(4));
        assert!(pack("MatMulInteger", &b).is_none(), "f32 B of MatMulInteger");
        assert!(pack("MatMul", &q).is_none(), "int8 B of MatMul");
        assert!(pack("MatMul", &Value::f32(vec![2, 1, 3], vec![0.0; 6])).is_none(), "3-D B");
        assert!(packs_b("Gemm", false) && !packs_b("Gemm", true) && !packs_b("Add", false));
    }
}
