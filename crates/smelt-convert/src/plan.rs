//! The plan: for every tensor of the input, the scheme it gets and why, and the predicted size
//! of the output. Computed before any work so that `--dry-run` can print it and so that
//! writers know every size up front (headers first, then tensors streamed).

use smelt_formats::Model;
use smelt_tensor::DType;

use crate::recipe::{Recipe, Special};
use crate::scheme::Scheme;

/// Where the output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// smelt's packed blob.
    Blob,
    /// GGUF.
    Gguf,
    /// safetensors (dtype casts; NF4 in bitsandbytes' layout; int4 in GPTQ's layout).
    Safetensors,
    /// ONNX with quantized operators: DynamicQuantizeLinear + MatMulInteger (int8),
    /// com.microsoft MatMulNBits (int4) and MatMulBnb4 (nf4).
    Onnx,
    /// ONNX with weight-only QDQ: DequantizeLinear on int8 or (opset 21, blocked) int4 weights.
    OnnxQdq,
}

impl OutputFormat {
    /// Parses `blob`, `gguf` or `safetensors`.
    pub fn from_name(name: &str) -> Option<OutputFormat> {
        match name.to_ascii_lowercase().as_str() {
            "blob" | "smelt" => Some(OutputFormat::Blob),
            "gguf" => Some(OutputFormat::Gguf),
            "safetensors" => Some(OutputFormat::Safetensors),
            "onnx" => Some(OutputFormat::Onnx),
            "onnx-qdq" => Some(OutputFormat::OnnxQdq),
            _ => None,
        }
    }

    /// The format an output path's extension implies.
    pub fn from_extension(path: &std::path::Path) -> Option<OutputFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "smelt" => Some(OutputFormat::Blob),
            "gguf" => Some(OutputFormat::Gguf),
            "safetensors" => Some(OutputFormat::Safetensors),
            "onnx" => Some(OutputFormat::Onnx),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Blob => "blob",
            OutputFormat::Gguf => "gguf",
            OutputFormat::Safetensors => "safetensors",
            OutputFormat::Onnx => "onnx",
            OutputFormat::OnnxQdq => "onnx-qdq",
        }
    }

    /// Why this format cannot hold `scheme` applied to `dtype`, or `None` when it can.
    fn refuses(self, scheme: &Scheme, dtype: DType) -> Option<&'static str> {
        match (self, scheme) {
            (OutputFormat::Blob, _) => None,
            (OutputFormat::Gguf, Scheme::Keep) if dtype.ggml_id().is_none() => {
                Some("GGUF has no such element type; cast it (f16) or quantize it")
            }
            (OutputFormat::Gguf, Scheme::Keep | Scheme::Cast(_) | Scheme::Ggml(_)) => None,
            (OutputFormat::Gguf, _) => {
                Some("GGUF holds ggml types only: use q8_0, q4_0, q4_1, q5_0, q5_1, tq1_0 or tq2_0")
            }
            (OutputFormat::Safetensors, Scheme::Keep | Scheme::Cast(_) | Scheme::Nf4 { .. } | Scheme::Int4 { .. }) => {
                None
            }
            (OutputFormat::Onnx, Scheme::Keep | Scheme::Int8 { .. } | Scheme::Int4 { .. } | Scheme::Nf4 { .. }) => None,
            (OutputFormat::OnnxQdq, Scheme::Keep | Scheme::Int8 { .. } | Scheme::Int4 { .. }) => None,
            (OutputFormat::OnnxQdq, Scheme::Nf4 { .. }) => {
                Some("ONNX has no NF4 DequantizeLinear: write NF4 with --format onnx (com.microsoft MatMulBnb4)")
            }
            (OutputFormat::Onnx | OutputFormat::OnnxQdq, _) => Some(
                "ONNX output keeps tensors as they are or quantizes MatMul/Gemm weights with int8, int4 or nf4 \
                 (onnx-qdq: int8, int4)",
            ),
            (OutputFormat::Safetensors, _) => Some(
                "safetensors output holds dtype casts, nf4 (bitsandbytes layout) and int4 (GPTQ layout); \
                 write a .smelt blob or a .gguf for other schemes",
            ),
        }
    }
}

