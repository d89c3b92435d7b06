//! Hardened readers for the model formats smelt ingests — safetensors (single and sharded),
//! ONNX (inline and external data), GGUF — into one [`Model`] of zero-copy tensor views.
//!
//! Every reader treats its input as hostile: arithmetic is checked, counts and lengths are
//! compared with the real file size before anything is allocated, strings, arrays, rank and
//! nesting are capped ([`limits`]), and every failure is an [`Error`] naming the file, the
//! tensor or field, and the byte offset. No input makes a reader panic, hang or allocate far
//! beyond the file's own size.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod blob;
pub mod config;
pub mod cursor;
mod error;
pub mod gguf;
pub mod limits;
mod model;
pub mod npy;
pub mod npz;
pub mod onnx;
pub mod safetensors;

use std::path::{Path, PathBuf};

pub use error::{Error, ErrorKind};
pub use model::{ArchConfig, Format, Location, MetaArray, MetaValue, Model, Tensor};

/// Extensions of Python pickle checkpoints, which are refused.
pub const PICKLE_EXTENSIONS: &[&str] = &["bin", "pt", "pth", "ckpt", "pkl", "pickle"];

/// File name of a sharded safetensors checkpoint's index.
pub const SHARD_INDEX_NAME: &str = "model.safetensors.index.json";

/// Opens a model file or checkpoint directory, choosing the reader from the path and the
/// file's first bytes.
///
/// A directory is read as, in order of preference: a sharded safetensors checkpoint
/// (`model.safetensors.index.json`), its single `*.safetensors`, `*.onnx` or `*.gguf` file.
/// An HF `config.json` beside a safetensors checkpoint becomes [`Model::config`].
pub fn open(path: &Path) -> Result<Model, Error> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return open_dir(path);
    }
    let kind = detect_file(path)?;
    let mut model = match kind {
        Format::Safetensors if is_shard_index(path) => safetensors::read_sharded(path)?,
        Format::Safetensors => safetensors::read_file(path)?,
        Format::Onnx => onnx::read(path)?,
        Format::Gguf => gguf::read(path)?,
    };
    if model.format == Format::Safetensors {
        attach_hf_config(&mut model, path.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(model)
}

fn is_shard_index(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".index.json"))
}

fn extension(path: &Path) -> Option<String> {
    path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase())
}

/// Decides a single file's format from its extension and first bytes, refusing pickles.
pub fn detect_file(path: &Path) -> Result<Format, Error> {
    let ext = extension(path);
    if let Some(ext) = &ext {
        if PICKLE_EXTENSIONS.contains(&ext.as_str()) {
            return Err(Error::new(path, ErrorKind::Pickle { ext: ext.clone() }));
        }
    }
    if is_shard_index(path) {
        return Ok(Format::Safetensors);
    }
    let mut magic = [0u8; 9];
    let n = read_prefix(path, &mut magic)?;
    let magic = &magic[..n];
    if magic.starts_with(b"GGUF") {
        return Ok(Format::Gguf);
    }
    if ext.as_deref() == Some("gguf") {
        // Let the GGUF reader name the bad magic with its offset.
        return Ok(Format::Gguf);
    }
    if ext.as_deref() == Some("safetensors") || (n == 9 && magic[8] == b'{') {
        return Ok(Format::Safetensors);
    }
    if ext.as_deref() == Some("onnx") {
        return Ok(Format::Onnx);
    }
    // torch.save writes a zip archive (PK\x03\x04) or a raw pickle (protocol byte 0x80).
    if magic.starts_with(b"PK\x03\x04") || (n >= 2 && magic[0] == 0x80 && magic[1] <= 5) {
        return Err(Error::new(path, ErrorKind::Pickle { ext: ext.unwrap_or_default() }));
    }
    Err(Error::new(path, ErrorKind::UnknownFormat { magic: magic[..n.min(8)].to_vec() }))
}

fn read_prefix(path: &Path, buf: &mut [u8]) -> Result<usize, Error> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(n)
}

fn open_dir(dir: &Path) -> Result<Model, Error> {
    let index = dir.join(SHARD_INDEX_NAME);
    if index.is_file() {
        let mut model = safetensors::read_sharded(&index)?;
        attach_hf_config(&mut model, dir)?;
        return Ok(model);
    }
    let mut by_ext: Vec<(String, PathBuf)> = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let p = entry.path();
        if !p.is_file() {
            continue;
        }
        if let Some(ext) = extension(&p) {
            by_ext.push((ext, p));
        }
    }
    by_ext.sort_by(|a, b| a.1.cmp(&b.1));
    for wanted in ["safetensors", "onnx", "gguf"] {
        let found: Vec<&PathBuf> = by_ext.iter().filter(|(e, _)| e == wanted).map(|(_, p)| p).collect();
        match found.len() {
            0 => continue,
            1 => return open(found[0]),
            count => {
                return Err(Error::new(
                    dir,
                    ErrorKind::AmbiguousDirectory {
                        count,
                        first: found[0].file_name().unwrap_or_default().to_string_lossy().into_owned(),
                    },
                ))
            }
        }
    }
    if let Some((ext, p)) = by_ext.iter().find(|(e, _)| PICKLE_EXTENSIONS.contains(&e.as_str())) {
        return Err(Error::new(p, ErrorKind::Pickle { ext: ext.clone() }));
    }
    Err(Error::new(dir, ErrorKind::NoModelInDirectory))
}

fn attach_hf_config(model: &mut Model, dir: &Path) -> Result<(), Error> {
    let cfg = dir.join("config.json");
    if cfg.is_file() {
        model.config = Some(config::read_hf_config(&cfg)?);
        model.files.push(cfg);
    }
    Ok(())
}
