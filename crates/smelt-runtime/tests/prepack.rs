//! Quantized weights repacked when the session loads: MatMulNBits (4-bit, with and without
//! zero points) and MatMulBnb4 NF4 whose B is an initializer give the same bits as the same
//! graph with B fed as an input (the kernels then pack it on the fly), match an f64
//! dequantize-and-multiply, and an initializer something else still reads is kept.

use std::path::Path;

use prost::Message;
use smelt_formats::onnx::proto::attribute_proto::AttributeType;
use smelt_formats::onnx::proto::tensor_shape_proto::{dimension::Value as DimValue, Dimension};
use smelt_formats::onnx::proto::type_proto::{Tensor as TensorType, Value as TypeValue};
use smelt_formats::onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use smelt_runtime::{Data, Session, Value};

/// xorshift64*, deterministic inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 56) as u8).collect()
    }
    fn f32s(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)).collect()
    }
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(v),
        r#type: Some(AttributeType::Int as i32),
        ..Default::default()
    }
}

/// A value info of element type `elem` and dims (`None`: symbolic `m`).
fn value_info(name: &str, elem: i32, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => DimValue::DimValue(*v),
                None => DimValue::DimParam("m".into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(TensorType {
                elem_type: Some(elem),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A named constant: u8 bytes (elem 2) or f32 (elem 1), 1-D.
enum Weight {
    U8(&'static str, Vec<u8>),
    F32(&'static str, Vec<f32>),
    I32(&'static str, Vec<i32>),
    /// An optional input left out (an empty name in the node's inputs).
    Absent,
}

impl Weight {
    fn name(&self) -> &'static str {
        match self {
            Weight::U8(n, _) | Weight::F32(n, _) | Weight::I32(n, _) => n,
            Weight::Absent => "",
        }
    }
    fn tensor(&self) -> TensorProto {
        let (elem, len, raw) = match self {
            Weight::U8(_, v) => (2, v.len(), v.clone()),
            Weight::F32(_, v) => (1, v.len(), v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            Weight::I32(_, v) => (6, v.len(), v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            Weight::Absent => unreachable!("an absent input has no tensor"),
        };
        TensorProto {
            name: Some(self.name().into()),
            data_type: Some(elem),
            dims: vec![len as i64],
            raw_data: Some(raw.into()),
            ..Default::default()
        }
    }
    fn value(&self) -> Value {
        match self {
            Weight::U8(_, v) => Value::new(vec![v.len()], Data::U8(v.clone())),
            Weight::F32(_, v) => Value::f32(vec![v.len()], v.clone()),
            Weight::I32(_, v) => Value::new(vec![v.len()], Data::I32(v.clone())),
            Weight::Absent => unreachable!("an absent input has no value"),
        }
    }
    fn info(&self) -> ValueInfoProto {
        match self {
            Weight::U8(n, v) => value_info(n, 2, &[Some(v.len() as i64)]),
            Weight::F32(n, v) => value_info(n, 1, &[Some(v.len() as i64)]),
            Weight::I32(n, v) => value_info(n, 6, &[Some(v.len() as i64)]),
            Weight::Absent => unreachable!("an absent input has no value info"),
        }
    }
}

/// One contrib node `Y = op(A, weights...)`, the weights as initializers or as graph inputs;
/// `echo` adds an Identity of the first weight as a second output.
fn session(
    op: &str,
    attrs: Vec<AttributeProto>,
    k: usize,
    weights: &[Weight],
    as_inputs: bool,
    echo: bool,
) -> Session {
    let mut inputs = vec![value_info("A", 1, &[None, Some(k as i64)])];
    let mut initializer = Vec::new();
    for w in weights.iter().filter(|w| !matches!(w, Weight::Absent)) {
        if as_inputs {
            inputs.push(w.info());
        } else {
            initializer.push(w.tensor());
        }
    }
    let mut node_inputs = vec!["A".to_string()];
    node_inputs.extend(weights.iter().map(|w| w.name().to_string()));
    let mut node = vec![NodeProto {
        op_type: Some(op.into()),
        domain: Some("com.microsoft".into()),
        input: node_inputs,
        output: vec!["Y".into()],
        attribute: attrs,
        ..Default::default()
    }];
    let mut output = vec![ValueInfoProto { name: Some("Y".into()), ..Default::default() }];
    if echo {
        node.push(NodeProto {
            op_type: Some("Identity".into()),
            input: vec![weights[0].name().into()],
            output: vec!["W".into()],
            ..Default::default()
        });
        output.push(ValueInfoProto { name: Some("W".into()), ..Default::default() });
    }
    let model = ModelProto {
        ir_version: Some(10),
        opset_import: vec![
            OperatorSetIdProto { domain: Some(String::new()), version: Some(21) },
            OperatorSetIdProto { domain: Some("com.microsoft".into()), version: Some(1) },
        ],
        graph: Some(GraphProto {
            name: Some("g".into()),
            node,
            input: inputs,
            output,
            initializer,
            ..Default::default()
        }),
        ..Default::default()
    };
    let path = Path::new("prepack-test.onnx");
    let parsed = smelt_formats::onnx::parse(model.encode_to_vec().into(), path).unwrap();
    Session::from_model(&parsed, path).unwrap()
}

fn run(s: &Session, a: &[f32], k: usize, weights: &[Weight], as_inputs: bool) -> Vec<(String, Value)> {
    let mut feeds = vec![("A".to_string(), Value::f32(vec![a.len() / k, k], a.to_vec()))];
    if as_inputs {
        let present = weights.iter().filter(|w| !matches!(w, Weight::Absent));
        feeds.extend(present.map(|w| (w.name().to_string(), w.value())));
    }
    s.run(feeds).unwrap()
}

fn f32s(v: &Value) -> &[f32] {
    let Data::F32(y) = &v.data else { panic!("f32 output") };
    y
}

/// `y` against `Σ_kk a·w` in f64, within `1e-6·Σ|a||w|`.
fn check_against_f64(what: &str, y: &[f32], a: &[f32], w: &[f32], m: usize, n: usize, k: usize) {
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut mag) = (0f64, 0f64);
            for kk in 0..k {
                let p = a[i * k + kk] as f64 * w[j * k + kk] as f64;
                s += p;
                mag += p.abs();
            }
            let g = y[i * n + j] as f64;
            assert!((g - s).abs() <= 1e-6 * mag + 1e-30, "{what}: y[{i},{j}] = {g}, f64 {s}");
        }
    }
}

/// Runs both graphs (weights as initializers, then as inputs) for several batch sizes and
/// requires equal bits, the initializer one prepared at load and the input one not.
fn same_bits_packed_or_not(
    what: &str,
    op: &str,
    attrs: &[AttributeProto],
    k: usize,
    n: usize,
    weights: &[Weight],
    deq: &[f32],
) {
    let packed = session(op, attrs.to_vec(), k, weights, false, false);
    let fed = session(op, attrs.to_vec(), k, weights, true, false);
    assert_eq!(packed.prepared_nodes(), 1, "{what}: the constant weight is packed at load");
    assert_eq!(fed.prepared_nodes(), 0, "{what}: a fed weight cannot be packed at load");
    let mut rng = Rng(0x5EED ^ k as u64);
    for m in [1usize, 2, 3, 4, 5, 9] {
        let a = rng.f32s(m * k, -1.0, 1.0);
        let y1 = run(&packed, &a, k, weights, false);
        let y2 = run(&fed, &a, k, weights, true);
        let bits = |v: &Value| f32s(v).iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(y1[0].1.shape, vec![m, n]);
        assert_eq!(bits(&y1[0].1), bits(&y2[0].1), "{what} m={m}: packed at load vs on the fly");
        check_against_f64(&format!("{what} m={m}"), f32s(&y1[0].1), &a, deq, m, n, k);
    }
}

fn nbits_attrs(k: usize, n: usize, bs: usize) -> Vec<AttributeProto> {
    vec![
        int_attr("K", k as i64),
        int_attr("N", n as i64),
        int_attr("bits", 4),
        int_attr("block_size", bs as i64),
    ]
}

/// MatMulNBits 4-bit weights: (B, scales, packed zero points) and the dequantized `n×k`.
fn nbits_weights(rng: &mut Rng, k: usize, n: usize, bs: usize, zp: bool) -> (Vec<Weight>, Vec<f32>) {
    nbits_weights_g(rng, k, n, bs, zp, None)
}

/// [`nbits_weights`] with `g_idx` (element `kk` takes block `g_idx[kk]`'s scale and zero
/// point), appended as input 4 (input 3 left out without zero points).
fn nbits_weights_g(
    rng: &mut Rng,
    k: usize,
    n: usize,
    bs: usize,
    zp: bool,
    g_idx: Option<&[i32]>,
) -> (Vec<Weight>, Vec<f32>) {
    let kb = k.div_ceil(bs);
    let b = rng.bytes(n * kb * bs / 2);
    let scales = rng.f32s(n * kb, 0.01, 0.1);
    let zps = rng.bytes(n * kb.div_ceil(2));
    let mut deq = vec![0f32; n * k];
    for j in 0..n {
        for kk in 0..k {
            let blk = g_idx.map_or(kk / bs, |g| g[kk] as usize);
            let q = (b[j * kb * bs / 2 + kk / 2] >> (4 * (kk % 2))) & 0xF;
            let z = if zp { (zps[j * kb.div_ceil(2) + blk / 2] >> (4 * (blk % 2))) & 0xF } else { 8 };
            deq[j * k + kk] = (q as i32 - z as i32) as f32 * scales[j * kb + blk];
        }
    }
    let mut w = vec![Weight::U8("B", b), Weight::F32("scales", scales)];
    if zp {
        w.push(Weight::U8("zp", zps));
    }
    if let Some(g) = g_idx {
        if !zp {
            w.push(Weight::Absent);
        }
        w.push(Weight::I32("g_idx", g.to_vec()));
    }
    (w, deq)
}

/// GPTQ's act order: `[0, 0, .., 1, 1, ..]` with `bs` of each block (fewer in the last),
/// shuffled.
fn act_order(rng: &mut Rng, k: usize, bs: usize) -> Vec<i32> {
    let mut g: Vec<i32> = (0..k).map(|kk| (kk / bs) as i32).collect();
    for i in (1..k).rev() {
        g.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    g
}

/// A MatMulNBits with act-order `g_idx`: sorted at load as an initializer (prepared), the
/// general path when fed; both within the f64 bound for 1, 2 and 5 rows.
fn sorted_at_load(
    what: &str,
    attrs: &[AttributeProto],
    k: usize,
    n: usize,
    weights: &[Weight],
    deq: &[f32],
    rng: &mut Rng,
) {
    let packed = session("MatMulNBits", attrs.to_vec(), k, weights, false, false);
    let fed = session("MatMulNBits", attrs.to_vec(), k, weights, true, false);
    assert_eq!(packed.prepared_nodes(), 1, "{what}: sorted at load");
    assert_eq!(fed.prepared_nodes(), 0, "{what}");
    for m in [1usize, 2, 5] {
        let a = rng.f32s(m * k, -1.0, 1.0);
        for (s, fed_in) in [(&packed, false), (&fed, true)] {
            let y = run(s, &a, k, weights, fed_in);
            assert_eq!(y[0].1.shape, vec![m, n]);
            check_against_f64(&format!("{what} m={m} fed={fed_in}"), f32s(&y[0].1), &a, deq, m, n, k);
        }
    }
}

#[test]
fn matmulnbits_act_order_g_idx_is_sorted_into_blocks_at_load() {
    // GPTQ's act order: g_idx a shuffled [0, 0, .., 1, 1, ..] with block_size of each block
    // (fewer in the last). The initializer session sorts K by block at load (prepared); the fed
    // one dequantizes with g_idx on every call. Both within the f64 bound; the sum order
    // differs, so the bits may.
    let mut rng = Rng(13);
    for (k, n, bs, zp) in [(64usize, 20usize, 16usize, true), (80, 9, 32, false), (256, 33, 128, true)] {
        let g = act_order(&mut rng, k, bs);
        let (weights, deq) = nbits_weights_g(&mut rng, k, n, bs, zp, Some(&g));
        let what = format!("MatMulNBits act order k={k} n={n} bs={bs} zp={zp}");
        sorted_at_load(&what, &nbits_attrs(k, n, bs), k, n, &weights, &deq, &mut rng);
    }
    // Blocks of unequal sizes: not sorted at load, the general path, still right.
    let (k, n, bs) = (64usize, 6usize, 16usize);
    let g: Vec<i32> = (0..k).map(|kk| ((kk * 7 + kk / 5) % 4) as i32).collect();
    let (weights, deq) = nbits_weights_g(&mut rng, k, n, bs, true, Some(&g));
    let s = session("MatMulNBits", nbits_attrs(k, n, bs), k, &weights, false, false);
    assert_eq!(s.prepared_nodes(), 0, "unequal blocks take the general path");
    let a = rng.f32s(3 * k, -1.0, 1.0);
    let y = run(&s, &a, k, &weights, false);
    check_against_f64("MatMulNBits unequal g_idx blocks", f32s(&y[0].1), &a, &deq, 3, n, k);
}

#[test]
fn matmulnbits_8bit_act_order_g_idx_is_sorted_into_blocks_at_load() {
    // As the 4-bit case: sorted at load (prepared) against the general path of a fed weight,
    // both within the f64 bound; u8, float and default zero points.
    let mut rng = Rng(19);
    for (k, n, bs, zp) in [(64usize, 20usize, 16usize, "u8"), (80, 9, 32, "none"), (200, 6, 64, "float")] {
        let kb = k.div_ceil(bs);
        let g = act_order(&mut rng, k, bs);
        let b = rng.bytes(n * kb * bs);
        let scales = rng.f32s(n * kb, 0.001, 0.01);
        let zf: Vec<f32> = match zp {
            "u8" => rng.bytes(n * kb).into_iter().map(f32::from).collect(),
            "float" => rng.f32s(n * kb, 100.0, 150.0),
            _ => vec![128.0; n * kb],
        };
        let deq: Vec<f32> = (0..n * k)
            .map(|e| (e / k, e % k))
            .map(|(j, kk)| {
                let blk = g[kk] as usize;
                (b[j * kb * bs + kk] as f32 - zf[j * kb + blk]) * scales[j * kb + blk]
            })
            .collect();
        let mut weights = vec![Weight::U8("B", b), Weight::F32("scales", scales)];
        match zp {
            "u8" => weights.push(Weight::U8("zp", zf.iter().map(|&z| z as u8).collect())),
            "float" => weights.push(Weight::F32("zp", zf.clone())),
            _ => weights.push(Weight::Absent),
        }
        weights.push(Weight::I32("g_idx", g));
        let mut attrs = nbits_attrs(k, n, bs);
        attrs[2] = int_attr("bits", 8);
        let what = format!("MatMulNBits 8-bit act order k={k} n={n} bs={bs} zp={zp}");
        sorted_at_load(&what, &attrs, k, n, &weights, &deq, &mut rng);
    }
}

#[test]
fn matmulnbits_4bit_initializer_is_packed_at_load_with_the_same_bits() {
    let mut rng = Rng(7);
    for (k, n, bs, zp) in
        [(64usize, 20usize, 32usize, true), (80, 9, 32, false), (40, 5, 16, true), (256, 33, 128, true)]
    {
        let (weights, deq) = nbits_weights(&mut rng, k, n, bs, zp);
        let what = format!("MatMulNBits k={k} n={n} bs={bs} zp={zp}");
        same_bits_packed_or_not(&what, "MatMulNBits", &nbits_attrs(k, n, bs), k, n, &weights, &deq);
    }
}

#[test]
fn matmulnbits_byte_code_weights_are_prepared_at_load_with_the_same_bits() {
    // What the 8-bit kernels run: 8 bits with zero points none (128), packed u8 or floats, and,
    // widened to a byte per code, 2 bits (none: 2, packed four per byte, floats) and 4 bits
    // with float zero points. Prepared at load or fed (converted per call): the same kernel,
    // the same bits, within the f64 bound.
    let mut rng = Rng(17);
    for (bits, k, n, bs, zp) in [
        (8usize, 64usize, 20usize, 32usize, "u8"),
        (8, 80, 9, 32, "none"),
        (8, 200, 7, 16, "float"),
        (8, 256, 33, 128, "u8"),
        (2, 80, 9, 16, "u8"),
        (2, 64, 6, 32, "none"),
        (2, 100, 5, 64, "float"),
        (4, 72, 11, 16, "float"),
        (4, 256, 33, 128, "float"),
    ] {
        let (kb, per, top) = (k.div_ceil(bs), 8 / bits, 1u32 << bits);
        let codes: Vec<u8> = rng.bytes(n * kb * bs).into_iter().map(|c| (c as u32 % top) as u8).collect();
        let mut b = vec![0u8; n * kb * bs / per];
        for (e, &q) in codes.iter().enumerate() {
            b[e / per] |= q << ((e % per) * bits);
        }
        let scales = rng.f32s(n * kb, 0.001, 0.01);
        let zf: Vec<f32> = match zp {
            "u8" => rng.bytes(n * kb).into_iter().map(|z| (z as u32 % top) as f32).collect(),
            "float" => rng.f32s(n * kb, 0.0, top as f32),
            _ => vec![(top / 2) as f32; n * kb],
        };
        let deq: Vec<f32> = (0..n * k)
            .map(|e| (e / k, e % k))
            .map(|(j, kk)| (codes[j * kb * bs + kk] as f32 - zf[j * kb + kk / bs]) * scales[j * kb + kk / bs])
            .collect();
        let mut weights = vec![Weight::U8("B", b), Weight::F32("scales", scales)];
        match zp {
            "u8" => {
                let zp_row = (kb * bits).div_ceil(8);
                let mut z = vec![0u8; n * zp_row];
                for (e, &v) in zf.iter().enumerate() {
                    let (j, blk) = (e / kb, e % kb);
                    z[j * zp_row + blk / per] |= (v as u8) << ((blk % per) * bits);
                }
                weights.push(Weight::U8("zp", z));
            }
            "float" => weights.push(Weight::F32("zp", zf.clone())),
            _ => {}
        }
        let mut attrs = nbits_attrs(k, n, bs);
        attrs[2] = int_attr("bits", bits as i64);
        let what = format!("MatMulNBits {bits}-bit k={k} n={n} bs={bs} zp={zp}");
        same_bits_packed_or_not(&what, "MatMulNBits", &attrs, k, n, &weights, &deq);
    }
}

#[test]
fn matmulbnb4_nf4_initializer_is_packed_at_load_with_the_same_bits() {
    let (k, n, bs) = (128usize, 12usize, 64usize);
    let mut rng = Rng(9);
    let b = rng.bytes(n * k / 2);
    let absmax = rng.f32s(n * k / bs, 0.5, 1.5);
    let deq: Vec<f32> = (0..n * k)
        .map(|e| {
            let q = if e % 2 == 0 { b[e / 2] >> 4 } else { b[e / 2] & 0xF };
            smelt_kernels::NF4_CODE[q as usize] * absmax[e / bs]
        })
        .collect();
    let weights = [Weight::U8("B", b), Weight::F32("absmax", absmax)];
    let attrs =
        [int_attr("K", 128), int_attr("N", 12), int_attr("block_size", 64), int_attr("quant_type", 1)];
    same_bits_packed_or_not("MatMulBnb4 NF4", "MatMulBnb4", &attrs, k, n, &weights, &deq);
}

#[test]
fn an_initializer_another_node_reads_is_kept() {
    // B also feeds an Identity: the MatMulNBits is still prepared, and B still reaches the
    // second output unchanged.
    let (k, n, bs) = (64usize, 8usize, 32usize);
    let (weights, deq) = nbits_weights(&mut Rng(11), k, n, bs, true);
    let s = session("MatMulNBits", nbits_attrs(k, n, bs), k, &weights, false, true);
    assert_eq!(s.prepared_nodes(), 1);
    let a = Rng(12).f32s(2 * k, -1.0, 1.0);
    let out = run(&s, &a, k, &weights, false);
    check_against_f64("MatMulNBits beside an Identity of B", f32s(&out[0].1), &a, &deq, 2, n, k);
    let Weight::U8(_, b) = &weights[0] else { unreachable!() };
    assert_eq!(out[1].1.data, Data::U8(b.clone()), "the Identity of B sees the original bytes");
}
