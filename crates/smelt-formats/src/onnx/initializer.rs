//! Main-graph initializers to [`Tensor`]s: the name checks, then the data from wherever the
//! `TensorProto` keeps it (raw_data, a typed field, or an external file), with the
//! [`Location`] of its first byte.

use std::collections::HashMap;

use bytes::Bytes;

use super::data_type::TypedField;
use super::error::OnnxError;
use super::external::ExternalFiles;
use super::proto::TensorProto;
use super::tensor_data::{
    data_location, header, inline_data, nonempty_typed_fields, At, DataLocation, Header,
};
use super::wire::TensorSpan;
use crate::{limits, Location, Tensor};

/// Where a tensor's bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// `raw_data`, a slice of the `.onnx` file's bytes.
    Raw,
    /// A typed field, converted into a new buffer.
    Typed(TypedField),
    /// An external file (index among the external files) at `offset`.
    External { file: usize, offset: u64 },
}

/// The stored bytes of `t` (checked against header `h`) and their source.
pub(crate) fn tensor_bytes(
    t: &TensorProto,
    h: &Header,
    at: At<'_>,
    ext: &mut ExternalFiles,
) -> Result<(Bytes, Source), OnnxError> {
    match data_location(t, at)? {
        DataLocation::Inline => {
            let (bytes, field) = inline_data(t, h, at)?;
            Ok((bytes, field.map_or(Source::Raw, Source::Typed)))
        }
        DataLocation::External => {
            let inline = if t.raw_data.is_some() {
                Some("raw_data")
            } else {
                nonempty_typed_fields(t).first().map(|f| f.name())
            };
            if let Some(field) = inline {
                return Err(OnnxError::ConflictingData {
                    name: at.name.to_string(),
                    offset: at.offset,
                    first: field,
                    second: "external data (data_location = EXTERNAL)",
                });
            }
            if h.dtype == smelt_tensor::DType::String {
                return Err(OnnxError::WrongDataField {
                    name: at.name.to_string(),
                    offset: at.offset,
                    field: "external data",
                    dtype: h.dtype,
                });
            }
            let r = ext.resolve(t, h, at)?;
            Ok((r.data, Source::External { file: r.file, offset: r.offset }))
        }
    }
}

/// Offset of `slice` within `base` when it is a view into it (zero-copy `raw_data`).
pub(crate) fn offset_within(base: &Bytes, slice: &Bytes) -> Option<u64> {
    let b = base.as_ptr() as usize;
    let s = slice.as_ptr() as usize;
    let off = s.checked_sub(b)?;
    (!slice.is_empty() && off.checked_add(slice.len())? <= base.len()).then_some(off as u64)
}

/// The values of STRING initializers, by name, in file order.
pub(crate) type StringValues = Vec<(String, Vec<Vec<u8>>)>;

/// Converts the main graph's initializers, in file order, refusing missing, over-long and
/// duplicate names. String tensors' values are returned beside (a [`Tensor`] of
/// [`smelt_tensor::DType::String`] holds no bytes).
pub(crate) fn convert_initializers(
    inits: Vec<TensorProto>,
    spans: &[TensorSpan],
    base: &Bytes,
    ext: &mut ExternalFiles,
) -> Result<(Vec<Tensor>, StringValues), OnnxError> {
    let mut tensors = Vec::with_capacity(inits.len());
    let mut strings = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::with_capacity(inits.len());
    for (i, t) in inits.into_iter().enumerate() {
        let span = spans.get(i);
        let offset = span.map_or(0, |s| s.offset);
        let name = t.name.clone().unwrap_or_default();
        if name.is_empty() {
            return Err(OnnxError::UnnamedInitializer { offset });
        }
        if name.len() as u64 > limits::MAX_NAME_LEN {
            return Err(OnnxError::NameTooLong {
                offset,
                len: name.len() as u64,
                limit: limits::MAX_NAME_LEN,
            });
        }
        if let Some(&first_offset) = seen.get(&name) {
            return Err(OnnxError::DuplicateInitializer { name, offset, first_offset });
        }
        let at = At { name: &name, offset };
        let h = header(&t, at)?;
        let (data, source) = tensor_bytes(&t, &h, at, ext)?;
        let location = match source {
            Source::Raw => Location { file: 0, offset: offset_within(base, &data).unwrap_or(offset) },
            Source::Typed(f) => {
                Location { file: 0, offset: span.and_then(|s| s.field_offset(f.number())).unwrap_or(offset) }
            }
            Source::External { file, offset } => Location { file: file + 1, offset },
        };
        if h.dtype == smelt_tensor::DType::String {
            strings.push((name.clone(), t.string_data));
        }
        seen.insert(name.clone(), offset);
        tensors.push(Tensor { name, dtype: h.dtype, shape: h.shape, data, location });
    }
    Ok((tensors, strings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_within_only_for_views_into_base() {
        let base = Bytes::from(vec![0u8; 16]);
        assert_eq!(offset_within(&base, &base.slice(4..8)), Some(4));
        assert_eq!(offset_within(&base, &base.slice(0..16)), Some(0));
        assert_eq!(offset_within(&base, &Bytes::from(vec![1u8; 4])), None);
        assert_eq!(offset_within(&base, &base.slice(4..4)), None);
    }
}
