//! ONNX external data: tensors whose bytes live in other files next to the model, which is how
//! models over protobuf's 2 GiB limit are shipped.
//!
//! A `location` is untrusted input naming a file to open, so it must be a relative path with no
//! `..`, must resolve (after symlinks) inside the model's directory, must be a regular file with
//! a single hard link (a hard link is how a file from elsewhere can appear inside the directory
//! with nothing to resolve), and the `offset`/`length` range must lie inside it. Each file is
//! mapped once and tensors are slices of the map; offsets are `u64` throughout, so files and
//! offsets beyond 2 and 4 GiB work. Ranges of different tensors in one file must not overlap.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;

use super::error::OnnxError;
use super::proto::TensorProto;
use super::tensor_data::{At, Header};

/// The `external_data` keys of one tensor.
#[derive(Debug, Default)]
struct ExternalRef {
    location: Option<String>,
    offset: Option<u64>,
    length: Option<u64>,
}

/// One mapped external file and the ranges taken from it.
struct MappedFile {
    /// The model directory joined with the location, as given (for `Model::files`).
    path: PathBuf,
    /// The `location` that first named it (for messages).
    location: String,
    bytes: Bytes,
    /// `(start, end, tensor name, tensor offset in the .onnx file)`.
    ranges: Vec<(u64, u64, String, u64)>,
}

/// The external files of one model, each mapped once.
pub(crate) struct ExternalFiles {
    dir: PathBuf,
    canonical_dir: Option<PathBuf>,
    files: Vec<MappedFile>,
    by_canonical: HashMap<PathBuf, usize>,
    /// Locations already resolved (a model names the same file for every tensor).
    by_location: HashMap<String, usize>,
    /// False for a model embedded in a smelt blob: every external reference is refused.
    allowed: bool,
}

/// A resolved external tensor: its bytes and where they are.
pub(crate) struct Resolved {
    pub data: Bytes,
    /// Index among the external files (0 = first external file, i.e. `Model::files[1]`).
    pub file: usize,
    pub offset: u64,
}

impl ExternalFiles {
    /// External files of the model at `model_path`, resolved against its directory.
    pub fn new(model_path: &Path) -> ExternalFiles {
        let dir = match model_path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        ExternalFiles {
            dir,
            canonical_dir: None,
            files: Vec::new(),
            by_canonical: HashMap::new(),
            by_location: HashMap::new(),
            allowed: true,
        }
    }

    /// For a model that may not use external data: [`ExternalFiles::resolve`] refuses every
    /// reference, before looking at its keys.
    pub fn forbidden(model_path: &Path) -> ExternalFiles {
        ExternalFiles { allowed: false, ..ExternalFiles::new(model_path) }
    }

    /// The paths of the files mapped so far, in first-use order.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }

    /// Resolves the external data of `t`, whose header is `h`.
    pub fn resolve(&mut self, t: &TensorProto, h: &Header, at: At<'_>) -> Result<Resolved, OnnxError> {
        let name = || at.name.to_string();
        if !self.allowed {
            return Err(OnnxError::ExternalNotAllowed { name: name(), offset: at.offset });
        }
        let r = parse_keys(t, at)?;
        let location = r
            .location
            .ok_or_else(|| OnnxError::ExternalMissingLocation { name: name(), offset: at.offset })?;
        if let Some(found) = r.length {
            if found != h.storage {
                return Err(OnnxError::ExternalLengthMismatch {
                    name: name(),
                    offset: at.offset,
                    dtype: h.dtype,
                    shape: h.shape.clone().into(),
                    expected: h.storage,
                    found,
                });
            }
        }
        let index = self.open(&location, at)?;
        let file = &mut self.files[index];
        let data_offset = r.offset.unwrap_or(0);
        let file_len = file.bytes.len() as u64;
        let out_of_range = || OnnxError::ExternalOutOfRange {
            name: name(),
            offset: at.offset,
            location: location.clone(),
            data_offset,
            length: h.storage,
            file_len,
        };
        let end = data_offset.checked_add(h.storage).filter(|&e| e <= file_len).ok_or_else(out_of_range)?;
        let (start_us, end_us) = match (usize::try_from(data_offset), usize::try_from(end)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return Err(out_of_range()),
        };
        let data = file.bytes.slice(start_us..end_us);
        if end > data_offset {
            file.ranges.push((data_offset, end, name(), at.offset));
        }
        Ok(Resolved { data, file: index, offset: data_offset })
    }

    /// Refuses overlapping ranges within any one external file.
    pub fn check_overlaps(&mut self) -> Result<(), OnnxError> {
        for file in &mut self.files {
            file.ranges.sort_by_key(|r| (r.0, r.1));
            // The range reaching furthest so far; any later start before its end overlaps it.
            let mut furthest: Option<usize> = None;
            for i in 0..file.ranges.len() {
                if let Some(j) = furthest {
                    let (a, b) = (&file.ranges[j], &file.ranges[i]);
                    if b.0 < a.1 {
                        return Err(OnnxError::ExternalOverlap {
                            name: b.2.clone(),
                            offset: b.3,
                            location: file.location.clone(),
                            other: a.2.clone(),
                            ranges: Box::new([(b.0, b.1), (a.0, a.1)]),
                        });
                    }
                }
                if furthest.is_none_or(|j| file.ranges[i].1 > file.ranges[j].1) {
                    furthest = Some(i);
                }
            }
        }
        Ok(())
    }

