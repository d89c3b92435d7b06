//! Broadcasting binary ops (arithmetic, Max/Min/Sum/Mean, comparisons, logic) and Where.

use super::broadcast::{binary, broadcast_shape, index_map};
use crate::error::RuntimeError;
use crate::node::OpCtx;
use crate::registry::Registry;
use crate::value::{Data, Elem, Value};
use smelt_tensor::DType;

pub(crate) fn register(r: &mut Registry) {
    // f32 operands of + - × ÷ are computed in f32: the correctly rounded f32 result, the same
    // bits as rounding the f64 result (f64 has more than 2·24 + 2 bits, so the double
    // rounding is innocuous), in half the vector lanes' work.
    r.onnx("Add", |c| arith_f32(c, |x, y| x + y, |x, y| x + y, i64::wrapping_add));
    r.onnx("Sub", |c| arith_f32(c, |x, y| x - y, |x, y| x - y, i64::wrapping_sub));
    r.onnx("Mul", |c| Ok(vec![mul_values(c, c.input(0)?, c.input(1)?)?]));
    r.onnx("Div", |c| {
        arith_f32(c, |x, y| x / y, |x, y| x / y, |x, y| if y == 0 { 0 } else { x.wrapping_div(y) })
    });
    r.onnx("Pow", pow);
    r.onnx("Mod", |c| {
        if c.int("fmod", 0) == 1 {
            arith(c, |x, y| x % y, |x, y| if y == 0 { 0 } else { x.wrapping_rem(y) })
        } else {
            arith(
                c,
                |x, y| {
                    let r = x % y;
                    if r != 0.0 && ((r < 0.0) != (y < 0.0)) {
                        r + y
                    } else {
                        r
                    }
                },
                |x, y| if y == 0 { 0 } else { x.wrapping_rem(y).wrapping_add(y).wrapping_rem(y) },
            )
        }
    });
    r.onnx("Max", |c| {
        variadic(c, |x, y| if x.is_nan() || y.is_nan() { f64::NAN } else { x.max(y) }, |x, y| x.max(y))
    });
    r.onnx("Min", |c| {
        variadic(c, |x, y| if x.is_nan() || y.is_nan() { f64::NAN } else { x.min(y) }, |x, y| x.min(y))
    });
    r.onnx("Sum", |c| variadic(c, |x, y| x + y, i64::wrapping_add));
    r.onnx("Mean", mean);
    r.onnx("Equal", |c| compare(c, |o| o == Some(std::cmp::Ordering::Equal)));
    r.onnx("Less", |c| compare(c, |o| o == Some(std::cmp::Ordering::Less)));
    r.onnx("LessOrEqual", |c| {
        compare(c, |o| matches!(o, Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)))
    });
    r.onnx("Greater", |c| compare(c, |o| o == Some(std::cmp::Ordering::Greater)));
    r.onnx("GreaterOrEqual", |c| {
        compare(c, |o| matches!(o, Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)))
    });
    r.onnx("And", |c| logic(c, |x, y| x && y));
    r.onnx("Or", |c| logic(c, |x, y| x || y));
    r.onnx("Xor", |c| logic(c, |x, y| x ^ y));
    r.onnx("Where", where_op);
    r.onnx("BitwiseAnd", |c| arith(c, |_, _| f64::NAN, |x, y| x & y));
    r.onnx("BitwiseOr", |c| arith(c, |_, _| f64::NAN, |x, y| x | y));
    r.onnx("BitwiseXor", |c| arith(c, |_, _| f64::NAN, |x, y| x ^ y));
    r.onnx("BitShift", |c| {
        if c.string("direction", "") == "RIGHT" {
            // Arithmetic for signed types (the i64 holds them sign-extended); a shift past the
            // width or negative fills with the sign, as the ONNX 1.23 reference does.
            arith(c, |_, _| f64::NAN, |x, y| if (0..64).contains(&y) { x >> y } else { x >> 63 })
        } else {
            arith(c, |_, _| f64::NAN, |x, y| if (0..64).contains(&y) { ((x as u64) << y) as i64 } else { 0 })
        }
    });
}

