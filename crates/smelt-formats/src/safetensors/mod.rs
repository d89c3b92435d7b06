//! safetensors, single files and sharded checkpoints: the format Hugging Face checkpoints ship
//! in, read into a [`Model`] whose tensors are slices of the file's mmap.
//!
//! A file is an 8-byte header length, a JSON header, then a data section the tensors must tile
//! exactly (the `layout` module). The header is parsed here rather than by the `safetensors`
//! crate so that every error can name the tensor and the byte offset, and so that duplicate JSON
//! keys, which serde maps silently drop, are caught. A sharded checkpoint is a
//! `model.safetensors.index.json` mapping each tensor to a shard file in the same directory
//! ([`read_sharded`]).

mod dtype_names;
mod error;
mod header;
pub(crate) mod json_object;
mod layout;
mod sharded;
pub mod writer;

use std::path::Path;

use bytes::Bytes;

use crate::{Error, Format, Location, MetaValue, Model, Tensor};
pub use error::SafetensorsError;
use header::Caps;
pub use sharded::read_sharded;
pub use writer::{HeaderBudget, SafetensorsWriteError, SafetensorsWriter};

/// Parses one safetensors file already in memory. `path` only names the file in errors and in
/// [`Model::files`]. Tensors are slices of `bytes`, in data order.
pub fn parse(bytes: Bytes, path: &Path) -> Result<Model, Error> {
    let parsed = parse_tensors(&bytes, 0, &Caps::DEFAULT).map_err(|e| Error::new(path, e))?;
    let mut model =
        Model::new(Format::Safetensors, "safetensors".to_owned(), vec![path.to_path_buf()], parsed.tensors);
    model.metadata = parsed.metadata.into_iter().map(|(k, v)| (k, MetaValue::Str(v))).collect();
    Ok(model)
}

/// Reads one `.safetensors` file, mapping it rather than reading it.
pub fn read_file(path: &Path) -> Result<Model, Error> {
    parse(map(path)?, path)
}

/// Maps `path` read-only.
fn map(path: &Path) -> Result<Bytes, Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    smelt_tensor::storage::map_file(&file).map_err(|e| Error::io(path, e))
}

/// One file's tensors, with what sharded reading needs to know about them.
struct ParsedFile {
    /// Tensors in data order.
    tensors: Vec<Tensor>,
    /// Absolute offset of each tensor's header entry, parallel to `tensors`.
    entry_offsets: Vec<u64>,
    /// `__metadata__` in header order.
    metadata: Vec<(String, String)>,
}

/// Checks a whole file and cuts its tensors out of `bytes`, in data order. `file` is the
/// index the tensors' [`Location`]s get.
fn parse_tensors(bytes: &Bytes, file: usize, caps: &Caps) -> Result<ParsedFile, SafetensorsError> {
    let mut header = header::read_header(bytes, caps)?;
    layout::check_layout(&mut header.tensors, header.data_start, bytes.len() as u64)?;
    let data_start = header.data_start;
    let entry_offsets = header.tensors.iter().map(|e| e.offset).collect();
    let tensors = header
        .tensors
        .into_iter()
        .map(|e| {
            // check_layout proved data_start + end <= file length, so neither sum overflows
            // and both fit in usize.
            let begin = data_start + e.begin;
            let end = data_start + e.end;
            Tensor {
                name: e.name,
                dtype: e.dtype,
                shape: e.shape,
                data: bytes.slice(begin as usize..end as usize),
                location: Location { file, offset: begin },
            }
        })
        .collect();
    Ok(ParsedFile { tensors, entry_offsets, metadata: header.metadata })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Bytes {
        let mut f = (header.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(header.as_bytes());
        f.extend_from_slice(data);
        Bytes::from(f)
    }

    #[test]
    fn tensors_are_zero_copy_slices_in_data_order() {
        let h = r#"{"w":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},"v":{"dtype":"I16","shape":[],"data_offsets":[0,2]}}"#;
        let bytes = file(h, &[1, 2, 3, 4]);
        let model = parse(bytes.clone(), Path::new("t.safetensors")).unwrap();
        let names: Vec<&str> = model.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["v", "w"]);
        let w = model.tensor("w").unwrap();
        assert_eq!(&w.data[..], &[3, 4]);
        let data_start = 8 + h.len();
        assert_eq!(w.location, Location { file: 0, offset: data_start as u64 + 2 });
        assert_eq!(w.data.as_ptr(), bytes[data_start + 2..].as_ptr(), "slice of the input, not a copy");
        assert_eq!(model.version, "safetensors");
    }

    #[test]
    fn misaligned_data_is_accepted() {
        // A 1-byte tensor first puts the f32 at an odd offset: legal safetensors.
        let h = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}}"#;
        let model = parse(file(h, &[0, 0, 0, 128, 63]), Path::new("t")).unwrap();
        let b = model.tensor("b").unwrap();
        let v = smelt_tensor::storage::cast_or_copy::<f32>(&b.data).unwrap();
        assert_eq!(v[0], 1.0);
    }

    #[test]
    fn errors_name_the_file() {
        let err = parse(Bytes::from_static(b"\x01"), Path::new("x.safetensors")).unwrap_err();
        assert_eq!(err.path, Path::new("x.safetensors"));
        assert!(matches!(err.kind, crate::ErrorKind::Safetensors(SafetensorsError::FileTooShort { len: 1 })));
    }
}
