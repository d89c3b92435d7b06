//! The smelt blob sink (docs/blob-format.md): every scheme maps to the blob's sections.

use std::borrow::Cow;
use std::path::PathBuf;

use smelt_formats::blob::{
    proto, BlobMetadata, BlobWriter, EntryDecl, EntryFlags, Scheme as BlobScheme, TensorSections,
};
use smelt_quant::nf4::Nf4Absmax;
use smelt_tensor::DType;

use super::write_err;
use crate::atomic::AtomicFile;
use crate::encode::Encoded;
use crate::plan::PlanEntry;
use crate::run::{Sink, SinkContext};
use crate::scheme::{Scheme, TernaryPacking};
use crate::ConvertError;

pub(crate) struct BlobSink {
    writer: Option<BlobWriter<AtomicFile>>,
    path: PathBuf,
    /// Declarations not yet handed to the writer (all go in before the first tensor).
    pending: Vec<EntryDecl>,
    /// Packed int4 codes of the tensor being written (see [`sections`]).
    pack: Vec<u8>,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The blob declaration for a planned tensor: every field follows from the scheme, so all
/// entries can be declared before the first tensor is encoded.
fn declare(e: &PlanEntry) -> EntryDecl {
    let decl = |scheme, dtype, block_size: u32, axis: Option<u32>, flags: u16| EntryDecl {
        name: e.name.clone(),
        scheme,
        dtype,
        dims: e.shape.clone(),
        block_size,
        axis,
        flags: EntryFlags(flags),
        compression: Default::default(),
    };
    match e.scheme {
        Scheme::Keep => EntryDecl::raw(e.name.clone(), e.dtype, &e.shape),
        Scheme::Cast(d) | Scheme::Ggml(d) => EntryDecl::raw(e.name.clone(), d, &e.shape),
        Scheme::Int8 { per_channel, symmetric } => {
            let per_axis = per_channel && !e.shape.is_empty();
            let flags = if symmetric { EntryFlags::SYMMETRIC } else { 0 }
                | if per_axis { EntryFlags::PER_AXIS } else { 0 };
            let dtype = if symmetric { DType::I8 } else { DType::U8 };
            decl(BlobScheme::Int8, dtype, 0, per_axis.then_some(0), flags)
        }
        Scheme::Nf4 { double_quant } => decl(
            BlobScheme::Nf4,
            DType::U8,
            smelt_quant::nf4::NF4_BLOCK_SIZE as u32,
            None,
            if double_quant { EntryFlags::DOUBLE_QUANT } else { 0 },
        ),
        Scheme::Int4 { group, symmetric } => {
            decl(BlobScheme::Int4, DType::U8, group, None, if symmetric { EntryFlags::SYMMETRIC } else { 0 })
        }
        Scheme::Ternary { packing: TernaryPacking::TwoBit } => {
            decl(BlobScheme::Ternary2, DType::U8, 0, None, 0)
        }
        Scheme::Ternary { packing: TernaryPacking::Base3 } => {
            decl(BlobScheme::Ternary3, DType::U8, 0, None, 0)
        }
    }
}

/// The four sections (data, scales, zeros, aux) of an encoded tensor, laid out as
/// docs/blob-format.md says for its scheme.
/// Sections the encoding already holds are borrowed, not copied.
/// Int4 codes are packed into `pack`, a buffer the sink keeps from tensor to tensor (only its
/// growth is ever zeroed; packing writes every byte it hands out).
fn sections<'a>(e: &'a Encoded, pack: &'a mut Vec<u8>) -> [Cow<'a, [u8]>; 4] {
    let none = || Cow::Borrowed(&[][..]);
    match e {
        Encoded::Plain { data, .. } => [Cow::Borrowed(&data[..]), none(), none(), none()],
        Encoded::Int8(t) => {
            let zeros = if t.dtype() == DType::I8 { none() } else { Cow::Borrowed(&t.zero_points[..]) };
            [Cow::Borrowed(&t.codes[..]), f32_bytes(&t.scales).into(), zeros, none()]
        }
        Encoded::Nf4(t) => match &t.absmax {
            Nf4Absmax::Plain(a) => [Cow::Borrowed(&t.packed[..]), f32_bytes(a).into(), none(), none()],
            Nf4Absmax::Double(d) => {
                let mut aux = vec![d.offset];
                aux.extend_from_slice(&d.nested_absmax);
                aux.extend_from_slice(&smelt_quant::nf4::blockwise8::dynamic_map_signed());
                [Cow::Borrowed(&t.packed[..]), Cow::Borrowed(&d.codes[..]), none(), f32_bytes(&aux).into()]
            }
        },
        Encoded::Int4(t) => {
            // Two codes per byte, first element in the low nibble, each row padded to a byte.
            let len = t.codes.len().checked_div(t.cols).map_or(0, |rows| rows * t.cols.div_ceil(2));
            if pack.len() < len {
                pack.resize(len, 0);
            }
            smelt_quant::int4::pack_nibble_rows_into(&t.codes, t.cols, &mut pack[..len]);
            let data = &pack[..len];
            let zeros = match t.mode {
                smelt_quant::int4::Int4Mode::Symmetric => none(),
                smelt_quant::int4::Int4Mode::Asymmetric => Cow::Borrowed(&t.zeros[..]),
            };
            [Cow::Borrowed(data), f32_bytes(&t.scales).into(), zeros, none()]
        }
        Encoded::Ternary(t, packing) => {
            let data = match packing {
                TernaryPacking::TwoBit => smelt_quant::ternary::pack_2bit(&t.codes),
                TernaryPacking::Base3 => smelt_quant::ternary::pack_base3(&t.codes),
            };
            // Codes are {-1, 0, 1} by construction, so packing cannot fail. Weights are
            // `code / scale`; the blob stores the multiplier 1/scale in f32, which gives
            // exactly the same values for codes in {-1, 0, 1}.
            [data.unwrap_or_default().into(), f32_bytes(&[1.0 / t.scale]).into(), none(), none()]
        }
    }
}

