//! The safetensors dtype strings and the smelt [`DType`] each one maps to.
//!
//! The list is the `Dtype` enum of the `safetensors` crate 0.8 (`safetensors/src/tensor.rs`),
//! whose serde names are the strings files carry. Three of them have no smelt type and are
//! refused by name rather than mistaken for an unknown string.

use smelt_tensor::DType;

/// What a dtype string in a header means to smelt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DtypeName {
    /// A dtype smelt holds.
    Known(DType),
    /// Defined by the format, but smelt has no such type.
    Unsupported,
    /// Not a safetensors dtype at all.
    Unknown,
}

/// Every safetensors dtype string with its smelt type (`None`: unsupported).
pub(crate) const SAFETENSORS_DTYPES: &[(&str, Option<DType>)] = &[
    ("BOOL", Some(DType::Bool)),
    // MXFP4 element, two per byte. safetensors counts elements (not bytes) in the shape, and
    // torch's `float4_e2m1fn_x2` puts the first element in the low nibble (bits 3..0, see
    // torch/headeronly/util/Float4_e2m1fn_x2.h), as smelt's F4_E2M1 does.
    ("F4", Some(DType::F4_E2M1)),
    ("F6_E2M3", None),
    ("F6_E3M2", None),
    ("U8", Some(DType::U8)),
    ("I8", Some(DType::I8)),
    ("F8_E5M2", Some(DType::F8_E5M2)),
    ("F8_E4M3", Some(DType::F8_E4M3)),
    ("F8_E8M0", None),
    ("F8_E4M3FNUZ", Some(DType::F8_E4M3_FNUZ)),
    ("F8_E5M2FNUZ", Some(DType::F8_E5M2_FNUZ)),
    ("I16", Some(DType::I16)),
    ("U16", Some(DType::U16)),
    ("F16", Some(DType::F16)),
    ("BF16", Some(DType::BF16)),
    ("I32", Some(DType::I32)),
    ("U32", Some(DType::U32)),
    ("F32", Some(DType::F32)),
    ("C64", Some(DType::C64)),
    ("F64", Some(DType::F64)),
    ("I64", Some(DType::I64)),
    ("U64", Some(DType::U64)),
];

/// Looks up a dtype string exactly as written (the format's names are case-sensitive).
pub(crate) fn lookup(name: &str) -> DtypeName {
    match SAFETENSORS_DTYPES.iter().find(|(n, _)| *n == name) {
        Some((_, Some(d))) => DtypeName::Known(*d),
        Some((_, None)) => DtypeName::Unsupported,
        None => DtypeName::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_exactly() {
        assert_eq!(lookup("BF16"), DtypeName::Known(DType::BF16));
        assert_eq!(lookup("F8_E4M3FNUZ"), DtypeName::Known(DType::F8_E4M3_FNUZ));
        assert_eq!(lookup("F8_E8M0"), DtypeName::Unsupported);
        assert_eq!(lookup("bf16"), DtypeName::Unknown);
        assert_eq!(lookup("Q4_K"), DtypeName::Unknown);
    }

    #[test]
    fn element_sizes_agree_with_the_format() {
        // Bits per element from safetensors' Dtype::bitsize.
        for (name, bits) in [("BOOL", 8), ("F4", 4), ("U8", 8), ("F16", 16), ("C64", 64), ("U64", 64)] {
            let DtypeName::Known(d) = lookup(name) else { panic!("{name}") };
            assert_eq!(d.block_bytes() * 8 / d.block_elems(), bits, "{name}");
        }
    }
}
