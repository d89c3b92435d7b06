//! What can be done to one tensor: keep it, cast it, or quantize it with a scheme and its
//! options. Parsed from the names users write on the command line and in recipes.

use std::fmt;

use smelt_tensor::DType;

/// Packing of ternary codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TernaryPacking {
    /// Four codes per byte.
    TwoBit,
    /// Five trits per byte (base 3).
    Base3,
}

/// A tensor's treatment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Stored exactly as read.
    Keep,
    /// Converted to F32, F16 or BF16 (round to nearest even).
    Cast(DType),
    /// INT8 with ONNX QuantizeLinear semantics.
    Int8 {
        /// One scale per output channel (axis 0) instead of one per tensor.
        per_channel: bool,
        /// Symmetric int8 codes (zero point 0) instead of asymmetric uint8.
        symmetric: bool,
    },
    /// bitsandbytes NF4, blocks of 64.
    Nf4 {
        /// Quantize the absmax statistics to 8 bits in blocks of 256.
        double_quant: bool,
    },
    /// Block int4 along the input dimension (round to nearest; GPTQ layout on safetensors).
    Int4 {
        /// Group size: 32, 64 or 128.
        group: u32,
        /// Symmetric (zero point 8) instead of per-group zero points.
        symmetric: bool,
    },
    /// BitNet b1.58 absmean ternary.
    Ternary {
        /// How codes are packed.
        packing: TernaryPacking,
    },
    /// A ggml block type, bytes equal to ggml's reference quantizer.
    Ggml(DType),
}

/// ggml block types smelt can quantize to.
pub const GGML_TARGETS: &[DType] =
    &[DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::TQ1_0, DType::TQ2_0];

/// Every scheme name `--quant` accepts, for error messages and `--help`.
pub const SCHEME_NAMES: &[&str] = &[
    "int8", "nf4", "int4", "ternary", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "tq1_0", "tq2_0", "f32", "f16",
    "bf16", "keep",
];

/// Options that refine a scheme name (from CLI flags or the recipe's per-scheme tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchemeOptions {
    /// INT8: per-channel scales (default true).
    pub per_channel: bool,
    /// INT8 and int4: symmetric (default true).
    pub symmetric: bool,
    /// NF4: double quantization (default false).
    pub double_quant: bool,
    /// int4: group size (default 128, as GPTQ).
    pub group: u32,
    /// Ternary packing (default two bits).
    pub ternary_packing: TernaryPacking,
}

impl Default for SchemeOptions {
    fn default() -> Self {
        SchemeOptions {
            per_channel: true,
            symmetric: true,
            double_quant: false,
            group: 128,
            ternary_packing: TernaryPacking::TwoBit,
        }
    }
}

/// An unknown scheme name or a bad option value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchemeError {
    /// Not one of [`SCHEME_NAMES`].
    #[error("unknown scheme '{name}'; known schemes: {}", SCHEME_NAMES.join(", "))]
    Unknown {
        /// What was given.
        name: String,
    },
    /// An int4 group size other than 32, 64 or 128.
    #[error("int4 group size {0} is not supported; use 32, 64 or 128")]
    GroupSize(u32),
}