/// The broadcast of `a` and `b`, refused when the operands do not broadcast or the result
/// would pass the element cap (two live values can broadcast to far more than either holds).
fn out_shape(c: &OpCtx<'_>, a: &Value, b: &Value) -> Result<Vec<usize>, RuntimeError> {
    let out = broadcast_shape(&a.shape, &b.shape)
        .ok_or_else(|| c.shape_err("operands do not broadcast", &a.shape, &b.shape))?;
    c.checked_numel(&out)?;
    Ok(out)
}

fn same_dtype(c: &OpCtx<'_>, a: &Value, b: &Value) -> Result<(), RuntimeError> {
    if a.dtype() != b.dtype() {
        return Err(c.err(format!("operand dtypes differ: {} vs {}", a.dtype(), b.dtype())));
    }
    Ok(())
}

fn arith_elem<T: Elem>(p: T, q: T, ff: impl Fn(f64, f64) -> f64, fi: impl Fn(i64, i64) -> i64) -> T {
    if T::IS_FLOAT {
        T::from_f64(ff(p.to_f64(), q.to_f64()))
    } else {
        T::from_i64(fi(p.to_i64(), q.to_i64()))
    }
}

/// Applies an elementwise binary op over two same-dtype values with broadcasting. Floats are
/// computed in f64 and rounded to the element type (for f32 `+ - * /` that is the correctly
/// rounded f32 result), integers in i64.
pub(crate) fn binary_values(
    c: &OpCtx<'_>,
    a: &Value,
    b: &Value,
    ff: impl Fn(f64, f64) -> f64 + Copy + Sync + Send,
    fi: impl Fn(i64, i64) -> i64 + Copy + Sync + Send,
) -> Result<Value, RuntimeError> {
    binary_values_f32(c, a, b, |p: f32, q: f32| arith_elem(p, q, ff, fi), ff, fi)
}

/// ONNX `Mul` of `a` and `b` (the op, and the fused SwiGLU's fallback).
pub(crate) fn mul_values(c: &OpCtx<'_>, a: &Value, b: &Value) -> Result<Value, RuntimeError> {
    binary_values_f32(c, a, b, |x, y| x * y, |x, y| x * y, i64::wrapping_mul)
}

/// [`binary_values`] with `f32` data computed by `f` (which must give the bits that rounding
/// `ff`'s f64 result would).
fn binary_values_f32(
    c: &OpCtx<'_>,
    a: &Value,
    b: &Value,
    f: impl Fn(f32, f32) -> f32 + Copy + Sync + Send,
    ff: impl Fn(f64, f64) -> f64 + Copy + Sync + Send,
    fi: impl Fn(i64, i64) -> i64 + Copy + Sync + Send,
) -> Result<Value, RuntimeError> {
    same_dtype(c, a, b)?;
    let out = out_shape(c, a, b)?;
    let (ash, bsh) = (&a.shape, &b.shape);
    // f32 with equal shapes or a one-element operand (scales, biases of a whole tensor):
    // shared out over the pool, each element computed as below.
    if let (Data::F32(x), Data::F32(y)) = (&a.data, &b.data) {
        if *ash == out && *bsh == out {
            return Ok(Value::new(out, Data::F32(super::par::zip_map(x, y, f))));
        }
        if *ash == out && y.len() == 1 {
            let q = y[0];
            return Ok(Value::new(out, Data::F32(super::par::map(x, |p| f(p, q)))));
        }
        if *bsh == out && x.len() == 1 {
            let p = x[0];
            return Ok(Value::new(out, Data::F32(super::par::map(y, |q| f(p, q)))));
        }
        // One operand repeated along the other's leading dims (per-channel scales, biases,
        // norm weights): row by row.
        let trailing = |small: &[usize]| {
            let s = &small[small.iter().take_while(|&&d| d == 1).count()..];
            !s.is_empty() && out.ends_with(s)
        };
        if *ash == out && trailing(bsh) && !y.is_empty() {
            let mut o = vec![0f32; x.len()];
            super::par::for_rows(x, &mut o, y.len(), |(xr, or)| {
                for ((o, &p), &q) in or.iter_mut().zip(xr).zip(y) {
                    *o = f(p, q);
                }
            });
            return Ok(Value::new(out, Data::F32(o)));
        }
        if *bsh == out && trailing(ash) && !x.is_empty() {
            let mut o = vec![0f32; y.len()];
            super::par::for_rows(y, &mut o, x.len(), |(yr, or)| {
                for ((o, &q), &p) in or.iter_mut().zip(yr).zip(x) {
                    *o = f(p, q);
                }
            });
            return Ok(Value::new(out, Data::F32(o)));
        }
    }
    macro_rules! go {
        ($($var:ident),*) => {
            match (&a.data, &b.data) {
                (Data::F32(x), Data::F32(y)) => Data::F32(binary(x, ash, y, bsh, &out, f)),
                $((Data::$var(x), Data::$var(y)) => Data::$var(binary(x, ash, y, bsh, &out, |p, q| arith_elem(p, q, ff, fi))),)*
                _ => return Err(c.err(format!("dtype {} is not supported", a.dtype()))),
            }
        };
    }
    let data = go!(F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64);
    Ok(Value::new(out, data))
}

