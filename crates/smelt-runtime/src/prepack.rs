//! Constant matmul weights prepared once at load, as ONNX Runtime's kernels pre-pack theirs.
//!
//! A `MatMul`, `Gemm` (`transB=0`) or `MatMulInteger` whose `B` is a 2-D initializer gets that
//! `B` repacked when the session loads ([`PackedB`]): f32 into smelt-kernels' column panels
//! ([`smelt_kernels::PackedF32`], read contiguously by the outer-product kernel), int8 into
//! [`smelt_kernels::PackedInt8`] (VNNI panels, or `Bᵀ`). Every run then skips the per-call
//! layout change (`gemm_f32` transposes `B` from 8 rows on, `matmul_integer` always). The node reads
//! the packed copy instead of its `B` input, and an initializer no node reads any more is
//! dropped, so the weights are held once.
//!
//! Integer products are exact, so int8 results are unchanged. f32 results equal `gemm_f32`'s
//! below 8 rows of `A` (the same kernel, accumulating along `k` in order); from 8 rows on
//! `gemm_f32` uses lane-partial dot products instead: both stay within the kernels'
//! documented bound of the scalar reference.

use std::sync::Arc;

use smelt_kernels::{Int8Matrix, PackedF32, PackedInt8};

use crate::node::OpCtx;
use crate::registry::Prepared;
use crate::value::{Data, Value};

/// A matmul's constant `B` (`[k, n]` in the graph), in the layout its kernel reads.
#[derive(Clone, Debug, PartialEq)]
pub enum PackedB {
    /// f32 `B` of `MatMul` / `Gemm`, in column panels.
    F32(PackedF32),
    /// int8 or uint8 `B` of `MatMulInteger`, in the int8 kernel's layout.
    Int8(PackedInt8),
}

impl PackedB {
    /// The graph's shape of `B`, `[k, n]`.
    pub fn shape(&self) -> [usize; 2] {
        match self {
            PackedB::F32(p) => p.shape(),
            PackedB::Int8(p) => p.shape(),
        }
    }
}

/// At load ([`crate::registry::PrepareFn`] of `MatMul`, `Gemm` and `MatMulInteger`): a
/// constant `B` packed; the op then never reads input 1.
pub(crate) fn prepare_b(c: &OpCtx<'_>) -> Option<Prepared> {
    if c.node.op_type == "Gemm" && c.int("transB", 0) != 0 {
        return None;
    }
    let packed = pack(&c.node.op_type, c.opt(1)?)?;
    Some(Prepared { state: Arc::new(packed), replaces_inputs: vec![1] })
}

/// `B` packed, when it is a 2-D tensor of a type the op's packed path handles.
pub(crate) fn pack(op_type: &str, b: &Value) -> Option<PackedB> {
    let [k, n] = b.shape[..] else { return None };
    let packed = match (&b.data, op_type) {
        (Data::F32(v), "MatMul" | "Gemm") => PackedB::F32(PackedF32::new(k, n, v)),
        (Data::I8(v), "MatMulInteger" | "MatMulIntegerScaled") => {
            PackedB::Int8(PackedInt8::new(k, n, Int8Matrix::I8(v)))
        }
        (Data::U8(v), "MatMulInteger" | "MatMulIntegerScaled") => {
            PackedB::Int8(PackedInt8::new(k, n, Int8Matrix::U8(v)))
        }
        _ => return None,
    };
    Some(packed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_2d_b_and_nothing_else() {
        let b = Value::f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let p = pack("MatMul", &b).unwrap();
        assert_eq!(p, PackedB::F32(PackedF32::new(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])));
        assert_eq!(p.shape(), [2, 3]);
        let q = Value::new(vec![2, 2], Data::I8(vec![1, -2, 3, -4]));
        assert!(matches!(pack("MatMulInteger", &q).unwrap(), PackedB::Int8(ref p) if p.shape() == [2, 2]));
        assert!(pack("MatMulInteger", &b).is_none(), "f32 B of MatMulInteger");
        assert!(pack("MatMul", &q).is_none(), "int8 B of MatMul");
        assert!(pack("MatMul", &Value::f32(vec![2, 1, 3], vec![0.0; 6])).is_none(), "3-D B");
    }
}
