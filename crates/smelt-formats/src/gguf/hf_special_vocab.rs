//! A port of gguf-py's `SpecialVocab` (gguf/vocab.py), which `convert_hf_to_gguf.py` uses for
//! every HF tokenizer: BPE merges, special token ids, whether BOS/EOS/SEP are added, and the
//! chat template, read from `tokenizer.json`, `tokenizer_config.json` and `config.json`.
//!
//! The rules are gguf-py's, including its crude reading of a `TemplateProcessing`
//! post-processor. Two differences, both for files gguf-py would mishandle: ids at or above the
//! vocabulary size are skipped even when the caller gives no size (gguf-py only checks when it
//! is given one), and `generation_config.json`'s `bos_token_id` / `eos_token_id` fill ids
//! nothing else gave. Named chat templates are listed in sorted order (gguf-py lists a Python
//! set, whose order varies between runs).

use std::path::Path;

use serde_json::{Map, Value};

use crate::gguf::hf_error::HfToGgufError;
use crate::gguf::hf_json::JsonFile;
use crate::{MetaArray, MetaValue};

/// Special token types gguf-py looks for, in its order.
const SPECIAL_TYPES: [&str; 7] = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"];

/// What `SpecialVocab` collected.
#[derive(Debug, Default)]
pub(crate) struct SpecialVocab {
    pub merges: Vec<String>,
    /// Special token ids in the order gguf-py found them.
    pub ids: Vec<(String, u64)>,
    /// `add_{typ}_token` flags in the order gguf-py first set them.
    pub add: Vec<(String, bool)>,
    pub chat_template: Option<Value>,
}

/// Inputs `SpecialVocab` reads.
pub(crate) struct SpecialVocabSources<'a> {
    pub dir: &'a Path,
    /// `tokenizer.json`'s `post_processor`, if any.
    pub post_processor: Option<&'a Value>,
    /// `tokenizer.json`'s `added_tokens`: (id, content).
    pub added_tokens: &'a [(u64, String)],
    /// `tokenizer_config.json`, if present.
    pub tokenizer_config: Option<Map<String, Value>>,
    /// `config.json`, if present.
    pub config: Option<&'a Map<String, Value>>,
    /// `generation_config.json`, if present.
    pub generation_config: Option<&'a Map<String, Value>>,
    /// Vocabulary size: ids at or above it are skipped.
    pub n_vocab: u64,
}

impl SpecialVocab {
    fn set_add(&mut self, typ: &str, value: bool) {
        match self.add.iter_mut().find(|(t, _)| t == typ) {
            Some(entry) => entry.1 = value,
            None => self.add.push((typ.to_owned(), value)),
        }
    }

    /// `_set_special_token`: the first id given for a type wins; non-integers are ignored.
    fn set_id(&mut self, typ: &str, id: Option<&Value>, n_vocab: u64) {
        let Some(id) = id.and_then(Value::as_u64) else { return };
        if id >= n_vocab || self.ids.iter().any(|(t, _)| t == typ) {
            return;
        }
        self.ids.push((typ.to_owned(), id));
    }

    /// The GGUF keys `SpecialVocab.add_to_gguf` writes, in its order.
    pub fn to_gguf(&self) -> Vec<(String, MetaValue)> {
        let mut md = Vec::new();
        if !self.merges.is_empty() {
            md.push((
                "tokenizer.ggml.merges".to_owned(),
                MetaValue::Array(MetaArray::Str(self.merges.clone())),
            ));
        }
        for (typ, id) in &self.ids {
            let key = match typ.as_str() {
                "bos" => "tokenizer.ggml.bos_token_id",
                "eos" => "tokenizer.ggml.eos_token_id",
                "unk" => "tokenizer.ggml.unknown_token_id",
                "sep" => "tokenizer.ggml.seperator_token_id",
                "pad" => "tokenizer.ggml.padding_token_id",
                "mask" => "tokenizer.ggml.mask_token_id",
                "eot" => "tokenizer.ggml.eot_token_id",
                "eom" => "tokenizer.ggml.eom_token_id",
                // gguf-py has no writer method for cls ids; it skips them.
                _ => continue,
            };
            // set_id only keeps ids below the vocabulary size, which fits u32 (MAX_VOCAB).
            md.push((key.to_owned(), MetaValue::U32(u32::try_from(*id).unwrap_or(u32::MAX))));
        }
        for (typ, value) in &self.add {
            let key = match typ.as_str() {
                "bos" => "tokenizer.ggml.add_bos_token",
                "eos" => "tokenizer.ggml.add_eos_token",
                "sep" => "tokenizer.ggml.add_sep_token",
                _ => continue,
            };
            md.push((key.to_owned(), MetaValue::Bool(*value)));
        }
        match &self.chat_template {
            Some(Value::String(t)) if !t.is_empty() => {
                md.push(("tokenizer.chat_template".to_owned(), MetaValue::Str(t.clone())));
            }
            Some(Value::Array(choices)) => {
                let mut default = None;
                let mut named: Vec<(String, String)> = Vec::new();
                for choice in choices {
                    let name: String = choice
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                        .collect();
                    let Some(template) = choice.get("template").and_then(Value::as_str) else { continue };
                    if name.is_empty() {
                        continue;
                    }
                    if name == "default" {
                        default = Some(template.to_owned());
                    } else if !named.iter().any(|(n, _)| *n == name) {
                        named.push((name, template.to_owned()));
                    } else if let Some(entry) = named.iter_mut().find(|(n, _)| *n == name) {
                        entry.1 = template.to_owned();
                    }
                }
                named.sort();
                for (name, template) in &named {
                    if !template.is_empty() {
                        md.push((
                            format!("tokenizer.chat_template.{name}"),
                            MetaValue::Str(template.clone()),
                        ));
                    }
                }
                if !named.is_empty() {
                    let names = named.into_iter().map(|(n, _)| n).collect();
                    md.push(("tokenizer.chat_templates".to_owned(), MetaValue::Array(MetaArray::Str(names))));
                }
                if let Some(t) = default.filter(|t| !t.is_empty()) {
                    md.push(("tokenizer.chat_template".to_owned(), MetaValue::Str(t)));
                }
            }
            _ => {}
        }
        md
    }
}