/// Why a tensor got its scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Rule `index` of the recipe matched (pattern as written).
    Rule {
        /// Rule index.
        index: usize,
        /// Its pattern.
        pattern: String,
    },
    /// The recipe's main scheme.
    Main,
    /// No main scheme was given.
    NoQuant,
    /// A 1-D tensor or scalar (norm, bias), kept by default.
    OneD,
    /// Not floating point (integer ids, masks): never quantized.
    NotFloat,
    /// Stored in a block-quantized type already: kept unless a rule says otherwise.
    AlreadyQuantized,
    /// Token embeddings (`defaults.embeddings`).
    Embeddings,
    /// The output head (`defaults.output`).
    Output,
    /// The wanted scheme cannot take this shape; this is the fallback.
    Fallback {
        /// What was wanted.
        wanted: Scheme,
        /// Why it could not be used.
        why: String,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Rule { index, pattern } => write!(f, "rule {index} ({pattern})"),
            Reason::Main => f.write_str("main scheme"),
            Reason::NoQuant => f.write_str("no scheme given"),
            Reason::OneD => f.write_str("1-D, kept"),
            Reason::NotFloat => f.write_str("not floating point"),
            Reason::AlreadyQuantized => f.write_str("already block-quantized"),
            Reason::Embeddings => f.write_str("embeddings default"),
            Reason::Output => f.write_str("output head default"),
            Reason::Fallback { wanted, why } => write!(f, "fallback from {wanted}: {why}"),
        }
    }
}

/// One tensor's planned treatment.
#[derive(Clone, Debug)]
pub struct PlanEntry {
    /// Index into the model's tensors.
    pub index: usize,
    /// Tensor name.
    pub name: String,
    /// Input dtype.
    pub dtype: DType,
    /// Row-major shape.
    pub shape: Vec<u64>,
    /// What it gets.
    pub scheme: Scheme,
    /// Why.
    pub reason: Reason,
    /// Stored input bytes.
    pub in_bytes: u64,
    /// Predicted output bytes (data plus statistics).
    pub out_bytes: u64,
}

/// A plan that cannot be carried out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// The output format cannot hold what the recipe asks for this tensor.
    #[error("tensor '{tensor}': {scheme} cannot be written to {format}: {why}")]
    FormatCannotHold {
        /// Tensor name.
        tensor: String,
        /// The scheme.
        scheme: String,
        /// The output format.
        format: &'static str,
        /// Why, and what to use instead.
        why: &'static str,
    },
    /// A rule or default asks for a quantized scheme on a tensor whose stored dtype cannot be
    /// read as floats.
    #[error("tensor '{tensor}' is {dtype}, which smelt cannot quantize from; keep it or cast it")]
    NotQuantizable {
        /// Tensor name.
        tensor: String,
        /// Its dtype.
        dtype: DType,
    },
}

/// The whole plan.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Output format.
    pub format: OutputFormat,
    /// One entry per input tensor, in input order.
    pub entries: Vec<PlanEntry>,
}

impl Plan {
    /// Total stored input bytes.
    pub fn in_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.in_bytes).sum()
    }

    /// Total predicted output tensor bytes.
    pub fn out_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.out_bytes).sum()
    }

    /// Parameters over all tensors.
    pub fn parameters(&self) -> u64 {
        self.entries.iter().map(|e| smelt_tensor::numel(&e.shape).unwrap_or(0)).sum()
    }

    /// Output bits per parameter over all tensors.
    pub fn bits_per_weight(&self) -> f64 {
        match self.parameters() {
            0 => 0.0,
            p => self.out_bytes() as f64 * 8.0 / p as f64,
        }
    }
}

/// Names of token-embedding tensors across HF and GGUF naming.
pub fn is_embedding(name: &str) -> bool {
    name.ends_with("embed_tokens.weight")
        || name == "token_embd.weight"
        || name.ends_with("wte.weight")
        || name.ends_with("tok_embeddings.weight")
        || name.ends_with("word_embeddings.weight")
}

/// Names of output-head tensors across HF and GGUF naming.
pub fn is_output_head(name: &str) -> bool {
    name == "lm_head.weight" || name == "output.weight" || name.ends_with(".lm_head.weight")
}

/// True when smelt can read a dtype as f32 values to quantize (plain floats, or ggml blocks it
/// dequantizes).
pub fn is_quantizable_source(dtype: DType) -> bool {
    matches!(dtype, DType::F64 | DType::F32 | DType::F16 | DType::BF16)
        || matches!(
            dtype,
            DType::Q8_0
                | DType::Q4_0
                | DType::Q4_1
                | DType::Q5_0
                | DType::Q5_1
                | DType::Q2_K
                | DType::Q3_K
                | DType::Q4_K
                | DType::Q5_K
                | DType::Q6_K
                | DType::TQ1_0
                | DType::TQ2_0
        )
}

