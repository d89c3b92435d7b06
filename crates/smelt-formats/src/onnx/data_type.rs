//! ONNX `TensorProto.DataType` ids: which smelt [`DType`] each one is, and which typed field of
//! a `TensorProto` carries its values when `raw_data` is not used (the table the `onnx` Python
//! package keeps in `onnx/_mapping.py`, `TENSOR_TYPE_MAP[..].storage_dtype`).

use smelt_tensor::DType;

/// ONNX's name of a data type id (`FLOAT`, `FLOAT8E4M3FN`, ...), `None` for ids ONNX 1.23 does
/// not define.
pub fn onnx_type_name(id: i32) -> Option<&'static str> {
    Some(match id {
        0 => "UNDEFINED",
        1 => "FLOAT",
        2 => "UINT8",
        3 => "INT8",
        4 => "UINT16",
        5 => "INT16",
        6 => "INT32",
        7 => "INT64",
        8 => "STRING",
        9 => "BOOL",
        10 => "FLOAT16",
        11 => "DOUBLE",
        12 => "UINT32",
        13 => "UINT64",
        14 => "COMPLEX64",
        15 => "COMPLEX128",
        16 => "BFLOAT16",
        17 => "FLOAT8E4M3FN",
        18 => "FLOAT8E4M3FNUZ",
        19 => "FLOAT8E5M2",
        20 => "FLOAT8E5M2FNUZ",
        21 => "UINT4",
        22 => "INT4",
        23 => "FLOAT4E2M1",
        24 => "FLOAT8E8M0",
        25 => "UINT2",
        26 => "INT2",
        27 => "FLOAT6E2M3",
        28 => "FLOAT6E3M2",
        _ => return None,
    })
}

/// What smelt makes of a data type id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapped {
    /// A type smelt holds.
    DType(DType),
    /// A type ONNX defines but smelt has no dtype for (FLOAT8E8M0, the 2- and 6-bit types).
    Unsupported(&'static str),
    /// UNDEFINED (0) or an id ONNX does not define.
    Unknown,
}

/// Maps a `TensorProto.DataType` id (also `TypeProto.Tensor.elem_type`) to a smelt dtype.
pub fn map_data_type(id: i32) -> Mapped {
    use DType::*;
    let d = match id {
        1 => F32,
        2 => U8,
        3 => I8,
        4 => U16,
        5 => I16,
        6 => I32,
        7 => I64,
        8 => String,
        9 => Bool,
        10 => F16,
        11 => F64,
        12 => U32,
        13 => U64,
        14 => C64,
        15 => C128,
        16 => BF16,
        17 => F8_E4M3,
        18 => F8_E4M3_FNUZ,
        19 => F8_E5M2,
        20 => F8_E5M2_FNUZ,
        21 => U4,
        22 => I4,
        23 => F4_E2M1,
        0 => return Mapped::Unknown,
        other => {
            return match onnx_type_name(other) {
                Some(name) => Mapped::Unsupported(name),
                None => Mapped::Unknown,
            }
        }
    };
    Mapped::DType(d)
}

/// The ONNX data type id of a smelt dtype, for the dtypes ONNX has.
pub fn onnx_type_id(dtype: DType) -> Option<i32> {
    (1..=23).find(|&id| map_data_type(id) == Mapped::DType(dtype))
}

/// The typed `TensorProto` fields that can carry values instead of `raw_data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypedField {
    /// `float_data` (field 4).
    Float,
    /// `int32_data` (field 5).
    Int32,
    /// `string_data` (field 6).
    String,
    /// `int64_data` (field 7).
    Int64,
    /// `double_data` (field 10).
    Double,
    /// `uint64_data` (field 11).
    Uint64,
}

impl TypedField {
    /// The protobuf field name.
    pub fn name(self) -> &'static str {
        match self {
            TypedField::Float => "float_data",
            TypedField::Int32 => "int32_data",
            TypedField::String => "string_data",
            TypedField::Int64 => "int64_data",
            TypedField::Double => "double_data",
            TypedField::Uint64 => "uint64_data",
        }
    }

    /// The protobuf field number in `TensorProto`.
    pub fn number(self) -> u32 {
        match self {
            TypedField::Float => 4,
            TypedField::Int32 => 5,
            TypedField::String => 6,
            TypedField::Int64 => 7,
            TypedField::Double => 10,
            TypedField::Uint64 => 11,
        }
    }
}

/// The typed field that carries values of `dtype`, per the comments in onnx.proto.
pub fn typed_field_for(dtype: DType) -> TypedField {
    use DType::*;
    match dtype {
        F32 | C64 => TypedField::Float,
        F64 | C128 => TypedField::Double,
        I64 => TypedField::Int64,
        U32 | U64 => TypedField::Uint64,
        String => TypedField::String,
        _ => TypedField::Int32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_id_round_trips_and_the_rest_are_named() {
        for id in 1..=23 {
            let Mapped::DType(d) = map_data_type(id) else { panic!("id {id} should map") };
            assert_eq!(onnx_type_id(d), Some(id));
        }
        for id in 24..=28 {
            assert!(matches!(map_data_type(id), Mapped::Unsupported(_)), "id {id}");
        }
        for id in [0, 29, -1, i32::MAX] {
            assert_eq!(map_data_type(id), Mapped::Unknown, "id {id}");
        }
        assert_eq!(onnx_type_id(DType::Q4_0), None);
    }

    #[test]
    fn fp8_and_4bit_names_match_onnx() {
        assert_eq!(map_data_type(17), Mapped::DType(DType::F8_E4M3));
        assert_eq!(map_data_type(19), Mapped::DType(DType::F8_E5M2));
        assert_eq!(map_data_type(22), Mapped::DType(DType::I4));
        assert_eq!(map_data_type(21), Mapped::DType(DType::U4));
        assert_eq!(map_data_type(23), Mapped::DType(DType::F4_E2M1));
        assert_eq!(typed_field_for(DType::U32), TypedField::Uint64);
        assert_eq!(typed_field_for(DType::BF16), TypedField::Int32);
    }
}
