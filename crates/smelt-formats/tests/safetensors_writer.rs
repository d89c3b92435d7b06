//! The streaming safetensors writer: every dtype the format holds round-trips through smelt's
//! reader, the header padding and key order, deterministic bytes, tensors streamed before the
//! header, one test per writer error, and files smelt wrote read by the `safetensors` package
//! (tools/interop/check_safetensors.py, run with the pinned venv).

use std::io::{Cursor, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use half::{bf16, f16};
use smelt_formats::safetensors::{self, writer::safetensors_dtype_name, SafetensorsError};
use smelt_formats::safetensors::{HeaderBudget, SafetensorsWriteError, SafetensorsWriter};
use smelt_formats::{limits, ErrorKind, MetaValue};
use smelt_tensor::{DType, ALL_DTYPES};

/// One tensor to write.
struct Spec {
    name: String,
    dtype: DType,
    shape: Vec<u64>,
    data: Vec<u8>,
    /// The first values, as the format's specification defines the bytes (not as smelt
    /// decodes them).
    head: Vec<f64>,
}

fn spec(name: &str, dtype: DType, shape: &[u64], data: Vec<u8>, head: &[f64]) -> Spec {
    Spec { name: name.to_owned(), dtype, shape: shape.to_vec(), data, head: head.to_vec() }
}

fn le<T: Copy, const N: usize>(values: &[T], to_le: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to_le(v)).collect()
}

/// The safetensors dtype string each dtype must be written as, spelled out here rather than
/// taken from the writer's table (safetensors' `Dtype` serde names).
const EXPECTED_DTYPE_STRINGS: &[(DType, &str)] = &[
    (DType::Bool, "BOOL"),
    (DType::F4_E2M1, "F4"),
    (DType::U8, "U8"),
    (DType::I8, "I8"),
    (DType::F8_E5M2, "F8_E5M2"),
    (DType::F8_E4M3, "F8_E4M3"),
    (DType::F8_E4M3_FNUZ, "F8_E4M3FNUZ"),
    (DType::F8_E5M2_FNUZ, "F8_E5M2FNUZ"),
    (DType::I16, "I16"),
    (DType::U16, "U16"),
    (DType::F16, "F16"),
    (DType::BF16, "BF16"),
    (DType::I32, "I32"),
    (DType::U32, "U32"),
    (DType::F32, "F32"),
    (DType::C64, "C64"),
    (DType::F64, "F64"),
    (DType::I64, "I64"),
    (DType::U64, "U64"),
];

fn dtype_string(dtype: DType) -> &'static str {
    EXPECTED_DTYPE_STRINGS.iter().find(|(d, _)| *d == dtype).map(|(_, s)| *s).unwrap()
}

