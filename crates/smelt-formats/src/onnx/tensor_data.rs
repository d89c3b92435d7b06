//! One `TensorProto` to smelt's view of it: the dtype and shape checked against the caps, and
//! the stored little-endian bytes, taken from `raw_data` (a zero-copy slice of the mapped file)
//! or built from the typed fields (`float_data`, `int32_data`, ...), which are the one place the
//! ONNX format forces a copy. External data is resolved by [`super::external`].

use bytes::Bytes;
use smelt_tensor::DType;

use super::data_type::{map_data_type, typed_field_for, Mapped, TypedField};
use super::error::OnnxError;
use super::proto::TensorProto;
use crate::limits;

/// Names a tensor in errors: its name and where its `TensorProto` starts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct At<'a> {
    pub name: &'a str,
    pub offset: u64,
}

/// A tensor's checked dtype and shape.
#[derive(Clone, Debug)]
pub(crate) struct Header {
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub numel: u64,
    /// Bytes the stored data takes; 0 for strings, which have no fixed size.
    pub storage: u64,
}

/// Where a tensor's data is, per `data_location`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DataLocation {
    Inline,
    External,
}

/// Checks segment, rank, dims, data type and sizes.
pub(crate) fn header(t: &TensorProto, at: At<'_>) -> Result<Header, OnnxError> {
    let name = || at.name.to_string();
    if t.segment.is_some() {
        return Err(OnnxError::Segmented { name: name(), offset: at.offset });
    }
    if t.dims.len() > limits::MAX_RANK {
        return Err(OnnxError::RankTooLarge {
            name: name(),
            offset: at.offset,
            rank: t.dims.len() as u64,
            limit: limits::MAX_RANK as u64,
        });
    }
    let mut shape = Vec::with_capacity(t.dims.len());
    for (index, &dim) in t.dims.iter().enumerate() {
        let d = u64::try_from(dim).map_err(|_| OnnxError::NegativeDim {
            name: name(),
            offset: at.offset,
            index,
            dim,
        })?;
        shape.push(d);
    }
    let id = t.data_type.unwrap_or(0);
    let dtype = match map_data_type(id) {
        Mapped::DType(d) => d,
        Mapped::Unsupported(onnx_name) => {
            return Err(OnnxError::UnsupportedDataType { name: name(), offset: at.offset, id, onnx_name })
        }
        Mapped::Unknown => return Err(OnnxError::UnknownDataType { name: name(), offset: at.offset, id }),
    };
    let overflow =
        || OnnxError::ShapeOverflow { name: name(), offset: at.offset, dtype, shape: shape.clone().into() };
    let numel = smelt_tensor::numel(&shape).ok_or_else(overflow)?;
    let storage =
        if dtype == DType::String { 0 } else { dtype.storage_bytes(&shape).ok_or_else(overflow)? };
    Ok(Header { dtype, shape, numel, storage })
}

/// Reads `data_location`.
pub(crate) fn data_location(t: &TensorProto, at: At<'_>) -> Result<DataLocation, OnnxError> {
    match t.data_location.unwrap_or(0) {
        0 => Ok(DataLocation::Inline),
        1 => Ok(DataLocation::External),
        value => Err(OnnxError::BadDataLocation { name: at.name.to_string(), offset: at.offset, value }),
    }
}

/// The typed fields that hold values, in field-number order.
pub(crate) fn nonempty_typed_fields(t: &TensorProto) -> Vec<TypedField> {
    let mut v = Vec::new();
    if !t.float_data.is_empty() {
        v.push(TypedField::Float);
    }
    if !t.int32_data.is_empty() {
        v.push(TypedField::Int32);
    }
    if !t.string_data.is_empty() {
        v.push(TypedField::String);
    }
    if !t.int64_data.is_empty() {
        v.push(TypedField::Int64);
    }
    if !t.double_data.is_empty() {
        v.push(TypedField::Double);
    }
    if !t.uint64_data.is_empty() {
        v.push(TypedField::Uint64);
    }
    v
}

