//! [`Value`]: a tensor the interpreter owns — a shape and one typed vector ([`Data`]) — and
//! the conversions from the formats' stored bytes and back.
//!
//! 4-bit types (ONNX INT4/UINT4) are unpacked to one element per byte on load: they only
//! appear as quantized weights, where the dequantizing ops read them element by element.

use half::{bf16, f16};
use smelt_tensor::DType;

use crate::error::RuntimeError;

/// One element type the interpreter computes with.
pub trait Elem: Copy + Default + PartialOrd + std::fmt::Debug + Send + Sync + 'static {
    /// True for floating-point types.
    const IS_FLOAT: bool;
    /// The value as f64.
    fn to_f64(self) -> f64;
    /// From f64 (saturating `as` for integers).
    fn from_f64(v: f64) -> Self;
    /// The value as i64 (truncating floats).
    fn to_i64(self) -> i64;
    /// From i64 (wrapping `as` for integers).
    fn from_i64(v: i64) -> Self;
}

macro_rules! elem_int {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            const IS_FLOAT: bool = false;
            fn to_f64(self) -> f64 { self as f64 }
            fn from_f64(v: f64) -> Self { v as $t }
            fn to_i64(self) -> i64 { self as i64 }
            fn from_i64(v: i64) -> Self { v as $t }
        }
    )*};
}
elem_int!(i8, i16, i32, i64, u8, u16, u32, u64);

impl Elem for f32 {
    const IS_FLOAT: bool = true;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn from_i64(v: i64) -> Self {
        v as f32
    }
}
impl Elem for f64 {
    const IS_FLOAT: bool = true;
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn from_i64(v: i64) -> Self {
        v as f64
    }
}
impl Elem for f16 {
    const IS_FLOAT: bool = true;
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
    fn to_i64(self) -> i64 {
        self.to_f64() as i64
    }
    fn from_i64(v: i64) -> Self {
        f16::from_f64(v as f64)
    }
}
impl Elem for bf16 {
    const IS_FLOAT: bool = true;
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_f64(v: f64) -> Self {
        bf16::from_f64(v)
    }
    fn to_i64(self) -> i64 {
        self.to_f64() as i64
    }
    fn from_i64(v: i64) -> Self {
        bf16::from_f64(v as f64)
    }
}
impl Elem for bool {
    const IS_FLOAT: bool = false;
    fn to_f64(self) -> f64 {
        if self {
            1.0
        } else {
            0.0
        }
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn from_i64(v: i64) -> Self {
        v != 0
    }
}

/// A tensor's elements, one variant per element type.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    Bool(Vec<bool>),
    /// INT4, unpacked: one value in -8..=7 per element.
    I4(Vec<i8>),
    /// UINT4, unpacked: one value in 0..=15 per element.
    U4(Vec<u8>),
}

/// Runs `$body` with `$v` bound to the vector of whatever variant `$data` is (by reference or
/// value as `$data` is), returning what the body returns.
#[macro_export]
#[doc(hidden)]
macro_rules! with_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::value::Data::F32($v) => $body,
            $crate::value::Data::F64($v) => $body,
            $crate::value::Data::F16($v) => $body,
            $crate::value::Data::BF16($v) => $body,
            $crate::value::Data::I8($v) => $body,
            $crate::value::Data::I16($v) => $body,
            $crate::value::Data::I32($v) => $body,
            $crate::value::Data::I64($v) => $body,
            $crate::value::Data::U8($v) => $body,
            $crate::value::Data::U16($v) => $body,
            $crate::value::Data::U32($v) => $body,
            $crate::value::Data::U64($v) => $body,
            $crate::value::Data::Bool($v) => $body,
            $crate::value::Data::I4($v) => $body,
            $crate::value::Data::U4($v) => $body,
        }
    };
}

/// Like [`with_data!`] but the body's result (a `Vec` of the same element type) is wrapped
/// back into the same variant.
#[macro_export]
#[doc(hidden)]
macro_rules! map_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::value::Data::F32($v) => $crate::value::Data::F32($body),
            $crate::value::Data::F64($v) => $crate::value::Data::F64($body),
            $crate::value::Data::F16($v) => $crate::value::Data::F16($body),
            $crate::value::Data::BF16($v) => $crate::value::Data::BF16($body),
            $crate::value::Data::I8($v) => $crate::value::Data::I8($body),
            $crate::value::Data::I16($v) => $crate::value::Data::I16($body),
            $crate::value::Data::I32($v) => $crate::value::Data::I32($body),
            $crate::value::Data::I64($v) => $crate::value::Data::I64($body),
            $crate::value::Data::U8($v) => $crate::value::Data::U8($body),
            $crate::value::Data::U16($v) => $crate::value::Data::U16($body),
            $crate::value::Data::U32($v) => $crate::value::Data::U32($body),
            $crate::value::Data::U64($v) => $crate::value::Data::U64($body),
            $crate::value::Data::Bool($v) => $crate::value::Data::Bool($body),
            $crate::value::Data::I4($v) => $crate::value::Data::I4($body),
            $crate::value::Data::U4($v) => $crate::value::Data::U4($body),
        }
    };
}

