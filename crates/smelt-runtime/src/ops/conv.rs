//! Convolution and pooling over N spatial dims (NCHW-style layout): Conv (groups, strides,
//! dilations, pads, auto_pad), MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.
//! Direct loops in f64: correct first; a runner for CNN speed would use im2col + GEMM.

use super::norm::from_f64;
use crate::error::RuntimeError;
use crate::node::{FloatLike, OpCtx};
use crate::registry::Registry;
use crate::value::Value;

pub(crate) fn register(r: &mut Registry) {
    r.onnx("Conv", conv);
    r.onnx("MaxPool", |c| pool(c, true));
    r.onnx("AveragePool", |c| pool(c, false));
    r.onnx("GlobalAveragePool", |c| global(c, false));
    r.onnx("GlobalMaxPool", |c| global(c, true));
}

struct Geometry {
    out: Vec<usize>,
    pads_begin: Vec<i64>,
    strides: Vec<usize>,
    dil: Vec<usize>,
}

fn geometry(
    c: &OpCtx<'_>,
    spatial: &[usize],
    kernel: &[usize],
    ceil_mode: bool,
) -> Result<Geometry, RuntimeError> {
    let n = spatial.len();
    let strides: Vec<usize> = c
        .ints("strides")
        .map(|v| v.iter().map(|&s| s.max(1) as usize).collect())
        .unwrap_or_else(|| vec![1; n]);
    let dil: Vec<usize> = c
        .ints("dilations")
        .map(|v| v.iter().map(|&s| s.max(1) as usize).collect())
        .unwrap_or_else(|| vec![1; n]);
    let mut pads = c.ints("pads").unwrap_or_else(|| vec![0; 2 * n]);
    if strides.len() != n || dil.len() != n || pads.len() != 2 * n || kernel.len() != n {
        return Err(c.err("strides/dilations/pads/kernel do not match the spatial rank"));
    }
    let auto = c.string("auto_pad", "NOTSET");
    let mut out = vec![0; n];
    for i in 0..n {
        let ek = (dil[i] * (kernel[i] - 1) + 1) as i64;
        let len = spatial[i] as i64;
        let s = strides[i] as i64;
        match auto.as_str() {
            "SAME_UPPER" | "SAME_LOWER" => {
                let o = (len + s - 1) / s;
                let total = ((o - 1) * s + ek - len).max(0);
                let (lo, hi) = if auto == "SAME_UPPER" {
                    (total / 2, total - total / 2)
                } else {
                    (total - total / 2, total / 2)
                };
                pads[i] = lo;
                pads[i + n] = hi;
                out[i] = o as usize;
            }
            "VALID" => {
                pads[i] = 0;
                pads[i + n] = 0;
                out[i] = ((len - ek) / s + 1).max(0) as usize;
            }
            _ => {
                let span = len + pads[i] + pads[i + n] - ek;
                let o = if ceil_mode { (span + s - 1).div_euclid(s) + 1 } else { span.div_euclid(s) + 1 };
                // With ceil_mode, a last window that starts in the right padding is dropped.
                let o = if ceil_mode && (o - 1) * s >= len + pads[i] { o - 1 } else { o };
                out[i] = o.max(0) as usize;
            }
        }
    }
    Ok(Geometry { out, pads_begin: pads[..n].to_vec(), strides, dil })
}

/// Calls `f(out_linear_spatial, [(in_linear_spatial or None for padding, kernel_linear)])`.
fn for_windows(
    spatial: &[usize],
    kernel: &[usize],
    g: &Geometry,
    mut f: impl FnMut(usize, &[(Option<usize>, usize)]),
) {
    let n = spatial.len();
    let out_n: usize = g.out.iter().product();
    let k_n: usize = kernel.iter().product();
    let mut taps = Vec::with_capacity(k_n);
    for o in 0..out_n {
        taps.clear();
        let mut oc = vec![0usize; n];
        let mut rem = o;
        for d in (0..n).rev() {
            oc[d] = rem % g.out[d];
            rem /= g.out[d];
        }
        for k in 0..k_n {
            let mut rem = k;
            let mut inside = true;
            let mut lin = 0usize;
            let mut kc = vec![0usize; n];
            for d in (0..n).rev() {
                kc[d] = rem % kernel[d];
                rem /= kernel[d];
            }
            for d in 0..n {
                let pos = (oc[d] * g.strides[d]) as i64 - g.pads_begin[d] + (kc[d] * g.dil[d]) as i64;
                if pos < 0 || pos >= spatial[d] as i64 {
                    inside = false;
                }
                lin = lin * spatial[d] + pos.max(0) as usize;
            }
            taps.push((inside.then_some(lin), k));
        }
        f(o, &taps);
    }
}

