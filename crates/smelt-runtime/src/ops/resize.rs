//! Resize (opsets 10-19): nearest, linear and cubic modes, applied one axis at a time, with
//! the coordinate transformation modes and nearest rounding modes of the spec, `sizes` with
//! `keep_aspect_ratio_policy`, `axes`, `exclude_outside` and `cubic_coeff_a`. Antialiasing is
//! refused.

use super::norm::from_f64;
use crate::error::RuntimeError;
use crate::node::OpCtx;
use crate::registry::Registry;
use crate::value::Value;

pub(crate) fn register(r: &mut Registry) {
    r.onnx("Resize", resize);
}

struct Mode {
    kind: String,
    coord: String,
    nearest: String,
    cubic_a: f64,
    exclude_outside: bool,
    roi: Option<(f64, f64)>,
}

fn original(m: &Mode, x: usize, len: usize, out_len: usize, scale: f64) -> f64 {
    let x = x as f64;
    let (len_f, out_f) = (len as f64, out_len as f64);
    match m.coord.as_str() {
        // The spec's length_resized is scale · length here, not the rounded output length.
        "align_corners" => {
            if out_len == 1 {
                0.0
            } else {
                x * (len_f - 1.0) / (scale * len_f - 1.0)
            }
        }
        "asymmetric" => x / scale,
        "pytorch_half_pixel" => {
            if out_len > 1 {
                (x + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        "half_pixel_symmetric" => {
            let adjustment = out_f / (scale * len_f);
            let center = len_f / 2.0;
            center * (1.0 - adjustment) + (x + 0.5) / scale - 0.5
        }
        "tf_crop_and_resize" => {
            let (s, e) = m.roi.unwrap_or((0.0, 1.0));
            if out_len > 1 {
                s * (len_f - 1.0) + x * (e - s) * (len_f - 1.0) / (out_f - 1.0)
            } else {
                0.5 * (s + e) * (len_f - 1.0)
            }
        }
        _ => (x + 0.5) / scale - 0.5,
    }
}

/// Taps (input index, weight) for output coordinate `x` along one axis.
fn taps(m: &Mode, x: usize, len: usize, out_len: usize, scale: f64) -> Vec<(usize, f64)> {
    let xo = original(m, x, len, out_len, scale);
    let clamp = |i: i64| i.clamp(0, len as i64 - 1) as usize;
    match m.kind.as_str() {
        "nearest" => {
            let i = match m.nearest.as_str() {
                "floor" => xo.floor(),
                "ceil" => xo.ceil(),
                "round_prefer_ceil" => {
                    if xo.fract() == 0.5 {
                        xo.ceil()
                    } else {
                        xo.round()
                    }
                }
                _ => {
                    if (xo - xo.floor() - 0.5).abs() < 1e-12 {
                        xo.floor()
                    } else {
                        xo.round()
                    }
                }
            };
            vec![(clamp(i as i64), 1.0)]
        }
        "linear" => {
            let xc = if m.coord == "tf_crop_and_resize" { xo } else { xo.clamp(0.0, len as f64 - 1.0) };
            let f = xc.floor();
            let t = xc - f;
            // Saturating: tf_crop_and_resize leaves `xc` unclamped, and a huge roi puts it
            // past i64's range.
            vec![(clamp(f as i64), 1.0 - t), (clamp((f as i64).saturating_add(1)), t)]
        }
        _ => {
            let a = m.cubic_a;
            let f = xo.floor();
            let t = xo - f;
            let w = [
                ((a * (t + 1.0) - 5.0 * a) * (t + 1.0) + 8.0 * a) * (t + 1.0) - 4.0 * a,
                ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0,
                ((a + 2.0) * (1.0 - t) - (a + 3.0)) * (1.0 - t) * (1.0 - t) + 1.0,
                ((a * (2.0 - t) - 5.0 * a) * (2.0 - t) + 8.0 * a) * (2.0 - t) - 4.0 * a,
            ];
            let mut v: Vec<(i64, f64)> =
                (0..4).map(|k| ((f as i64).saturating_add(k - 1), w[k as usize])).collect();
            if m.exclude_outside {
                v.retain(|(i, _)| *i >= 0 && *i < len as i64);
                let s: f64 = v.iter().map(|(_, w)| w).sum();
                v.iter_mut().for_each(|(_, w)| *w /= s);
            }
            v.into_iter().map(|(i, w)| (clamp(i), w)).collect()
        }
    }
}

fn resize(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let rank = x.shape.len();
    if c.int("antialias", 0) != 0 {
        return Err(c.err("antialias=1 is not supported"));
    }
    let (scales_in, sizes_in, roi_in) = if c.opset() >= 11 {
        let nonempty = |i: usize| c.opt(i).filter(|v| v.numel() > 0);
        (
            nonempty(2).map(|v| v.data.to_f64_vec()),
            nonempty(3).map(|v| v.data.to_i64_vec()),
            nonempty(1).map(|v| v.data.to_f64_vec()),
        )
    } else {
        (Some(c.input(1)?.data.to_f64_vec()), None, None)
    };
    let axes: Vec<usize> = match c.ints("axes") {
        Some(a) => a.iter().map(|&v| c.axis(v, rank)).collect::<Result<_, _>>()?,
        None => (0..rank).collect(),
    };
    let mut scales = vec![1f64; rank];
    let mut out = x.shape.clone();
    match (scales_in, sizes_in) {
        (Some(s), _) => {
            if s.len() != axes.len() {
                return Err(c.err("scales must have one entry per axis"));
            }
            for (k, &a) in axes.iter().enumerate() {
                scales[a] = s[k];
                out[a] = (x.shape[a] as f64 * s[k]).floor().max(0.0) as usize;
            }
        }
        (None, Some(sz)) => {
            if sz.len() != axes.len() {
                return Err(c.err("sizes must have one entry per axis"));
            }
            let policy = c.string("keep_aspect_ratio_policy", "stretch");
            let ratios: Vec<f64> =
                axes.iter().enumerate().map(|(k, &a)| sz[k] as f64 / x.shape[a] as f64).collect();
            let common = match policy.as_str() {
                "not_larger" => ratios.iter().copied().fold(f64::INFINITY, f64::min),
                "not_smaller" => ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                _ => f64::NAN,
            };
            for (k, &a) in axes.iter().enumerate() {
                if common.is_nan() {
                    scales[a] = ratios[k];
                    out[a] = sz[k].max(0) as usize;
                } else {
                    scales[a] = common;
                    out[a] = (x.shape[a] as f64 * common).round() as usize;
                }
            }
        }
        _ => return Err(c.err("one of scales or sizes is required")),
    }
    c.checked_numel(&out)?;
    if out.contains(&0) {
        return Ok(vec![Value::new(out, from_f64(c, x.dtype(), Vec::new())?)]);
    }
    if let Some(d) = (0..rank).find(|&d| x.shape[d] == 0) {
        return Err(c.err(format!("cannot resize axis {d} of length 0 to {}", out[d])));
    }
    let mut mode = Mode {
        kind: c.string("mode", "nearest"),
        coord: c.string(
            "coordinate_transformation_mode",
            if c.opset() >= 11 { "half_pixel" } else { "asymmetric" },
        ),
        nearest: c.string("nearest_mode", "round_prefer_floor"),
        cubic_a: c.float("cubic_coeff_a", -0.75) as f64,
        exclude_outside: c.int("exclude_outside", 0) != 0,
        roi: None,
    };
    if c.opset() < 11 {
        mode.nearest = "floor".into();
    }
    let extrapolation = c.float("extrapolation_value", 0.0) as f64;
    let mut cur = x.data.to_f64_vec();
    let mut shape = x.shape.clone();
    // Shrinking axes first, then the others, each in axis order: every intermediate then
    // holds at most as many elements as the larger of the input and the output (both within
    // the cap), where growing one axis before shrinking another could pass the cap in between
    // (`[1, 65537]` to `[65537, 1]`) and do more work. A model that only grows or only shrinks
    // runs its axes in order, as before.
    let order: Vec<usize> =
        (0..rank).filter(|&d| out[d] < shape[d]).chain((0..rank).filter(|&d| out[d] >= shape[d])).collect();
    for d in order {
        if out[d] == shape[d] && scales[d] == 1.0 {
            continue;
        }
        if let Some(r) = &roi_in {
            let k = axes.iter().position(|&a| a == d).unwrap_or(d);
            let n = r.len() / 2;
            mode.roi = (k < n).then(|| (r[k], r[k + n]));
        }
        let len = shape[d];
        shape[d] = out[d];
        // Within the cap by the order above; checked all the same, as every allocation here.
        c.checked_numel(&shape)?;
        let outer: usize = shape[..d].iter().product();
        let inner: usize = shape[d + 1..].iter().product();
        let tap_table: Vec<(Vec<(usize, f64)>, bool)> = (0..out[d])
            .map(|o| {
                let xo = original(&mode, o, len, out[d], scales[d]);
                let outside = mode.coord == "tf_crop_and_resize" && (xo < 0.0 || xo > len as f64 - 1.0);
                (taps(&mode, o, len, out[d], scales[d]), outside)
            })
            .collect();
        let mut next = vec![0f64; outer * out[d] * inner];
        for o in 0..outer {
            for (j, (t, outside)) in tap_table.iter().enumerate() {
                for i in 0..inner {
                    next[(o * out[d] + j) * inner + i] = if *outside {
                        extrapolation
                    } else {
                        t.iter().map(|&(k, w)| w * cur[(o * len + k) * inner + i]).sum()
                    };
                }
            }
        }
        cur = next;
    }
    Ok(vec![Value::new(out, from_f64(c, x.dtype(), cur)?)])
}
