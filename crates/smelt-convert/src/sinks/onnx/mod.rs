//! The ONNX sink: the input graph kept as it is, except that each quantized MatMul/Gemm weight
//! is replaced by what the chosen mode runs (docs/onnx-output.md says exactly what):
//! - `--format onnx` (the default for `.onnx`): int8 as `DynamicQuantizeLinear` +
//!   `MatMulInteger` (onnxruntime's `quantize_dynamic` graph), int4 as com.microsoft
//!   `MatMulNBits`, NF4 as com.microsoft `MatMulBnb4`;
//! - `--format onnx-qdq`: weight-only QDQ, a `DequantizeLinear` on the quantized initializer
//!   feeding the unchanged node (int8 per tensor or per channel; int4 blocked at opset 21).
//!
//! Tensors arrive in initializer order; the graph is assembled in [`Sink::finish`]. When the
//! model would pass protobuf's 2 GiB limit (predicted from the plan), initializers of 1 KiB and
//! more go to `<output>.data` beside it, streamed as they come, offsets aligned to 64 bytes;
//! `SMELT_ONNX_EXTERNAL_THRESHOLD` (bytes) lowers the limit for tests.

mod opset;
mod rewrite;
mod tensors;
pub(crate) mod weights;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;
use smelt_formats::onnx::proto::{ModelProto, NodeProto, StringStringEntryProto};
use smelt_formats::Tensor;
use smelt_quant::int8::Int8Mode;
use smelt_quant::nf4::Nf4Absmax;
use smelt_tensor::DType;

use super::write_err;
use crate::atomic::AtomicFile;
use crate::encode::{Encoded, EncodedTensor};
use crate::plan::{OutputFormat, PlanEntry};
use crate::run::{Sink, SinkContext, TensorEncoder};
use crate::ConvertError;
use rewrite::{Names, QWeight};
use tensors::{f32_bytes, transpose, Initializers};
use weights::{Layout, OnnxWeights, WeightUse};

/// Default size above which initializers go to external data: protobuf's 2 GiB limit.
const EXTERNAL_THRESHOLD: u64 = (1 << 31) - 1;
/// Environment variable that lowers it (tests).
pub const EXTERNAL_THRESHOLD_ENV: &str = "SMELT_ONNX_EXTERNAL_THRESHOLD";

/// How quantized weights are expressed in the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnnxMode {
    /// DynamicQuantizeLinear + MatMulInteger, MatMulNBits, MatMulBnb4.
    Operators,
    /// DequantizeLinear on the weight.
    Qdq,
}

pub(crate) struct OnnxSink {
    path: PathBuf,
    file: Option<AtomicFile>,
    mode: OnnxMode,
    weights: Arc<OnnxWeights>,
    model: ModelProto,
    inits: Initializers,
    quantized: HashMap<String, QWeight>,
    names: Names,
    /// DequantizeLinear nodes (QDQ mode), placed before the graph's own nodes.
    dq_nodes: Vec<NodeProto>,
    /// The highest default-domain opset a written weight needs.
    needs_opset: i64,
    needs_ir: i64,
    provenance: Vec<(String, String)>,
    strings: HashMap<String, Vec<Vec<u8>>>,
}