/// One tensor of every dtype safetensors holds, shape `[2, 3]`, whose first values are
/// exactly representable (bit patterns from each format's definition).
fn one_of_each_dtype() -> Vec<Spec> {
    let v6 = [1.0, -2.0, 0.5, 3.0, -0.25, 0.0];
    let s = [2u64, 3];
    vec![
        spec("f64", DType::F64, &s, le(&v6, f64::to_le_bytes), &v6),
        spec("f32", DType::F32, &s, le(&v6.map(|v| v as f32), f32::to_le_bytes), &v6),
        spec("f16", DType::F16, &s, le(&v6.map(f16::from_f64), f16::to_le_bytes), &v6),
        spec("bf16", DType::BF16, &s, le(&v6.map(bf16::from_f64), bf16::to_le_bytes), &v6),
        // OCP FP8 E4M3: bias 7; 0x7E is the largest finite value, 0x7F NaN.
        spec(
            "f8_e4m3",
            DType::F8_E4M3,
            &s,
            vec![0x38, 0xC0, 0x30, 0x7E, 0x01, 0x7F],
            &[1.0, -2.0, 0.5, 448.0, 0.001953125],
        ),
        // OCP FP8 E5M2: bias 15; 0x7C is +inf.
        spec(
            "f8_e5m2",
            DType::F8_E5M2,
            &s,
            vec![0x3C, 0xC0, 0x38, 0x7B, 0x01, 0x7C],
            &[1.0, -2.0, 0.5, 57344.0, 1.52587890625e-05],
        ),
        // FNUZ: bias 8 and 16, 0x80 is the only NaN.
        spec(
            "f8_e4m3fnuz",
            DType::F8_E4M3_FNUZ,
            &s,
            vec![0x40, 0xC8, 0x38, 0x7F, 0x01, 0x80],
            &[1.0, -2.0, 0.5, 240.0, 0.0009765625],
        ),
        spec(
            "f8_e5m2fnuz",
            DType::F8_E5M2_FNUZ,
            &s,
            vec![0x40, 0xC4, 0x3C, 0x7F, 0x01, 0x80],
            &[1.0, -2.0, 0.5, 57344.0, 7.62939453125e-06],
        ),
        // FP4 E2M1, first element in the low nibble: codes 1, 2 | 3, 15 | 7, 8.
        spec("f4", DType::F4_E2M1, &s, vec![0x21, 0xF3, 0x87], &[0.5, 1.0, 1.5, -6.0, 6.0, -0.0]),
        spec(
            "c64",
            DType::C64,
            &s,
            le(&[1.0f32, -2.0, 0.5, 3.0, -0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], f32::to_le_bytes),
            &[1.0, -2.0, 0.5, 3.0],
        ),
        spec("i64", DType::I64, &s, le(&[1i64, -2, i64::MIN, 4, 5, 6], i64::to_le_bytes), &[1.0, -2.0]),
        spec("u64", DType::U64, &s, le(&[1u64, 2, 3, 4, 5, u64::MAX], u64::to_le_bytes), &[1.0, 2.0, 3.0]),
        spec(
            "i32",
            DType::I32,
            &s,
            le(&[1i32, -2, 3, i32::MIN, 5, 6], i32::to_le_bytes),
            &[1.0, -2.0, 3.0, -2147483648.0],
        ),
        spec(
            "u32",
            DType::U32,
            &s,
            le(&[1u32, 2, 3, u32::MAX, 5, 6], u32::to_le_bytes),
            &[1.0, 2.0, 3.0, 4294967295.0],
        ),
        spec(
            "i16",
            DType::I16,
            &s,
            le(&[1i16, -2, 3, -32768, 5, 6], i16::to_le_bytes),
            &[1.0, -2.0, 3.0, -32768.0],
        ),
        spec(
            "u16",
            DType::U16,
            &s,
            le(&[1u16, 2, 3, 65535, 5, 6], u16::to_le_bytes),
            &[1.0, 2.0, 3.0, 65535.0],
        ),
        spec("i8", DType::I8, &s, vec![1, 0xFE, 3, 0x80, 5, 6], &[1.0, -2.0, 3.0, -128.0]),
        spec("u8", DType::U8, &s, vec![1, 2, 3, 255, 5, 6], &[1.0, 2.0, 3.0, 255.0]),
        spec("bool", DType::Bool, &s, vec![1, 0, 1, 1, 0, 0], &[1.0, 0.0, 1.0, 1.0]),
    ]
}

/// Awkward tensors: a scalar, empty ones, names that need escaping or are not ASCII, a long
/// name.
fn awkward_tensors() -> Vec<Spec> {
    vec![
        spec("scalar", DType::F32, &[], 2.5f32.to_le_bytes().to_vec(), &[2.5]),
        spec("empty", DType::F32, &[0, 4], vec![], &[]),
        spec("empty_after_empty", DType::BF16, &[3, 0], vec![], &[]),
        spec("quote\"back\\slash\nnewline\u{1}", DType::U8, &[1], vec![9], &[9.0]),
        spec("модель.слой.0/权重 ✓", DType::I8, &[2], vec![1, 0xFF], &[1.0, -1.0]),
        spec(&"long.".repeat(200), DType::U8, &[1, 1, 1, 1, 1, 1, 1, 1], vec![7], &[7.0]),
    ]
}