/// The stored bytes of an inline tensor, and which field they came from (`None` for
/// `raw_data`, whose position the caller takes from the slice itself).
pub(crate) fn inline_data(
    t: &TensorProto,
    h: &Header,
    at: At<'_>,
) -> Result<(Bytes, Option<TypedField>), OnnxError> {
    let name = || at.name.to_string();
    let typed = nonempty_typed_fields(t);
    if let Some(raw) = &t.raw_data {
        if let Some(f) = typed.first() {
            return Err(OnnxError::ConflictingData {
                name: name(),
                offset: at.offset,
                first: f.name(),
                second: "raw_data",
            });
        }
        if h.dtype == DType::String {
            return Err(OnnxError::WrongDataField {
                name: name(),
                offset: at.offset,
                field: "raw_data",
                dtype: h.dtype,
            });
        }
        if raw.len() as u64 != h.storage {
            return Err(OnnxError::RawDataLength {
                name: name(),
                offset: at.offset,
                dtype: h.dtype,
                shape: h.shape.clone().into(),
                expected: h.storage,
                found: raw.len() as u64,
            });
        }
        return Ok((raw.clone(), None));
    }
    if let [first, second, ..] = typed[..] {
        return Err(OnnxError::ConflictingData {
            name: name(),
            offset: at.offset,
            first: first.name(),
            second: second.name(),
        });
    }
    let want = typed_field_for(h.dtype);
    if let Some(&f) = typed.first() {
        if f != want {
            return Err(OnnxError::WrongDataField {
                name: name(),
                offset: at.offset,
                field: f.name(),
                dtype: h.dtype,
            });
        }
    }
    let expected = expected_count(h, want).ok_or_else(|| OnnxError::ShapeOverflow {
        name: name(),
        offset: at.offset,
        dtype: h.dtype,
        shape: h.shape.clone().into(),
    })?;
    let found = field_len(t, want) as u64;
    if found != expected {
        let field = if typed.is_empty() { or_raw_data(want) } else { want.name() };
        return Err(OnnxError::ElementCount {
            name: name(),
            offset: at.offset,
            field,
            dtype: h.dtype,
            shape: h.shape.clone().into(),
            expected,
            found,
        });
    }
    let bytes = convert_typed(t, h, want, at)?;
    Ok((bytes, Some(want)))
}

fn or_raw_data(f: TypedField) -> &'static str {
    match f {
        TypedField::Float => "float_data (or raw_data)",
        TypedField::Int32 => "int32_data (or raw_data)",
        TypedField::String => "string_data",
        TypedField::Int64 => "int64_data (or raw_data)",
        TypedField::Double => "double_data (or raw_data)",
        TypedField::Uint64 => "uint64_data (or raw_data)",
    }
}

/// Values the typed field must hold: two per element for complex types, one per two elements
/// for 4-bit types (packed into one byte per `int32_data` value), else one per element.
fn expected_count(h: &Header, field: TypedField) -> Option<u64> {
    match (h.dtype, field) {
        (DType::C64 | DType::C128, _) => h.numel.checked_mul(2),
        (d, TypedField::Int32) if d.is_packed_nibble() => Some(h.numel.div_ceil(2)),
        _ => Some(h.numel),
    }
}

fn field_len(t: &TensorProto, f: TypedField) -> usize {
    match f {
        TypedField::Float => t.float_data.len(),
        TypedField::Int32 => t.int32_data.len(),
        TypedField::String => t.string_data.len(),
        TypedField::Int64 => t.int64_data.len(),
        TypedField::Double => t.double_data.len(),
        TypedField::Uint64 => t.uint64_data.len(),
    }
}

