//! The safetensors sink: casts as plain tensors, NF4 as bitsandbytes' `Linear4bit` state dict,
//! block int4 as a GPTQ checkpoint (`qweight`, `qzeros`, `scales`, `g_idx`) with its
//! `quantize_config.json`. When the input carried an HF `config.json`, a copy goes next to the
//! output (with `quantization_config` for NF4 and GPTQ, as transformers expects) — unless that
//! would overwrite the input's own.
//!
//! The writer reserves the header, streams tensors and writes the header last; the reservation
//! is computed from the names every scheme's layout will use.

use std::io::Write;
use std::path::{Path, PathBuf};

use smelt_formats::safetensors::{HeaderBudget, SafetensorsWriter};
use smelt_quant::int4::{Int4Mode, QzerosFormat};
use smelt_tensor::DType;

use super::write_err;
use crate::atomic::AtomicFile;
use crate::encode::Encoded;
use crate::gptq_config::GptqConfig;
use crate::plan::PlanEntry;
use crate::run::{Sink, SinkContext};
use crate::scheme::Scheme;
use crate::ConvertError;

/// Keys bitsandbytes writes under an NF4 weight (a superset: the nested ones only with double
/// quantization), for the header reservation.
const BNB_SUFFIXES: &[&str] =
    &["", ".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", ".quant_state.bitsandbytes__nf4"];
const GPTQ_SUFFIXES: &[&str] = &[".qweight", ".qzeros", ".scales", ".g_idx"];

pub(crate) struct SafetensorsSink {
    writer: Option<SafetensorsWriter<AtomicFile>>,
    path: PathBuf,
    /// Side files written with the main output, committed after it.
    side: Vec<(PathBuf, String)>,
}

/// The GPTQ module prefix of a weight (`...down_proj.weight` → `...down_proj`).
fn gptq_prefix(name: &str) -> &str {
    name.strip_suffix(".weight").unwrap_or(name)
}

