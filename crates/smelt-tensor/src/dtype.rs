//! Every element and block type a supported format can hold, with its storage geometry.
//!
//! One enum covers plain element types (F32, BF16, I8, ...), sub-byte packed types (ONNX
//! int4/uint4, float4) and ggml's block-quantized types (Q4_0 ... TQ2_0, MXFP4). Each type is
//! described by the same two numbers, `block_elems` and `block_bytes`: a plain type is a block of
//! one element, a packed 4-bit type a block of two elements in one byte, and a ggml type a block
//! of 32 or 256 elements. Sizes are then computed one way for all of them.

use std::fmt;

/// The type of a tensor's stored elements.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// IEEE binary64.
    F64,
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16 (the upper half of an f32).
    BF16,
    /// OCP FP8 E4M3 (finite only: no infinities, one NaN pattern per sign).
    F8_E4M3,
    /// OCP FP8 E5M2 (IEEE-like, with infinities).
    F8_E5M2,
    /// FP8 E4M3 with no negative zero (ONNX `FLOAT8E4M3FNUZ`).
    F8_E4M3_FNUZ,
    /// FP8 E5M2 with no negative zero (ONNX `FLOAT8E5M2FNUZ`).
    F8_E5M2_FNUZ,
    /// FP4 E2M1, two per byte, low nibble first (ONNX `FLOAT4E2M1`).
    F4_E2M1,
    /// Complex with f32 parts.
    C64,
    /// Complex with f64 parts.
    C128,
    /// Signed 64-bit integer.
    I64,
    /// Signed 32-bit integer.
    I32,
    /// Signed 16-bit integer.
    I16,
    /// Signed 8-bit integer.
    I8,
    /// Signed 4-bit integer, two per byte, low nibble first (ONNX `INT4`).
    I4,
    /// Unsigned 64-bit integer.
    U64,
    /// Unsigned 32-bit integer.
    U32,
    /// Unsigned 16-bit integer.
    U16,
    /// Unsigned 8-bit integer.
    U8,
    /// Unsigned 4-bit integer, two per byte, low nibble first (ONNX `UINT4`).
    U4,
    /// One byte per element, 0 or 1.
    Bool,
    /// Variable-length strings (ONNX only); no fixed byte size.
    String,
    /// ggml Q4_0: 32 weights, f16 scale, 4-bit codes.
    Q4_0,
    /// ggml Q4_1: 32 weights, f16 scale and min, 4-bit codes.
    Q4_1,
    /// ggml Q5_0: 32 weights, f16 scale, 5-bit codes.
    Q5_0,
    /// ggml Q5_1: 32 weights, f16 scale and min, 5-bit codes.
    Q5_1,
    /// ggml Q8_0: 32 weights, f16 scale, 8-bit codes.
    Q8_0,
    /// ggml Q8_1: 32 weights, f16 scale and sum, 8-bit codes.
    Q8_1,
    /// ggml Q2_K super-block of 256.
    Q2_K,
    /// ggml Q3_K super-block of 256.
    Q3_K,
    /// ggml Q4_K super-block of 256.
    Q4_K,
    /// ggml Q5_K super-block of 256.
    Q5_K,
    /// ggml Q6_K super-block of 256.
    Q6_K,
    /// ggml Q8_K super-block of 256 (used for activations).
    Q8_K,
    /// ggml IQ2_XXS.
    IQ2_XXS,
    /// ggml IQ2_XS.
    IQ2_XS,
    /// ggml IQ3_XXS.
    IQ3_XXS,
    /// ggml IQ1_S.
    IQ1_S,
    /// ggml IQ4_NL.
    IQ4_NL,
    /// ggml IQ3_S.
    IQ3_S,
    /// ggml IQ2_S.
    IQ2_S,
    /// ggml IQ4_XS.
    IQ4_XS,
    /// ggml IQ1_M.
    IQ1_M,
    /// ggml TQ1_0: ternary, base-3 packing (5 trits per byte) plus 4 trits per byte tail.
    TQ1_0,
    /// ggml TQ2_0: ternary, 2 bits per weight.
    TQ2_0,
    /// ggml MXFP4: 32 FP4 E2M1 weights sharing an E8M0 scale.
    MXFP4,
}

/// All dtypes, in declaration order (for tables and exhaustive tests).
pub const ALL_DTYPES: &[DType] = &[
    DType::F64,
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::F8_E4M3,
    DType::F8_E5M2,
    DType::F8_E4M3_FNUZ,
    DType::F8_E5M2_FNUZ,
    DType::F4_E2M1,
    DType::C64,
    DType::C128,
    DType::I64,
    DType::I32,
    DType::I16,
    DType::I8,
    DType::I4,
    DType::U64,
    DType::U32,
    DType::U16,
    DType::U8,
    DType::U4,
    DType::Bool,
    DType::String,
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Q8_0,
    DType::Q8_1,
    DType::Q2_K,
    DType::Q3_K,
    DType::Q4_K,
    DType::Q5_K,
    DType::Q6_K,
    DType::Q8_K,
    DType::IQ2_XXS,
    DType::IQ2_XS,
    DType::IQ3_XXS,
    DType::IQ1_S,
    DType::IQ4_NL,
    DType::IQ3_S,
    DType::IQ2_S,
    DType::IQ4_XS,
    DType::IQ1_M,
    DType::TQ1_0,
    DType::TQ2_0,
    DType::MXFP4,
];

