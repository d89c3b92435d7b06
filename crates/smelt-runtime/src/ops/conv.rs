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
    let strides = c.ints("strides").unwrap_or_else(|| vec![1; n]);
    let dil = c.ints("dilations").unwrap_or_else(|| vec![1; n]);
    let mut pads = c.ints("pads").unwrap_or_else(|| vec![0; 2 * n]);
    if strides.len() != n || dil.len() != n || pads.len() != 2 * n || kernel.len() != n {
        return Err(c.err("strides/dilations/pads/kernel do not match the spatial rank"));
    }
    if strides.iter().any(|&s| s < 1) {
        return Err(c.err(format!("strides must be positive, found {strides:?}")));
    }
    if dil.iter().any(|&d| d < 1) {
        return Err(c.err(format!("dilations must be positive, found {dil:?}")));
    }
    if pads.iter().any(|&p| p < 0) {
        return Err(c.err(format!("pads must be non-negative, found {pads:?}")));
    }
    let auto = c.string("auto_pad", "NOTSET");
    let mut out = vec![0; n];
    for i in 0..n {
        let too_large = || c.err(format!("pads/strides/dilations/kernel overflow along spatial axis {i}"));
        let len = spatial[i] as i64;
        let s = strides[i];
        let ek = i64::try_from(kernel[i] - 1)
            .ok()
            .and_then(|k| dil[i].checked_mul(k))
            .and_then(|e| e.checked_add(1))
            .ok_or_else(too_large)?;
        // Every position computed below and in `for_windows` stays under this sum.
        len.checked_add(pads[i])
            .and_then(|v| v.checked_add(pads[i + n]))
            .and_then(|v| v.checked_add(ek))
            .and_then(|v| v.checked_add(s))
            .ok_or_else(too_large)?;
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
                out[i] = ((len - ek).div_euclid(s) + 1).max(0) as usize;
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
    let strides = strides.iter().map(|&s| s as usize).collect();
    let dil = dil.iter().map(|&d| d as usize).collect();
    Ok(Geometry { out, pads_begin: pads[..n].to_vec(), strides, dil })
}

/// Calls `f(out_linear_spatial, taps)` for every output position, `taps` holding
/// `(in_linear_spatial, kernel_linear)` for the window's taps that fall inside the input, in
/// kernel order. Taps in the padding are skipped unvisited, so a window costs what it reads
/// however large the kernel and pads are.
fn for_windows(
    spatial: &[usize],
    kernel: &[usize],
    g: &Geometry,
    mut f: impl FnMut(usize, &[(usize, usize)]),
) {
    let n = spatial.len();
    let out_n: usize = g.out.iter().product();
    let mut taps = Vec::new();
    let mut start = vec![0i64; n];
    let (mut lo, mut hi, mut kc) = (vec![0usize; n], vec![0usize; n], vec![0usize; n]);
    for o in 0..out_n {
        taps.clear();
        let mut rem = o;
        for d in (0..n).rev() {
            start[d] = ((rem % g.out[d]) * g.strides[d]) as i64 - g.pads_begin[d];
            rem /= g.out[d];
        }
        // Along each axis, the kernel indices `lo..hi` whose position `start + kc·dil` is in
        // `0..len`.
        let mut empty = false;
        for d in 0..n {
            let (len, dil) = (spatial[d] as i64, g.dil[d] as u64);
            lo[d] = if start[d] >= 0 { 0 } else { start[d].unsigned_abs().div_ceil(dil) as usize };
            hi[d] = if start[d] >= len { 0 } else { ((len - 1 - start[d]) as u64 / dil + 1) as usize };
            hi[d] = hi[d].min(kernel[d]);
            empty |= lo[d] >= hi[d];
        }
        if !empty {
            kc.copy_from_slice(&lo);
            'window: loop {
                let (mut lin, mut k) = (0usize, 0usize);
                for d in 0..n {
                    let pos = (start[d] + (kc[d] * g.dil[d]) as i64) as usize;
                    lin = lin * spatial[d] + pos;
                    k = k * kernel[d] + kc[d];
                }
                taps.push((lin, k));
                // The next kernel index in row-major order within `lo..hi`.
                let mut d = n;
                loop {
                    if d == 0 {
                        break 'window;
                    }
                    d -= 1;
                    kc[d] += 1;
                    if kc[d] < hi[d] {
                        break;
                    }
                    kc[d] = lo[d];
                }
            }
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
    let group = c.int("group", 1);
    if group < 1 {
        return Err(c.err(format!("group must be positive, found {group}")));
    }
    let group = group as usize;
    let (nb, ch) = (x.shape[0], x.shape[1]);
    let m = w.shape[0];
    let cg = w.shape[1];
    if cg.checked_mul(group) != Some(ch) || m % group != 0 {
        return Err(c.shape_err("channels do not match W and group", &x.shape, &w.shape));
    }
    let spatial = &x.shape[2..];
    let kernel = &w.shape[2..];
    if kernel.contains(&0) {
        return Err(c.shape_err("kernel dims must be positive", &x.shape, &w.shape));
    }
    let g = geometry(c, spatial, kernel, false)?;
    let bias = match c.opt(2) {
        Some(b) if b.numel() != m => return Err(c.shape_err("B must have M elements", &b.shape, &[m])),
        Some(b) => b.data.to_f64_vec(),
        None => vec![0.0; m],
    };
    let mut shape = vec![nb, m];
    shape.extend_from_slice(&g.out);
    c.checked_numel(&shape)?;
    let xv = x.data.to_f64_vec();
    let wv = w.data.to_f64_vec();
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
                    for &(p, k) in taps {
                        acc += xin[p] * wk[k];
                    }
                }
                out[(b * m + oc) * out_sp + o] = acc;
            }
        }
    });
    Ok(vec![Value::new(shape, from_f64(c, x.dtype(), out)?)])
}

