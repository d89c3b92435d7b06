//! How the tensors tile the data section.
//!
//! The rule is the safetensors crate's (`Metadata::validate` and `read_metadata` in
//! `safetensors/src/tensor.rs`): sorted by `data_offsets`, the first tensor starts at 0, each
//! next one starts exactly where the previous one ends, and the last one ends exactly at the end
//! of the file. So no byte of the data section is unclaimed and none is claimed twice. Where the
//! crate has one error for all of these, smelt says which one happened and where. Alignment is
//! not required (the format does not promise it); typed readers copy when a view is unaligned.

use super::header::TensorEntry;
use super::SafetensorsError;

/// Sorts `entries` into data order and checks that they cover the data section
/// `data_start..file_len` exactly. Zero-size tensors sharing an offset keep header order.
pub(crate) fn check_layout(
    entries: &mut [TensorEntry],
    data_start: u64,
    file_len: u64,
) -> Result<(), SafetensorsError> {
    entries.sort_by_key(|e| (e.begin, e.end));
    let data_len = file_len.saturating_sub(data_start);
    let abs = |rel: u64| data_start.saturating_add(rel);
    let mut covered_to = 0u64;
    let mut previous: Option<&TensorEntry> = None;
    for e in entries.iter() {
        if e.end > data_len {
            return Err(SafetensorsError::DataPastEnd {
                name: e.name.clone(),
                offset: e.offset,
                begin: abs(e.begin),
                end: abs(e.end),
                file_len,
            });
        }
        if e.begin < covered_to {
            // Sorted by begin, a tensor starting before the covered end overlaps the previous
            // tensor, which reaches that end.
            let (other, other_begin, other_end) = match previous {
                Some(p) => (p.name.clone(), abs(p.begin), abs(p.end)),
                None => (String::new(), data_start, abs(covered_to)),
            };
            return Err(SafetensorsError::Overlap {
                name: e.name.clone(),
                offset: e.offset,
                begin: abs(e.begin),
                end: abs(e.end),
                other,
                other_begin,
                other_end,
            });
        }
        if e.begin > covered_to {
            return Err(SafetensorsError::Gap {
                name: e.name.clone(),
                offset: e.offset,
                expected: abs(covered_to),
                begin: abs(e.begin),
            });
        }
        covered_to = e.end;
        previous = Some(e);
    }
    if covered_to != data_len {
        return Err(SafetensorsError::TrailingBytes { offset: abs(covered_to), len: data_len - covered_to });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use smelt_tensor::DType;

    use super::*;

    fn entry(name: &str, begin: u64, end: u64) -> TensorEntry {
        TensorEntry {
            name: name.to_owned(),
            dtype: DType::U8,
            shape: vec![end - begin],
            begin,
            end,
            offset: 9,
        }
    }

    #[test]
    fn exact_cover_in_any_header_order() {
        let mut e = vec![entry("b", 4, 10), entry("z", 4, 4), entry("a", 0, 4)];
        check_layout(&mut e, 100, 110).unwrap();
        let names: Vec<&str> = e.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "z", "b"]);
        check_layout(&mut [], 100, 100).unwrap();
        check_layout(&mut [entry("empty", 0, 0)], 100, 100).unwrap();
    }

    #[test]
    fn each_violation_has_its_variant() {
        assert!(matches!(
            check_layout(&mut [entry("a", 0, 4), entry("b", 2, 6)], 100, 106),
            Err(SafetensorsError::Overlap { ref name, ref other, begin: 102, .. }) if name == "b" && other == "a"
        ));
        assert!(matches!(
            check_layout(&mut [entry("a", 0, 4), entry("b", 5, 6)], 100, 106),
            Err(SafetensorsError::Gap { expected: 104, begin: 105, .. })
        ));
        assert!(matches!(
            check_layout(&mut [entry("a", 1, 4)], 100, 104),
            Err(SafetensorsError::Gap { expected: 100, begin: 101, .. })
        ));
        assert!(matches!(
            check_layout(&mut [entry("a", 0, 4)], 100, 106),
            Err(SafetensorsError::TrailingBytes { offset: 104, len: 2 })
        ));
        assert!(matches!(
            check_layout(&mut [entry("a", 0, 8)], 100, 106),
            Err(SafetensorsError::DataPastEnd { begin: 100, end: 108, file_len: 106, .. })
        ));
        // The same tensor range twice is an overlap, not a duplicate.
        assert!(matches!(
            check_layout(&mut [entry("a", 0, 4), entry("b", 0, 4)], 100, 104),
            Err(SafetensorsError::Overlap { .. })
        ));
    }

    #[test]
    fn huge_offsets_do_not_overflow() {
        let mut e = [entry("a", u64::MAX - 1, u64::MAX)];
        assert!(matches!(check_layout(&mut e, 100, 104), Err(SafetensorsError::DataPastEnd { .. })));
    }
}