fn metadata(ctx: &SinkContext<'_>) -> BlobMetadata {
    let arch = ctx.model.config.as_ref().map(proto::ArchConfig::from);
    BlobMetadata {
        producer: "smelt".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        source_format: ctx.model.format.name().into(),
        arch,
        recipe: ctx.recipe.source.clone(),
        // File names and sizes only: directories would make the bytes depend on where the
        // input sits. The report carries the hashes.
        inputs: ctx
            .model
            .files
            .iter()
            .map(|p| proto::InputHash {
                path: p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                blake3: String::new(),
                size: std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            })
            .collect(),
        metadata: ctx.model.metadata.iter().map(|(k, v)| smelt_formats::blob::key_value(k, v)).collect(),
        onnx_graph: onnx_graph(ctx),
    }
}

/// For an ONNX input, its graph: the `ModelProto` as read (the reader took the main graph's
/// initializers out of it, and holds every tensor left inside it inline), and for each
/// initializer the blob tensor holding it, which has the initializer's name and dims.
fn onnx_graph(ctx: &SinkContext<'_>) -> Option<proto::OnnxGraph> {
    let graph = ctx.model.graph.as_ref()?;
    let model = bytes::Bytes::from(prost::Message::encode_to_vec(graph.proto()));
    let initializers = ctx
        .plan
        .entries
        .iter()
        .map(|e| proto::GraphInitializer {
            name: e.name.clone(),
            tensor: e.name.clone(),
            // Every dtype an ONNX initializer can have has an id (0 would be refused on reading).
            data_type: smelt_formats::onnx::onnx_type_id(e.dtype).unwrap_or(0),
            dims: e.shape.clone(),
        })
        .collect();
    Some(proto::OnnxGraph { model, initializers })
}

impl BlobSink {
    pub(crate) fn open(file: AtomicFile, ctx: &SinkContext<'_>) -> Result<BlobSink, ConvertError> {
        let path = ctx.output.to_path_buf();
        let mut writer = BlobWriter::new(file).map_err(|e| write_err(&path, e))?;
        writer.set_metadata(&metadata(ctx)).map_err(|e| write_err(&path, e))?;
        let pending = ctx.plan.entries.iter().map(declare).collect();
        Ok(BlobSink { writer: Some(writer), path, pending, pack: Vec::new() })
    }
}

impl Sink for BlobSink {
    fn write(&mut self, entry: &PlanEntry, encoded: &Encoded) -> Result<Option<String>, ConvertError> {
        let w = self.writer.as_mut().expect("blob sink used after finish");
        if !self.pending.is_empty() {
            for d in self.pending.drain(..) {
                w.declare(d).map_err(|e| write_err(&self.path, e))?;
            }
        }
        let _ = entry;
        let [data, scales, zeros, aux] = sections(encoded, &mut self.pack);
        w.write_tensor(TensorSections { data: &data, scales: &scales, zeros: &zeros, aux: &aux })
            .map_err(|e| write_err(&self.path, e))?;
        Ok(None)
    }

    fn finish(mut self: Box<Self>) -> Result<AtomicFile, ConvertError> {
        let w = self.writer.take().expect("blob sink finished twice");
        if !self.pending.is_empty() {
            // A model with no tensors still gets its (empty) directory.
            let mut w = w;
            for d in self.pending.drain(..) {
                w.declare(d).map_err(|e| write_err(&self.path, e))?;
            }
            return w.finish().map_err(|e| write_err(&self.path, e));
        }
        w.finish().map_err(|e| write_err(&self.path, e))
    }
}