/// Plans the conversion of `model` with `recipe` into `format`.
pub fn plan(model: &Model, recipe: &Recipe, format: OutputFormat) -> Result<Plan, PlanError> {
    let mut entries = Vec::with_capacity(model.tensors.len());
    let onnx = matches!(format, OutputFormat::Onnx | OutputFormat::OnnxQdq)
        .then(|| crate::sinks::onnx::weights::OnnxWeights::analyze(model));
    for (index, t) in model.tensors.iter().enumerate() {
        let (wanted, reason) = choose(recipe, &t.name, t.dtype, &t.shape);
        // ONNX output quantizes MatMul/Gemm weights only, in their [N, K] orientation.
        let (scheme, reason) = match &onnx {
            Some(w) => w.fit(&t.name, t.dtype, &t.shape, wanted, reason),
            None => fit(wanted, reason, &t.shape),
        };
        // A tensor without elements has nothing to quantize; its scales or group indices would
        // follow its other dims, which a file may make huge (`[2⁴⁰, 0]`).
        let (mut scheme, reason) = if scheme.is_quantized() && t.shape.contains(&0) {
            (Scheme::Keep, Reason::Fallback { wanted: scheme, why: "it has no elements".into() })
        } else {
            (scheme, reason)
        };
        if format == OutputFormat::Gguf
            && reason == Reason::OneD
            && matches!(t.dtype, DType::F16 | DType::BF16)
        {
            // llama.cpp's converter stores norms and biases as F32.
            scheme = Scheme::Cast(DType::F32);
        }
        if (scheme.is_quantized() || matches!(scheme, Scheme::Cast(_))) && !is_quantizable_source(t.dtype) {
            return Err(PlanError::NotQuantizable { tensor: t.name.clone(), dtype: t.dtype });
        }
        if let Some(why) = format.refuses(&scheme, t.dtype) {
            return Err(PlanError::FormatCannotHold {
                tensor: t.name.clone(),
                scheme: scheme.to_string(),
                format: format.name(),
                why,
            });
        }
        let in_bytes = t.data.len() as u64;
        let shape = onnx.as_ref().map_or_else(|| t.shape.clone(), |w| w.quant_shape(&t.name, &t.shape));
        let out_bytes = scheme.predicted_bytes(&shape, in_bytes).unwrap_or(in_bytes);
        entries.push(PlanEntry {
            index,
            name: t.name.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
            scheme,
            reason,
            in_bytes,
            out_bytes,
        });
    }
    Ok(Plan { format, entries })
}

fn choose(recipe: &Recipe, name: &str, dtype: DType, shape: &[u64]) -> (Scheme, Reason) {
    if let Some((index, rule)) = recipe.rules.iter().enumerate().find(|(_, r)| r.matcher.is_match(name)) {
        return (rule.scheme, Reason::Rule { index, pattern: rule.matcher.pattern().to_string() });
    }
    if !dtype.is_float() && !dtype.is_ggml_block() {
        return (Scheme::Keep, Reason::NotFloat);
    }
    if recipe.keep_1d && shape.len() < 2 {
        return (Scheme::Keep, Reason::OneD);
    }
    if is_embedding(name) {
        if let Special::Scheme(s) = recipe.embeddings {
            return (s, Reason::Embeddings);
        }
    }
    if is_output_head(name) {
        if let Special::Scheme(s) = recipe.output {
            return (s, Reason::Output);
        }
    }
    match recipe.quant {
        Some(s) if dtype.is_ggml_block() && !s.is_quantized() => (s, Reason::Main),
        Some(s) => (s, Reason::Main),
        None if dtype.is_ggml_block() => (Scheme::Keep, Reason::AlreadyQuantized),
        None => (Scheme::Keep, Reason::NoQuant),
    }
}

/// Falls back when a scheme cannot take a shape, as llama.cpp does for ggml types: a row
/// length that is not a whole number of blocks goes to a type with smaller blocks that fits,
/// else to F16. Block int4 needs a 2-D weight whose input dimension is a multiple of the group
/// (the GPTQ layout); other shapes are kept.
fn fit(scheme: Scheme, reason: Reason, shape: &[u64]) -> (Scheme, Reason) {
    let cols = shape.last().copied().unwrap_or(1);
    match scheme {
        Scheme::Ggml(d) if cols % d.block_elems() != 0 => {
            let to = if d.block_elems() == 256 && cols % 32 == 0 { DType::Q4_0 } else { DType::F16 };
            let to_scheme = if to == DType::F16 { Scheme::Cast(DType::F16) } else { Scheme::Ggml(to) };
            (
                to_scheme,
                Reason::Fallback {
                    wanted: scheme,
                    why: format!("row length {cols} is not a multiple of {}", d.block_elems()),
                },
            )
        }
        Scheme::Int4 { group, .. } if shape.len() != 2 || cols % group as u64 != 0 => (
            Scheme::Keep,
            Reason::Fallback {
                wanted: scheme,
                why: if shape.len() != 2 {
                    format!("block int4 needs a 2-D weight, this is {}-D", shape.len())
                } else {
                    format!("input dimension {cols} is not a multiple of the group size {group}")
                },
            },
        ),
        _ => (scheme, reason),
    }
}