fn budget_for(tensors: &[Spec], metadata: &[(String, String)]) -> HeaderBudget {
    let mut budget = HeaderBudget::new();
    for t in tensors {
        if t.shape.len() <= 4 {
            budget.add_tensor(&t.name);
        } else {
            budget.add_tensor_shape(&t.name, t.dtype, &t.shape);
        }
    }
    for (k, v) in metadata {
        budget.add_metadata(k, v);
    }
    budget
}

/// Writes `tensors` and `metadata` with a budget from their names and shapes.
fn write_to<W: Write + Seek>(out: W, tensors: &[Spec], metadata: &[(String, String)]) -> W {
    let mut w = SafetensorsWriter::new(out, &budget_for(tensors, metadata)).unwrap();
    for t in tensors {
        w.add_tensor(&t.name, t.dtype, &t.shape, &t.data).unwrap();
    }
    w.finish(metadata).unwrap()
}

fn write_bytes(tensors: &[Spec], metadata: &[(String, String)]) -> Vec<u8> {
    write_to(Cursor::new(Vec::new()), tensors, metadata).into_inner()
}

fn metadata() -> Vec<(String, String)> {
    vec![
        ("format".to_owned(), "pt".to_owned()),
        ("z-first-despite-sorting".to_owned(), "1".to_owned()),
        ("quoted \"key\"".to_owned(), "value with \\ and\nnewline, ünïcode".to_owned()),
    ]
}

/// Header length N and the header text (JSON plus padding).
fn header_of(file: &[u8]) -> (u64, &str) {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap());
    (n, std::str::from_utf8(&file[8..8 + n as usize]).unwrap())
}

#[test]
fn every_dtype_safetensors_holds_round_trips_through_the_reader() {
    let mut tensors = one_of_each_dtype();
    tensors.extend(awkward_tensors());
    let meta = metadata();
    let bytes = write_bytes(&tensors, &meta);
    let model = safetensors::parse(bytes.clone().into(), Path::new("written.safetensors")).unwrap();

    let (n, _) = header_of(&bytes);
    let data_start = 8 + n;
    assert_eq!(data_start % 64, 0, "data starts at a multiple of 64");
    assert_eq!(model.tensors.len(), tensors.len());
    // The reader lists tensors in data order, which is the order they were added.
    let mut offset = data_start;
    for (t, got) in tensors.iter().zip(&model.tensors) {
        assert_eq!(got.name, t.name);
        assert_eq!(got.dtype, t.dtype, "{}", t.name);
        assert_eq!(got.shape, t.shape, "{}", t.name);
        assert_eq!(&got.data[..], &t.data[..], "{}", t.name);
        assert_eq!(got.location.offset, offset, "{}: contiguous data", t.name);
        offset += t.data.len() as u64;
    }
    assert_eq!(offset, bytes.len() as u64, "the data ends the file");
    let got_meta: Vec<(String, String)> = model
        .metadata
        .iter()
        .map(|(k, v)| match v {
            MetaValue::Str(s) => (k.clone(), s.clone()),
            other => panic!("{k}: {other:?}"),
        })
        .collect();
    assert_eq!(got_meta, meta, "metadata in the order given");
}

#[test]
fn exactly_the_dtypes_without_a_safetensors_string_are_refused() {
    for &dtype in ALL_DTYPES {
        let expected = EXPECTED_DTYPE_STRINGS.iter().find(|(d, _)| *d == dtype).map(|(_, s)| *s);
        assert_eq!(safetensors_dtype_name(dtype), expected, "{dtype}");
        let shape = [256u64];
        let Some(size) = dtype.storage_bytes(&shape) else {
            assert_eq!(dtype, DType::String);
            continue;
        };
        let mut w =
            SafetensorsWriter::new(Cursor::new(Vec::new()), &HeaderBudget::for_tensor_names(["t"])).unwrap();
        let start = w.data_start();
        let result = w.add_tensor("t", dtype, &shape, &vec![0u8; size as usize]);
        match expected {
            Some(_) => result.unwrap(),
            None => assert!(
                matches!(result, Err(SafetensorsWriteError::UnsupportedDtype { dtype: d, offset, .. }) if d == dtype && offset == start),
                "{dtype}: {result:?}"
            ),
        }
    }
}