impl Scheme {
    /// Parses a scheme name (case-insensitive) with its options.
    pub fn parse(name: &str, opts: &SchemeOptions) -> Result<Scheme, SchemeError> {
        let lower = name.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "keep" => Scheme::Keep,
            "f32" => Scheme::Cast(DType::F32),
            "f16" => Scheme::Cast(DType::F16),
            "bf16" => Scheme::Cast(DType::BF16),
            "int8" => Scheme::Int8 { per_channel: opts.per_channel, symmetric: opts.symmetric },
            "nf4" => Scheme::Nf4 { double_quant: opts.double_quant },
            "int4" => {
                if ![32, 64, 128].contains(&opts.group) {
                    return Err(SchemeError::GroupSize(opts.group));
                }
                Scheme::Int4 { group: opts.group, symmetric: opts.symmetric }
            }
            "ternary" => Scheme::Ternary { packing: opts.ternary_packing },
            other => match DType::from_name(other) {
                Some(d) if GGML_TARGETS.contains(&d) => Scheme::Ggml(d),
                _ => return Err(SchemeError::Unknown { name: name.to_string() }),
            },
        })
    }

    /// True when the scheme changes values (quantizes), as opposed to keep/cast.
    pub fn is_quantized(&self) -> bool {
        !matches!(self, Scheme::Keep | Scheme::Cast(_))
    }

    /// Predicted stored bytes for a tensor of `shape` whose current stored size is
    /// `stored_bytes`: data plus scales, zeros and statistics. `None` when the scheme cannot
    /// take the shape.
    pub fn predicted_bytes(&self, shape: &[u64], stored_bytes: u64) -> Option<u64> {
        let numel = smelt_tensor::numel(shape)?;
        let cols = shape.last().copied().unwrap_or(1);
        let rows = numel.checked_div(cols).unwrap_or(0);
        Some(match *self {
            Scheme::Keep => stored_bytes,
            Scheme::Cast(d) => d.storage_bytes(shape)?,
            Scheme::Int8 { per_channel, symmetric } => {
                let channels = if per_channel { shape.first().copied().unwrap_or(1) } else { 1 };
                numel + channels * 4 + if symmetric { 0 } else { channels }
            }
            Scheme::Nf4 { double_quant } => {
                let blocks = numel.div_ceil(64);
                let stats =
                    if double_quant { blocks + 4 + blocks.div_ceil(256) * 4 + 256 * 4 } else { blocks * 4 };
                numel.div_ceil(2) + stats
            }
            Scheme::Int4 { group, symmetric } => {
                let groups = cols.div_ceil(group as u64);
                rows * cols.div_ceil(2) + rows * groups * 4 + if symmetric { 0 } else { rows * groups }
            }
            Scheme::Ternary { packing: TernaryPacking::TwoBit } => numel.div_ceil(4) + 4,
            Scheme::Ternary { packing: TernaryPacking::Base3 } => numel.div_ceil(5) + 4,
            Scheme::Ggml(d) => d.storage_bytes(shape)?,
        })
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scheme::Keep => f.write_str("keep"),
            Scheme::Cast(d) => write!(f, "{}", d.name().to_ascii_lowercase()),
            Scheme::Int8 { per_channel, symmetric } => write!(
                f,
                "int8 ({}, {})",
                if *per_channel { "per-channel" } else { "per-tensor" },
                if *symmetric { "symmetric" } else { "asymmetric" }
            ),
            Scheme::Nf4 { double_quant: true } => f.write_str("nf4 (double quant)"),
            Scheme::Nf4 { double_quant: false } => f.write_str("nf4"),
            Scheme::Int4 { group, symmetric } => {
                write!(f, "int4 (g{group}, {})", if *symmetric { "symmetric" } else { "asymmetric" })
            }
            Scheme::Ternary { packing: TernaryPacking::TwoBit } => f.write_str("ternary (2-bit)"),
            Scheme::Ternary { packing: TernaryPacking::Base3 } => f.write_str("ternary (base-3)"),
            Scheme::Ggml(d) => write!(f, "{}", d.name().to_ascii_lowercase()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_listed_name() {
        for name in SCHEME_NAMES {
            Scheme::parse(name, &SchemeOptions::default()).unwrap();
        }
        assert_eq!(Scheme::parse("Q4_0", &SchemeOptions::default()), Ok(Scheme::Ggml(DType::Q4_0)));
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let e = Scheme::parse("q3_k", &SchemeOptions::default()).unwrap_err();
        assert!(matches!(e, SchemeError::Unknown { .. }));
        assert!(e.to_string().contains("nf4"));
        let opts = SchemeOptions { group: 48, ..SchemeOptions::default() };
        assert_eq!(Scheme::parse("int4", &opts), Err(SchemeError::GroupSize(48)));
    }

    #[test]
    fn predicted_sizes() {
        let s = Scheme::Ggml(DType::Q8_0);
        assert_eq!(s.predicted_bytes(&[2, 64], 512), Some(4 * 34));
        assert_eq!(s.predicted_bytes(&[2, 60], 480), None);
        let nf4 = Scheme::Nf4 { double_quant: false };
        assert_eq!(nf4.predicted_bytes(&[128], 512), Some(64 + 8));
    }
}