    /// Checks `location` and maps the file once, returning its index.
    fn open(&mut self, location: &str, at: At<'_>) -> Result<usize, OnnxError> {
        let name = || at.name.to_string();
        let loc = || location.to_string();
        let rel = Path::new(location);
        if location.is_empty()
            || rel.is_absolute()
            || rel.components().any(|c| matches!(c, Component::RootDir | Component::Prefix(_)))
        {
            return Err(OnnxError::ExternalAbsolutePath { name: name(), offset: at.offset, location: loc() });
        }
        if rel.components().any(|c| c == Component::ParentDir) {
            return Err(OnnxError::ExternalParentDir { name: name(), offset: at.offset, location: loc() });
        }
        if let Some(&i) = self.by_location.get(location) {
            return Ok(i);
        }
        let io_err = |source: std::io::Error| OnnxError::ExternalOpen {
            name: name(),
            offset: at.offset,
            location: loc(),
            source,
        };
        let canonical_dir = match &self.canonical_dir {
            Some(d) => d.clone(),
            None => {
                let d = self.dir.canonicalize().map_err(io_err)?;
                self.canonical_dir = Some(d.clone());
                d
            }
        };
        let joined = self.dir.join(rel);
        let canonical = joined.canonicalize().map_err(io_err)?;
        if !canonical.starts_with(&canonical_dir) {
            return Err(OnnxError::ExternalOutsideDir {
                name: name(),
                offset: at.offset,
                location: loc(),
                resolved: canonical.into(),
                dir: canonical_dir.into(),
            });
        }
        if let Some(&i) = self.by_canonical.get(&canonical) {
            self.by_location.insert(location.to_string(), i);
            return Ok(i);
        }
        // Check the type before opening: opening a FIFO would block.
        let meta = std::fs::metadata(&canonical).map_err(io_err)?;
        check_regular_single_link(&meta, location, at)?;
        let file = File::open(&canonical).map_err(io_err)?;
        // And again on the opened file, in case the path was swapped in between.
        let meta = file.metadata().map_err(io_err)?;
        check_regular_single_link(&meta, location, at)?;
        let bytes = smelt_tensor::storage::map_file(&file).map_err(io_err)?;
        self.files.push(MappedFile {
            path: joined,
            location: location.to_string(),
            bytes,
            ranges: Vec::new(),
        });
        let i = self.files.len() - 1;
        self.by_canonical.insert(canonical, i);
        self.by_location.insert(location.to_string(), i);
        Ok(i)
    }
}

fn check_regular_single_link(meta: &std::fs::Metadata, location: &str, at: At<'_>) -> Result<(), OnnxError> {
    if !meta.is_file() {
        return Err(OnnxError::ExternalNotAFile {
            name: at.name.to_string(),
            offset: at.offset,
            location: location.to_string(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Err(OnnxError::ExternalHardLink {
                name: at.name.to_string(),
                offset: at.offset,
                location: location.to_string(),
                links: meta.nlink(),
            });
        }
    }
    Ok(())
}

/// Reads the `external_data` key/values: `location`, `offset`, `length` (`checksum` and
/// `basepath` are accepted and not used; other keys are ignored, as the onnx package does).
fn parse_keys(t: &TensorProto, at: At<'_>) -> Result<ExternalRef, OnnxError> {
    let mut r = ExternalRef::default();
    // A set, not a list: a hostile tensor may carry hundreds of thousands of distinct keys.
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for entry in &t.external_data {
        let key = entry.key.as_deref().unwrap_or("");
        let value = entry.value.as_deref().unwrap_or("");
        if !seen.insert(key) {
            return Err(OnnxError::ExternalDuplicateKey {
                name: at.name.to_string(),
                offset: at.offset,
                key: key.to_string(),
            });
        }
        match key {
            "location" => r.location = Some(value.to_string()),
            "offset" => r.offset = Some(parse_number(value, "offset", at)?),
            "length" => r.length = Some(parse_number(value, "length", at)?),
            _ => {}
        }
    }
    Ok(r)
}

fn parse_number(value: &str, key: &'static str, at: At<'_>) -> Result<u64, OnnxError> {
    // Decimal digits only: no sign, no whitespace, no hex.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OnnxError::ExternalBadNumber {
            name: at.name.to_string(),
            offset: at.offset,
            key,
            value: value.to_string(),
        });
    }
    value.parse::<u64>().map_err(|_| OnnxError::ExternalBadNumber {
        name: at.name.to_string(),
        offset: at.offset,
        key,
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::proto::StringStringEntryProto;

    fn entry(k: &str, v: &str) -> StringStringEntryProto {
        StringStringEntryProto { key: Some(k.into()), value: Some(v.into()) }
    }

    #[test]
    fn numbers_are_plain_decimal() {
        let at = At { name: "w", offset: 0 };
        assert_eq!(parse_number("4294967296", "offset", at).unwrap(), 1 << 32);
        for bad in ["", "-1", "+1", " 1", "0x10", "1e3", "18446744073709551616"] {
            assert!(
                matches!(parse_number(bad, "offset", at), Err(OnnxError::ExternalBadNumber { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn duplicate_keys_are_refused_and_unknown_keys_ignored() {
        let at = At { name: "w", offset: 0 };
        let t = TensorProto {
            external_data: vec![entry("location", "a"), entry("basepath", "x"), entry("whatever", "y")],
            ..Default::default()
        };
        assert_eq!(parse_keys(&t, at).unwrap().location.as_deref(), Some("a"));
        let t = TensorProto {
            external_data: vec![entry("location", "a"), entry("location", "b")],
            ..Default::default()
        };
        assert!(matches!(parse_keys(&t, at), Err(OnnxError::ExternalDuplicateKey { .. })));
    }
}
