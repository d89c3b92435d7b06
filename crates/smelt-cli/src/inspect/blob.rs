//! `smelt inspect` on a smelt blob (docs/blob-format.md): the header, the metadata (producer,
//! source format, architecture, the ONNX graph a blob may carry) and, per tensor, its scheme,
//! dtype, shape, block size, codec, stored and raw sizes and CRC-32.
//!
//! Every check the blob reader makes runs first (header, directory, scheme rules, every
//! tensor's CRC-32 and the metadata's): a bad blob is an error naming the file, the field and
//! the byte offset, and nothing is printed on stdout.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;
use smelt_formats::blob::{self, layout, BlobMetadata, Entry};

use super::{arch_line, graph_summary, meta_entry, Architecture, GraphSummary, InspectArgs, MetaEntry};
use crate::size;

#[derive(Serialize)]
pub(super) struct BlobReport {
    schema: &'static str,
    path: String,
    format: &'static str,
    version: String,
    files: Vec<String>,
    tensor_count: usize,
    parameters: u64,
    /// Stored bytes over all tensors and sections.
    bytes: u64,
    by_scheme: Vec<SchemeTotal>,
    architecture: Option<Architecture>,
    graph: Option<GraphSummary>,
    metadata: Vec<MetaEntry>,
    blob: BlobFacts,
    #[serde(skip_serializing_if = "Option::is_none")]
    tensors: Option<Vec<BlobTensorRow>>,
}

#[derive(Serialize)]
struct SchemeTotal {
    scheme: &'static str,
    tensors: usize,
    parameters: u64,
    stored_bytes: u64,
    raw_bytes: u64,
}

#[derive(Serialize)]
struct BlobFacts {
    version_major: u16,
    version_minor: u16,
    alignment: u64,
    tensor_count: u32,
    header_flags: u64,
    all_uncompressed: bool,
    file_size: u64,
    data_offset: u64,
    data_size: u64,
    metadata_offset: u64,
    metadata_size: u64,
    /// Always `"ok"` in printed output: a mismatch is an error (exit 2).
    checksums: &'static str,
    producer: Option<String>,
    producer_version: Option<String>,
    source_format: Option<String>,
    recipe: Option<String>,
    inputs: Vec<InputRow>,
    onnx_graph: Option<CarriedGraph>,
}

#[derive(Serialize)]
struct InputRow {
    path: String,
    blake3: String,
    size: u64,
}

#[derive(Serialize)]
struct CarriedGraph {
    nodes: usize,
    /// Initializers whose values are blob tensors.
    blob_initializers: usize,
    /// Initializers kept inside the embedded ONNX model.
    inline_initializers: usize,
}

#[derive(Serialize)]
struct BlobTensorRow {
    name: String,
    scheme: &'static str,
    dtype: String,
    shape: Vec<u64>,
    parameters: u64,
    block_size: u32,
    axis: Option<u32>,
    flags: Vec<&'static str>,
    codec: &'static str,
    stored_bytes: u64,
    raw_bytes: u64,
    offset: u64,
    crc32: String,
    checksum: &'static str,
}

/// True when `path` is a file starting with the blob magic.
pub(super) fn is_blob(path: &std::path::Path) -> bool {
    use std::io::Read as _;
    let mut magic = [0u8; 8];
    path.is_file()
        && std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok()
        && magic == layout::MAGIC
}

