//! The numeric codes a blob's directory stores: schemes, codecs, entry flags and dtypes
//! (docs/blob-format.md, "Schemes", "Dtype codes"). One table each, used by the reader, the
//! writer and the tests, so that a code means the same thing everywhere.

use std::fmt;

use smelt_tensor::DType;

/// How an entry's sections are to be interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// The tensor as is: `dtype` elements of shape `dims`.
    Raw,
    /// INT8 with ONNX DequantizeLinear semantics, per tensor or per axis.
    Int8,
    /// bitsandbytes NF4 (optionally with double-quantized statistics).
    Nf4,
    /// Block int4 along the last dimension, with optional act-order `g_idx`.
    Int4,
    /// BitNet ternary, four 2-bit codes per byte.
    Ternary2,
    /// BitNet ternary, five base-3 trits per byte.
    Ternary3,
    /// A ggml block type, stored as ggml stores it.
    Ggml,
}

impl Scheme {
    /// Every scheme, in code order.
    pub const ALL: [Scheme; 7] = [
        Scheme::Raw,
        Scheme::Int8,
        Scheme::Nf4,
        Scheme::Int4,
        Scheme::Ternary2,
        Scheme::Ternary3,
        Scheme::Ggml,
    ];

    /// The code stored in the directory.
    pub const fn code(self) -> u16 {
        match self {
            Scheme::Raw => 0,
            Scheme::Int8 => 1,
            Scheme::Nf4 => 2,
            Scheme::Int4 => 3,
            Scheme::Ternary2 => 4,
            Scheme::Ternary3 => 5,
            Scheme::Ggml => 6,
        }
    }

    /// The scheme with `code`, if the format defines it.
    pub fn from_code(code: u16) -> Option<Scheme> {
        Scheme::ALL.get(usize::from(code)).copied()
    }

    /// The name the spec uses (`raw`, `int8`, `nf4`, `int4`, `ternary2`, `ternary3`, `ggml`).
    pub const fn name(self) -> &'static str {
        match self {
            Scheme::Raw => "raw",
            Scheme::Int8 => "int8",
            Scheme::Nf4 => "nf4",
            Scheme::Int4 => "int4",
            Scheme::Ternary2 => "ternary2",
            Scheme::Ternary3 => "ternary3",
            Scheme::Ggml => "ggml",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a data section is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Stored as is.
    None,
    /// A zstd frame.
    Zstd,
    /// One lz4 block (`lz4_flex::block`), no frame: the raw length comes from the directory.
    Lz4,
}

impl Codec {
    /// The code stored in the directory.
    pub const fn code(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Zstd => 1,
            Codec::Lz4 => 2,
        }
    }

    /// The codec with `code`, if the format defines it.
    pub fn from_code(code: u8) -> Option<Codec> {
        match code {
            0 => Some(Codec::None),
            1 => Some(Codec::Zstd),
            2 => Some(Codec::Lz4),
            _ => None,
        }
    }

    /// Largest possible ratio of raw to stored length for a valid stream of this codec (see the
    /// spec's "Sections"): a zstd block of 4 bytes (RLE) decodes to at most 128 KiB, an lz4
    /// match length byte adds at most 255 bytes of output. 1 for uncompressed data.
    pub const fn max_expansion(self) -> u64 {
        match self {
            Codec::None => 1,
            Codec::Zstd => 32768,
            Codec::Lz4 => 255,
        }
    }

    /// Lower-case name (`none`, `zstd`, `lz4`).
    pub const fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Zstd => "zstd",
            Codec::Lz4 => "lz4",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A directory entry's flags (which bits a scheme may use is in the spec's scheme rules).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EntryFlags(pub u16);

impl EntryFlags {
    /// Bit 0: symmetric quantization, no zeros section.
    pub const SYMMETRIC: u16 = 1 << 0;
    /// Bit 1: one scale per slice along `axis`.
    pub const PER_AXIS: u16 = 1 << 1;
    /// Bit 2: NF4 statistics are double-quantized.
    pub const DOUBLE_QUANT: u16 = 1 << 2;
    /// Every bit version 1.0 defines; the others are reserved.
    pub const DEFINED: u16 = Self::SYMMETRIC | Self::PER_AXIS | Self::DOUBLE_QUANT;

    /// No flags.
    pub const NONE: EntryFlags = EntryFlags(0);

    /// Whether the symmetric bit is set.
    pub const fn symmetric(self) -> bool {
        self.0 & Self::SYMMETRIC != 0
    }

    /// Whether the per-axis bit is set.
    pub const fn per_axis(self) -> bool {
        self.0 & Self::PER_AXIS != 0
    }

    /// Whether the double-quantization bit is set.
    pub const fn double_quant(self) -> bool {
        self.0 & Self::DOUBLE_QUANT != 0
    }

    /// The flags with the bits of `mask` added.
    pub const fn with(self, mask: u16) -> EntryFlags {
        EntryFlags(self.0 | mask)
    }
}

/// The blob's dtype codes, from the spec's "Dtype codes" table.
const DTYPE_CODES: &[(u16, DType)] = &[
    (0, DType::F32),
    (1, DType::F16),
    (2, DType::BF16),
    (3, DType::F64),
    (4, DType::I8),
    (5, DType::I16),
    (6, DType::I32),
    (7, DType::I64),
    (10, DType::U8),
    (11, DType::U16),
    (12, DType::U32),
    (13, DType::U64),
    (14, DType::Bool),
    (15, DType::I4),
    (16, DType::U4),
    (17, DType::F8_E4M3),
    (18, DType::F8_E5M2),
    (32, DType::Q4_0),
    (33, DType::Q4_1),
    (34, DType::Q5_0),
    (35, DType::Q5_1),
    (36, DType::Q8_0),
    (37, DType::Q2_K),
    (38, DType::Q3_K),
    (39, DType::Q4_K),
    (40, DType::Q5_K),
    (41, DType::Q6_K),
    (42, DType::TQ1_0),
    (43, DType::TQ2_0),
];

/// The code of `dtype`, if a blob can store it.
pub fn dtype_code(dtype: DType) -> Option<u16> {
    DTYPE_CODES.iter().find(|(_, d)| *d == dtype).map(|(c, _)| *c)
}

/// The dtype with `code`, if the format defines it.
pub fn dtype_from_code(code: u16) -> Option<DType> {
    DTYPE_CODES.iter().find(|(c, _)| *c == code).map(|(_, d)| *d)
}

/// Every dtype a blob can store, in code order.
pub fn storable_dtypes() -> impl Iterator<Item = DType> {
    DTYPE_CODES.iter().map(|(_, d)| *d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for s in Scheme::ALL {
            assert_eq!(Scheme::from_code(s.code()), Some(s));
        }
        assert_eq!(Scheme::from_code(7), None);
        for c in [Codec::None, Codec::Zstd, Codec::Lz4] {
            assert_eq!(Codec::from_code(c.code()), Some(c));
        }
        assert_eq!(Codec::from_code(3), None);
        for &(code, d) in DTYPE_CODES {
            assert_eq!(dtype_code(d), Some(code));
            assert_eq!(dtype_from_code(code), Some(d));
        }
        for code in [8, 9, 19, 31, 44, u16::MAX] {
            assert_eq!(dtype_from_code(code), None);
        }
        assert_eq!(dtype_code(DType::String), None);
        assert_eq!(dtype_code(DType::Q8_K), None);
    }

    #[test]
    fn ggml_block_codes_are_exactly_32_to_43() {
        for &(code, d) in DTYPE_CODES {
            assert_eq!(d.is_ggml_block(), (32..=43).contains(&code), "{d}");
        }
    }
}
