//! Op implementations, one file per family. Each file has a `register` function that adds
//! its ops to the [`Registry`](crate::registry::Registry).

mod attention;
pub mod broadcast;
mod conv;
mod elementwise;
mod fused_act;
mod fused_norm;
mod gather;
mod generate;
mod matmul;
mod norm;
mod par;
mod quant;
mod quant_contrib;
mod reduce;
mod resize;
mod scatter;
mod shape;
mod unary;

use crate::registry::{Registry, FUSED_DOMAIN};

/// Adds every implemented op to `r`.
pub(crate) fn register_all(r: &mut Registry) {
    attention::register(r);
    conv::register(r);
    elementwise::register(r);
    gather::register(r);
    generate::register(r);
    matmul::register(r);
    norm::register(r);
    quant::register(r);
    quant_contrib::register(r);
    reduce::register(r);
    resize::register(r);
    scatter::register(r);
    shape::register(r);
    unary::register(r);
    // The nodes of load-time fusion (crate::fuse).
    r.add_prepared(
        FUSED_DOMAIN,
        "MatMulIntegerScaled",
        1,
        1,
        quant::matmul_integer_scaled,
        crate::prepack::prepare_b,
    );
    r.add(FUSED_DOMAIN, "MatMulTransB", 1, 1, matmul::matmul_trans_b);
    r.add(FUSED_DOMAIN, "MatMulGroupedB", 1, 1, matmul::matmul_grouped_b);
    r.add(FUSED_DOMAIN, "RmsNorm", 1, 1, fused_norm::rms_norm);
    r.add(FUSED_DOMAIN, "SwiGlu", 1, 1, fused_act::swiglu);
}