#[test]
fn header_is_metadata_first_then_tensors_in_order_padded_with_spaces() {
    let tensors = vec![
        spec("zeta", DType::U8, &[1], vec![1], &[]),
        spec("alpha", DType::U8, &[1], vec![2], &[]),
        spec("mid", DType::U8, &[1], vec![3], &[]),
    ];
    let meta = metadata();
    let mut budget = budget_for(&tensors, &meta);
    budget.add_bytes(5000);
    let mut w = SafetensorsWriter::new(Cursor::new(Vec::new()), &budget).unwrap();
    for t in &tensors {
        w.add_tensor(&t.name, t.dtype, &t.shape, &t.data).unwrap();
    }
    let bytes = w.finish(&meta).unwrap().into_inner();
    let (n, header) = header_of(&bytes);
    assert!(n >= 5000);
    let json = header.trim_end_matches(' ');
    assert!(json.len() < header.len(), "trailing padding present");
    assert!(json.ends_with('}') && !json.contains("  "));
    assert!(json.starts_with(r#"{"__metadata__":{"format":"pt","z-first-despite-sorting":"1","#), "{json}");
    let positions: Vec<usize> =
        ["\"zeta\"", "\"alpha\"", "\"mid\""].iter().map(|k| json.find(k).unwrap()).collect();
    assert!(positions.windows(2).all(|p| p[0] < p[1]), "tensors in the order added");
    assert!(json.contains(r#""zeta":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}"#));
    assert!(json.contains(r#""mid":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}"#));
    // The reader accepts the padding.
    let model = safetensors::parse(bytes.into(), Path::new("padded.safetensors")).unwrap();
    assert_eq!(model.tensors.len(), 3);
}

#[test]
fn no_metadata_means_no_metadata_key() {
    let bytes = write_bytes(&[spec("a", DType::U8, &[1], vec![1], &[])], &[]);
    let (_, header) = header_of(&bytes);
    assert!(header.starts_with(r#"{"a":{"dtype":"U8""#), "{header}");
    let empty = write_bytes(&[], &[]);
    assert_eq!(empty.len(), 64);
    let model = safetensors::parse(empty.into(), Path::new("empty.safetensors")).unwrap();
    assert!(model.tensors.is_empty() && model.metadata.is_empty());
}

#[test]
fn same_input_gives_same_bytes() {
    let make = || {
        let mut t = one_of_each_dtype();
        t.extend(awkward_tensors());
        write_bytes(&t, &metadata())
    };
    assert_eq!(make(), make());
}

#[test]
fn writing_at_a_nonzero_position_offsets_everything() {
    // The file starts where the output is positioned; header and data move with it.
    let mut out = Cursor::new(Vec::new());
    out.write_all(b"prefix--").unwrap();
    let tensors = vec![spec("a", DType::U8, &[2], vec![5, 6], &[])];
    let out = write_to(out, &tensors, &[]);
    assert_eq!(out.position(), out.get_ref().len() as u64, "left at the end of the file");
    let bytes = out.into_inner();
    assert_eq!(&bytes[..8], b"prefix--");
    let model = safetensors::parse(bytes[8..].to_vec().into(), Path::new("x")).unwrap();
    assert_eq!(&model.tensor("a").unwrap().data[..], &[5, 6]);
}

#[test]
fn tensors_reach_the_file_before_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streamed.safetensors");
    let file = std::fs::File::create(&path).unwrap();
    let mut w = SafetensorsWriter::new(file, &HeaderBudget::for_tensor_names(["a", "b"])).unwrap();
    let start = w.data_start();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), start, "only the reservation so far");
    w.add_tensor("a", DType::F32, &[1000], &[0x11; 4000]).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), start + 4000, "streamed, not buffered");
    w.add_tensor("b", DType::U8, &[3], &[1, 2, 3]).unwrap();
    assert_eq!(w.tensor_count(), 2);

    // Abandoned here, the file has a zero header length: every reader refuses it.
    let err = safetensors::read_file(&path).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Safetensors(SafetensorsError::HeaderNotJson { .. })), "{err}");

    w.finish(&[]).unwrap();
    let model = safetensors::read_file(&path).unwrap();
    assert_eq!(model.tensors.len(), 2);
    assert_eq!(model.tensor("a").unwrap().location.offset, start);
}

mod properties {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    /// The dtypes the writer accepts.
    fn writable() -> Vec<DType> {
        EXPECTED_DTYPE_STRINGS.iter().map(|(d, _)| *d).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the writer accepts, smelt's reader reads back as written; what it refuses
        /// is refused for a reason the input has.
        #[test]
        fn whatever_the_writer_accepts_reads_back(
            tensors in prop::collection::vec(
                (any::<String>(), 0usize..19, prop::collection::vec(0u64..5, 0..5), any::<u8>()),
                0..8,
            ),
            metadata in prop::collection::vec((any::<String>(), any::<String>()), 0..4),
        ) {
            let dtypes = writable();
            let mut budget = HeaderBudget::for_tensor_names(tensors.iter().map(|t| t.0.as_str()));
            for (k, v) in &metadata {
                budget.add_metadata(k, v);
            }
            let mut w = SafetensorsWriter::new(Cursor::new(Vec::new()), &budget).unwrap();
            let mut accepted = Vec::new();
            let mut names = HashSet::new();
            for (name, d, shape, fill) in &tensors {
                let dtype = dtypes[*d];
                let data = vec![*fill; dtype.storage_bytes(shape).unwrap() as usize];
                match w.add_tensor(name, dtype, shape, &data) {
                    Ok(()) => {
                        prop_assert!(names.insert(name.clone()));
                        accepted.push((name.clone(), dtype, shape.clone(), data));
                    }
                    Err(SafetensorsWriteError::DuplicateTensor { .. }) => prop_assert!(names.contains(name)),
                    Err(SafetensorsWriteError::ReservedName { .. }) => prop_assert_eq!(name.as_str(), "__metadata__"),
                    Err(SafetensorsWriteError::PartialByte { .. }) => prop_assert_eq!(dtype, DType::F4_E2M1),
                    Err(e) => prop_assert!(false, "unexpected refusal: {}", e),
                }
            }
            let keys: HashSet<&String> = metadata.iter().map(|(k, _)| k).collect();
            let bytes = match w.finish(&metadata) {
                Ok(out) => out.into_inner(),
                Err(SafetensorsWriteError::DuplicateMetadataKey { .. }) => {
                    prop_assert!(keys.len() < metadata.len());
                    return Ok(());
                }
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            };
            let model = safetensors::parse(bytes.into(), Path::new("p.safetensors")).unwrap();
            prop_assert_eq!(model.tensors.len(), accepted.len());
            for ((name, dtype, shape, data), t) in accepted.iter().zip(&model.tensors) {
                prop_assert_eq!(&t.name, name);
                prop_assert_eq!(t.dtype, *dtype);
                prop_assert_eq!(&t.shape, shape);
                prop_assert_eq!(&t.data[..], &data[..]);
            }
            let got: Vec<(String, String)> = model
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), match v { MetaValue::Str(s) => s.clone(), _ => String::new() }))
                .collect();
            prop_assert_eq!(got, metadata);
        }
    }
}