/// Converts the typed field into stored little-endian bytes, checking each value fits.
fn convert_typed(t: &TensorProto, h: &Header, field: TypedField, at: At<'_>) -> Result<Bytes, OnnxError> {
    let out_of_range = |index: usize, value: String| OnnxError::ValueOutOfRange {
        name: at.name.to_string(),
        offset: at.offset,
        field: field.name(),
        index: index as u64,
        value,
        dtype: h.dtype,
    };
    let v: Vec<u8> = match field {
        TypedField::String => Vec::new(),
        TypedField::Float => t.float_data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TypedField::Double => t.double_data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TypedField::Int64 => t.int64_data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TypedField::Uint64 if h.dtype == DType::U32 => {
            let mut v = Vec::with_capacity(t.uint64_data.len() * 4);
            for (i, &x) in t.uint64_data.iter().enumerate() {
                let x = u32::try_from(x).map_err(|_| out_of_range(i, x.to_string()))?;
                v.extend_from_slice(&x.to_le_bytes());
            }
            v
        }
        TypedField::Uint64 => t.uint64_data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TypedField::Int32 => {
            let width = match h.dtype {
                DType::I32 => 4,
                DType::I16 | DType::U16 | DType::F16 | DType::BF16 => 2,
                _ => 1,
            };
            // ONNX writers store 16- and 8-bit values (and bit patterns) either zero- or
            // sign-extended; `onnx.numpy_helper.to_array` keeps the low bits. Accept both
            // readings of the width and refuse anything wider. BOOL must be 0 or 1.
            let (lo, hi): (i64, i64) = match (h.dtype, width) {
                (DType::Bool, _) => (0, 1),
                (_, 4) => (i64::from(i32::MIN), i64::from(i32::MAX)),
                (_, 2) => (-(1 << 15), (1 << 16) - 1),
                _ => (-(1 << 7), (1 << 8) - 1),
            };
            let mut v = Vec::with_capacity(t.int32_data.len() * width);
            for (i, &x) in t.int32_data.iter().enumerate() {
                if !(lo..=hi).contains(&i64::from(x)) {
                    return Err(out_of_range(i, x.to_string()));
                }
                v.extend_from_slice(&x.to_le_bytes()[..width]);
            }
            v
        }
    };
    debug_assert!(h.dtype == DType::String || v.len() as u64 == h.storage);
    Ok(Bytes::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> At<'static> {
        At { name: "t", offset: 7 }
    }

    fn tensor(dtype: i32, dims: &[i64]) -> TensorProto {
        TensorProto {
            data_type: Some(dtype),
            dims: dims.to_vec(),
            name: Some("t".into()),
            ..Default::default()
        }
    }

    #[test]
    fn float16_bit_patterns_in_int32_data_become_two_bytes_each() {
        let mut t = tensor(10, &[2]);
        t.int32_data = vec![0x3c00, -1];
        let h = header(&t, at()).unwrap();
        let (b, f) = inline_data(&t, &h, at()).unwrap();
        assert_eq!(&b[..], &[0x00, 0x3c, 0xff, 0xff]);
        assert_eq!(f, Some(TypedField::Int32));
    }

    #[test]
    fn int4_takes_one_packed_byte_per_int32_value() {
        let mut t = tensor(22, &[3]);
        t.int32_data = vec![0x21, 0x0f];
        let h = header(&t, at()).unwrap();
        assert_eq!(h.storage, 2);
        let (b, _) = inline_data(&t, &h, at()).unwrap();
        assert_eq!(&b[..], &[0x21, 0x0f]);
        t.int32_data = vec![0x21];
        assert!(matches!(
            inline_data(&t, &h, at()),
            Err(OnnxError::ElementCount { expected: 2, found: 1, .. })
        ));
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let mut t = tensor(2, &[1]);
        t.int32_data = vec![256];
        let h = header(&t, at()).unwrap();
        assert!(
            matches!(inline_data(&t, &h, at()), Err(OnnxError::ValueOutOfRange { value, .. }) if value == "256")
        );
        let mut t = tensor(9, &[1]);
        t.int32_data = vec![2];
        let h = header(&t, at()).unwrap();
        assert!(matches!(inline_data(&t, &h, at()), Err(OnnxError::ValueOutOfRange { .. })));
        let mut t = tensor(12, &[1]);
        t.uint64_data = vec![1 << 40];
        let h = header(&t, at()).unwrap();
        assert!(matches!(inline_data(&t, &h, at()), Err(OnnxError::ValueOutOfRange { .. })));
    }

    #[test]
    fn complex64_float_data_holds_two_floats_per_element() {
        let mut t = tensor(14, &[1]);
        t.float_data = vec![1.0, 2.0];
        let h = header(&t, at()).unwrap();
        let (b, _) = inline_data(&t, &h, at()).unwrap();
        assert_eq!(b.len(), 8);
    }

    #[test]
    fn empty_tensor_needs_no_data_and_scalar_does() {
        let t = tensor(1, &[0, 5]);
        let h = header(&t, at()).unwrap();
        assert_eq!(inline_data(&t, &h, at()).unwrap().0.len(), 0);
        let t = tensor(1, &[]);
        let h = header(&t, at()).unwrap();
        assert!(matches!(
            inline_data(&t, &h, at()),
            Err(OnnxError::ElementCount { expected: 1, found: 0, .. })
        ));
    }

    #[test]
    fn header_errors() {
        assert!(matches!(
            header(&tensor(1, &[2, -1]), at()),
            Err(OnnxError::NegativeDim { index: 1, dim: -1, .. })
        ));
        assert!(matches!(header(&tensor(0, &[1]), at()), Err(OnnxError::UnknownDataType { id: 0, .. })));
        assert!(matches!(
            header(&tensor(24, &[1]), at()),
            Err(OnnxError::UnsupportedDataType { id: 24, .. })
        ));
        let big = i64::MAX;
        assert!(matches!(header(&tensor(1, &[big, big]), at()), Err(OnnxError::ShapeOverflow { .. })));
        // Element count fits, byte count does not.
        assert!(matches!(header(&tensor(11, &[1 << 62]), at()), Err(OnnxError::ShapeOverflow { .. })));
        assert!(matches!(header(&tensor(1, &[1; 17]), at()), Err(OnnxError::RankTooLarge { rank: 17, .. })));
    }
}
