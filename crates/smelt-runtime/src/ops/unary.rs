//! Elementwise unary ops: math functions, activations, Clip, Cast, Identity, Not, IsNaN.

use smelt_tensor::DType;

use crate::error::RuntimeError;
use crate::node::{FloatLike, OpCtx};
use crate::registry::Registry;
use crate::value::{Data, Elem, Value};

/// Applies `f` (computed in f64, rounded to the element type) to every element of float data.
pub(crate) fn map_float(
    c: &OpCtx<'_>,
    d: &Data,
    f: impl Fn(f64) -> f64 + Sync + Send,
) -> Result<Data, RuntimeError> {
    fn m<T: Elem>(v: &[T], f: &impl Fn(f64) -> f64) -> Vec<T> {
        v.iter().map(|x| T::from_f64(f(x.to_f64()))).collect()
    }
    Ok(match d {
        Data::F32(v) => Data::F32(super::par::map(v, |x| f(x as f64) as f32)),
        Data::F64(v) => Data::F64(m(v, &f)),
        Data::F16(v) => Data::F16(m(v, &f)),
        Data::BF16(v) => Data::BF16(m(v, &f)),
        other => {
            return Err(c.err(format!("{} needs a float input, found {}", c.node.op_type, other.dtype())))
        }
    })
}

/// Applies `ff` to float data and `fi` to integer data.
fn map_num(
    c: &OpCtx<'_>,
    d: &Data,
    ff: impl Fn(f64) -> f64 + Sync + Send,
    fi: fn(i64) -> i64,
) -> Result<Data, RuntimeError> {
    fn m<T: Elem>(v: &[T], fi: fn(i64) -> i64) -> Vec<T> {
        v.iter().map(|x| T::from_i64(fi(x.to_i64()))).collect()
    }
    Ok(match d {
        Data::I8(v) => Data::I8(m(v, fi)),
        Data::I16(v) => Data::I16(m(v, fi)),
        Data::I32(v) => Data::I32(m(v, fi)),
        Data::I64(v) => Data::I64(m(v, fi)),
        Data::U8(v) => Data::U8(m(v, fi)),
        Data::U16(v) => Data::U16(m(v, fi)),
        Data::U32(v) => Data::U32(m(v, fi)),
        Data::U64(v) => Data::U64(m(v, fi)),
        other => map_float(c, other, ff)?,
    })
}

fn unary(c: &OpCtx<'_>, f: impl Fn(f64) -> f64 + Sync + Send) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    Ok(vec![Value::new(x.shape.clone(), map_float(c, &x.data, f)?)])
}

fn unary_num(
    c: &OpCtx<'_>,
    ff: impl Fn(f64) -> f64 + Sync + Send,
    fi: fn(i64) -> i64,
) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    Ok(vec![Value::new(x.shape.clone(), map_num(c, &x.data, ff, fi)?)])
}

/// ONNX `Sigmoid` of `x` (the op, and the fused SwiGLU's fallback).
pub(crate) fn sigmoid_value(c: &OpCtx<'_>, x: &Value) -> Result<Value, RuntimeError> {
    match &x.data {
        // The same formula in f64 with a SIMD exp (smelt-kernels), in chunks over the pool.
        Data::F32(v) => {
            let mut out = vec![0f32; v.len()];
            super::par::for_rows(v, &mut out, SIGMOID_CHUNK, |(x, o)| smelt_kernels::sigmoid_f32(x, o));
            Ok(Value::new(x.shape.clone(), Data::F32(out)))
        }
        _ => Ok(Value::new(x.shape.clone(), map_float(c, &x.data, sigmoid)?)),
    }
}

/// Elements per call of the f32 sigmoid kernel.
pub(crate) const SIGMOID_CHUNK: usize = 1024;

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        r
    }
}