fn pool(c: &OpCtx<'_>, max: bool) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    if x.shape.len() < 3 {
        return Err(c.err("input must be [N, C, spatial...]"));
    }
    let kernel = c.ints("kernel_shape").ok_or_else(|| c.err("kernel_shape is required"))?;
    if kernel.iter().any(|&k| k < 1) {
        return Err(c.err(format!("kernel_shape must be positive, found {kernel:?}")));
    }
    let kernel: Vec<usize> = kernel.iter().map(|&k| k as usize).collect();
    // Its element count divides the sums with count_include_pad.
    if !crate::session::shape_within_cap(&kernel) {
        return Err(c.err(format!("kernel_shape {kernel:?} is too large")));
    }
    let k_n: usize = kernel.iter().product();
    let spatial = &x.shape[2..];
    let g = geometry(c, spatial, &kernel, c.int("ceil_mode", 0) != 0)?;
    let mut shape = x.shape[..2].to_vec();
    shape.extend_from_slice(&g.out);
    c.checked_numel(&shape)?;
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
            let mut best = 0usize;
            for &(i, _) in taps {
                if max {
                    if xin[i] > acc {
                        acc = xin[i];
                        best = i;
                    }
                } else {
                    acc += xin[i];
                }
            }
            // Taps in the padding count with count_include_pad (for an average).
            let n = if count_pad && !max { k_n } else { taps.len() };
            if n == 0 {
                err = Some(());
            }
            out[p * out_sp + o] = if max { acc } else { acc / n.max(1) as f64 };
            if max {
                // A window of padding only (refused below) has no best element, and
                // `spatial[1]` may be 0.
                let idx = if column_major && spatial.len() == 2 && !taps.is_empty() {
                    (best % spatial[1]) * spatial[0] + best / spatial[1]
                } else {
                    best
                };
                arg[p * out_sp + o] = (p * in_sp + idx) as i64;
            }
        }
    });
    if err.is_some() {
        return Err(c.err("a pooling window covers only padding"));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel tap of a window in kernel order, kept when inside the input: what
    /// `for_windows` gives without visiting the padding.
    fn naive_taps(spatial: &[usize], kernel: &[usize], g: &Geometry, o: usize) -> Vec<(usize, usize)> {
        let n = spatial.len();
        let mut oc = vec![0usize; n];
        let mut rem = o;
        for d in (0..n).rev() {
            oc[d] = rem % g.out[d];
            rem /= g.out[d];
        }
        let mut taps = Vec::new();
        for k in 0..kernel.iter().product::<usize>() {
            let (mut rem, mut kc) = (k, vec![0usize; n]);
            for d in (0..n).rev() {
                kc[d] = rem % kernel[d];
                rem /= kernel[d];
            }
            let pos: Vec<i64> =
                (0..n).map(|d| (oc[d] * g.strides[d] + kc[d] * g.dil[d]) as i64 - g.pads_begin[d]).collect();
            if (0..n).all(|d| pos[d] >= 0 && pos[d] < spatial[d] as i64) {
                taps.push(((0..n).fold(0, |lin, d| lin * spatial[d] + pos[d] as usize), k));
            }
        }
        taps
    }

    #[test]
    fn window_taps_skip_only_the_padding() {
        for (spatial, kernel, out, pads, strides, dil) in [
            (vec![5], vec![3], vec![5], vec![1], vec![1], vec![1]),
            (vec![4], vec![2], vec![4], vec![2], vec![2], vec![3]),
            (vec![1], vec![7], vec![7], vec![6], vec![1], vec![1]),
            (vec![0], vec![2], vec![3], vec![2], vec![1], vec![1]),
            (vec![3, 4], vec![2, 3], vec![3, 4], vec![1, 2], vec![1, 1], vec![1, 1]),
            (vec![6, 5], vec![3, 2], vec![3, 3], vec![2, 1], vec![2, 2], vec![2, 3]),
            (vec![2, 3, 4], vec![2, 2, 3], vec![3, 4, 3], vec![1, 1, 2], vec![1, 1, 2], vec![1, 2, 1]),
        ] {
            let g = Geometry { out, pads_begin: pads, strides, dil };
            let mut seen = 0;
            for_windows(&spatial, &kernel, &g, |o, taps| {
                assert_eq!(taps, naive_taps(&spatial, &kernel, &g, o), "{spatial:?} {kernel:?} window {o}");
                seen += 1;
            });
            assert_eq!(seen, g.out.iter().product::<usize>());
        }
    }
}
