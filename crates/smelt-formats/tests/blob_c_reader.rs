//! The allocation-free C reader in tools/c-reader, compiled with the system C compiler
//! (`$CC`, else `cc`) under `-std=c99 -Wall -Wextra -Werror -O2`, run on blobs smelt's writer
//! produced (every scheme, every codec), on the Python-written fixtures and on every malformed
//! fixture; then on mutated blobs, where its verdict — exit status, and for a refused file the
//! error name and byte offset — must equal the Rust reader's. A missing C compiler fails these
//! tests: the C reader is part of what smelt ships.

mod common;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use bytes::Bytes;
use common::fixtures;
use smelt_formats::blob::{
    self, BlobError, BlobMetadata, BlobWriter, Compression, EntryDecl, EntryFlags, Scheme, TensorSections,
};
use smelt_formats::ErrorKind;
use smelt_tensor::DType;

fn c_reader_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/c-reader")
}

fn compiler() -> String {
    std::env::var("CC").ok().filter(|c| !c.trim().is_empty()).unwrap_or_else(|| "cc".to_owned())
}

struct Built {
    _dir: tempfile::TempDir,
    /// The CLI built with the flags the README gives.
    check: PathBuf,
    /// The same with AddressSanitizer and UBSan when the compiler has them, else the plain one.
    checked: PathBuf,
}