fn conv(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let w = c.input(1)?;
    if !x.dtype().is_float_like() || x.shape.len() < 3 || w.shape.len() != x.shape.len() {
        return Err(c.shape_err(
            "Conv needs float X [N, C, ...] and W [M, C/group, ...] of the same rank",
            &x.shape,
            &w.shape,
        ));
    }
    let group = c.int("group", 1).max(1) as usize;
    let (nb, ch) = (x.shape[0], x.shape[1]);
    let m = w.shape[0];
    let cg = w.shape[1];
    if cg * group != ch || m % group != 0 {
        return Err(c.shape_err("channels do not match W and group", &x.shape, &w.shape));
    }
    let spatial = &x.shape[2..];
    let kernel = &w.shape[2..];
    if kernel.contains(&0) {
        return Err(c.shape_err("kernel dims must be positive", &x.shape, &w.shape));
    }
    let g = geometry(c, spatial, kernel, false)?;
    let xv = x.data.to_f64_vec();
    let wv = w.data.to_f64_vec();
    let bias = match c.opt(2) {
        Some(b) => b.data.to_f64_vec(),
        None => vec![0.0; m],
    };
    let in_sp: usize = spatial.iter().product();
    let k_n: usize = kernel.iter().product();
    let out_sp: usize = g.out.iter().product();
    let mut out = vec![0f64; nb * m * out_sp];
    let mg = m / group;
    for_windows(spatial, kernel, &g, |o, taps| {
        for b in 0..nb {
            for oc in 0..m {
                let gi = oc / mg;
                let mut acc = bias[oc];
                for ci in 0..cg {
                    let xin = &xv[(b * ch + gi * cg + ci) * in_sp..];
                    let wk = &wv[(oc * cg + ci) * k_n..];
                    for &(pos, k) in taps {
                        if let Some(p) = pos {
                            acc += xin[p] * wk[k];
                        }
                    }
                }
                out[(b * m + oc) * out_sp + o] = acc;
            }
        }
    });
    let mut shape = vec![nb, m];
    shape.extend_from_slice(&g.out);
    Ok(vec![Value::new(shape, from_f64(c, x.dtype(), out)?)])
}

fn pool(c: &OpCtx<'_>, max: bool) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    if x.shape.len() < 3 {
        return Err(c.err("input must be [N, C, spatial...]"));
    }
    let kernel: Vec<usize> = c
        .ints("kernel_shape")
        .ok_or_else(|| c.err("kernel_shape is required"))?
        .iter()
        .map(|&k| k.max(1) as usize)
        .collect();
    let spatial = &x.shape[2..];
    let g = geometry(c, spatial, &kernel, c.int("ceil_mode", 0) != 0)?;
    let count_pad = c.int("count_include_pad", 0) != 0;
    let xv = x.data.to_f64_vec();
    let planes = x.shape[0] * x.shape[1];
    let in_sp: usize = spatial.iter().product();
    let out_sp: usize = g.out.iter().product();
    let mut out = vec![0f64; planes * out_sp];
    let mut arg = vec![0i64; if max { planes * out_sp } else { 0 }];
    let column_major = c.int("storage_order", 0) != 0;
    let mut err = None;
    for_windows(spatial, &kernel, &g, |o, taps| {
        for p in 0..planes {
            let xin = &xv[p * in_sp..(p + 1) * in_sp];
            let mut acc = if max { f64::NEG_INFINITY } else { 0.0 };
            let mut n = 0usize;
            let mut best = 0usize;
            for &(pos, _) in taps {
                match pos {
                    Some(i) => {
                        if max {
                            if xin[i] > acc {
                                acc = xin[i];
                                best = i;
                            }
                        } else {
                            acc += xin[i];
                        }
                        n += 1;
                    }
                    None if count_pad => n += 1,
                    None => {}
                }
            }
            if !max && n == 0 {
                err = Some(());
            }
            out[p * out_sp + o] = if max { acc } else { acc / n.max(1) as f64 };
            if max {
                let idx = if column_major && spatial.len() == 2 {
                    (best % spatial[1]) * spatial[0] + best / spatial[1]
                } else {
                    best
                };
                arg[p * out_sp + o] = (p * in_sp + idx) as i64;
            }
        }
    });
    if err.is_some() && !max {
        return Err(c.err("a pooling window covers only padding"));
    }
    let mut shape = x.shape[..2].to_vec();
    shape.extend_from_slice(&g.out);
    let mut outs = vec![Value::new(shape.clone(), from_f64(c, x.dtype(), out)?)];
    if max {
        outs.push(Value::new(shape, crate::value::Data::I64(arg)));
    }
    Ok(outs)
}

fn global(c: &OpCtx<'_>, max: bool) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    if x.shape.len() < 2 {
        return Err(c.err("input must be [N, C, spatial...]"));
    }
    let planes = x.shape[0] * x.shape[1];
    let sp: usize = x.shape[2..].iter().product();
    let xv = x.data.to_f64_vec();
    let out: Vec<f64> = (0..planes)
        .map(|p| {
            let s = &xv[p * sp..(p + 1) * sp];
            if max {
                s.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            } else {
                s.iter().sum::<f64>() / sp as f64
            }
        })
        .collect();
    let mut shape = x.shape[..2].to_vec();
    shape.extend(std::iter::repeat_n(1, x.shape.len() - 2));
    Ok(vec![Value::new(shape, from_f64(c, x.dtype(), out)?)])
}