/// Reads, checks and summarises the blob at `args.path`.
pub(super) fn build(args: &InspectArgs) -> Result<BlobReport> {
    // blob::read verifies every tensor's CRC-32 and the metadata's.
    let b = blob::read(&args.path)?;
    let meta = b.metadata()?;
    let carried = b.onnx_graph()?;
    let h = b.header();
    let entries = b.entries();
    let summaries = b.tensor_summaries();

    let mut by_scheme: Vec<SchemeTotal> = Vec::new();
    for (e, s) in entries.iter().zip(&summaries) {
        let name = e.scheme.name();
        let i = match by_scheme.iter().position(|t| t.scheme == name) {
            Some(i) => i,
            None => {
                by_scheme.push(SchemeTotal {
                    scheme: name,
                    tensors: 0,
                    parameters: 0,
                    stored_bytes: 0,
                    raw_bytes: 0,
                });
                by_scheme.len() - 1
            }
        };
        let t = &mut by_scheme[i];
        t.tensors += 1;
        t.parameters = t.parameters.saturating_add(e.numel());
        t.stored_bytes = t.stored_bytes.saturating_add(s.stored_bytes);
        t.raw_bytes = t.raw_bytes.saturating_add(s.raw_bytes);
    }
    let tensors = (args.json || args.tensors)
        .then(|| entries.iter().zip(&summaries).map(|(e, s)| tensor_row(e, s)).collect());
    let metadata = meta
        .as_ref()
        .map(|m| {
            m.metadata
                .iter()
                .filter_map(blob::meta_entry)
                .map(|(k, v)| meta_entry(&k, &v, args.full_metadata))
                .collect()
        })
        .unwrap_or_default();
    let onnx_graph = carried.as_ref().map(|g| CarriedGraph {
        nodes: g.model.graph.as_ref().map_or(0, |x| x.nodes().len()),
        blob_initializers: g.initializers.len(),
        inline_initializers: g.model.tensors.len(),
    });
    let graph = carried.as_ref().and_then(|g| g.model.graph.as_ref()).map(graph_summary);
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let blob_facts = BlobFacts {
        version_major: h.version_major,
        version_minor: h.version_minor,
        alignment: layout::ALIGN,
        tensor_count: h.tensor_count,
        header_flags: h.flags,
        all_uncompressed: h.flags & layout::HEADER_FLAG_UNCOMPRESSED != 0,
        file_size: h.file_size,
        data_offset: h.data_offset,
        data_size: h.data_size,
        metadata_offset: h.meta_offset,
        metadata_size: h.meta_size,
        checksums: "ok",
        producer: meta.as_ref().and_then(|m| nonempty(&m.producer)),
        producer_version: meta.as_ref().and_then(|m| nonempty(&m.producer_version)),
        source_format: meta.as_ref().and_then(|m| nonempty(&m.source_format)),
        recipe: meta.as_ref().and_then(|m| nonempty(&m.recipe)),
        inputs: meta
            .as_ref()
            .map(|m| {
                m.inputs
                    .iter()
                    .map(|i| InputRow { path: i.path.clone(), blake3: i.blake3.clone(), size: i.size })
                    .collect()
            })
            .unwrap_or_default(),
        onnx_graph,
    };
    Ok(BlobReport {
        schema: "smelt.inspect/1",
        path: args.path.display().to_string(),
        format: "smelt-blob",
        version: format!("smelt blob {}.{}", h.version_major, h.version_minor),
        files: vec![args.path.display().to_string()],
        tensor_count: entries.len(),
        parameters: entries.iter().fold(0u64, |a, e| a.saturating_add(e.numel())),
        bytes: summaries.iter().fold(0u64, |a, s| a.saturating_add(s.stored_bytes)),
        by_scheme,
        architecture: meta.as_ref().and_then(architecture),
        graph,
        metadata,
        blob: blob_facts,
        tensors,
    })
}

fn tensor_row(e: &Entry, s: &blob::TensorSummary) -> BlobTensorRow {
    let mut flags = Vec::new();
    if e.flags.symmetric() {
        flags.push("symmetric");
    }
    if e.flags.per_axis() {
        flags.push("per_axis");
    }
    if e.flags.double_quant() {
        flags.push("double_quant");
    }
    BlobTensorRow {
        name: e.name.clone(),
        scheme: e.scheme.name(),
        dtype: e.dtype.name().to_string(),
        shape: e.dims.clone(),
        parameters: e.numel(),
        block_size: e.block_size,
        axis: e.axis,
        flags,
        codec: e.codec.name(),
        stored_bytes: s.stored_bytes,
        raw_bytes: s.raw_bytes,
        offset: s.offset,
        crc32: format!("{:08x}", e.crc),
        checksum: "ok",
    }
}

fn architecture(m: &BlobMetadata) -> Option<Architecture> {
    let a = m.arch.as_ref()?;
    Some(Architecture {
        model_type: a.model_type.clone(),
        architecture: (!a.architecture.is_empty()).then(|| a.architecture.clone()),
        hidden_size: a.hidden_size,
        num_layers: a.num_layers,
        num_heads: a.num_heads,
        num_kv_heads: a.num_kv_heads,
        head_dim: a.head_dim,
        intermediate_size: a.intermediate_size,
        vocab_size: a.vocab_size,
        max_position_embeddings: a.max_position_embeddings,
        rope_theta: a.rope_theta,
        rms_norm_eps: a.rms_norm_eps,
        tie_word_embeddings: a.tie_word_embeddings,
        dtype: (!a.dtype.is_empty()).then(|| a.dtype.clone()),
    })
}

