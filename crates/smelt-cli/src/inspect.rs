//! `smelt inspect`: what a model holds, for people (a summary, optionally a tensor table) and
//! for machines (`--json`, schema `smelt.inspect/1`, documented in docs/inspect-json.md).
//!
//! Both renderings come from one [`Report`], so they cannot disagree.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;
use smelt_formats::{MetaValue, Model};

use crate::size;

mod blob;

/// Arrays longer than this are summarised (type and length) rather than listed, in both
/// renderings, unless `--full-metadata` is given.
const ARRAY_INLINE_MAX: usize = 16;

/// Arguments of `smelt inspect`.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// A model file (.safetensors, model.safetensors.index.json, .onnx, .gguf, a smelt blob
    /// .smelt) or a checkpoint directory.
    path: PathBuf,
    /// Add a table of every tensor: name, dtype, shape, bytes, file offset.
    #[arg(long)]
    tensors: bool,
    /// Print JSON (schema smelt.inspect/1) instead of text; always includes the tensors.
    #[arg(long)]
    json: bool,
    /// Print metadata arrays in full instead of summarising long ones.
    #[arg(long)]
    full_metadata: bool,
}

#[derive(Serialize)]
struct Report {
    schema: &'static str,
    path: String,
    format: &'static str,
    version: String,
    files: Vec<String>,
    tensor_count: usize,
    parameters: u64,
    bytes: u64,
    by_dtype: Vec<DtypeTotal>,
    architecture: Option<Architecture>,
    graph: Option<GraphSummary>,
    metadata: Vec<MetaEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tensors: Option<Vec<TensorRow>>,
}