// ---- one test per writer error ----

fn writer(budget: &HeaderBudget) -> SafetensorsWriter<Cursor<Vec<u8>>> {
    SafetensorsWriter::new(Cursor::new(Vec::new()), budget).unwrap()
}

#[test]
fn reservation_above_the_header_cap_is_refused() {
    let mut budget = HeaderBudget::new();
    budget.add_bytes(limits::MAX_SAFETENSORS_HEADER);
    let err = SafetensorsWriter::new(Cursor::new(Vec::new()), &budget).unwrap_err();
    assert!(
        matches!(err, SafetensorsWriteError::HeaderTooLarge { max: limits::MAX_SAFETENSORS_HEADER, .. }),
        "{err}"
    );
}

#[test]
fn header_past_the_budget_is_refused_and_nothing_is_written() {
    // An empty budget reserves 56 bytes: room for one short entry, not for a long name.
    let mut w = writer(&HeaderBudget::new());
    assert_eq!(w.reserved_header_len(), 56);
    let long = "x".repeat(60);
    let err = w.add_tensor(&long, DType::U8, &[1], &[1]).unwrap_err();
    assert!(
        matches!(err, SafetensorsWriteError::HeaderBudgetExceeded { ref at, offset: 8, reserved: 56, needed } if *at == long && needed > 56),
        "{err}"
    );
    // The refusal left the writer as it was.
    w.add_tensor("a", DType::U8, &[1], &[1]).unwrap();
    let bytes = w.finish(&[]).unwrap().into_inner();
    assert_eq!(bytes.len(), 65);

    // Metadata that does not fit is found at finish.
    let mut w = writer(&HeaderBudget::for_tensor_names(["a"]));
    w.add_tensor("a", DType::U8, &[1], &[1]).unwrap();
    let err = w.finish(&[("k".to_owned(), "v".repeat(500))]).unwrap_err();
    assert!(
        matches!(err, SafetensorsWriteError::HeaderBudgetExceeded { ref at, .. } if at == "__metadata__"),
        "{err}"
    );
}

