//! The tensors bitsandbytes writes for an NF4 weight (`Linear4bit._save_to_state_dict`, i.e.
//! `QuantState.as_dict(packed=True)` under `<weight>.`), so a safetensors file smelt writes
//! loads in bitsandbytes and transformers as if they had quantized it.
//!
//! For a weight named `W` (bitsandbytes 0.50.2, checked against a saved `Linear4bit` in
//! fixtures/quant/bnb/):
//!
//! | key | dtype | shape |
//! |---|---|---|
//! | `W` | U8 | `[ceil(n / 2), 1]` (packed codes) |
//! | `W.absmax` | F32 (U8 with double quantization) | `[blocks]` |
//! | `W.quant_map` | F32 | `[16]` (the NF4 code) |
//! | `W.nested_absmax` | F32 | `[ceil(blocks / 256)]` (double quantization only) |
//! | `W.nested_quant_map` | F32 | `[256]` (the signed dynamic map; double quantization only) |
//! | `W.quant_state.bitsandbytes__nf4` | U8 | `[json bytes]` |
//!
//! The last one is the UTF-8 of Python's `json.dumps` of the non-tensor fields in
//! `as_dict`'s order: `{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape":
//! [3, 100]}`, plus `"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset":
//! <float>` with double quantization. `dtype` is the torch dtype the weight had when quantized
//! (`float32`, `float16` or `bfloat16`); the offset is printed as Python's `repr` of the f32
//! value widened to f64 (shortest round-trip digits, exponent form below 1e-4 and from 1e16).

use smelt_tensor::DType;

use super::{blockwise8, Nf4Absmax, Nf4Tensor, NESTED_BLOCK_SIZE, NF4_CODE};
use crate::named_tensor::NamedTensor;
use crate::scheme_error::SchemeError;

/// The torch dtype name bitsandbytes records for a source dtype.
fn torch_dtype_name(dtype: DType) -> Result<&'static str, SchemeError> {
    match dtype {
        DType::F32 => Ok("float32"),
        DType::F16 => Ok("float16"),
        DType::BF16 => Ok("bfloat16"),
        other => Err(SchemeError::SourceDType { dtype: other }),
    }
}

/// The bitsandbytes state-dict tensors of `t` as weight `weight_name`, in bitsandbytes' order.
/// `source_dtype` is the dtype the weight had before quantization (F32, F16 or BF16).
///
/// Errors: any other source dtype.
pub fn state_dict(
    t: &Nf4Tensor,
    weight_name: &str,
    source_dtype: DType,
) -> Result<Vec<NamedTensor>, SchemeError> {
    let dtype_name = torch_dtype_name(source_dtype)?;
    let key = |suffix: &str| format!("{weight_name}.{suffix}");
    let code: Vec<f32> = NF4_CODE.to_vec();
    let mut out = vec![NamedTensor::u8(weight_name.to_string(), vec![t.packed.len(), 1], &t.packed)];
    let shape_json = t.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
    let mut json = format!(
        "{{\"quant_type\": \"nf4\", \"blocksize\": {}, \"dtype\": \"{dtype_name}\", \"shape\": [{shape_json}]",
        t.block_size
    );
    match &t.absmax {
        Nf4Absmax::Plain(absmax) => {
            out.push(NamedTensor::f32(key("absmax"), vec![absmax.len()], absmax));
            out.push(NamedTensor::f32(key("quant_map"), vec![16], &code));
        }
        Nf4Absmax::Double(dq) => {
            out.push(NamedTensor::u8(key("absmax"), vec![dq.codes.len()], &dq.codes));
            out.push(NamedTensor::f32(key("quant_map"), vec![16], &code));
            out.push(NamedTensor::f32(key("nested_absmax"), vec![dq.nested_absmax.len()], &dq.nested_absmax));
            let map = blockwise8::dynamic_map_signed();
            out.push(NamedTensor::f32(key("nested_quant_map"), vec![256], &map));
            json.push_str(&format!(
                ", \"nested_blocksize\": {NESTED_BLOCK_SIZE}, \"nested_dtype\": \"float32\", \"nested_offset\": {}",
                python_float_repr(dq.offset as f64)
            ));
        }
    }
    json.push('}');
    out.push(NamedTensor::u8(key("quant_state.bitsandbytes__nf4"), vec![json.len()], json.as_bytes()));
    Ok(out)
}

/// Python's `json.dumps` text of a float: `repr(x)` (shortest round-trip digits; exponent
/// form when the decimal exponent is below -4 or at least 16), `NaN`, `Infinity`,
/// `-Infinity`.
pub fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    // Rust's `{:e}` gives the same shortest round-trip digits as Python's repr.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.abs());
    }
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let int_len = exp as usize + 1;
    if digits.len() <= int_len {
        let zeros = "0".repeat(int_len - digits.len());
        format!("{sign}{digits}{zeros}.0")
    } else {
        let (int, frac) = digits.split_at(int_len);
        format!("{sign}{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_repr_of_floats() {
        let cases: [(f64, &str); 14] = [
            (2.3885676860809326, "2.3885676860809326"),
            (0.09834073483943939, "0.09834073483943939"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (1.2345e20, "1.2345e+20"),
            (1e15, "1000000000000000.0"),
            (123.0, "123.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (-2.5, "-2.5"),
            (f64::INFINITY, "Infinity"),
            (5e-324, "5e-324"),
        ];
        for (x, want) in cases {
            assert_eq!(python_float_repr(x), want, "{x:e}");
        }
        assert_eq!(python_float_repr(f64::NAN), "NaN");
        assert_eq!(python_float_repr(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(python_float_repr(0.1f32 as f64), "0.10000000149011612");
    }
}