/// [`arith`] with f32 data computed by `f32op` (see `register`).
fn arith_f32(
    c: &OpCtx<'_>,
    f32op: impl Fn(f32, f32) -> f32 + Copy + Sync + Send,
    ff: impl Fn(f64, f64) -> f64 + Copy + Sync + Send,
    fi: impl Fn(i64, i64) -> i64 + Copy + Sync + Send,
) -> Result<Vec<Value>, RuntimeError> {
    Ok(vec![binary_values_f32(c, c.input(0)?, c.input(1)?, f32op, ff, fi)?])
}

fn arith(
    c: &OpCtx<'_>,
    ff: impl Fn(f64, f64) -> f64 + Copy + Sync + Send,
    fi: impl Fn(i64, i64) -> i64 + Copy + Sync + Send,
) -> Result<Vec<Value>, RuntimeError> {
    Ok(vec![binary_values(c, c.input(0)?, c.input(1)?, ff, fi)?])
}

fn pow(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let a = c.input(0)?;
    let b = c.input(1)?;
    let b = if b.dtype() != a.dtype() {
        Value::new(b.shape.clone(), b.data.cast(a.dtype()).ok_or_else(|| c.err("cannot cast exponent"))?)
    } else {
        b.clone()
    };
    let ipow = |x: i64, y: i64| if y < 0 { 0 } else { x.wrapping_pow(y.min(u32::MAX as i64) as u32) };
    // x² (RMSNorm's Pow(x, 2)): the f64 square of an f32/f16/bf16 value is exact, and so is
    // powf's result then, so multiplying gives the same bits without a libm call.
    let squares = matches!(a.dtype(), DType::F32 | DType::F16 | DType::BF16)
        && b.numel() == 1
        && b.data.to_f64_vec()[0] == 2.0;
    if squares {
        return Ok(vec![binary_values(c, a, &b, |x, _| x * x, ipow)?]);
    }
    Ok(vec![binary_values(c, a, &b, f64::powf, ipow)?])
}

fn variadic(
    c: &OpCtx<'_>,
    ff: impl Fn(f64, f64) -> f64 + Copy + Sync + Send,
    fi: impl Fn(i64, i64) -> i64 + Copy + Sync + Send,
) -> Result<Vec<Value>, RuntimeError> {
    let mut acc = c.input(0)?.clone();
    for i in 1..c.inputs.len() {
        acc = binary_values(c, &acc, c.input(i)?, ff, fi)?;
    }
    Ok(vec![acc])
}

fn mean(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let mut acc = variadic(c, |x, y| x + y, i64::wrapping_add)?.remove(0);
    let n = c.inputs.len() as f64;
    acc.data = crate::ops::unary::map_float(c, &acc.data, |x| x / n)?;
    Ok(vec![acc])
}

