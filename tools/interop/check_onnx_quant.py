"""Checks a quantized ONNX model smelt wrote against onnxruntime and against numpy, without
smelt's code:

    check_onnx_quant.py FLOAT.onnx QUANT.onnx --scheme int8|int4|nf4 --mode operators|qdq
        [--per-tensor] [--asym] [--group-size G] [--input NAME=FILE.npy]... [--expect-external]
        [--expect-quantized N] --tol-float T --tol-ref T [--smelt BIN [--tol-smelt T]]

1. Structure (docs/onnx-output.md): every float MatMul/Gemm weight missing from QUANT's
   initializers must have been replaced by exactly the documented initializers and nodes
   (names, dtypes, shapes, attributes); nothing else in the graph may change: every other
   initializer is byte-identical and every other node is kept.
2. Weights: the quantized values are recomputed in numpy from the FLOAT weights --
   onnxruntime.quantization.quant_utils.quantize_data for int8 (ORT's own weight quantizer),
   GPTQ's round-to-nearest formulas for int4, bitsandbytes' NF4 rule for nf4 -- and must equal
   the stored codes, scales and zero points exactly.
3. Outputs: QUANT runs in onnxruntime (CPU EP) on fixed-seed inputs and is compared
   (a) with FLOAT's onnxruntime output: max |q - f| / max |f| <= --tol-float;
   (b) with FLOAT run with the numpy-dequantized weights substituted (for int8 dynamic also
       with every such MatMul's activation through DynamicQuantizeLinear + DequantizeLinear),
       both run with onnxruntime's graph optimizations off (exact operator semantics): the
       same ratio <= --tol-ref (tight);
   (c) with --smelt BIN: `smelt run` on the same inputs against onnxruntime's unoptimized run
       of QUANT, <= --tol-smelt.
On a CPU where onnxruntime's MatMulInteger is not the exact integer product (x86 without VNNI:
MLAS multiplies u8·i8 pairs with `vpmaddubsw`, which saturates their sum to i16, so full-range
int8 weights give errors of tens of percent), the comparisons (a)-(c) run a copy of QUANT in
which every MatMulInteger is written as the same product in standard ops (Cast to double,
Sub of the zero points, MatMul, Cast to int32: exact), so onnxruntime still runs every other
node of smelt's graph; QUANT itself must still load and run unchanged. The JSON line says
which was compared ("ort_matmulinteger": "exact" or "rewritten: saturates on this CPU").
Prints one JSON line of measurements and "OK"; exits 1 on any mismatch.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, numpy_helper
from onnxruntime.quantization import quant_utils

NF4 = np.array(
    [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
     -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
     0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
     0.7229568362236023, 1.0], dtype=np.float32)

FAILURES = []


def fail(msg):
    FAILURES.append(msg)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


def default_domain(n):
    return n.domain in ("", "ai.onnx")


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def weight_uses(graph):
    """name -> list of (node, layout) where it is B of MatMul/Gemm; layout 'kn' or 'nk'."""
    uses = {}
    for n in graph.node:
        if not default_domain(n) or n.op_type not in ("MatMul", "Gemm") or len(n.input) < 2:
            continue
        layout = "nk" if n.op_type == "Gemm" and attrs(n).get("transB", 0) else "kn"
        uses.setdefault(n.input[1], []).append((n, layout))
    return uses


# ---- numpy references ---------------------------------------------------------------

def ref_int8(w_nk, per_tensor, asym):
    """ORT's quantize_data per tensor or per output channel (rows of [N, K])."""
    qtype = TensorProto.UINT8 if asym else TensorProto.INT8
    if per_tensor:
        zp, scale, q = quant_utils.quantize_data(w_nk.reshape(-1), qtype, not asym)
        zps, scales, codes = np.array([zp]), np.array([scale], np.float32), q.reshape(w_nk.shape)
    else:
        rows = [quant_utils.quantize_data(r, qtype, not asym) for r in w_nk]
        zps = np.array([r[0] for r in rows])
        scales = np.array([r[1] for r in rows], np.float32)
        codes = np.stack([r[2] for r in rows])
    deq = (codes.astype(np.int32) - (zps.reshape(-1, 1) if not per_tensor else zps[0])).astype(np.float32) * (
        scales.reshape(-1, 1) if not per_tensor else scales[0])
    return codes, scales, zps, deq