#[test]
fn the_metadata_key_is_not_a_tensor_name() {
    let mut w = writer(&HeaderBudget::for_tensor_names(["__metadata__"]));
    let err = w.add_tensor("__metadata__", DType::U8, &[1], &[1]).unwrap_err();
    assert!(
        matches!(err, SafetensorsWriteError::ReservedName { offset } if offset == w.data_start()),
        "{err}"
    );
}

#[test]
fn name_longer_than_readers_accept_is_refused() {
    let name = "n".repeat(limits::MAX_NAME_LEN as usize + 1);
    let mut w = writer(&HeaderBudget::for_tensor_names([name.as_str()]));
    let err = w.add_tensor(&name, DType::U8, &[1], &[1]).unwrap_err();
    assert!(
        matches!(err, SafetensorsWriteError::NameTooLong { len, max: limits::MAX_NAME_LEN, .. } if len == limits::MAX_NAME_LEN + 1),
        "{err}"
    );
    // Exactly at the cap is fine, and reads back.
    let name = "n".repeat(limits::MAX_NAME_LEN as usize);
    let mut w = writer(&HeaderBudget::for_tensor_names([name.as_str()]));
    w.add_tensor(&name, DType::U8, &[1], &[1]).unwrap();
    let bytes = w.finish(&[]).unwrap().into_inner();
    safetensors::parse(bytes.into(), Path::new("x")).unwrap();
}

#[test]
fn duplicate_tensor_names_are_refused() {
    let mut w = writer(&HeaderBudget::for_tensor_names(["a", "b", "a"]));
    w.add_tensor("a", DType::F32, &[2], &[0; 8]).unwrap();
    w.add_tensor("b", DType::U8, &[1], &[0]).unwrap();
    let err = w.add_tensor("a", DType::U8, &[1], &[0]).unwrap_err();
    let start = w.data_start();
    assert!(
        matches!(err, SafetensorsWriteError::DuplicateTensor { ref name, offset, first_index: 0, first_offset }
            if name == "a" && offset == start + 9 && first_offset == start),
        "{err}"
    );
}