fn compare(c: &OpCtx<'_>, pred: fn(Option<std::cmp::Ordering>) -> bool) -> Result<Vec<Value>, RuntimeError> {
    let a = c.input(0)?;
    let b = c.input(1)?;
    same_dtype(c, a, b)?;
    let out = out_shape(c, a, b)?;
    let (ash, bsh) = (&a.shape, &b.shape);
    macro_rules! go {
        ($($var:ident),*) => {
            match (&a.data, &b.data) {
                $((Data::$var(x), Data::$var(y)) => binary(x, ash, y, bsh, &out, |p, q| pred(p.partial_cmp(&q))),)*
                _ => return Err(c.err(format!("dtype {} is not supported", a.dtype()))),
            }
        };
    }
    let data = go!(F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64, Bool);
    Ok(vec![Value::new(out, Data::Bool(data))])
}

fn logic(c: &OpCtx<'_>, f: fn(bool, bool) -> bool) -> Result<Vec<Value>, RuntimeError> {
    let a = c.input(0)?;
    let b = c.input(1)?;
    let out = out_shape(c, a, b)?;
    match (&a.data, &b.data) {
        (Data::Bool(x), Data::Bool(y)) => {
            Ok(vec![Value::new(out.clone(), Data::Bool(binary(x, &a.shape, y, &b.shape, &out, f)))])
        }
        _ => Err(c.err("operands must be bool")),
    }
}

fn where_op(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let cond = c.input(0)?;
    let x = c.input(1)?;
    let y = c.input(2)?;
    same_dtype(c, x, y)?;
    let Data::Bool(cv) = &cond.data else { return Err(c.err("condition must be bool")) };
    let s1 = out_shape(c, cond, x)?;
    let out = broadcast_shape(&s1, &y.shape)
        .ok_or_else(|| c.shape_err("operands do not broadcast", &s1, &y.shape))?;
    c.checked_numel(&out)?;
    let ic = index_map(&cond.shape, &out);
    let ix = index_map(&x.shape, &out);
    let iy = index_map(&y.shape, &out);
    macro_rules! go {
        ($($var:ident),*) => {
            match (&x.data, &y.data) {
                $((Data::$var(a), Data::$var(b)) => Data::$var((0..ic.len()).map(|k| if cv[ic[k]] { a[ix[k]] } else { b[iy[k]] }).collect()),)*
                _ => return Err(c.err("unsupported dtype")),
            }
        };
    }
    let data = go!(F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64, Bool);
    Ok(vec![Value::new(out, data)])
}

#[cfg(test)]
mod tests {
    /// The f32 fast path of Add/Sub/Mul/Div gives the bits of the f64 computation rounded to
    /// f32 (the definition the other dtypes use), on edge values and random ones.
    #[test]
    fn f32_arithmetic_equals_f64_rounded() {
        let mut vals = vec![
            0.0f32,
            -0.0,
            1.0,
            -1.0,
            3.0,
            1.0 / 3.0,
            f32::from_bits(1),
            f32::from_bits(0x007f_ffff),
            f32::MIN_POSITIVE,
            f32::MAX,
            -f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1.0 + f32::EPSILON,
            16_777_217.0,
        ];
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            vals.push(f32::from_bits((s >> 32) as u32));
        }
        type Op = (&'static str, fn(f32, f32) -> f32, fn(f64, f64) -> f64);
        let ops: [Op; 4] = [
            ("add", |x, y| x + y, |x, y| x + y),
            ("sub", |x, y| x - y, |x, y| x - y),
            ("mul", |x, y| x * y, |x, y| x * y),
            ("div", |x, y| x / y, |x, y| x / y),
        ];
        for (name, f, g) in ops {
            for (i, &x) in vals.iter().enumerate() {
                // Every edge value against every value, random values against their neighbour.
                let ys: &[f32] = if i < 16 { &vals } else { &vals[i - 1..i] };
                for &y in ys {
                    let (got, want) = (f(x, y), g(x as f64, y as f64) as f32);
                    assert!(
                        got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                        "{name}({x:e}, {y:e}): f32 {got:e} vs f64 rounded {want:e}"
                    );
                }
            }
        }
    }
}