impl Data {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Data::F32(_) => DType::F32,
            Data::F64(_) => DType::F64,
            Data::F16(_) => DType::F16,
            Data::BF16(_) => DType::BF16,
            Data::I8(_) => DType::I8,
            Data::I16(_) => DType::I16,
            Data::I32(_) => DType::I32,
            Data::I64(_) => DType::I64,
            Data::U8(_) => DType::U8,
            Data::U16(_) => DType::U16,
            Data::U32(_) => DType::U32,
            Data::U64(_) => DType::U64,
            Data::Bool(_) => DType::Bool,
            Data::I4(_) => DType::I4,
            Data::U4(_) => DType::U4,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_data!(self, v => v.len())
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `n` zeros of `dtype`, `None` for dtypes the interpreter does not hold.
    pub fn zeros(dtype: DType, n: usize) -> Option<Data> {
        Some(match dtype {
            DType::F32 => Data::F32(vec![0.0; n]),
            DType::F64 => Data::F64(vec![0.0; n]),
            DType::F16 => Data::F16(vec![f16::ZERO; n]),
            DType::BF16 => Data::BF16(vec![bf16::ZERO; n]),
            DType::I8 => Data::I8(vec![0; n]),
            DType::I16 => Data::I16(vec![0; n]),
            DType::I32 => Data::I32(vec![0; n]),
            DType::I64 => Data::I64(vec![0; n]),
            DType::U8 => Data::U8(vec![0; n]),
            DType::U16 => Data::U16(vec![0; n]),
            DType::U32 => Data::U32(vec![0; n]),
            DType::U64 => Data::U64(vec![0; n]),
            DType::Bool => Data::Bool(vec![false; n]),
            DType::I4 => Data::I4(vec![0; n]),
            DType::U4 => Data::U4(vec![0; n]),
            _ => return None,
        })
    }

    /// Converts every element to `dtype` (ONNX `Cast` semantics for the numeric types:
    /// float to int truncates toward zero and saturates, to bool is `!= 0`).
    pub fn cast(&self, dtype: DType) -> Option<Data> {
        if self.dtype() == dtype {
            return Some(self.clone());
        }
        fn conv<S: Elem, T: Elem>(v: &[S]) -> Vec<T> {
            if S::IS_FLOAT || T::IS_FLOAT {
                v.iter().map(|x| T::from_f64(x.to_f64())).collect()
            } else {
                v.iter().map(|x| T::from_i64(x.to_i64())).collect()
            }
        }
        Some(with_data!(self, v => match dtype {
            DType::F32 => Data::F32(conv(v)),
            DType::F64 => Data::F64(conv(v)),
            DType::F16 => Data::F16(conv(v)),
            DType::BF16 => Data::BF16(conv(v)),
            DType::I8 => Data::I8(conv(v)),
            DType::I16 => Data::I16(conv(v)),
            DType::I32 => Data::I32(conv(v)),
            DType::I64 => Data::I64(conv(v)),
            DType::U8 => Data::U8(conv(v)),
            DType::U16 => Data::U16(conv(v)),
            DType::U32 => Data::U32(conv(v)),
            DType::U64 => Data::U64(conv(v)),
            DType::Bool => Data::Bool(conv(v)),
            // Like the other integer casts, 4-bit ones keep the low bits (ONNX Cast wraps).
            DType::I4 => Data::I4(conv::<_, i64>(v).into_iter().map(|x| (((x & 0xf) as i8) << 4) >> 4).collect()),
            DType::U4 => Data::U4(conv::<_, i64>(v).into_iter().map(|x| (x & 0xf) as u8).collect()),
            _ => return None,
        }))
    }