fn threshold() -> u64 {
    std::env::var(EXTERNAL_THRESHOLD_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(EXTERNAL_THRESHOLD)
}

/// `<output>.data`'s file name (the external data sits beside the model).
fn data_file_name(output: &Path) -> String {
    format!(
        "{}.data",
        output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model.onnx".into())
    )
}

impl OnnxSink {
    pub(crate) fn open(file: AtomicFile, ctx: &SinkContext<'_>) -> Result<OnnxSink, ConvertError> {
        let path = ctx.output.to_path_buf();
        let graph = ctx.model.graph.as_ref().ok_or_else(|| {
            write_err(
                &path,
                format!("{} has no ONNX graph: ONNX output needs an ONNX input", ctx.input.display()),
            )
        })?;
        let mode = match ctx.plan.format {
            OutputFormat::OnnxQdq => OnnxMode::Qdq,
            _ => OnnxMode::Operators,
        };
        let model = graph.proto().clone();
        let names = Names::of_model(&model, graph.initializer_names());
        let predicted =
            ctx.plan.out_bytes().saturating_add(model.encoded_len() as u64).saturating_add(1 << 16);
        let external = if predicted > threshold() {
            let name = data_file_name(ctx.output);
            let data_path = path.with_file_name(&name);
            let f = AtomicFile::create(&data_path).map_err(|e| write_err(&data_path, e))?;
            Some((f, data_path, name))
        } else {
            None
        };
        let strings = graph
            .initializer_names()
            .iter()
            .filter_map(|n| graph.string_values(n).map(|v| (n.clone(), v.to_vec())))
            .collect();
        let source = ctx.input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut provenance = vec![
            ("smelt.version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
            ("smelt.source".to_string(), source),
            (
                "smelt.onnx_mode".to_string(),
                if mode == OnnxMode::Qdq { "qdq" } else { "operators" }.to_string(),
            ),
        ];
        if !ctx.recipe.source.is_empty() {
            provenance.push(("smelt.recipe".to_string(), ctx.recipe.source.clone()));
        }
        Ok(OnnxSink {
            path,
            file: Some(file),
            mode,
            weights: Arc::new(OnnxWeights::analyze(ctx.model)),
            model,
            inits: Initializers::new(external),
            quantized: HashMap::new(),
            names,
            dq_nodes: Vec::new(),
            needs_opset: 0,
            needs_ir: 0,
            provenance,
            strings,
        })
    }

    fn add(&mut self, name: &str, dtype: DType, dims: &[u64], data: Bytes) -> Result<(), ConvertError> {
        self.inits.add(name, dtype, dims, data).map_err(|e| write_err(&self.path, e))
    }

    /// Writes the initializers of one quantized weight and records how its consumers change.
    fn write_quantized(&mut self, name: &str, u: WeightUse, encoded: &Encoded) -> Result<(), ConvertError> {
        let (k, n) = (u.k as usize, u.n as usize);
        let bad = |why: &str| write_err(&self.path, format!("tensor '{name}': {why}"));
        match (encoded, self.mode) {
            (Encoded::Int8(t), mode) => {
                // Codes are [N, K]; the graph wants the stored layout.
                let (codes, dims) = match (mode, u.layout) {
                    (OnnxMode::Operators, _) | (OnnxMode::Qdq, Layout::Kn) => {
                        (transpose(&t.codes, n, k), vec![u.k, u.n])
                    }
                    (OnnxMode::Qdq, Layout::Nk) => (t.codes.clone(), vec![u.n, u.k]),
                };
                let per_channel = t.axis.is_some();
                let pdims: Vec<u64> = if per_channel { vec![u.n] } else { vec![] };
                let dtype = if t.mode == Int8Mode::Symmetric { DType::I8 } else { DType::U8 };
                let q = self.names.fresh(&format!("{name}_quantized"));
                let s = self.names.fresh(&format!("{name}_scale"));
                let z = self.names.fresh(&format!("{name}_zero_point"));
                self.add(&q, dtype, &dims, Bytes::from(codes))?;
                self.add(&s, DType::F32, &pdims, Bytes::from(f32_bytes(&t.scales)))?;
                self.add(&z, dtype, &pdims, Bytes::from(t.zero_points.clone()))?;
                match mode {
                    OnnxMode::Operators => {
                        self.needs_opset = self.needs_opset.max(11);
                        self.quantized.insert(name.to_string(), QWeight::Int8 { q, scale: s, zero_point: z });
                    }
                    OnnxMode::Qdq => {
                        let axis = match u.layout {
                            Layout::Kn => 1,
                            Layout::Nk => 0,
                        };
                        self.needs_opset = self.needs_opset.max(if per_channel { 13 } else { 10 });
                        let node = rewrite::dequantize_node(
                            &mut self.names,
                            name,
                            &q,
                            &s,
                            Some(&z),
                            per_channel.then_some(axis),
                            None,
                        );
                        self.dq_nodes.push(node);
                        self.quantized.insert(name.to_string(), QWeight::Dequantized);
                    }
                }
            }
            (Encoded::Int4(t), OnnxMode::Operators) => {
                let bs = t.group_size;
                if bs == 0 || k % bs != 0 || t.rows != n || t.cols != k {
                    return Err(bad("int4 groups do not tile K"));
                }
                let kb = k / bs;
                // B: [N, k_blocks, bs/2], two codes per byte along K, low nibble first.
                let mut b = vec![0u8; n * k / 2];
                for (i, pair) in t.codes.chunks_exact(2).enumerate() {
                    b[i] = (pair[0] & 0x0f) | (pair[1] << 4);
                }
                let bname = self.names.fresh(&format!("{name}_Q4"));
                let sname = self.names.fresh(&format!("{name}_scales"));
                self.add(&bname, DType::U8, &[u.n, kb as u64, (bs / 2) as u64], Bytes::from(b))?;
                self.add(&sname, DType::F32, &[u.n, kb as u64], Bytes::from(f32_bytes(&t.scales)))?;
                let zp = match t.mode {
                    smelt_quant::int4::Int4Mode::Symmetric => None, // MatMulNBits' default zero point is 8
                    smelt_quant::int4::Int4Mode::Asymmetric => {
                        let per_row = kb.div_ceil(2);
                        let mut z = vec![0u8; n * per_row];
                        for r in 0..n {
                            for g in 0..kb {
                                let v = t.zeros[r * kb + g] & 0x0f;
                                z[r * per_row + g / 2] |= if g % 2 == 0 { v } else { v << 4 };
                            }
                        }
                        let zname = self.names.fresh(&format!("{name}_zero_points"));
                        self.add(&zname, DType::U8, &[u.n, per_row as u64], Bytes::from(z))?;
                        Some(zname)
                    }
                };
                self.quantized.insert(
                    name.to_string(),
                    QWeight::NBits { b: bname, scales: sname, zero_points: zp, block: bs, use_: u },
                );
            }
            (Encoded::Int4(t), OnnxMode::Qdq) => {
                let bs = t.group_size;
                if bs == 0 || k % bs != 0 || t.rows != n || t.cols != k {
                    return Err(bad("int4 groups do not tile K"));
                }
                let kb = k / bs;
                let symmetric = t.mode == smelt_quant::int4::Int4Mode::Symmetric;
                // Symmetric codes are stored signed (code - 8, zero point 0, no zero-point
                // input); asymmetric ones unsigned with their zero points.
                let codes: Vec<u8> = if symmetric {
                    t.codes.iter().map(|&c| c.wrapping_sub(8) & 0x0f).collect()
                } else {
                    t.codes.clone()
                };
                let (codes, dims, sc, zs, sdims, axis) = match u.layout {
                    Layout::Kn => (
                        transpose(&codes, n, k),
                        vec![u.k, u.n],
                        transpose(&t.scales, n, kb),
                        transpose(&t.zeros, n, kb),
                        vec![kb as u64, u.n],
                        0,
                    ),
                    Layout::Nk => {
                        (codes, vec![u.n, u.k], t.scales.clone(), t.zeros.clone(), vec![u.n, kb as u64], 1)
                    }
                };
                let dtype = if symmetric { DType::I4 } else { DType::U4 };
                let q = self.names.fresh(&format!("{name}_quantized"));
                let s = self.names.fresh(&format!("{name}_scale"));
                self.add(&q, dtype, &dims, Bytes::from(tensors::pack_nibbles(&codes)))?;
                self.add(&s, DType::F32, &sdims, Bytes::from(f32_bytes(&sc)))?;
                let z = if symmetric {
                    None
                } else {
                    let z = self.names.fresh(&format!("{name}_zero_point"));
                    self.add(&z, DType::U4, &sdims, Bytes::from(tensors::pack_nibbles(&zs)))?;
                    Some(z)
                };
                self.needs_opset = self.needs_opset.max(21);
                self.needs_ir = self.needs_ir.max(10);
                let node = rewrite::dequantize_node(
                    &mut self.names,
                    name,
                    &q,
                    &s,
                    z.as_deref(),
                    Some(axis),
                    Some(bs as i64),
                );
                self.dq_nodes.push(node);
                self.quantized.insert(name.to_string(), QWeight::Dequantized);
            }
            (Encoded::Nf4(t), OnnxMode::Operators) => {
                let absmax = match &t.absmax {
                    Nf4Absmax::Plain(a) => a.clone(),
                    // MatMulBnb4 takes f32 absmax: the double-quantized statistics decoded.
                    Nf4Absmax::Double(d) => d.dequantize(),
                };
                let bname = self.names.fresh(&format!("{name}_nf4"));
                let aname = self.names.fresh(&format!("{name}_absmax"));
                self.add(&bname, DType::U8, &[t.packed.len() as u64], Bytes::from(t.packed.clone()))?;
                self.add(&aname, DType::F32, &[absmax.len() as u64], Bytes::from(f32_bytes(&absmax)))?;
                self.quantized.insert(
                    name.to_string(),
                    QWeight::Bnb4 { b: bname, absmax: aname, block: t.block_size, use_: u },
                );
            }
            (Encoded::Nf4(_), OnnxMode::Qdq) => {
                return Err(bad(
                    "ONNX has no NF4 DequantizeLinear; write NF4 with --format onnx (MatMulBnb4)",
                ))
            }
            _ => return Err(bad("ONNX output holds int8, int4 and nf4 weights")),
        }
        Ok(())
    }
}

/// ONNX MatMul weights are stored `[K, N]`: quantized ones are encoded from `[N, K]`.
struct OnnxEncoder {
    weights: Arc<OnnxWeights>,
}

impl TensorEncoder for OnnxEncoder {
    fn encode(
        &self,
        entry: &PlanEntry,
        tensor: &Tensor,
        allow_nonfinite: bool,
    ) -> Result<EncodedTensor, ConvertError> {
        let Some(u) = self.weights.get(&entry.name).filter(|_| entry.scheme.is_quantized()) else {
            return crate::encode::encode(tensor, entry.scheme, allow_nonfinite);
        };
        let values = crate::encode::tensor_f32(tensor)?;
        if !allow_nonfinite {
            crate::encode::check_finite(&tensor.name, &values)?;
        }
        let (k, n) = (u.k as usize, u.n as usize);
        let nk = match u.layout {
            Layout::Kn => std::borrow::Cow::Owned(transpose(&values, k, n)),
            Layout::Nk => values,
        };
        crate::encode::encode_values(&tensor.name, &nk, &[n, k], entry.scheme)
    }
}

impl Sink for OnnxSink {
    fn encoder(&self) -> Arc<dyn TensorEncoder> {
        Arc::new(OnnxEncoder { weights: Arc::clone(&self.weights) })
    }

    fn write(&mut self, entry: &PlanEntry, encoded: &Encoded) -> Result<Option<String>, ConvertError> {
        if let Encoded::Plain { dtype, data } = encoded {
            if *dtype == DType::String {
                let values = self.strings.get(&entry.name).cloned().unwrap_or_default();
                self.inits.add_strings(&entry.name, &entry.shape, values);
                return Ok(None);
            }
            self.add(&entry.name, *dtype, &entry.shape, data.clone())?;
            return Ok(None);
        }
        let u = self.weights.get(&entry.name).ok_or_else(|| {
            write_err(&self.path, format!("tensor '{}' is not a MatMul/Gemm weight", entry.name))
        })?;
        self.write_quantized(&entry.name, u, encoded)?;
        Ok(None)
    }

    fn finish(mut self: Box<Self>) -> Result<AtomicFile, ConvertError> {
        let path = self.path.clone();
        let mut model = std::mem::take(&mut self.model);
        let graph = model.graph.get_or_insert_with(Default::default);
        let mut contrib = false;
        let mut nodes = std::mem::take(&mut self.dq_nodes);
        let mut extra_inits: Vec<(String, f32)> = Vec::new();
        for node in std::mem::take(&mut graph.node) {
            let q = weights::matmul_layout(&node)
                .and(node.input.get(1))
                .and_then(|w| self.quantized.get(w))
                .filter(|q| !matches!(q, QWeight::Dequantized));
            match q {
                Some(q) => {
                    contrib |= matches!(q, QWeight::NBits { .. } | QWeight::Bnb4 { .. });
                    rewrite::rewrite_node(&node, q, &mut self.names, &mut nodes, &mut extra_inits);
                }
                None => nodes.push(node),
            }
        }
        graph.node = nodes;
        for (name, v) in extra_inits {
            self.inits
                .add(&name, DType::F32, &[], Bytes::from(v.to_le_bytes().to_vec()))
                .map_err(|e| write_err(&path, e))?;
        }
        graph.input.retain(|v| !v.name.as_deref().is_some_and(|n| self.quantized.contains_key(n)));
        graph.value_info.retain(|v| !v.name.as_deref().is_some_and(|n| self.quantized.contains_key(n)));
        let (inits, external) = std::mem::take(&mut self.inits).finish();
        graph.initializer = inits;

        opset::require(&mut model, self.needs_opset).map_err(|e| write_err(&path, e))?;
        if contrib {
            opset::import_contrib(&mut model);
        }
        let ir = model.ir_version.unwrap_or(0);
        if ir < self.needs_ir {
            model.ir_version = Some(self.needs_ir);
        }
        model.metadata_props.retain(|p| !p.key.as_deref().is_some_and(|k| k.starts_with("smelt.")));
        model.metadata_props.extend(
            self.provenance
                .iter()
                .map(|(k, v)| StringStringEntryProto { key: Some(k.clone()), value: Some(v.clone()) }),
        );

        let len = model.encoded_len();
        if len > EXTERNAL_THRESHOLD as usize {
            return Err(write_err(&path, format!("the model would be {len} bytes, over protobuf's 2 GiB limit, although the plan predicted less")));
        }
        let mut file = self.file.take().expect("onnx sink finished twice");
        file.write_all(&model.encode_to_vec()).map_err(|e| write_err(&path, e))?;
        if let Some((data, data_path)) = external {
            data.commit().map_err(|e| write_err(&data_path, e))?;
        }
        Ok(file)
    }
}

/// A `TensorProto`'s external-data entry.
pub(crate) fn entry(key: &str, value: String) -> StringStringEntryProto {
    StringStringEntryProto { key: Some(key.to_string()), value: Some(value) }
}