/// Symmetric GPTQ uses AutoGPTQ's v1 `qzeros`; asymmetric needs v2, because a zero point of 0
/// cannot be stored in v1 (AutoGPTQ's loader reads it back as 16).
fn qzeros_format(mode: Int4Mode) -> QzerosFormat {
    match mode {
        Int4Mode::Symmetric => QzerosFormat::V1,
        Int4Mode::Asymmetric => QzerosFormat::V2,
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

impl SafetensorsSink {
    pub(crate) fn open(file: AtomicFile, ctx: &SinkContext<'_>) -> Result<SafetensorsSink, ConvertError> {
        let path = ctx.output.to_path_buf();
        let mut budget = HeaderBudget::new();
        let mut nf4: Option<bool> = None;
        let mut int4: Option<(u32, bool)> = None;
        for e in &ctx.plan.entries {
            match e.scheme {
                Scheme::Nf4 { double_quant } => {
                    nf4 = Some(double_quant);
                    for s in BNB_SUFFIXES {
                        budget.add_tensor(&format!("{}{s}", e.name));
                    }
                }
                Scheme::Int4 { group, symmetric } => {
                    int4 = Some((group, symmetric));
                    for s in GPTQ_SUFFIXES {
                        budget.add_tensor(&format!("{}{s}", gptq_prefix(&e.name)));
                    }
                }
                _ => budget.add_tensor(&e.name),
            }
        }
        let metadata = [("format".to_string(), "pt".to_string())];
        for (k, v) in &metadata {
            budget.add_metadata(k, v);
        }
        let writer = SafetensorsWriter::new(file, &budget).map_err(|e| write_err(&path, e))?;

        // Side files.
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| ".".into());
        let mut side = Vec::new();
        let quant_config = match (nf4, int4) {
            (Some(_), Some(_)) => {
                return Err(write_err(
                    &path,
                    "a safetensors checkpoint holds NF4 or GPTQ int4 weights, not both",
                ))
            }
            (Some(dq), None) => Some(serde_json::json!({
                "quant_method": "bitsandbytes",
                "load_in_4bit": true,
                "load_in_8bit": false,
                "bnb_4bit_quant_type": "nf4",
                "bnb_4bit_use_double_quant": dq,
                "bnb_4bit_compute_dtype": "float32",
                "bnb_4bit_quant_storage": "uint8",
            })),
            (None, Some((group, symmetric))) => {
                let mode = if symmetric { Int4Mode::Symmetric } else { Int4Mode::Asymmetric };
                let cfg = GptqConfig::int4_rtn(group as usize, mode, qzeros_format(mode));
                side.push((dir.join("quantize_config.json"), cfg.to_json_string()));
                let mut v = cfg.to_json_value();
                if let Some(o) = v.as_object_mut() {
                    o.insert("quant_method".into(), "gptq".into());
                    o.insert("checkpoint_format".into(), cfg.checkpoint_format().into());
                }
                Some(v)
            }
            (None, None) => None,
        };
        if let Some(cfg_path) =
            ctx.model.files.iter().find(|p| p.file_name().is_some_and(|n| n == "config.json"))
        {
            let dest = dir.join("config.json");
            if !same_file(cfg_path, &dest) {
                let text = std::fs::read_to_string(cfg_path).map_err(|e| write_err(cfg_path, e))?;
                let mut cfg: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| write_err(cfg_path, e))?;
                if let (Some(q), Some(o)) = (quant_config, cfg.as_object_mut()) {
                    o.insert("quantization_config".into(), q);
                }
                side.push((dest, serde_json::to_string_pretty(&cfg).unwrap_or_default()));
            }
        }
        Ok(SafetensorsSink { writer: Some(writer), path, side })
    }

    fn add(&mut self, name: &str, dtype: DType, shape: &[u64], data: &[u8]) -> Result<(), ConvertError> {
        let w = self.writer.as_mut().expect("safetensors sink used after finish");
        w.add_tensor(name, dtype, shape, data).map_err(|e| write_err(&self.path, e))
    }
}

impl Sink for SafetensorsSink {
    fn write(&mut self, entry: &PlanEntry, encoded: &Encoded) -> Result<Option<String>, ConvertError> {
        let tensors = match encoded {
            Encoded::Plain { dtype, data } => {
                self.add(&entry.name, *dtype, &entry.shape, data)?;
                return Ok(None);
            }
            Encoded::Nf4(t) => t
                .bnb_state_dict(&entry.name, entry.dtype)
                .map_err(|e| write_err(&self.path, format!("tensor '{}': {e}", entry.name)))?,
            Encoded::Int4(t) => {
                let packed = smelt_quant::int4::pack_gptq(t, qzeros_format(t.mode))
                    .map_err(|e| write_err(&self.path, format!("tensor '{}': {e}", entry.name)))?;
                packed.tensors(gptq_prefix(&entry.name))
            }
            Encoded::Int8(_) | Encoded::Ternary(..) => {
                return Err(write_err(
                    &self.path,
                    format!("tensor '{}': safetensors output cannot hold this scheme", entry.name),
                ))
            }
        };
        for t in &tensors {
            let shape: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
            self.add(&t.name, t.dtype, &shape, &t.bytes)?;
        }
        Ok(None)
    }

    fn finish(mut self: Box<Self>) -> Result<AtomicFile, ConvertError> {
        let w = self.writer.take().expect("safetensors sink finished twice");
        let file =
            w.finish(&[("format".to_string(), "pt".to_string())]).map_err(|e| write_err(&self.path, e))?;
        // Side files are complete before the main output is committed; each appears atomically.
        for (p, text) in &self.side {
            let mut f = AtomicFile::create(p).map_err(|e| write_err(p, e))?;
            f.write_all(text.as_bytes()).map_err(|e| write_err(p, e))?;
            f.commit().map_err(|e| write_err(p, e))?;
        }
        Ok(file)
    }
}
