//! The GGUF sink. From a GGUF input every metadata key is carried over (so a requantized
//! llama.cpp file stays loadable) with `general.file_type` and `general.quantization_version`
//! updated; from an HF Llama-family checkpoint the architecture and tokenizer metadata, tensor
//! names and the Q/K row permutation are those of llama.cpp's `convert_hf_to_gguf.py`.

use std::path::{Path, PathBuf};

use smelt_formats::gguf::{
    hf_config_to_gguf_metadata, hf_tensor_name_to_gguf, llama_file_type, permute_qk,
    tokenizer_to_gguf_metadata, GgufTensorDecl, GgufWriter, HfArch, GGML_QUANT_VERSION,
};
use smelt_formats::{Format, MetaValue};
use smelt_tensor::DType;

use super::write_err;
use crate::atomic::AtomicFile;
use crate::encode::Encoded;
use crate::like::StoredAs;
use crate::plan::PlanEntry;
use crate::run::{Sink, SinkContext};
use crate::scheme::Scheme;
use crate::ConvertError;

/// What a tensor becomes in the GGUF: its name, and the head count to permute its rows by.
struct Target {
    name: String,
    permute_heads: Option<u64>,
}

pub(crate) struct GgufSink {
    writer: Option<GgufWriter<AtomicFile>>,
    targets: Vec<Target>,
    next: usize,
    path: PathBuf,
}

/// The stored dtype a planned entry will have.
fn stored_dtype(e: &PlanEntry) -> DType {
    match e.scheme {
        Scheme::Cast(d) | Scheme::Ggml(d) => d,
        _ => e.dtype,
    }
}

/// `general.file_type` for the plan: the type holding most parameters among 2-D+ tensors.
fn file_type(entries: &[PlanEntry]) -> u32 {
    let mut by_type: Vec<(DType, u64)> = Vec::new();
    for e in entries.iter().filter(|e| e.shape.len() >= 2) {
        let d = stored_dtype(e);
        let n = smelt_tensor::numel(&e.shape).unwrap_or(0);
        match by_type.iter_mut().find(|(t, _)| *t == d) {
            Some((_, c)) => *c += n,
            None => by_type.push((d, n)),
        }
    }
    by_type.iter().max_by_key(|(_, n)| *n).and_then(|(d, _)| llama_file_type(*d)).unwrap_or(0)
}

fn set(meta: &mut Vec<(String, MetaValue)>, key: &str, value: MetaValue) {
    match meta.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => meta.push((key.to_string(), value)),
    }
}

fn checkpoint_dir(input: &Path) -> PathBuf {
    if input.is_dir() {
        input.to_path_buf()
    } else {
        input.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
    }
}

impl GgufSink {
    pub(crate) fn open(file: AtomicFile, ctx: &SinkContext<'_>) -> Result<GgufSink, ConvertError> {
        let path = ctx.output.to_path_buf();
        let model = ctx.model;
        let entries = &ctx.plan.entries;
        let quantized = entries.iter().any(|e| stored_dtype(e).is_ggml_block());
        let (metadata, targets) = match model.format {
            Format::Gguf => {
                let mut meta = model.metadata.clone();
                set(&mut meta, "general.file_type", MetaValue::U32(file_type(entries)));
                if quantized {
                    set(&mut meta, "general.quantization_version", MetaValue::U32(GGML_QUANT_VERSION));
                }
                let targets =
                    entries.iter().map(|e| Target { name: e.name.clone(), permute_heads: None }).collect();
                (meta, targets)
            }
            Format::Safetensors => {
                let config = model.config.as_ref().ok_or_else(|| {
                    write_err(
                        &path,
                        "GGUF output from safetensors needs the checkpoint's config.json (HF Llama family)",
                    )
                })?;
                let arch = HfArch::from_model_type(&config.model_type).ok_or_else(|| {
                    write_err(
                        &path,
                        format!(
                            "GGUF output supports HF llama, mistral and qwen2 checkpoints, not '{}'",
                            config.model_type
                        ),
                    )
                })?;
                let dir = checkpoint_dir(ctx.input);
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "model".into());
                let mut meta = hf_config_to_gguf_metadata(config, &name, file_type(entries))
                    .map_err(|e| write_err(&path, e))?;
                if quantized {
                    set(&mut meta, "general.quantization_version", MetaValue::U32(GGML_QUANT_VERSION));
                }
                meta.extend(tokenizer_to_gguf_metadata(&dir).map_err(|e| write_err(&path, e))?);
                let n_head = config.num_heads.unwrap_or(0);
                let n_head_kv = config.num_kv_heads.unwrap_or(n_head);
                let targets = entries
                    .iter()
                    .map(|e| {
                        let name = hf_tensor_name_to_gguf(&e.name, arch).ok_or_else(|| {
                            write_err(
                                &path,
                                format!(
                                    "tensor '{}' has no GGUF name for the {} architecture",
                                    e.name,
                                    arch.gguf_arch()
                                ),
                            )
                        })?;
                        let permute_heads = if !arch.permutes_qk() {
                            None
                        } else if e.name.contains(".self_attn.q_proj.") {
                            Some(n_head)
                        } else if e.name.contains(".self_attn.k_proj.") {
                            Some(n_head_kv)
                        } else {
                            None
                        };
                        Ok(Target { name, permute_heads })
                    })
                    .collect::<Result<Vec<_>, ConvertError>>()?;
                (meta, targets)
            }
            Format::Onnx => {
                return Err(write_err(&path, "GGUF output from ONNX is not supported; write a .smelt blob"))
            }
        };
        let decls: Vec<GgufTensorDecl> = entries
            .iter()
            .zip(&targets)
            .map(|(e, t)| GgufTensorDecl::new(t.name.clone(), stored_dtype(e), e.shape.clone()))
            .collect();
        let writer = GgufWriter::new(file, &metadata, &decls).map_err(|e| write_err(&path, e))?;
        Ok(GgufSink { writer: Some(writer), targets, next: 0, path })
    }
}

impl Sink for GgufSink {
    fn stored_as(&self, index: usize, entry: &PlanEntry) -> StoredAs {
        match self.targets.get(index) {
            Some(t) => StoredAs { name: t.name.clone(), permute_heads: t.permute_heads },
            None => StoredAs { name: entry.name.clone(), permute_heads: None },
        }
    }

    fn write(&mut self, entry: &PlanEntry, encoded: &Encoded) -> Result<Option<String>, ConvertError> {
        let Encoded::Plain { dtype, data } = encoded else {
            return Err(write_err(
                &self.path,
                format!("tensor '{}': GGUF holds ggml types only", entry.name),
            ));
        };
        let target = &self.targets[self.next];
        self.next += 1;
        let w = self.writer.as_mut().expect("GGUF sink used after finish");
        match target.permute_heads {
            // Rows move whole, so permuting the encoded rows equals encoding permuted rows.
            Some(heads) => {
                let permuted = permute_qk(data, *dtype, &entry.shape, heads)
                    .map_err(|e| write_err(&self.path, format!("tensor '{}': {e}", entry.name)))?;
                w.write_tensor(&target.name, &permuted)
            }
            None => w.write_tensor(&target.name, data),
        }
        .map_err(|e| write_err(&self.path, e))?;
        Ok((target.name != entry.name).then(|| target.name.clone()))
    }

    fn finish(mut self: Box<Self>) -> Result<AtomicFile, ConvertError> {
        let w = self.writer.take().expect("GGUF sink finished twice");
        w.finish().map_err(|e| write_err(&self.path, e))
    }
}