#[test]
fn rank_above_the_readers_cap_is_refused() {
    let shape = vec![1u64; limits::MAX_RANK + 1];
    let mut budget = HeaderBudget::new();
    budget.add_tensor_shape("t", DType::U8, &shape);
    let mut w = writer(&budget);
    let err = w.add_tensor("t", DType::U8, &shape, &[0]).unwrap_err();
    assert!(matches!(err, SafetensorsWriteError::RankTooLarge { rank: 17, max: 16, .. }), "{err}");
    // Rank 16 is fine.
    w.add_tensor("t", DType::U8, &shape[1..], &[0]).unwrap();
    let bytes = w.finish(&[]).unwrap().into_inner();
    safetensors::parse(bytes.into(), Path::new("x")).unwrap();
}

#[test]
fn shape_whose_size_overflows_is_refused() {
    let mut w = writer(&HeaderBudget::for_tensor_names(["t"]));
    let err = w.add_tensor("t", DType::F32, &[u64::MAX / 2, 3], &[]).unwrap_err();
    assert!(matches!(err, SafetensorsWriteError::SizeOverflow { dtype: DType::F32, .. }), "{err}");
    let err = w.add_tensor("t", DType::F64, &[1 << 62], &[]).unwrap_err();
    assert!(matches!(err, SafetensorsWriteError::SizeOverflow { dtype: DType::F64, .. }), "{err}");
}

#[test]
fn odd_count_of_four_bit_floats_is_refused() {
    let mut w = writer(&HeaderBudget::for_tensor_names(["t"]));
    let err = w.add_tensor("t", DType::F4_E2M1, &[3], &[0, 0]).unwrap_err();
    assert!(
        matches!(err, SafetensorsWriteError::PartialByte { numel: 3, dtype: DType::F4_E2M1, .. }),
        "{err}"
    );
    w.add_tensor("t", DType::F4_E2M1, &[2, 2], &[0, 0]).unwrap();
}

#[test]
fn bytes_of_the_wrong_length_are_refused() {
    let mut w = writer(&HeaderBudget::for_tensor_names(["t"]));
    let err = w.add_tensor("t", DType::BF16, &[2, 3], &[0; 11]).unwrap_err();
    assert!(
        matches!(err, SafetensorsWriteError::WrongLength { expected: 12, found: 11, offset, .. } if offset == w.data_start()),
        "{err}"
    );
}

#[test]
fn duplicate_metadata_keys_are_refused() {
    let w = writer(&HeaderBudget::new());
    let meta = [
        ("a".to_owned(), "1".to_owned()),
        ("b".to_owned(), "2".to_owned()),
        ("a".to_owned(), "3".to_owned()),
    ];
    let err = w.finish(&meta).unwrap_err();
    assert!(
        matches!(err, SafetensorsWriteError::DuplicateMetadataKey { ref key, index: 2, first_index: 0, offset: 8 } if key == "a"),
        "{err}"
    );
}

/// An output that fails every write once `budget` bytes have gone through.
#[derive(Debug)]
struct FailingOutput {
    inner: Cursor<Vec<u8>>,
    budget: usize,
}

impl Write for FailingOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.inner.get_ref().len() + buf.len() > self.budget {
            return Err(std::io::Error::other("disk full"));
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for FailingOutput {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[test]
fn output_failures_are_reported_and_final() {
    let failing = |budget| FailingOutput { inner: Cursor::new(Vec::new()), budget };
    let err = SafetensorsWriter::new(failing(10), &HeaderBudget::new()).unwrap_err();
    assert!(matches!(err, SafetensorsWriteError::Io { offset: 0, .. }), "{err}");

    let budget = HeaderBudget::for_tensor_names(["a", "b"]);
    let mut w = SafetensorsWriter::new(failing(8 + budget.reserved_len() as usize + 50), &budget).unwrap();
    w.add_tensor("a", DType::U8, &[8], &[1; 8]).unwrap();
    let err = w.add_tensor("b", DType::U8, &[100], &[2; 100]).unwrap_err();
    assert!(
        matches!(err, SafetensorsWriteError::Io { ref what, offset, .. } if what == "tensor 'b'" && offset == w.data_start() + 8),
        "{err}"
    );
    let err = w.add_tensor("c", DType::U8, &[1], &[3]).unwrap_err();
    assert!(
        matches!(err, SafetensorsWriteError::AfterFailure { offset } if offset == w.data_start() + 8),
        "{err}"
    );
    let err = w.finish(&[]).unwrap_err();
    assert!(matches!(err, SafetensorsWriteError::AfterFailure { .. }), "{err}");
}

// ---- the safetensors package reads what smelt wrote ----

/// The pinned venv's Python: `$SMELT_PYTHON` (set by tools/test-all.sh), else `.venv` at the
/// repository root. Missing both is a failure, never a skip.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SMELT_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.is_file(),
        "no Python for the interop check: set SMELT_PYTHON or run tools/python/setup-venv.sh \
         (creates .venv at the repository root with the pinned safetensors, numpy, ml_dtypes and blake3)"
    );
    venv
}