pub(super) fn render_text(r: &BlobReport, out: &mut String) {
    let b = &r.blob;
    let _ = writeln!(out, "{}", r.path);
    let compression = if b.all_uncompressed { "uncompressed" } else { "compressed sections" };
    let _ = writeln!(
        out,
        "  format        {} ({} bytes, alignment {}, {compression})",
        r.version, b.file_size, b.alignment
    );
    let _ = writeln!(out, "  tensors       {}", r.tensor_count);
    let _ = writeln!(out, "  parameters    {} ({})", size::count(r.parameters), r.parameters);
    let raw: u64 = r.by_scheme.iter().map(|s| s.raw_bytes).sum();
    let _ = writeln!(
        out,
        "  tensor bytes  {} stored ({}), {} raw ({raw})",
        size::bytes(r.bytes),
        r.bytes,
        size::bytes(raw)
    );
    for (i, s) in r.by_scheme.iter().enumerate() {
        let label = if i == 0 { "  by scheme" } else { "" };
        let _ = writeln!(
            out,
            "{label:<16}{:<9}{:>6} tensors {:>12} params {:>12}",
            s.scheme,
            s.tensors,
            size::count(s.parameters),
            size::bytes(s.stored_bytes)
        );
    }
    let producer = match (&b.producer, &b.producer_version) {
        (Some(p), Some(v)) => Some(format!("{p} {v}")),
        (Some(p), None) => Some(p.clone()),
        (None, Some(v)) => Some(v.clone()),
        (None, None) => None,
    };
    if let Some(p) = producer {
        let _ = writeln!(out, "  producer      {p}");
    }
    if let Some(s) = &b.source_format {
        let _ = writeln!(out, "  source        {s}");
    }
    for (i, input) in b.inputs.iter().enumerate() {
        let label = if i == 0 { "inputs" } else { "" };
        let _ = writeln!(out, "  {label:<14}{} ({} bytes, blake3 {})", input.path, input.size, input.blake3);
    }
    if let Some(a) = &r.architecture {
        let _ = writeln!(out, "  architecture  {}", arch_line(a));
    }
    match &b.onnx_graph {
        Some(g) => {
            let _ = writeln!(
                out,
                "  onnx graph    {} nodes, {} initializers in the blob, {} inline",
                g.nodes, g.blob_initializers, g.inline_initializers
            );
        }
        None => {
            let _ = writeln!(out, "  onnx graph    none");
        }
    }
    if let Some(recipe) = &b.recipe {
        let _ = writeln!(out, "  recipe        {} bytes of TOML", recipe.len());
    }
    if !r.metadata.is_empty() {
        let _ = writeln!(out, "  metadata      {} keys", r.metadata.len());
        for m in &r.metadata {
            let value = match (&m.value, m.elem_type, m.len) {
                (Some(v), _, _) => super::truncate(&v.to_string(), 120),
                (None, Some(elem), Some(len)) => format!("[{elem} × {len}]"),
                _ => String::new(),
            };
            let _ = writeln!(out, "    {} = {value}", m.key);
        }
    }
    let _ = writeln!(out, "  checksums     ok (every tensor's CRC-32 and the metadata's)");
    if let Some(rows) = &r.tensors {
        let name_w = rows.iter().map(|t| t.name.len()).max().unwrap_or(4).clamp(4, 60);
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  {:<name_w$}  {:<8} {:<7} {:<18} {:>5} {:<5} {:>10} {:>10} {:>10} {:<8}",
            "name", "scheme", "dtype", "shape", "block", "codec", "stored", "raw", "offset", "crc32"
        );
        for t in rows {
            let shape = format!("{:?}", t.shape);
            let _ = writeln!(
                out,
                "  {:<name_w$}  {:<8} {:<7} {:<18} {:>5} {:<5} {:>10} {:>10} {:>10} {:<8}",
                t.name,
                t.scheme,
                t.dtype,
                shape,
                t.block_size,
                t.codec,
                t.stored_bytes,
                t.raw_bytes,
                t.offset,
                t.crc32
            );
        }
    }
}