#[derive(Serialize)]
struct DtypeTotal {
    dtype: String,
    tensors: usize,
    parameters: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct Architecture {
    model_type: String,
    architecture: Option<String>,
    hidden_size: Option<u64>,
    num_layers: Option<u64>,
    num_heads: Option<u64>,
    num_kv_heads: Option<u64>,
    head_dim: Option<u64>,
    intermediate_size: Option<u64>,
    vocab_size: Option<u64>,
    max_position_embeddings: Option<u64>,
    rope_theta: Option<f64>,
    rms_norm_eps: Option<f64>,
    tie_word_embeddings: Option<bool>,
    dtype: Option<String>,
}

#[derive(Serialize)]
struct GraphSummary {
    name: String,
    ir_version: i64,
    producer: String,
    opsets: Vec<Opset>,
    inputs: Vec<GraphValue>,
    outputs: Vec<GraphValue>,
    nodes: usize,
    /// Node count per operator, keyed `op_type` (default domain) or `domain::op_type`.
    ops: BTreeMap<String, usize>,
}

#[derive(Serialize)]
struct Opset {
    domain: String,
    version: i64,
}

#[derive(Serialize)]
struct GraphValue {
    name: String,
    /// smelt dtype name, the ONNX name of a type smelt does not hold, or a non-tensor kind.
    dtype: String,
    /// Dimensions: integers, symbolic names as strings, `null` when unknown; absent when even
    /// the rank is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    shape: Option<Vec<serde_json::Value>>,
}

#[derive(Serialize)]
struct MetaEntry {
    key: String,
    #[serde(rename = "type")]
    type_name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    elem_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    len: Option<usize>,
    /// Absent when a long array is summarised.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct TensorRow {
    name: String,
    dtype: String,
    shape: Vec<u64>,
    parameters: u64,
    bytes: u64,
    file: usize,
    offset: u64,
}

/// Runs `smelt inspect`.
pub fn run(args: &InspectArgs) -> Result<ExitCode> {
    if let Some(code) = crate::delta::inspect_update(&args.path, args.json)? {
        return Ok(code);
    }
    let mut out = String::new();
    if blob::is_blob(&args.path) {
        let report = blob::build(args)?;
        if args.json {
            out = serde_json::to_string_pretty(&report)?;
            out.push('\n');
        } else {
            blob::render_text(&report, &mut out);
        }
        print!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    let model = smelt_formats::open(&args.path)?;
    let report = build(&model, args);
    if args.json {
        out = serde_json::to_string_pretty(&report)?;
        out.push('\n');
    } else {
        render_text(&report, &mut out);
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn build(model: &Model, args: &InspectArgs) -> Report {
    let mut totals: BTreeMap<smelt_tensor::DType, DtypeTotal> = BTreeMap::new();
    for t in &model.tensors {
        let e = totals.entry(t.dtype).or_insert_with(|| DtypeTotal {
            dtype: t.dtype.name().to_string(),
            tensors: 0,
            parameters: 0,
            bytes: 0,
        });
        e.tensors += 1;
        e.parameters = e.parameters.saturating_add(t.numel());
        e.bytes = e.bytes.saturating_add(t.data.len() as u64);
    }
    let tensors = (args.json || args.tensors).then(|| {
        model
            .tensors
            .iter()
            .map(|t| TensorRow {
                name: t.name.clone(),
                dtype: t.dtype.name().to_string(),
                shape: t.shape.clone(),
                parameters: t.numel(),
                bytes: t.data.len() as u64,
                file: t.location.file,
                offset: t.location.offset,
            })
            .collect()
    });
    let architecture = model.config.as_ref().map(|c| Architecture {
        model_type: c.model_type.clone(),
        architecture: c.architecture.clone(),
        hidden_size: c.hidden_size,
        num_layers: c.num_layers,
        num_heads: c.num_heads,
        num_kv_heads: c.num_kv_heads,
        head_dim: c.head_dim,
        intermediate_size: c.intermediate_size,
        vocab_size: c.vocab_size,
        max_position_embeddings: c.max_position_embeddings,
        rope_theta: c.rope_theta,
        rms_norm_eps: c.rms_norm_eps,
        tie_word_embeddings: c.tie_word_embeddings,
        dtype: c.dtype.clone(),
    });
    let graph = model.graph.as_ref().map(graph_summary);
    let metadata = model.metadata.iter().map(|(k, v)| meta_entry(k, v, args.full_metadata)).collect();
    Report {
        schema: "smelt.inspect/1",
        path: args.path.display().to_string(),
        format: model.format.name(),
        version: model.version.clone(),
        files: model.files.iter().map(|p| p.display().to_string()).collect(),
        tensor_count: model.tensors.len(),
        parameters: model.parameter_count(),
        bytes: model.tensors.iter().map(|t| t.data.len() as u64).sum(),
        by_dtype: totals.into_values().collect(),
        architecture,
        graph,
        metadata,
        tensors,
    }
}

fn graph_summary(g: &smelt_formats::onnx::OnnxGraph) -> GraphSummary {
    use smelt_formats::onnx::{Dim, ElemType, ValueInfo, ValueType};
    let value = |v: &ValueInfo<'_>| {
        let (dtype, shape) = match &v.ty {
            ValueType::Tensor { elem, shape, sparse } => {
                let mut d = match elem {
                    ElemType::DType(d) => d.name().to_string(),
                    ElemType::Unsupported(name) => (*name).to_string(),
                    ElemType::Unknown(id) => format!("unknown type {id}"),
                };
                if *sparse {
                    d = format!("sparse {d}");
                }
                let shape = shape.as_ref().map(|dims| {
                    dims.iter()
                        .map(|dim| match dim {
                            Dim::Fixed(n) => serde_json::Value::from(*n),
                            Dim::Symbolic(s) => serde_json::Value::from(*s),
                            Dim::Unknown => serde_json::Value::Null,
                        })
                        .collect()
                });
                (d, shape)
            }
            ValueType::Other(kind) => ((*kind).to_string(), None),
            ValueType::Missing => ("untyped".to_string(), None),
        };
        GraphValue { name: v.name.to_string(), dtype, shape }
    };
    let mut ops = BTreeMap::new();
    for n in g.nodes() {
        let op = n.op_type.as_deref().unwrap_or("");
        let key = match n.domain.as_deref() {
            None | Some("") | Some("ai.onnx") => op.to_string(),
            Some(domain) => format!("{domain}::{op}"),
        };
        *ops.entry(key).or_insert(0) += 1;
    }
    let producer = match (g.producer_name(), g.producer_version()) {
        (n, "") => n.to_string(),
        (n, v) => format!("{n} {v}"),
    };
    GraphSummary {
        name: g.name().to_string(),
        ir_version: g.ir_version(),
        producer,
        opsets: g
            .opset_imports()
            .iter()
            .map(|o| Opset {
                domain: if o.domain.is_empty() { "ai.onnx".into() } else { o.domain.to_string() },
                version: o.version,
            })
            .collect(),
        inputs: g.runtime_inputs().iter().map(value).collect(),
        outputs: g.outputs().iter().map(value).collect(),
        nodes: g.nodes().len(),
        ops,
    }
}

fn meta_entry(key: &str, v: &MetaValue, full: bool) -> MetaEntry {
    match v {
        MetaValue::Array(a) => MetaEntry {
            key: key.to_string(),
            type_name: v.type_name(),
            elem_type: Some(a.elem_type_name()),
            len: Some(a.len()),
            value: (full || a.len() <= ARRAY_INLINE_MAX).then(|| a.to_json()),
        },
        _ => MetaEntry {
            key: key.to_string(),
            type_name: v.type_name(),
            elem_type: None,
            len: None,
            value: Some(v.to_json()),
        },
    }
}

fn render_text(r: &Report, out: &mut String) {
    let _ = writeln!(out, "{}", r.path);
    let _ = writeln!(out, "  format        {}", r.version);
    if r.files.len() > 1 {
        let _ = writeln!(out, "  files         {}", r.files.len());
        for f in &r.files {
            let _ = writeln!(out, "                {f}");
        }
    }
    let _ = writeln!(out, "  tensors       {}", r.tensor_count);
    let _ = writeln!(out, "  parameters    {} ({})", size::count(r.parameters), r.parameters);
    let _ = writeln!(out, "  tensor bytes  {} ({})", size::bytes(r.bytes), r.bytes);
    for (i, d) in r.by_dtype.iter().enumerate() {
        let label = if i == 0 { "  by dtype" } else { "" };
        let _ = writeln!(
            out,
            "{label:<16}{:<9}{:>6} tensors {:>12} params {:>12}",
            d.dtype,
            d.tensors,
            size::count(d.parameters),
            size::bytes(d.bytes)
        );
    }
    if let Some(a) = &r.architecture {
        let _ = writeln!(out, "  architecture  {}", arch_line(a));
    }
    if let Some(g) = &r.graph {
        let opsets: Vec<String> = g.opsets.iter().map(|o| format!("{} {}", o.domain, o.version)).collect();
        let _ = writeln!(
            out,
            "  graph         {:?}, {} nodes, IR {}, {}",
            g.name,
            g.nodes,
            g.ir_version,
            opsets.join(", ")
        );
        if !g.producer.is_empty() {
            let _ = writeln!(out, "  producer      {}", g.producer);
        }
        for (label, values) in [("inputs", &g.inputs), ("outputs", &g.outputs)] {
            for (i, v) in values.iter().enumerate() {
                let shape = v
                    .shape
                    .as_ref()
                    .map(|s| {
                        let dims: Vec<String> = s
                            .iter()
                            .map(|d| match d {
                                serde_json::Value::String(s) => s.clone(),
                                serde_json::Value::Null => "?".into(),
                                other => other.to_string(),
                            })
                            .collect();
                        format!("[{}]", dims.join(", "))
                    })
                    .unwrap_or_else(|| "[?]".into());
                let l = if i == 0 { label } else { "" };
                let _ = writeln!(out, "  {l:<14}{} {} {shape}", v.name, v.dtype);
            }
        }
        let ops: Vec<String> = g.ops.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(out, "  ops           {}", ops.join(", "));
    }
    if !r.metadata.is_empty() {
        let _ = writeln!(out, "  metadata      {} keys", r.metadata.len());
        for m in &r.metadata {
            let value = match (&m.value, m.elem_type, m.len) {
                (Some(v), _, _) => truncate(&v.to_string(), 120),
                (None, Some(elem), Some(len)) => format!("[{elem} × {len}]"),
                _ => String::new(),
            };
            let _ = writeln!(out, "    {} = {value}", m.key);
        }
    }
    if let Some(rows) = &r.tensors {
        let name_w = rows.iter().map(|t| t.name.len()).max().unwrap_or(4).clamp(4, 60);
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  {:<name_w$}  {:<8} {:<22} {:>12} {:>12}",
            "name", "dtype", "shape", "bytes", "offset"
        );
        for t in rows {
            let shape = format!("{:?}", t.shape);
            let _ = writeln!(
                out,
                "  {:<name_w$}  {:<8} {:<22} {:>12} {:>12}",
                t.name, t.dtype, shape, t.bytes, t.offset
            );
        }
    }
}

fn arch_line(a: &Architecture) -> String {
    let mut parts = vec![match &a.architecture {
        Some(arch) => format!("{} ({arch})", a.model_type),
        None => a.model_type.clone(),
    }];
    let mut push = |label: &str, v: Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{label} {v}"));
        }
    };
    push("hidden", a.hidden_size.map(|v| v.to_string()));
    push("layers", a.num_layers.map(|v| v.to_string()));
    push("heads", a.num_heads.map(|v| v.to_string()));
    push("kv heads", a.num_kv_heads.map(|v| v.to_string()));
    push("head dim", a.head_dim.map(|v| v.to_string()));
    push("ffn", a.intermediate_size.map(|v| v.to_string()));
    push("vocab", a.vocab_size.map(|v| v.to_string()));
    push("context", a.max_position_embeddings.map(|v| v.to_string()));
    push("rope theta", a.rope_theta.map(|v| v.to_string()));
    push("rms eps", a.rms_norm_eps.map(|v| v.to_string()));
    push("tied embeddings", a.tie_word_embeddings.map(|v| v.to_string()));
    push("dtype", a.dtype.clone());
    parts.join(", ")
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}…")
}