def ref_int4(w_nk, g, asym):
    """GPTQ round-to-nearest per (row, group of g input columns) on [N, K]."""
    n, k = w_nk.shape
    grp = w_nk.reshape(n, k // g, g)
    lo = np.minimum(grp.min(axis=2), 0).astype(np.float32)
    hi = np.maximum(grp.max(axis=2), 0).astype(np.float32)
    if not asym:
        hi = np.maximum(np.abs(lo), hi)
        lo = np.where(lo < 0, -hi, lo)
    both0 = (lo == 0) & (hi == 0)
    lo = np.where(both0, np.float32(-1), lo)
    hi = np.where(both0, np.float32(1), hi)
    scale = ((hi - lo) / np.float32(15)).astype(np.float32)
    zero = np.full_like(scale, 8) if not asym else np.rint(-lo / scale).astype(np.float32)
    q = np.clip(np.rint(grp / scale[:, :, None]) + zero[:, :, None], 0, 15).astype(np.uint8)
    deq = (scale[:, :, None] * (q.astype(np.float32) - zero[:, :, None])).reshape(n, k).astype(np.float32)
    return q.reshape(n, k), scale, zero.astype(np.uint8), deq


def ref_nf4(w_nk, bs=64):
    """bitsandbytes quantize_4bit(quant_type='nf4') on the flattened [N, K] weight."""
    flat = w_nk.reshape(-1)
    nblocks = -(-flat.size // bs)
    mids = ((NF4[:-1] + NF4[1:]) / 2).astype(np.float32)
    absmax = np.zeros(nblocks, np.float32)
    codes = np.zeros(flat.size, np.uint8)
    for b in range(nblocks):
        blk = flat[b * bs:(b + 1) * bs]
        m = np.float32(np.abs(blk).max())
        full = blk.size == bs
        if full:
            absmax[b] = m
            scaled = blk * (np.float32(1) / np.maximum(m, np.float32(1e-38)))
        else:
            m = np.maximum(m, np.float32(1e-38))
            absmax[b] = m
            scaled = blk / m
        codes[b * bs:b * bs + blk.size] = np.searchsorted(mids, np.clip(scaled, -1, 1), side="left")
    deq = (NF4[codes] * np.repeat(absmax, bs)[:flat.size]).reshape(w_nk.shape)
    return codes, absmax, deq


# ---- structure and stored weights ------------------------------------------------------

def unpack_low_first(b, count):
    b = np.asarray(b, np.uint8).reshape(-1)
    out = np.empty(b.size * 2, np.uint8)
    out[0::2] = b & 0xF
    out[1::2] = b >> 4
    return out[:count]


def check_weight(name, w, layout, fq, qinit, qnodes, args, stats):
    """Checks one quantized weight; returns its numpy-dequantized reference in the stored layout."""
    w_nk = w.T if layout == "kn" else w
    n, k = w_nk.shape
    get = lambda s: qinit.get(s)
    if args.mode == "qdq":
        dq = [m for m in qnodes if m.op_type == "DequantizeLinear" and list(m.output) == [name]]
        if not check(len(dq) == 1, f"{name}: expected one DequantizeLinear producing it, found {len(dq)}"):
            return None
        dq = dq[0]
        a = attrs(dq)
        q = get(dq.input[0])
        scale = get(dq.input[1])
        zp = get(dq.input[2]) if len(dq.input) > 2 and dq.input[2] else None
        check(q is not None and scale is not None, f"{name}: DequantizeLinear inputs are not initializers")
        check(list(q.dims) == list(w.shape), f"{name}: quantized shape {list(q.dims)} != {list(w.shape)}")
        stored_q = numpy_helper.to_array(q)
        stored_s = numpy_helper.to_array(scale)
        stored_z = numpy_helper.to_array(zp) if zp is not None else None
        axis_kn = 1 if layout == "kn" else 0
        if args.scheme == "int8":
            codes, scales, zps, deq = ref_int8(w_nk, args.per_tensor, args.asym)
            want_t = TensorProto.UINT8 if args.asym else TensorProto.INT8
            check(q.data_type == want_t and zp is not None and zp.data_type == want_t, f"{name}: int8 dtypes")
            codes_l = codes.T if layout == "kn" else codes
            check(np.array_equal(stored_q, codes_l), f"{name}: codes differ from ORT quantize_data")
            if args.per_tensor:
                check("axis" not in a and stored_s.shape == (), f"{name}: per-tensor DQ must have a scalar scale")
                check(stored_s == scales[0] and stored_z == zps[0], f"{name}: scale/zero point differ")
            else:
                check(a.get("axis") == axis_kn and stored_s.shape == (n,), f"{name}: per-channel DQ axis {a.get('axis')}")
                check(np.array_equal(stored_s, scales) and np.array_equal(stored_z.astype(np.int32), zps.astype(np.int32)),
                      f"{name}: scales/zero points differ from ORT quantize_data")
        else:  # int4 blocked
            g = args.group_size
            codes, scales, zeros, deq = ref_int4(w_nk, g, args.asym)
            check(a.get("block_size") == g, f"{name}: block_size {a.get('block_size')} != {g}")
            check(a.get("axis") == (0 if layout == "kn" else 1), f"{name}: blocked axis {a.get('axis')}")
            if args.asym:
                check(q.data_type == TensorProto.UINT4 and zp is not None and zp.data_type == TensorProto.UINT4, f"{name}: uint4 dtypes")
                want_codes, want_z = codes, zeros
            else:
                check(q.data_type == TensorProto.INT4 and zp is None, f"{name}: symmetric int4 has INT4 codes and no zero point")
                want_codes = codes.astype(np.int8) - 8
            sl = scales.T if layout == "kn" else scales
            cl = want_codes.T if layout == "kn" else want_codes
            check(np.array_equal(stored_q.astype(np.int32), cl.astype(np.int32)), f"{name}: int4 codes differ")
            check(np.array_equal(stored_s, sl), f"{name}: int4 scales differ")
            if args.asym:
                zl = want_z.T if layout == "kn" else want_z
                check(np.array_equal(stored_z.astype(np.int32), zl.astype(np.int32)), f"{name}: int4 zero points differ")
        stats["dequantize_nodes"] = stats.get("dequantize_nodes", 0) + 1
        return deq.T if layout == "kn" else deq

    # operators mode
    if args.scheme == "int8":
        q, s, z = get(f"{name}_quantized"), get(f"{name}_scale"), get(f"{name}_zero_point")
        if not check(q is not None and s is not None and z is not None, f"{name}: missing _quantized/_scale/_zero_point"):
            return None
        codes, scales, zps, deq = ref_int8(w_nk, args.per_tensor, args.asym)
        want_t = TensorProto.UINT8 if args.asym else TensorProto.INT8
        check(q.data_type == want_t and z.data_type == want_t, f"{name}: int8 dtypes")
        check(list(q.dims) == [k, n], f"{name}: MatMulInteger B must be [K, N], is {list(q.dims)}")
        check(np.array_equal(numpy_helper.to_array(q), codes.T), f"{name}: codes differ from ORT quantize_data")
        ss, zz = numpy_helper.to_array(s), numpy_helper.to_array(z).astype(np.int32)
        if args.per_tensor:
            check(ss.shape == () and ss == scales[0] and zz == zps[0], f"{name}: per-tensor scale/zero point")
        else:
            check(ss.shape == (n,) and np.array_equal(ss, scales) and np.array_equal(zz, zps.astype(np.int32)),
                  f"{name}: per-channel scales/zero points")
        mmi = [m for m in qnodes if m.op_type == "MatMulInteger" and m.input[1] == q.name]
        check(len(mmi) == len(fq), f"{name}: {len(mmi)} MatMulInteger nodes for {len(fq)} consumers")
        for m in mmi:
            check(len(m.input) == 4 and m.input[3] == z.name, f"{name}: MatMulInteger zero point input")
        stats["MatMulInteger"] = stats.get("MatMulInteger", 0) + len(mmi)
    elif args.scheme == "int4":
        g = args.group_size
        b, s, z = get(f"{name}_Q4"), get(f"{name}_scales"), get(f"{name}_zero_points")
        if not check(b is not None and s is not None, f"{name}: missing _Q4/_scales"):
            return None
        codes, scales, zeros, deq = ref_int4(w_nk, g, args.asym)
        kb = k // g
        check(b.data_type == TensorProto.UINT8 and list(b.dims) == [n, kb, g // 2], f"{name}: B dims {list(b.dims)}")
        check(s.data_type == TensorProto.FLOAT and list(s.dims) == [n, kb], f"{name}: scales dims {list(s.dims)}")
        stored = unpack_low_first(numpy_helper.to_array(b), n * k).reshape(n, k)
        check(np.array_equal(stored, codes), f"{name}: MatMulNBits codes differ")
        check(np.array_equal(numpy_helper.to_array(s), scales), f"{name}: MatMulNBits scales differ")
        if args.asym:
            if check(z is not None and list(z.dims) == [n, (kb + 1) // 2], f"{name}: zero_points"):
                zs = np.stack([unpack_low_first(r, kb) for r in numpy_helper.to_array(z)])
                check(np.array_equal(zs, zeros), f"{name}: zero points differ")
        else:
            check(z is None, f"{name}: symmetric int4 must use MatMulNBits' default zero point 8")
        nodes = [m for m in qnodes if m.op_type == "MatMulNBits" and m.input[1] == b.name]
        check(len(nodes) == len(fq), f"{name}: {len(nodes)} MatMulNBits for {len(fq)} consumers")
        for m in nodes:
            a = attrs(m)
            check(m.domain == "com.microsoft" and a == {"K": k, "N": n, "bits": 4, "block_size": g}, f"{name}: MatMulNBits attributes {a}")
            check(len(m.input) == (4 if args.asym else 3), f"{name}: MatMulNBits inputs {list(m.input)}")
        stats["MatMulNBits"] = stats.get("MatMulNBits", 0) + len(nodes)
    else:  # nf4
        b, am = get(f"{name}_nf4"), get(f"{name}_absmax")
        if not check(b is not None and am is not None, f"{name}: missing _nf4/_absmax"):
            return None
        codes, absmax, deq = ref_nf4(w_nk)
        check(list(b.dims) == [(n * k + 1) // 2] and b.data_type == TensorProto.UINT8, f"{name}: B dims {list(b.dims)}")
        packed = numpy_helper.to_array(b)
        hi_first = np.empty(packed.size * 2, np.uint8)
        hi_first[0::2], hi_first[1::2] = packed >> 4, packed & 0xF
        check(np.array_equal(hi_first[:n * k], codes), f"{name}: NF4 codes differ")
        check(np.array_equal(numpy_helper.to_array(am), absmax), f"{name}: absmax differ")
        nodes = [m for m in qnodes if m.op_type == "MatMulBnb4" and m.input[1] == b.name]
        check(len(nodes) == len(fq), f"{name}: {len(nodes)} MatMulBnb4 for {len(fq)} consumers")
        for m in nodes:
            a = attrs(m)
            check(m.domain == "com.microsoft" and a == {"K": k, "N": n, "block_size": 64, "quant_type": 1}, f"{name}: MatMulBnb4 attributes {a}")
        stats["MatMulBnb4"] = stats.get("MatMulBnb4", 0) + len(nodes)
    return deq.T if layout == "kn" else deq


def run(model, feeds, optimize=True):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    if not optimize:
        # Exact operator semantics: onnxruntime's optimizer would otherwise fuse
        # DequantizeLinear -> MatMul into MatMulNBits with int8 activations, or QDQ pairs.
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model),
                             opts, providers=["CPUExecutionProvider"])
    return s.run(None, feeds)


def ort_matmulinteger_exact():
    """Whether onnxruntime's MatMulInteger gives the exact product of u8 and i8 extremes here
    (255·-128 twice: -65280, which no i16 holds)."""
    g = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "probe",
        [onnx.helper.make_tensor_value_info("A", TensorProto.UINT8, [1, 64])], 
        [onnx.helper.make_tensor_value_info("Y", TensorProto.INT32, [1, 16])],
        [numpy_helper.from_array(np.full((64, 16), -128, np.int8), "B")])
    m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", 13)], ir_version=8)
    y = run(m, {"A": np.full((1, 64), 255, np.uint8)}, optimize=False)[0]
    return bool((y == 64 * 255 * -128).all())


def exact_matmulinteger(model):
    """A copy of `model` whose MatMulInteger nodes compute the same product in standard ops:
    Cast(A) - Cast(a_zero) and Cast(B) - Cast(b_zero) in double (exact for bytes), MatMul in
    double (exact: sums of at most 2^53), Cast to int32 (the result fits, as ONNX requires)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    nodes = []
    for i, n in enumerate(m.graph.node):
        if n.op_type != "MatMulInteger" or n.domain not in ("", "ai.onnx"):
            nodes.append(n)
            continue
        ops = []
        for side, (x, zp) in enumerate([(n.input[0], n.input[2] if len(n.input) > 2 else ""),
                                        (n.input[1], n.input[3] if len(n.input) > 3 else "")]):
            xd = f"{n.name or i}__exact{side}"
            nodes.append(onnx.helper.make_node("Cast", [x], [xd], to=TensorProto.DOUBLE))
            if zp:
                zd = xd + "_zp"
                nodes.append(onnx.helper.make_node("Cast", [zp], [zd], to=TensorProto.DOUBLE))
                nodes.append(onnx.helper.make_node("Sub", [xd, zd], [xd + "_c"]))
                xd += "_c"
            ops.append(xd)
        prod = f"{n.name or i}__exact_prod"
        nodes.append(onnx.helper.make_node("MatMul", ops, [prod]))
        nodes.append(onnx.helper.make_node("Cast", [prod], [n.output[0]], to=TensorProto.INT32))
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    return m


def fake_quantize_activations(model, quantized):
    """The float reference of DynamicQuantizeLinear + MatMulInteger: each activation A that
    meets a quantized weight goes through DynamicQuantizeLinear and DequantizeLinear (standard
    ops, run unoptimized), so the reference sees the same uint8 activations."""
    nodes = []
    done = {}
    for n in model.graph.node:
        if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in quantized:
            a = n.input[0]
            if a not in done:
                q, s, z, d = (f"{a}__ref_q", f"{a}__ref_s", f"{a}__ref_z", f"{a}__ref_dq")
                nodes.append(onnx.helper.make_node("DynamicQuantizeLinear", [a], [q, s, z]))
                nodes.append(onnx.helper.make_node("DequantizeLinear", [q, s, z], [d]))
                done[a] = d
            n.input[0] = done[a]
        nodes.append(n)
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("float_model")
    p.add_argument("quant_model")
    p.add_argument("--scheme", required=True, choices=["int8", "int4", "nf4"])
    p.add_argument("--mode", required=True, choices=["operators", "qdq"])
    p.add_argument("--per-tensor", action="store_true")
    p.add_argument("--asym", action="store_true")
    p.add_argument("--group-size", type=int, default=128)
    p.add_argument("--input", action="append", default=[])
    p.add_argument("--expect-external", action="store_true")
    p.add_argument("--expect-quantized", type=int)
    p.add_argument("--tol-float", type=float, required=True)
    p.add_argument("--tol-ref", type=float, required=True)
    p.add_argument("--smelt", help="smelt binary: `smelt run` must match onnxruntime within --tol-smelt")
    p.add_argument("--tol-smelt", type=float, default=1e-5)
    args = p.parse_args()

    fm = onnx.load(args.float_model)
    qpath = Path(args.quant_model)
    qm_raw = onnx.load(str(qpath), load_external_data=False)
    external = any(t.data_location == TensorProto.EXTERNAL for t in qm_raw.graph.initializer)
    check(external == args.expect_external, f"external data: {external}, expected {args.expect_external}")
    if external:
        locs = {e.value for t in qm_raw.graph.initializer for e in t.external_data if e.key == "location"}
        check(locs == {qpath.name + ".data"}, f"external data locations {locs}")
    qm = onnx.load(str(qpath))
    onnx.checker.check_model(qm)

    finit = {t.name: t for t in fm.graph.initializer}
    qinit = {t.name: t for t in qm.graph.initializer}
    uses = weight_uses(fm.graph)
    quantized = [nm for nm in finit if nm not in qinit]
    if args.expect_quantized is not None:
        check(len(quantized) == args.expect_quantized, f"{len(quantized)} weights quantized, expected {args.expect_quantized}: {quantized}")

    # Everything else kept: initializers byte-identical, original non-matmul nodes present.
    for nm, t in finit.items():
        if nm in qinit:
            a, b = numpy_helper.to_array(t), numpy_helper.to_array(qinit[nm])
            check(a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), f"{nm}: kept initializer changed")
    qsig = [(n.op_type, tuple(n.input), tuple(n.output)) for n in qm.graph.node]
    for n in fm.graph.node:
        replaced = n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in quantized and args.mode == "operators"
        if not replaced and n.op_type not in ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                                               "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "Split"):
            check((n.op_type, tuple(n.input), tuple(n.output)) in qsig, f"node {n.name} ({n.op_type}) lost")
    if args.mode == "operators":
        for n in qm.graph.node:
            if n.op_type in ("MatMul", "Gemm"):
                check(len(n.input) < 2 or n.input[1] not in quantized, f"{n.name} still reads a quantized weight")
    fmeta = {p.key: p.value for p in fm.metadata_props}
    qmeta = {p.key: p.value for p in qm.metadata_props}
    for k_, v in fmeta.items():
        check(qmeta.get(k_) == v, f"metadata_props {k_} not carried over")
    check(qmeta.get("smelt.onnx_mode") == args.mode, f"smelt.onnx_mode = {qmeta.get('smelt.onnx_mode')}")
    domains = {o.domain: o.version for o in qm.opset_import}
    if args.mode == "operators" and args.scheme in ("int4", "nf4") and quantized:
        check(domains.get("com.microsoft") == 1, f"com.microsoft opset import: {domains}")
    if args.mode == "qdq" and args.scheme == "int4" and quantized:
        check(domains.get("", domains.get("ai.onnx")) >= 21 and qm.ir_version >= 10, f"opset {domains}, IR {qm.ir_version}")

    stats = {}
    ref_weights = {}
    for nm in quantized:
        check(nm in uses, f"{nm}: quantized but not a MatMul/Gemm weight")
        if nm not in uses:
            continue
        w = numpy_helper.to_array(finit[nm])
        layouts = {l for _, l in uses[nm]}
        check(len(layouts) == 1, f"{nm}: mixed layouts")
        deq = check_weight(nm, w, layouts.pop(), uses[nm], qinit, list(qm.graph.node), args, stats)
        if deq is not None:
            ref_weights[nm] = deq.astype(np.float32)

    # Inputs: given files, else fixed-seed normal floats.
    rng = np.random.default_rng(1234)
    given = dict(s.split("=", 1) for s in args.input)
    feeds = {}
    for i in fm.graph.input:
        if i.name in finit:
            continue
        if i.name in given:
            feeds[i.name] = np.load(given[i.name])
        else:
            dims = [d.dim_value if d.dim_value > 0 else 2 for d in i.type.tensor_type.shape.dim]
            feeds[i.name] = rng.standard_normal(dims).astype(np.float32)

    f_out = run(fm, feeds)
    q_out = run(qm, feeds)  # QUANT as written must load and run in onnxruntime
    ort_exact = ort_matmulinteger_exact()
    if not ort_exact and any(n.op_type == "MatMulInteger" for n in qm.graph.node):
        qm = exact_matmulinteger(qm)
        q_out = run(qm, feeds)
    ref = onnx.ModelProto()
    ref.CopyFrom(fm)
    for t in ref.graph.initializer:
        if t.name in ref_weights:
            t.CopyFrom(numpy_helper.from_array(ref_weights[t.name], t.name))
    if args.mode == "operators" and args.scheme == "int8":
        fake_quantize_activations(ref, quantized)
    r_out = run(ref, feeds, optimize=False)
    q_exact = run(qm, feeds, optimize=False)
    rel_f = max(float(np.abs(q - f).max() / max(np.abs(f).max(), 1e-12)) for q, f in zip(q_out, f_out))
    rel_r = max(float(np.abs(q - r).max() / max(np.abs(r).max(), 1e-12)) for q, r in zip(q_exact, r_out))
    rel_s = None
    if args.smelt:
        with tempfile.TemporaryDirectory() as tmp:
            np.savez(Path(tmp) / "in.npz", **feeds)
            r = subprocess.run([args.smelt, "run", str(qpath), "--inputs", str(Path(tmp) / "in.npz"), "-o",
                                str(Path(tmp) / "out.npz")], capture_output=True, text=True)
            if check(r.returncode == 0, f"smelt run exited {r.returncode}: {r.stderr.strip()}"):
                got = np.load(Path(tmp) / "out.npz")
                names = [o.name for o in qm.graph.output]
                rel_s = max(float(np.abs(got[nm] - q).max() / max(np.abs(q).max(), 1e-12)) for nm, q in zip(names, q_exact))
                check(rel_s <= args.tol_smelt, f"smelt run vs onnxruntime: relative max error {rel_s:.3g} > {args.tol_smelt}")
    check(rel_f <= args.tol_float, f"vs float model: relative max error {rel_f:.3g} > {args.tol_float}")
    check(rel_r <= args.tol_ref, f"vs numpy-dequantized reference: relative max error {rel_r:.3g} > {args.tol_ref}")
    print(json.dumps({"model": qpath.name, "scheme": args.scheme, "mode": args.mode, "quantized": len(quantized),
                      "external": external, "rel_err_vs_float": rel_f, "rel_err_vs_reference": rel_r,
                      "rel_err_smelt_run_vs_onnxruntime": rel_s,
                      "ort_matmulinteger": "exact" if ort_exact else "rewritten: saturates on this CPU", **stats}))
    if FAILURES:
        for f in FAILURES:
            print("FAIL:", f)
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