/// ggml's type ids (`enum ggml_type` in ggml.h). Ids 4, 5, 31-33 and 36-38 were removed
/// upstream and are refused.
const GGML_IDS: &[(u32, DType)] = &[
    (0, DType::F32),
    (1, DType::F16),
    (2, DType::Q4_0),
    (3, DType::Q4_1),
    (6, DType::Q5_0),
    (7, DType::Q5_1),
    (8, DType::Q8_0),
    (9, DType::Q8_1),
    (10, DType::Q2_K),
    (11, DType::Q3_K),
    (12, DType::Q4_K),
    (13, DType::Q5_K),
    (14, DType::Q6_K),
    (15, DType::Q8_K),
    (16, DType::IQ2_XXS),
    (17, DType::IQ2_XS),
    (18, DType::IQ3_XXS),
    (19, DType::IQ1_S),
    (20, DType::IQ4_NL),
    (21, DType::IQ3_S),
    (22, DType::IQ2_S),
    (23, DType::IQ4_XS),
    (24, DType::I8),
    (25, DType::I16),
    (26, DType::I32),
    (27, DType::I64),
    (28, DType::F64),
    (29, DType::IQ1_M),
    (30, DType::BF16),
    (34, DType::TQ1_0),
    (35, DType::TQ2_0),
    (39, DType::MXFP4),
];

impl DType {
    /// Elements per storage block: 1 for plain types, 2 for packed 4-bit types, 32 or 256 for
    /// ggml block types. 0 for [`DType::String`], which has no fixed size.
    pub const fn block_elems(self) -> u64 {
        use DType::*;
        match self {
            String => 0,
            I4 | U4 | F4_E2M1 => 2,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 | IQ4_NL | MXFP4 => 32,
            Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | Q8_K | IQ2_XXS | IQ2_XS | IQ3_XXS | IQ1_S | IQ3_S | IQ2_S
            | IQ4_XS | IQ1_M | TQ1_0 | TQ2_0 => 256,
            _ => 1,
        }
    }

    /// Bytes per storage block (see [`DType::block_elems`]); 0 for [`DType::String`].
    pub const fn block_bytes(self) -> u64 {
        use DType::*;
        match self {
            String => 0,
            F64 | I64 | U64 | C64 => 8,
            C128 => 16,
            F32 | I32 | U32 => 4,
            F16 | BF16 | I16 | U16 => 2,
            F8_E4M3 | F8_E5M2 | F8_E4M3_FNUZ | F8_E5M2_FNUZ | I8 | U8 | Bool => 1,
            I4 | U4 | F4_E2M1 => 1,
            Q4_0 => 18,
            Q4_1 => 20,
            Q5_0 => 22,
            Q5_1 => 24,
            Q8_0 => 34,
            Q8_1 => 36,
            Q2_K => 84,
            Q3_K => 110,
            Q4_K => 144,
            Q5_K => 176,
            Q6_K => 210,
            Q8_K => 292,
            IQ2_XXS => 66,
            IQ2_XS => 74,
            IQ3_XXS => 98,
            IQ1_S => 50,
            IQ4_NL => 18,
            IQ3_S => 110,
            IQ2_S => 82,
            IQ4_XS => 136,
            IQ1_M => 56,
            TQ1_0 => 54,
            TQ2_0 => 66,
            MXFP4 => 17,
        }
    }

    /// True for ggml's block-quantized types (Q*, IQ*, TQ*, MXFP4), whose innermost dimension
    /// must be a whole number of blocks.
    pub const fn is_ggml_block(self) -> bool {
        self.block_elems() >= 32
    }

    /// True for sub-byte types packed two per byte (I4, U4, F4_E2M1), whose total element
    /// count is padded up to a whole byte (ONNX semantics).
    pub const fn is_packed_nibble(self) -> bool {
        self.block_elems() == 2
    }

    /// True for floating-point element types (not block types).
    pub const fn is_float(self) -> bool {
        use DType::*;
        matches!(self, F64 | F32 | F16 | BF16 | F8_E4M3 | F8_E5M2 | F8_E4M3_FNUZ | F8_E5M2_FNUZ | F4_E2M1)
    }

    /// Bits per element, as a float (4.5 for Q4_0); 0 for strings.
    pub fn bits_per_element(self) -> f64 {
        match self.block_elems() {
            0 => 0.0,
            n => self.block_bytes() as f64 * 8.0 / n as f64,
        }
    }