/// What check_safetensors.py must find in the file.
fn expectation(tensors: &[Spec], metadata: &[(String, String)]) -> serde_json::Value {
    let tensors: Vec<serde_json::Value> = tensors
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.name,
                "dtype": dtype_string(t.dtype),
                "shape": t.shape,
                "blake3": blake3::hash(&t.data).to_hex().as_str(),
                "head": t.head,
            })
        })
        .collect();
    let metadata: serde_json::Map<String, serde_json::Value> =
        metadata.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    serde_json::json!({"tensors": tensors, "metadata": metadata, "header_order": true})
}

fn check_with_python_safetensors(path: &Path, expectation: &serde_json::Value) {
    let expect_path = path.with_extension("expect.json");
    std::fs::write(&expect_path, serde_json::to_vec_pretty(expectation).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/interop/check_safetensors.py");
    let out = Command::new(python()).arg(&script).arg(path).arg(&expect_path).output().unwrap();
    assert!(
        out.status.success(),
        "check_safetensors.py failed for {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn python_safetensors_reads_every_dtype_smelt_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = one_of_each_dtype();
    tensors.extend(awkward_tensors());
    let meta = metadata();
    let path = dir.path().join("all-dtypes.safetensors");
    write_to(std::fs::File::create(&path).unwrap(), &tensors, &meta);
    check_with_python_safetensors(&path, &expectation(&tensors, &meta));

    // Plain numpy types only, no metadata: safetensors.numpy.load_file reads it too.
    let plain: Vec<Spec> = one_of_each_dtype()
        .into_iter()
        .filter(|t| !matches!(t.dtype, DType::BF16 | DType::F4_E2M1) && !t.dtype.name().starts_with("F8"))
        .collect();
    let path = dir.path().join("numpy-dtypes.safetensors");
    write_to(std::fs::File::create(&path).unwrap(), &plain, &[]);
    check_with_python_safetensors(&path, &expectation(&plain, &[]));

    let path = dir.path().join("empty.safetensors");
    write_to(std::fs::File::create(&path).unwrap(), &[], &[]);
    check_with_python_safetensors(&path, &expectation(&[], &[]));
}

#[test]
fn python_check_catches_a_wrong_expectation() {
    // Regression guard for the checker itself: a mismatch must fail it.
    let dir = tempfile::tempdir().unwrap();
    let tensors =
        vec![spec("a", DType::BF16, &[2], le(&[bf16::ONE, bf16::NEG_ONE], bf16::to_le_bytes), &[1.0, -1.0])];
    let path = dir.path().join("one.safetensors");
    write_to(std::fs::File::create(&path).unwrap(), &tensors, &[]);
    let mut wrong = expectation(&tensors, &[]);
    wrong["tensors"][0]["head"] = serde_json::json!([1.0, 1.0]);
    wrong["tensors"][0]["shape"] = serde_json::json!([1, 2]);
    let expect_path = path.with_extension("expect.json");
    std::fs::write(&expect_path, serde_json::to_vec(&wrong).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/interop/check_safetensors.py");
    let out = Command::new(python()).arg(&script).arg(&path).arg(&expect_path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("shape") && stdout.contains("head"), "{stdout}");
}