/// Python truthiness of an optional JSON value (None, null, false, 0, "", [] and {} are false).
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// `x.get('SpecialToken', {}).get('id')` on a template element.
fn special_id(piece: Option<&Value>) -> Option<&Value> {
    piece?.get("SpecialToken")?.get("id").filter(|v| truthy(Some(v)))
}

fn sequence_id(piece: Option<&Value>) -> Option<&Value> {
    piece?.get("Sequence")?.get("id")
}

/// Runs gguf-py's `SpecialVocab._load` (merges are filled in by the caller).
pub(crate) fn load_special_vocab(src: SpecialVocabSources<'_>) -> Result<SpecialVocab, HfToGgufError> {
    let mut sv = SpecialVocab::default();
    let mut types: Vec<&str> = SPECIAL_TYPES.to_vec();
    let mut tc = src.tokenizer_config;
    let tc_truthy = |tc: &Option<Map<String, Value>>| tc.as_ref().is_some_and(|m| !m.is_empty());
    let tc_get = |tc: &Option<Map<String, Value>>, k: &str| tc.as_ref().and_then(|m| m.get(k)).cloned();

    let mut special_bos = tc_get(&tc, "bos_token");
    let mut special_cls = tc_get(&tc, "cls_token");
    let mut special_eos = tc_get(&tc, "eos_token");
    let mut special_sep = tc_get(&tc, "sep_token");
    if !truthy(special_bos.as_ref()) && truthy(special_cls.as_ref()) && tc_truthy(&tc) {
        special_bos = special_cls.clone();
        set(&mut tc, "bos_token", special_bos.clone());
    }
    if !truthy(special_eos.as_ref()) && truthy(special_sep.as_ref()) && tc_truthy(&tc) {
        special_eos = special_sep.clone();
        set(&mut tc, "eos_token", special_eos.clone());
    }
    if let Some(pp) = src.post_processor.filter(|v| truthy(Some(v))) {
        let processors: Vec<&Value> = match pp.get("processors").and_then(Value::as_array) {
            Some(list) => list.iter().collect(),
            None => vec![pp],
        };
        for processor in processors {
            match processor.get("type").and_then(Value::as_str) {
                Some("RobertaProcessing") => {
                    sv.set_add("bos", true);
                    sv.set_add("eos", true);
                    sv.set_add("sep", true);
                    if !truthy(special_cls.as_ref()) && tc_truthy(&tc) {
                        special_cls = first_of(processor.get("cls"), &special_bos);
                        set(&mut tc, "cls_token", special_cls.clone());
                    }
                    if !truthy(special_sep.as_ref()) && tc_truthy(&tc) {
                        special_sep = first_of(processor.get("sep"), &special_eos);
                        set(&mut tc, "sep_token", special_sep.clone());
                    }
                }
                Some("TemplateProcessing") => {
                    let empty = Vec::new();
                    let single = processor.get("single").and_then(Value::as_array).unwrap_or(&empty);
                    let pair = processor.get("pair").and_then(Value::as_array).unwrap_or(&empty);
                    let mut special_first = None;
                    let mut special_last = None;
                    if single.len() > 1 {
                        special_first = special_id(single.first()).cloned();
                        if let Some(first) = &special_first {
                            if !tc_truthy(&tc) {
                                special_bos = Some(first.clone());
                            }
                            let is_bos =
                                Some(first) == special_bos.as_ref() || Some(first) == special_cls.as_ref();
                            sv.set_add("bos", is_bos);
                        }
                        special_last = special_id(single.last()).cloned();
                        if let Some(last) = &special_last {
                            if !tc_truthy(&tc) {
                                special_eos = Some(last.clone());
                            } else if Some(last) != special_eos.as_ref() {
                                if !types.contains(&"eot") {
                                    types.push("eot");
                                    set(&mut tc, "eot_token", special_eos.clone());
                                } else if !types.contains(&"eom") {
                                    types.push("eom");
                                    set(&mut tc, "eom_token", special_eos.clone());
                                }
                                special_eos = Some(last.clone());
                                set(&mut tc, "eos_token", special_eos.clone());
                            }
                            sv.set_add("eos", Some(last) == special_eos.as_ref());
                        }
                    }
                    if !pair.is_empty() {
                        let start = usize::from(
                            special_first.is_some() && special_id(pair.first()) == special_first.as_ref(),
                        );
                        let stop = usize::from(
                            special_last.is_some() && special_id(pair.last()) == special_last.as_ref(),
                        );
                        let inner = if start + stop <= pair.len() {
                            &pair[start..pair.len() - stop]
                        } else {
                            &[][..]
                        };
                        let a = sequence_id(inner.first()).and_then(Value::as_str);
                        let b = sequence_id(inner.last()).and_then(Value::as_str);
                        if a == Some("A") && b == Some("B") && inner.len() > 2 {
                            let middle = &inner[1..inner.len() - 1];
                            let is_sep_or_eos = |v: &Value| {
                                Some(v) == special_sep.as_ref() || Some(v) == special_eos.as_ref()
                            };
                            let mut add_sep = false;
                            if let Some(entry) = special_id(middle.first()) {
                                if is_sep_or_eos(entry) && special_last.is_none() {
                                    add_sep = true;
                                }
                            }
                            if middle.len() == 2 {
                                if let Some(entry) = special_id(middle.get(1)) {
                                    if is_sep_or_eos(entry) {
                                        add_sep = true;
                                    }
                                }
                            }
                            sv.set_add("sep", add_sep);
                            if add_sep && !truthy(special_sep.as_ref()) && tc_truthy(&tc) {
                                set(&mut tc, "sep_token", special_eos.clone());
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    if let Some(tc) = tc.as_ref().filter(|m| !m.is_empty()) {
        sv.chat_template = chat_template(src.dir, tc)?;
        for typ in &types {
            if let Some(Value::Bool(b)) = tc.get(&format!("add_{typ}_token")) {
                sv.set_add(typ, *b);
            }
            let content = match tc.get(&format!("{typ}_token")) {
                Some(Value::String(s)) => s.as_str(),
                Some(Value::Object(o)) => match o.get("content") {
                    Some(Value::String(s)) => s.as_str(),
                    _ => continue,
                },
                _ => continue,
            };
            let id = src.added_tokens.iter().find(|(_, c)| c == content).map(|(id, _)| Value::from(*id));
            sv.set_id(typ, id.as_ref(), src.n_vocab);
        }
    }
    if let Some(config) = src.config {
        for typ in &types {
            let key = format!("{typ}_token_id");
            let id =
                config.get(&key).filter(|v| !v.is_null()).or_else(|| config.get("text_config")?.get(&key));
            sv.set_id(typ, id, src.n_vocab);
        }
    }
    if let Some(generation) = src.generation_config {
        for typ in ["bos", "eos"] {
            sv.set_id(typ, generation.get(&format!("{typ}_token_id")), src.n_vocab);
        }
    }
    Ok(sv)
}

/// `processor.get(key, [default])[0]`.
fn first_of(list: Option<&Value>, default: &Option<Value>) -> Option<Value> {
    match list {
        Some(Value::Array(a)) => a.first().cloned(),
        Some(other) => Some(other.clone()),
        None => default.clone(),
    }
}

fn set(tc: &mut Option<Map<String, Value>>, key: &str, value: Option<Value>) {
    if let Some(m) = tc.as_mut() {
        m.insert(key.to_owned(), value.unwrap_or(Value::Null));
    }
}

/// `tokenizer_config['chat_template']`, else `chat_template.jinja` (with
/// `additional_chat_templates/*.jinja` as named ones), else `chat_template.json`.
fn chat_template(dir: &Path, tc: &Map<String, Value>) -> Result<Option<Value>, HfToGgufError> {
    let template = match tc.get("chat_template") {
        Some(t) => Some(t.clone()),
        None => chat_template_files(dir)?,
    };
    Ok(template.filter(|t| matches!(t, Value::Null | Value::String(_) | Value::Array(_))))
}

fn chat_template_files(dir: &Path) -> Result<Option<Value>, HfToGgufError> {
    let jinja = dir.join("chat_template.jinja");
    if let Some(file) = JsonFile::read_optional(&jinja)? {
        let extra_dir = dir.join("additional_chat_templates");
        let mut extra: Vec<std::path::PathBuf> = match std::fs::read_dir(&extra_dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "jinja"))
                .collect(),
            Err(_) => Vec::new(),
        };
        if extra.is_empty() {
            return Ok(Some(Value::String(file.text)));
        }
        extra.sort();
        let mut list = vec![serde_json::json!({"name": "default", "template": file.text})];
        for p in extra {
            let Some(t) = JsonFile::read_optional(&p)? else { continue };
            let name = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            list.push(serde_json::json!({"name": name, "template": t.text}));
        }
        return Ok(Some(Value::Array(list)));
    }
    let json = dir.join("chat_template.json");
    match JsonFile::read_optional(&json)? {
        Some(file) => {
            let v: Value = file.parse()?;
            Ok(v.get("chat_template").cloned())
        }
        None => Ok(None),
    }
}