    /// Bytes needed to store a tensor of `shape` (row-major, outermost first).
    ///
    /// Plain types: product of dims times element size. Packed 4-bit types: the element count
    /// rounded up to whole bytes. ggml block types: the innermost dimension must be a multiple
    /// of the block size. Returns `None` on overflow, for a ggml shape that does not split into
    /// blocks, and for strings.
    pub fn storage_bytes(self, shape: &[u64]) -> Option<u64> {
        let numel = crate::numel(shape)?;
        let be = self.block_elems();
        if be == 0 {
            return None;
        }
        if self.is_ggml_block() {
            let inner = shape.last().copied().unwrap_or(1);
            if inner % be != 0 {
                return None;
            }
        }
        numel.div_ceil(be).checked_mul(self.block_bytes())
    }

    /// The canonical upper-case name (`F32`, `BF16`, `F8_E4M3`, `Q4_K`, `TQ1_0`).
    pub const fn name(self) -> &'static str {
        use DType::*;
        match self {
            F64 => "F64",
            F32 => "F32",
            F16 => "F16",
            BF16 => "BF16",
            F8_E4M3 => "F8_E4M3",
            F8_E5M2 => "F8_E5M2",
            F8_E4M3_FNUZ => "F8_E4M3_FNUZ",
            F8_E5M2_FNUZ => "F8_E5M2_FNUZ",
            F4_E2M1 => "F4_E2M1",
            C64 => "C64",
            C128 => "C128",
            I64 => "I64",
            I32 => "I32",
            I16 => "I16",
            I8 => "I8",
            I4 => "I4",
            U64 => "U64",
            U32 => "U32",
            U16 => "U16",
            U8 => "U8",
            U4 => "U4",
            Bool => "BOOL",
            String => "STRING",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2_K => "Q2_K",
            Q3_K => "Q3_K",
            Q4_K => "Q4_K",
            Q5_K => "Q5_K",
            Q6_K => "Q6_K",
            Q8_K => "Q8_K",
            IQ2_XXS => "IQ2_XXS",
            IQ2_XS => "IQ2_XS",
            IQ3_XXS => "IQ3_XXS",
            IQ1_S => "IQ1_S",
            IQ4_NL => "IQ4_NL",
            IQ3_S => "IQ3_S",
            IQ2_S => "IQ2_S",
            IQ4_XS => "IQ4_XS",
            IQ1_M => "IQ1_M",
            TQ1_0 => "TQ1_0",
            TQ2_0 => "TQ2_0",
            MXFP4 => "MXFP4",
        }
    }

    /// Parses a canonical name (case-insensitive), as printed by [`DType::name`].
    pub fn from_name(name: &str) -> Option<DType> {
        ALL_DTYPES.iter().copied().find(|d| d.name().eq_ignore_ascii_case(name))
    }

    /// ggml's type id, if ggml has this type.
    pub fn ggml_id(self) -> Option<u32> {
        GGML_IDS.iter().find(|(_, d)| *d == self).map(|(id, _)| *id)
    }

    /// The dtype for a ggml type id, or `None` for ids ggml does not (or no longer) define.
    pub fn from_ggml_id(id: u32) -> Option<DType> {
        GGML_IDS.iter().find(|(i, _)| *i == id).map(|(_, d)| *d)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &d in ALL_DTYPES {
            assert_eq!(DType::from_name(d.name()), Some(d));
        }
    }

    #[test]
    fn ggml_ids_round_trip_and_removed_ids_refused() {
        for &(id, d) in GGML_IDS {
            assert_eq!(d.ggml_id(), Some(id));
            assert_eq!(DType::from_ggml_id(id), Some(d));
        }
        for id in [4, 5, 31, 32, 33, 36, 37, 38, 40, u32::MAX] {
            assert_eq!(DType::from_ggml_id(id), None);
        }
    }

    #[test]
    fn storage_bytes_geometry() {
        assert_eq!(DType::F32.storage_bytes(&[2, 3]), Some(24));
        assert_eq!(DType::F32.storage_bytes(&[]), Some(4));
        assert_eq!(DType::F32.storage_bytes(&[0, 7]), Some(0));
        assert_eq!(DType::I4.storage_bytes(&[3, 3]), Some(5));
        assert_eq!(DType::Q4_0.storage_bytes(&[2, 64]), Some(4 * 18));
        assert_eq!(DType::Q4_0.storage_bytes(&[2, 63]), None);
        assert_eq!(DType::TQ1_0.storage_bytes(&[256]), Some(54));
        assert_eq!(DType::F64.storage_bytes(&[u64::MAX, 2]), None);
        // regression (fuzzing): a zero dimension after dimensions whose product overflows
        assert_eq!(DType::F32.storage_bytes(&[63, 1 << 62, 1 << 62, 0]), Some(0));
        assert_eq!(crate::numel(&[63, 1 << 62, 1 << 62, 0]), Some(0));
        assert_eq!(DType::String.storage_bytes(&[1]), None);
        assert_eq!(DType::Q4_0.bits_per_element(), 4.5);
    }
}