pub(crate) fn register(r: &mut Registry) {
    r.onnx("Neg", |c| unary_num(c, |x| -x, i64::wrapping_neg));
    r.onnx("Abs", |c| unary_num(c, f64::abs, i64::wrapping_abs));
    r.onnx("Sign", |c| {
        unary_num(
            c,
            |x| {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    x
                }
            },
            i64::signum,
        )
    });
    r.onnx("Sqrt", |c| unary(c, f64::sqrt));
    r.onnx("Reciprocal", |c| unary(c, |x| 1.0 / x));
    r.onnx("Exp", |c| unary(c, f64::exp));
    r.onnx("Log", |c| unary(c, f64::ln));
    r.onnx("Erf", |c| unary(c, libm::erf));
    r.onnx("Tanh", |c| unary(c, f64::tanh));
    r.onnx("Sigmoid", |c| Ok(vec![sigmoid_value(c, c.input(0)?)?]));
    r.onnx("Relu", |c| unary_num(c, |x| if x > 0.0 { x } else { 0.0 }, |x| x.max(0)));
    r.onnx("Cos", |c| unary(c, f64::cos));
    r.onnx("Sin", |c| unary(c, f64::sin));
    r.onnx("Tan", |c| unary(c, f64::tan));
    r.onnx("Acos", |c| unary(c, f64::acos));
    r.onnx("Asin", |c| unary(c, f64::asin));
    r.onnx("Atan", |c| unary(c, f64::atan));
    r.onnx("Cosh", |c| unary(c, f64::cosh));
    r.onnx("Sinh", |c| unary(c, f64::sinh));
    r.onnx("Acosh", |c| unary(c, f64::acosh));
    r.onnx("Asinh", |c| unary(c, f64::asinh));
    r.onnx("Atanh", |c| unary(c, f64::atanh));
    r.onnx("Floor", |c| unary(c, f64::floor));
    r.onnx("Ceil", |c| unary(c, f64::ceil));
    r.onnx("Round", |c| unary(c, round_half_even));
    r.onnx("Softplus", |c| unary(c, |x| if x > 30.0 { x } else { x.exp().ln_1p() }));
    r.onnx("Softsign", |c| unary(c, |x| x / (1.0 + x.abs())));
    r.onnx("Mish", |c| unary(c, |x| x * (if x > 30.0 { x } else { x.exp().ln_1p() }).tanh()));
    r.onnx("HardSwish", |c| unary(c, |x| x * (x / 6.0 + 0.5).clamp(0.0, 1.0)));
    r.onnx("Gelu", |c| {
        if c.string("approximate", "none") == "tanh" {
            unary(c, |x| {
                0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
            })
        } else {
            unary(c, |x| 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)))
        }
    });
    r.onnx("LeakyRelu", |c| {
        let a = c.float("alpha", 0.01) as f64;
        unary(c, move |x| if x >= 0.0 { x } else { a * x })
    });
    r.onnx("Elu", |c| {
        let a = c.float("alpha", 1.0) as f64;
        unary(c, move |x| if x >= 0.0 { x } else { a * (x.exp() - 1.0) })
    });
    r.onnx("Celu", |c| {
        let a = c.float("alpha", 1.0) as f64;
        unary(c, move |x| x.max(0.0) + (a * ((x / a).exp() - 1.0)).min(0.0))
    });
    r.onnx("Selu", |c| {
        let a = c.float("alpha", 1.673_263_2) as f64;
        let g = c.float("gamma", 1.050_701) as f64;
        unary(c, move |x| if x > 0.0 { g * x } else { g * a * (x.exp() - 1.0) })
    });
    r.onnx("ThresholdedRelu", |c| {
        let a = c.float("alpha", 1.0) as f64;
        unary(c, move |x| if x > a { x } else { 0.0 })
    });
    r.onnx("HardSigmoid", |c| {
        let a = c.float("alpha", 0.2) as f64;
        let b = c.float("beta", 0.5) as f64;
        unary(c, move |x| (a * x + b).clamp(0.0, 1.0))
    });
    r.onnx("PRelu", |c| {
        let slope = c.input(1)?;
        let x = c.input(0)?;
        let neg = crate::ops::elementwise::binary_values(
            c,
            x,
            slope,
            |x, s| if x < 0.0 { x * s } else { x },
            |x, s| if x < 0 { x * s } else { x },
        )?;
        Ok(vec![neg])
    });
    r.onnx("Swish", |c| {
        let a = c.float("alpha", 1.0) as f64;
        unary(c, move |x| x * sigmoid(a * x))
    });
    r.onnx("Dropout", |c| {
        // Inference: identity; the mask (when asked for) is all true. training_mode is refused.
        let training =
            c.opt(2).map(|t| t.data.to_i64_vec().first().copied().unwrap_or(0) != 0).unwrap_or(false);
        if training {
            return Err(c.err("training_mode=true is not supported (inference only)"));
        }
        let x = c.input(0)?;
        Ok(vec![x.clone(), Value::new(x.shape.clone(), Data::Bool(vec![true; x.numel()]))])
    });
    r.onnx("BitwiseNot", |c| unary_num(c, |x| x, |x| !x));
    r.onnx("Clip", clip);
    r.onnx("Not", |c| {
        let x = c.input(0)?;
        match &x.data {
            Data::Bool(v) => {
                Ok(vec![Value::new(x.shape.clone(), Data::Bool(v.iter().map(|b| !b).collect()))])
            }
            _ => Err(c.err("input must be bool")),
        }
    });
    r.onnx("IsNaN", |c| {
        let x = c.input(0)?;
        let v = x.data.to_f64_vec();
        Ok(vec![Value::new(x.shape.clone(), Data::Bool(v.iter().map(|x| x.is_nan()).collect()))])
    });
    r.onnx("IsInf", |c| {
        let x = c.input(0)?;
        let (pos, neg) = (c.int("detect_positive", 1) == 1, c.int("detect_negative", 1) == 1);
        let v = x.data.to_f64_vec();
        let out =
            v.iter().map(|x| (pos && *x == f64::INFINITY) || (neg && *x == f64::NEG_INFINITY)).collect();
        Ok(vec![Value::new(x.shape.clone(), Data::Bool(out))])
    });
    r.onnx("Cast", |c| {
        let x = c.input(0)?;
        let to = c.int("to", 0) as i32;
        let dtype = match smelt_formats::onnx::map_data_type(to) {
            smelt_formats::onnx::Mapped::DType(d) => d,
            _ => return Err(c.err(format!("Cast to ONNX type {to} is not supported"))),
        };
        cast_to(c, x, dtype)
    });
    r.onnx("CastLike", |c| cast_to(c, c.input(0)?, c.input(1)?.dtype()));
}