    /// Every element as f32.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            Data::F32(v) => v.clone(),
            other => with_data!(other, v => v.iter().map(|x| x.to_f64() as f32).collect()),
        }
    }

    /// Every element as f64.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        with_data!(self, v => v.iter().map(|x| x.to_f64()).collect())
    }

    /// Every element as i64 (floats truncated).
    pub fn to_i64_vec(&self) -> Vec<i64> {
        with_data!(self, v => v.iter().map(|x| x.to_i64()).collect())
    }

    /// Little-endian bytes, as `.npy` stores them (4-bit types one element per byte).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::BF16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::I8(v) | Data::I4(v) => v.iter().map(|&x| x as u8).collect(),
            Data::I16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::U8(v) | Data::U4(v) => v.clone(),
            Data::U16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::U32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::U64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::Bool(v) => v.iter().map(|&x| x as u8).collect(),
        }
    }

    /// Decodes `numel` elements of `dtype` from little-endian stored bytes (4-bit types two
    /// per byte, low nibble first). `None` when the dtype is not held or the length is wrong.
    pub fn from_le_bytes(dtype: DType, bytes: &[u8], numel: usize) -> Option<Data> {
        fn chunks<const N: usize, T>(b: &[u8], n: usize, f: fn([u8; N]) -> T) -> Option<Vec<T>> {
            if b.len() != n.checked_mul(N)? {
                return None;
            }
            Some(b.chunks_exact(N).map(|c| f(c.try_into().unwrap_or([0; N]))).collect())
        }
        Some(match dtype {
            DType::F32 => Data::F32(chunks(bytes, numel, f32::from_le_bytes)?),
            DType::F64 => Data::F64(chunks(bytes, numel, f64::from_le_bytes)?),
            DType::F16 => Data::F16(chunks(bytes, numel, f16::from_le_bytes)?),
            DType::BF16 => Data::BF16(chunks(bytes, numel, bf16::from_le_bytes)?),
            DType::I8 => Data::I8(chunks(bytes, numel, i8::from_le_bytes)?),
            DType::I16 => Data::I16(chunks(bytes, numel, i16::from_le_bytes)?),
            DType::I32 => Data::I32(chunks(bytes, numel, i32::from_le_bytes)?),
            DType::I64 => Data::I64(chunks(bytes, numel, i64::from_le_bytes)?),
            DType::U8 => Data::U8(chunks(bytes, numel, u8::from_le_bytes)?),
            DType::U16 => Data::U16(chunks(bytes, numel, u16::from_le_bytes)?),
            DType::U32 => Data::U32(chunks(bytes, numel, u32::from_le_bytes)?),
            DType::U64 => Data::U64(chunks(bytes, numel, u64::from_le_bytes)?),
            DType::Bool => Data::Bool(chunks(bytes, numel, |b: [u8; 1]| b[0] != 0)?),
            DType::I4 | DType::U4 => {
                if bytes.len() != numel.div_ceil(2) {
                    return None;
                }
                let nib = |i: usize| (bytes[i / 2] >> ((i % 2) * 4)) & 0x0f;
                if dtype == DType::U4 {
                    Data::U4((0..numel).map(nib).collect())
                } else {
                    Data::I4((0..numel).map(|i| ((nib(i) << 4) as i8) >> 4).collect())
                }
            }
            _ => return None,
        })
    }
}

/// A tensor: row-major shape and elements.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// Dimensions, outermost first (empty for a scalar).
    pub shape: Vec<usize>,
    /// Elements, `shape.iter().product()` of them.
    pub data: Data,
}

impl Value {
    /// A value; the caller guarantees `data.len()` matches the shape.
    pub fn new(shape: Vec<usize>, data: Data) -> Value {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Value { shape, data }
    }

    /// A scalar-or-any-shape f32 value.
    pub fn f32(shape: Vec<usize>, v: Vec<f32>) -> Value {
        Value::new(shape, Data::F32(v))
    }

    /// An i64 value.
    pub fn i64(shape: Vec<usize>, v: Vec<i64>) -> Value {
        Value::new(shape, Data::I64(v))
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// Builds a value from a formats tensor (the stored bytes are decoded and copied).
    pub fn from_tensor(t: &smelt_formats::Tensor) -> Result<Value, RuntimeError> {
        let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
        if !crate::session::shape_within_cap(&shape) {
            return Err(RuntimeError::BadTensor {
                name: t.name.clone(),
                reason: format!(
                    "shape {:?} exceeds the runner's cap of {} elements (zero dimensions counted as one)",
                    t.shape,
                    crate::session::value_element_cap()
                ),
            });
        }
        let numel = shape.iter().product();
        let data = Data::from_le_bytes(t.dtype, &t.data, numel).ok_or_else(|| RuntimeError::BadTensor {
            name: t.name.clone(),
            reason: format!(
                "dtype {} is not supported by the runner (or its data is {} bytes)",
                t.dtype,
                t.data.len()
            ),
        })?;
        Ok(Value { shape, data })
    }
}