fn compile(cc: &str, out: &Path, extra: &[&str]) -> Result<(), String> {
    let src = c_reader_dir();
    let result = Command::new(cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"])
        .args(extra)
        .arg("-o")
        .arg(out)
        .arg(src.join("smelt_blob.c"))
        .arg(src.join("smelt_blob_check.c"))
        .output();
    match result {
        Err(e) => Err(format!(
            "cannot run the C compiler '{cc}' ({e}). The C reader tests need one: install a C compiler \
             (e.g. `apt-get install gcc`) or point CC at it"
        )),
        Ok(o) if !o.status.success() => {
            Err(format!("'{cc}' failed to build the C reader:\n{}", String::from_utf8_lossy(&o.stderr)))
        }
        Ok(_) => Ok(()),
    }
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cc = compiler();
        let dir = tempfile::tempdir().unwrap();
        let check = dir.path().join("smelt_blob_check");
        compile(&cc, &check, &[]).unwrap_or_else(|e| panic!("{e}"));
        let sanitized = dir.path().join("smelt_blob_check_sanitized");
        let checked =
            match compile(&cc, &sanitized, &["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]) {
                Ok(()) => sanitized,
                Err(e) => {
                    eprintln!(
                        "note: no sanitizer build ({}); mutations run on the plain build",
                        e.lines().next().unwrap_or("")
                    );
                    check.clone()
                }
            };
        Built { _dir: dir, check, checked }
    })
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(exe: &Path, file: &Path) -> Run {
    let o = Command::new(exe).arg(file).output().unwrap();
    Run {
        code: o
            .status
            .code()
            .unwrap_or_else(|| panic!("{}: killed by a signal on {}", exe.display(), file.display())),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The library part may use nothing but stdint, stddef and string.h, and allocates nothing.
#[test]
fn library_includes_nothing_else_and_never_allocates() {
    for file in ["smelt_blob.c", "smelt_blob.h"] {
        let text = std::fs::read_to_string(c_reader_dir().join(file)).unwrap();
        for line in text.lines().filter(|l| l.trim_start().starts_with("#include")) {
            let ok = ["<stdint.h>", "<stddef.h>", "<string.h>", "\"smelt_blob.h\""]
                .iter()
                .any(|h| line.contains(h));
            assert!(ok, "{file}: {line}");
        }
        for word in ["malloc(", "calloc(", "realloc(", "free(", "alloca(", "printf(", "FILE *", "fopen("] {
            assert!(!text.contains(word), "{file} mentions {word}");
        }
    }
    // And it compiles on its own, pedantically.
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(compiler())
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-c", "-o"])
        .arg(dir.path().join("smelt_blob.o"))
        .arg(c_reader_dir().join("smelt_blob.c"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler '{}': {e}", compiler()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A blob of every scheme, written by smelt, with `compression` asked for every data section.
fn every_scheme_blob(compression: Compression) -> Vec<u8> {
    let pattern = |n: usize| (0..n).map(|i| (i % 5) as u8).collect::<Vec<u8>>();
    let f32s = |n: usize| [0.5f32].repeat(n).iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let d = |name: &str, scheme, dtype, dims: &[u64], block_size, axis, flags| EntryDecl {
        name: name.into(),
        scheme,
        dtype,
        dims: dims.to_vec(),
        block_size,
        axis,
        flags: EntryFlags(flags),
        compression,
    };
    let g_idx: Vec<u8> = (0..96).flat_map(|c: i32| (c / 32).to_le_bytes()).collect();
    let tensors: Vec<(EntryDecl, [Vec<u8>; 4])> = vec![
        (d("embd", Scheme::Raw, DType::BF16, &[32, 16], 0, None, 0), [pattern(1024), vec![], vec![], vec![]]),
        (d("scalar", Scheme::Raw, DType::F32, &[], 0, None, 0), [f32s(1), vec![], vec![], vec![]]),
        (d("empty", Scheme::Raw, DType::U8, &[0], 0, None, 0), [vec![], vec![], vec![], vec![]]),
        (
            d("int8", Scheme::Int8, DType::U8, &[8, 64], 0, Some(0), EntryFlags::PER_AXIS),
            [pattern(512), f32s(8), pattern(8), vec![]],
        ),
        (d("nf4", Scheme::Nf4, DType::U8, &[4, 128], 64, None, 0), [pattern(256), f32s(8), vec![], vec![]]),
        (
            d("nf4.dq", Scheme::Nf4, DType::U8, &[4, 128], 64, None, EntryFlags::DOUBLE_QUANT),
            [pattern(256), pattern(8), vec![], f32s(258)],
        ),
        (
            d("int4", Scheme::Int4, DType::U8, &[4, 96], 32, None, 0),
            [pattern(192), f32s(12), pattern(12), g_idx],
        ),
        (
            d("ternary2", Scheme::Ternary2, DType::U8, &[64, 64], 0, None, 0),
            [pattern(1024), f32s(1), vec![], vec![]],
        ),
        (
            d("ternary3", Scheme::Ternary3, DType::U8, &[10, 50], 0, None, 0),
            [pattern(100), f32s(1), vec![], vec![]],
        ),
        (d("q4_k", Scheme::Ggml, DType::Q4_K, &[2, 256], 0, None, 0), [pattern(288), vec![], vec![], vec![]]),
    ];
    // With the graph a blob converted from ONNX carries (the C reader skips the metadata).
    let graph = blob::proto::OnnxGraph {
        model: pattern(300).into(),
        initializers: vec![blob::proto::GraphInitializer {
            name: "int8".into(),
            tensor: "int8".into(),
            data_type: 1,
            dims: vec![8, 64],
        }],
    };
    let meta = BlobMetadata {
        producer: "smelt".into(),
        recipe: "x".repeat(100),
        onnx_graph: Some(graph),
        ..Default::default()
    };
    let mut w = BlobWriter::with_entries(
        Cursor::new(Vec::new()),
        Some(&meta),
        tensors.iter().map(|(d, _)| d.clone()),
    )
    .unwrap();
    for (_, [data, scales, zeros, aux]) in &tensors {
        w.write_tensor(TensorSections { data, scales, zeros, aux }).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// What the CLI should print for a blob smelt reads, from smelt's own summaries.
fn expected_lines(blob: &blob::Blob) -> Vec<String> {
    blob.tensor_summaries()
        .iter()
        .map(|s| {
            let dims: Vec<String> = s.dims.iter().map(u64::to_string).collect();
            format!(
                "{}\t{}\t{}\t[{}]\t{}\t{}\tOK",
                s.name,
                s.scheme,
                s.dtype,
                dims.join(","),
                s.codec,
                s.stored_bytes
            )
        })
        .collect()
}

#[test]
fn lists_and_verifies_blobs_smelt_wrote_with_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    for compression in [Compression::None, Compression::Zstd { level: 3 }, Compression::Lz4] {
        let bytes = every_scheme_blob(compression);
        let path = dir.path().join("b.smelt");
        std::fs::write(&path, &bytes).unwrap();
        let blob = blob::read(&path).unwrap();
        if compression != Compression::None {
            assert!(
                blob.entries().iter().any(|e| e.codec != blob::Codec::None),
                "{compression:?} compressed nothing"
            );
        }
        let r = run(&built().check, &path);
        assert_eq!(r.code, 0, "{compression:?}: {}{}", r.stdout, r.stderr);
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(lines, expected_lines(&blob), "{compression:?}");
        assert!(r.stderr.contains("crc OK"), "{}", r.stderr);

        // One flipped bit in the last tensor's data: exit 1, that line BAD.
        let mut bad = bytes.clone();
        let last = blob.entries().last().unwrap();
        bad[last.data.offset as usize] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let r = run(&built().check, &path);
        assert_eq!(r.code, 1, "{}", r.stdout);
        assert!(r.stdout.lines().last().unwrap().ends_with("\tBAD"), "{}", r.stdout);
        assert_eq!(r.stdout.matches("\tBAD").count(), 1);
    }
}

#[test]
fn python_written_fixtures_list_as_smelt_reads_them() {
    for name in
        ["tiny-raw.smelt", "quant-schemes.smelt", "compressed.smelt", "empty.smelt", "minor-version-1.smelt"]
    {
        let path = fixtures().join("blob").join(name);
        let blob = blob::read(&path).unwrap();
        let r = run(&built().check, &path);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        assert_eq!(r.stdout.lines().collect::<Vec<_>>(), expected_lines(&blob), "{name}");
    }
}

/// The byte offset a refusal names, as the C reader reports it.
fn offset_of(e: &BlobError) -> u64 {
    use BlobError::*;
    match e {
        FileTooShort { .. } => 0,
        SectionOutOfBounds { start, .. } | SectionOutOfOrder { start, .. } => *start,
        BadMagic { offset, .. }
        | UnsupportedVersion { offset, .. }
        | HeaderChecksum { offset, .. }
        | HeaderFieldValue { offset, .. }
        | FileSizeMismatch { offset, .. }
        | ReservedNotZero { offset, .. }
        | TooManyTensors { offset, .. }
        | MetadataPresence { offset, .. }
        | Misaligned { offset, .. }
        | RegionOutOfBounds { offset, .. }
        | DirectoryChecksum { offset, .. }
        | NameNotPacked { offset, .. }
        | NameOutOfBounds { offset, .. }
        | EmptyName { offset, .. }
        | NameTooLong { offset, .. }
        | NameNotUtf8 { offset, .. }
        | DuplicateName { offset, .. }
        | RankTooLarge { offset, .. }
        | UnusedDimNotZero { offset, .. }
        | UnknownScheme { offset, .. }
        | UnknownDtype { offset, .. }
        | UnknownCodec { offset, .. }
        | CompressedInUncompressedFile { offset, .. }
        | DtypeNotAllowed { offset, .. }
        | RankNotAllowed { offset, .. }
        | FlagsNotAllowed { offset, .. }
        | BadBlockSize { offset, .. }
        | BadAxis { offset, .. }
        | SizeOverflow { offset, .. }
        | RowNotWholeBlocks { offset, .. }
        | SectionLength { offset, .. }
        | StoredLengthMismatch { offset, .. }
        | ImpossibleRawLength { offset, .. }
        | AbsentSectionOffset { offset, .. }
        | GroupIndexOutOfRange { offset, .. }
        | TensorChecksum { offset, .. }
        | MetadataChecksum { offset, .. }
        | MetadataMalformed { offset, .. }
        | MetadataTooDeep { offset, .. }
        | MetadataTooLarge { offset, .. }
        | Decompression { offset, .. }
        | DecompressedLength { offset, .. }
        | GraphModel { offset, .. }
        | GraphInitializer { offset, .. } => *offset,
    }
}

/// The variant's name as the C reader prints it (the Debug form up to its fields).
fn name_of(e: &BlobError) -> String {
    format!("{e:?}").split([' ', '{', '(']).next().unwrap().to_owned()
}

/// What the C CLI must do with `bytes`, from the Rust reader: `Err(Some((name, offset)))` for a
/// refusal the C reader makes too, `Err(None)` for one it does not (duplicate names), `Ok(code)`
/// for a file both accept (0, or 1 with a bad CRC).
fn rust_verdict(bytes: Vec<u8>) -> Result<i32, Option<(String, u64)>> {
    match blob::parse(Bytes::from(bytes), Path::new("m.smelt")) {
        Err(e) => match e.kind {
            ErrorKind::Blob(BlobError::DuplicateName { .. }) => Err(None),
            ErrorKind::Blob(b) => Err(Some((name_of(&b), offset_of(&b)))),
            other => panic!("{other}"),
        },
        Ok(blob) => Ok(if blob.verify_checksums().is_ok() { 0 } else { 1 }),
    }
}

fn check_c_agrees(exe: &Path, path: &Path, bytes: Vec<u8>, what: &str) {
    let r = run(exe, path);
    assert!(r.code <= 2, "{what}: exit {} ({})", r.code, r.stderr);
    match rust_verdict(bytes) {
        Ok(code) => assert_eq!(r.code, code, "{what}: C exit status, stderr {}", r.stderr),
        Err(None) => assert_ne!(r.code, 2, "{what}: the C reader does not check duplicate names"),
        Err(Some((name, offset))) => {
            assert_eq!(r.code, 2, "{what}: C accepted what Rust refused as {name} at {offset}");
            let want = format!("malformed: {name} at byte {offset}");
            assert!(r.stderr.starts_with(&want), "{what}: C said {:?}, Rust {want:?}", r.stderr.trim());
        }
    }
}

#[test]
fn malformed_fixtures_are_refused_with_the_rust_readers_error() {
    let dir = fixtures().join("malformed").join("blob");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "smelt"))
        .collect();
    names.sort();
    let mut refused = 0;
    for path in &names {
        let bytes = std::fs::read(path).unwrap();
        check_c_agrees(&built().check, path, bytes, &path.display().to_string());
        refused += (run(&built().check, path).code == 2) as usize;
    }
    // Every fixture but the CRC ones (exit 1), the duplicate name, and the seven problems found
    // only when decoding metadata (three), loading its ONNX graph (two) or decompressing (two),
    // which the C reader does not do.
    assert_eq!(refused, names.len() - 2 - 1 - 7, "malformed files the C reader refused");
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

fn reseal(v: &mut [u8]) {
    if v.len() < 128 {
        return;
    }
    let u64_at = |v: &[u8], at: usize| u64::from_le_bytes(v[at..at + 8].try_into().unwrap());
    if let Some(end) = u64_at(v, 32).checked_add(u64_at(v, 40)).filter(|&e| e >= 128 && e <= v.len() as u64) {
        let crc = crc32fast::hash(&v[128..end as usize]);
        v[96..100].copy_from_slice(&crc.to_le_bytes());
    }
    let crc = crc32fast::hash(&v[..124]);
    v[124..128].copy_from_slice(&crc.to_le_bytes());
}

/// Mutated blobs, CRCs re-sealed most of the time so the checks behind them run: the C reader
/// (under ASan and UBSan when available) must reach the same verdict as the Rust reader.
#[test]
fn c_and_rust_readers_agree_on_mutated_blobs() {
    let mut sources = vec![every_scheme_blob(Compression::None), every_scheme_blob(Compression::Lz4)];
    for name in ["tiny-raw.smelt", "quant-schemes.smelt", "compressed.smelt"] {
        sources.push(std::fs::read(fixtures().join("blob").join(name)).unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.smelt");
    let mut rng = XorShift(0xC0DE_C0DE_1234_5678);
    let mut codes = [0usize; 3];
    for (si, orig) in sources.iter().enumerate() {
        for m in 0..60 {
            let mut v = orig.clone();
            let len = v.len() as u64;
            let window = len.min(128 + 176 * 12);
            match rng.below(4) {
                0 => {
                    let i = rng.below(len) as usize;
                    v[i] ^= 1 << rng.below(8);
                }
                1 => {
                    let at = (rng.below(window.saturating_sub(8)) & !1) as usize;
                    let vals = [0u64, 1, 64, 255, 0xffff_ffff, 1 << 33, u64::MAX];
                    let val = vals[rng.below(vals.len() as u64) as usize].to_le_bytes();
                    let width = [1usize, 2, 4, 8][rng.below(4) as usize].min(v.len() - at);
                    v[at..at + width].copy_from_slice(&val[..width]);
                }
                2 => {
                    let i = rng.below(window) as usize;
                    v[i] = rng.next() as u8;
                }
                _ => v.truncate(rng.below(len + 1) as usize),
            }
            if rng.below(5) != 0 {
                reseal(&mut v);
            }
            std::fs::write(&path, &v).unwrap();
            let r = run(&built().checked, &path);
            codes[r.code.clamp(0, 2) as usize] += 1;
            check_c_agrees(&built().checked, &path, v, &format!("source {si}, mutation {m}"));
        }
    }
    eprintln!("C reader exit statuses over mutated blobs: 0: {}, 1: {}, 2: {}", codes[0], codes[1], codes[2]);
    assert!(codes.iter().all(|&c| c > 0), "{codes:?}");
}