fn cast_to(c: &OpCtx<'_>, x: &Value, dtype: DType) -> Result<Vec<Value>, RuntimeError> {
    if let (Data::I32(v), DType::F32) = (&x.data, dtype) {
        // MatMulInteger's output on its way to the scales: shared out over the pool (i32 → f32
        // rounds to nearest, as through f64).
        return Ok(vec![Value::new(x.shape.clone(), Data::F32(super::par::map(v, |e| e as f32)))]);
    }
    let data = x.data.cast(dtype).ok_or_else(|| c.err(format!("Cast to {dtype} is not supported")))?;
    Ok(vec![Value::new(x.shape.clone(), data)])
}

fn clip(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let (lo, hi) = if c.opset() >= 11 {
        let get = |i: usize| c.opt(i).and_then(|v| v.data.to_f64_vec().first().copied());
        (get(1), get(2))
    } else {
        (Some(c.float("min", f32::MIN) as f64), Some(c.float("max", f32::MAX) as f64))
    };
    let (lo, hi) = (lo.unwrap_or(f64::NEG_INFINITY), hi.unwrap_or(f64::INFINITY));
    let f = move |v: f64| if v.is_nan() { v } else { v.max(lo).min(hi) };
    let data = if x.dtype().is_float_like() {
        map_float(c, &x.data, f)?
    } else {
        let v = x.data.to_i64_vec();
        let (l, h) = (
            if lo.is_finite() { lo as i64 } else { i64::MIN },
            if hi.is_finite() { hi as i64 } else { i64::MAX },
        );
        let clipped: Vec<i64> = v.into_iter().map(|e| e.max(l).min(h)).collect();
        Data::I64(clipped).cast(x.dtype()).ok_or_else(|| c.err("unsupported dtype"))?
    };
    Ok(vec![Value::new(x.shape.clone(), data)])
}
