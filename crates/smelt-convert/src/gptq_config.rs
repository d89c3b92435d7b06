//! `quantize_config.json`, the file beside a GPTQ checkpoint that tells its loaders how the
//! `qweight`/`qzeros`/`scales`/`g_idx` tensors were made. AutoGPTQ and GPTQModel read it from
//! the checkpoint directory; transformers, vLLM and others read the same object as
//! `quantization_config` in `config.json`.
//!
//! Fields and order are AutoGPTQ's `BaseQuantizeConfig.to_dict` (`auto_gptq/quantization/
//! config.py`): `bits`, `group_size` (-1: one group per row), `damp_percent`, `desc_act`,
//! `static_groups`, `sym`, `true_sequential`, `model_name_or_path`, `model_file_base_name`,
//! `quant_method` (`gptq`), `checkpoint_format`; then `meta.quantizer`, where GPTQModel
//! (`gptqmodel/quantization/config.py`) records the producing tool as `name:version`, which
//! AutoGPTQ ignores with a warning. `checkpoint_format` says how `qzeros` is stored: `gptq`
//! (v1, every zero minus one, what AutoGPTQ and every loader reads) or `gptq_v2` (GPTQModel
//! only, zeros as they are). Written as Python's `json.dump(..., indent=2)` writes it.

use serde::Serialize;
use smelt_quant::int4::{Int4Mode, QzerosFormat};

/// File name loaders look for in the checkpoint directory.
pub const QUANTIZE_CONFIG_FILE: &str = "quantize_config.json";

/// How a GPTQ checkpoint was quantized, as its loaders want to be told.
#[derive(Clone, Debug, PartialEq)]
pub struct GptqConfig {
    /// Bits per weight (smelt packs 4).
    pub bits: u32,
    /// Input columns per group; `None` for one group per row (written as -1).
    pub group_size: Option<usize>,
    /// GPTQ's Hessian damping, as a fraction of the mean diagonal. Loaders only check that it
    /// is in (0, 1); round-to-nearest quantization does not use it.
    pub damp_percent: f64,
    /// Act-order: columns quantized in order of decreasing Hessian diagonal, so `g_idx` is
    /// not `i / group_size`.
    pub desc_act: bool,
    /// Group parameters computed before act-order reordering (GPTQ's `static_groups`).
    pub static_groups: bool,
    /// Symmetric quantization (zero point fixed at 8 for 4 bits).
    pub sym: bool,
    /// Sub-layers quantized one after another within a block (GPTQ's default).
    pub true_sequential: bool,
    /// Weights file name without `.safetensors`; `None` lets loaders look for `model`.
    pub model_file_base_name: Option<String>,
    /// How `qzeros` is stored.
    pub qzeros: QzerosFormat,
}

impl GptqConfig {
    /// The configuration of 4-bit weights quantized by smelt's round-to-nearest with groups of
    /// `group_size` columns (no act-order), `qzeros` packed as `qzeros`.
    pub fn int4_rtn(group_size: usize, mode: Int4Mode, qzeros: QzerosFormat) -> GptqConfig {
        GptqConfig {
            bits: 4,
            group_size: Some(group_size),
            damp_percent: 0.01,
            desc_act: false,
            static_groups: false,
            sym: mode == Int4Mode::Symmetric,
            true_sequential: true,
            model_file_base_name: None,
            qzeros,
        }
    }

    /// The `checkpoint_format` string for the `qzeros` layout.
    pub fn checkpoint_format(&self) -> &'static str {
        match self.qzeros {
            QzerosFormat::V1 => "gptq",
            QzerosFormat::V2 => "gptq_v2",
        }
    }

    /// The configuration as a JSON object (for `quantization_config` in `config.json`).
    pub fn to_json_value(&self) -> serde_json::Value {
        // Serializing a struct of plain fields cannot fail.
        serde_json::to_value(self.serialized()).unwrap_or_default()
    }

    /// The text of `quantize_config.json`: two-space indentation, keys in AutoGPTQ's order,
    /// no trailing newline (as `json.dump(..., indent=2)`).
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(&self.serialized()).unwrap_or_default()
    }

    fn serialized(&self) -> SerializedConfig<'_> {
        SerializedConfig {
            bits: self.bits,
            group_size: self.group_size.map_or(-1, |g| i64::try_from(g).unwrap_or(i64::MAX)),
            damp_percent: self.damp_percent,
            desc_act: self.desc_act,
            static_groups: self.static_groups,
            sym: self.sym,
            true_sequential: self.true_sequential,
            model_name_or_path: None,
            model_file_base_name: self.model_file_base_name.as_deref(),
            quant_method: "gptq",
            checkpoint_format: self.checkpoint_format(),
            meta: Meta { quantizer: [concat!("smelt:", env!("CARGO_PKG_VERSION"))] },
        }
    }
}

/// The JSON object, fields in AutoGPTQ's `to_dict` order.
#[derive(Serialize)]
struct SerializedConfig<'a> {
    bits: u32,
    group_size: i64,
    damp_percent: f64,
    desc_act: bool,
    static_groups: bool,
    sym: bool,
    true_sequential: bool,
    model_name_or_path: Option<&'a str>,
    model_file_base_name: Option<&'a str>,
    quant_method: &'static str,
    checkpoint_format: &'static str,
    meta: Meta,
}

/// GPTQModel's `meta` object: which tool made the checkpoint.
#[derive(Serialize)]
struct Meta {
    quantizer: [&'static str; 1],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_autogptqs_in_order() {
        let cfg = GptqConfig::int4_rtn(128, Int4Mode::Symmetric, QzerosFormat::V1);
        let text = cfg.to_json_string();
        let version = env!("CARGO_PKG_VERSION");
        let expected = format!(
            r#"{{
  "bits": 4,
  "group_size": 128,
  "damp_percent": 0.01,
  "desc_act": false,
  "static_groups": false,
  "sym": true,
  "true_sequential": true,
  "model_name_or_path": null,
  "model_file_base_name": null,
  "quant_method": "gptq",
  "checkpoint_format": "gptq",
  "meta": {{
    "quantizer": [
      "smelt:{version}"
    ]
  }}
}}"#
        );
        assert_eq!(text, expected);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value, cfg.to_json_value());
    }

    #[test]
    fn asymmetric_v2_per_row_and_named_file() {
        let mut cfg = GptqConfig::int4_rtn(64, Int4Mode::Asymmetric, QzerosFormat::V2);
        cfg.group_size = None;
        cfg.model_file_base_name = Some("model".to_owned());
        let v = cfg.to_json_value();
        assert_eq!(v["sym"], false);
        assert_eq!(v["group_size"], -1);
        assert_eq!(v["checkpoint_format"], "gptq_v2");
        assert_eq!(v["quant_method"], "gptq");
        assert_eq!(v["model_file_base_name"], "model");
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = vec![
            "bits",
            "group_size",
            "damp_percent",
            "desc_act",
            "static_groups",
            "sym",
            "true_sequential",
            "model_name_or_path",
            "model_file_base_name",
            "quant_method",
            "checkpoint_format",
            "meta",
        ];
        want.sort_unstable();
        assert_eq!(keys, want, "AutoGPTQ's fields plus meta");
    }
}
