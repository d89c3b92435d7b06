"""Checks `smelt run` on a smelt blob converted from an ONNX model against onnxruntime, without
smelt's code:

    check_blob_run.py MODEL.onnx MODEL.smelt INPUTS.npz SMELT_OUTPUTS.npz --tol T
        [--expect-scheme NAME]...

1. The blob is read here (docs/blob-format.md: header, directory, sections; uncompressed
   sections only) and every tensor is dequantized by an independent reference: gguf-py's
   `gguf.quants.dequantize` for ggml block types, numpy for the formulas of int8, int4, nf4 and
   ternary, numpy's casts for f16/bf16. Every initializer of MODEL must be a blob tensor of the
   same name and dims.
2. MODEL runs in onnxruntime (CPU EP, graph optimizations off) with its initializers replaced
   by those values (cast to each initializer's dtype), on INPUTS.
3. Each output of SMELT_OUTPUTS (what `smelt run MODEL.smelt` wrote) must match:
   max |smelt - ort| / max |ort| <= T.
--expect-scheme NAME: at least one tensor of the blob has that scheme (so a check of a
quantized blob cannot pass on a blob that kept every weight as it was).
Prints one JSON line of measurements and "OK"; exits 1 on any mismatch.
"""

import argparse
import json
import struct
import sys

import numpy as np
import onnx
import onnxruntime as ort
from gguf import GGMLQuantizationType as Q
from gguf import quants
from onnx import numpy_helper

SCHEMES = {0: "raw", 1: "int8", 2: "nf4", 3: "int4", 4: "ternary2", 5: "ternary3", 6: "ggml"}
PLAIN = {0: np.float32, 1: np.float16, 3: np.float64, 4: np.int8, 5: np.int16, 6: np.int32,
         7: np.int64, 10: np.uint8, 11: np.uint16, 12: np.uint32, 13: np.uint64, 14: np.bool_}
GGML = {32: Q.Q4_0, 33: Q.Q4_1, 34: Q.Q5_0, 35: Q.Q5_1, 36: Q.Q8_0, 37: Q.Q2_K, 38: Q.Q3_K,
        39: Q.Q4_K, 40: Q.Q5_K, 41: Q.Q6_K, 42: Q.TQ1_0, 43: Q.TQ2_0}
BF16 = 2
NF4 = np.array(
    [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
     -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
     0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
     0.7229568362236023, 1.0], dtype=np.float32)


def read_blob(path):
    """{name: (scheme, dtype_code, flags, block_size, axis, dims, sections)}."""
    b = open(path, "rb").read()
    assert b[:8] == b"SMELTBLB", "not a smelt blob"
    count, = struct.unpack_from("<I", b, 20)
    strtab, = struct.unpack_from("<Q", b, 32)
    out = {}
    for i in range(count):
        e = 128 + 176 * i
        name_off, name_len, scheme, dtype, rank, codec, flags, block, axis = struct.unpack_from(
            "<IIHHBBHII", b, e)
        dims = list(struct.unpack_from("<8Q", b, e + 24)[:rank])
        assert codec == 0, "compressed sections are not supported by this check"
        (d_off, d_len, _raw, s_off, s_len, z_off, z_len, a_off, a_len) = struct.unpack_from("<9Q", b, e + 88)
        sec = lambda off, n: b[off:off + n]  # noqa: E731
        name = b[strtab + name_off:strtab + name_off + name_len].decode()
        out[name] = (SCHEMES[scheme], dtype, flags, block, axis, dims,
                     (sec(d_off, d_len), sec(s_off, s_len), sec(z_off, z_len), sec(a_off, a_len)))
    return out


def f32(b):
    return np.frombuffer(b, dtype="<f4")


def dequantize(t):
    scheme, dtype, flags, block, axis, dims, (data, scales, zeros, aux) = t
    n = int(np.prod(dims)) if dims else 1
    if scheme == "raw":
        if dtype == BF16:
            u = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
            return u.view(np.float32).reshape(dims)
        return np.frombuffer(data, dtype=np.dtype(PLAIN[dtype]).newbyteorder("<")).reshape(dims)
    if scheme == "ggml":
        cols = dims[-1]
        rows = n // cols
        raw = np.frombuffer(data, dtype=np.uint8).reshape(rows, -1)
        return quants.dequantize(raw, GGML[dtype]).astype(np.float32).reshape(dims)
    if scheme == "int8":
        q = np.frombuffer(data, dtype=np.int8 if dtype == 4 else np.uint8).astype(np.int32).reshape(dims)
        s = f32(scales)
        z = (np.frombuffer(zeros, dtype=np.int8 if dtype == 4 else np.uint8).astype(np.int32)
             if zeros else np.zeros(len(s), np.int32))
        if flags & 2:  # per-axis
            shape = [1] * len(dims)
            shape[axis] = dims[axis]
            s, z = s.reshape(shape), z.reshape(shape)
        else:
            s, z = s[0], z[0]
        return (q - z).astype(np.float32) * s
    if scheme == "int4":
        cols = dims[-1]
        rows = n // cols
        packed = np.frombuffer(data, dtype=np.uint8).reshape(rows, (cols + 1) // 2)
        q = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(rows, -1)[:, :cols]
        groups = -(-cols // block)
        s = f32(scales).reshape(rows, groups)
        z = (np.frombuffer(zeros, dtype=np.uint8).reshape(rows, groups) if zeros
             else np.full((rows, groups), 8, np.uint8))
        g = (np.frombuffer(aux, dtype="<i4") if aux else np.arange(cols) // block)
        return (s[:, g] * (q.astype(np.float32) - z[:, g].astype(np.float32))).reshape(dims)
    if scheme == "nf4":
        packed = np.frombuffer(data, dtype=np.uint8)
        codes = np.stack([packed >> 4, packed & 0x0F], axis=-1).reshape(-1)[:n]
        nblocks = -(-n // block)
        if flags & 4:  # double quantization
            a = f32(aux)
            nested = -(-nblocks // 256)
            offset, nested_absmax, table = a[0], a[1:1 + nested], a[1 + nested:]
            c = np.frombuffer(scales, dtype=np.uint8)
            absmax = table[c] * nested_absmax[np.arange(nblocks) // 256] + offset
        else:
            absmax = f32(scales)
        return (NF4[codes] * absmax[np.arange(n) // block]).astype(np.float32).reshape(dims)
    if scheme in ("ternary2", "ternary3"):
        packed = np.frombuffer(data, dtype=np.uint8)
        if scheme == "ternary2":
            codes = np.stack([(packed >> (2 * i)) & 3 for i in range(4)], axis=-1).reshape(-1)[:n]
        else:
            codes = np.stack([(packed // 3 ** i) % 3 for i in range(5)], axis=-1).reshape(-1)[:n]
        return ((codes.astype(np.float32) - 1) * f32(scales)[0]).reshape(dims)
    raise SystemExit(f"unknown scheme {scheme}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx")
    ap.add_argument("blob")
    ap.add_argument("inputs")
    ap.add_argument("smelt_outputs")
    ap.add_argument("--tol", type=float, required=True)
    ap.add_argument("--expect-scheme", action="append", default=[])
    a = ap.parse_args()

    blob = read_blob(a.blob)
    model = onnx.load(a.onnx)
    failures = []
    schemes = {}
    for init in model.graph.initializer:
        t = blob.get(init.name)
        if t is None:
            failures.append(f"initializer {init.name} is not a blob tensor")
            continue
        if t[5] != list(init.dims):
            failures.append(f"{init.name}: blob dims {t[5]} vs graph {list(init.dims)}")
            continue
        schemes[t[0]] = schemes.get(t[0], 0) + 1
        want = numpy_helper.to_array(init).dtype
        values = dequantize(t).astype(want)
        init.CopyFrom(numpy_helper.from_array(values, init.name))
    for s in a.expect_scheme:
        if s not in schemes:
            failures.append(f"no tensor of the blob has scheme {s} (schemes: {schemes})")

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = dict(np.load(a.inputs))
    want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    got = dict(np.load(a.smelt_outputs))
    ratios = {}
    if sorted(got) != sorted(want):
        failures.append(f"outputs {sorted(got)} vs onnxruntime {sorted(want)}")
    for name, w in want.items():
        g = got.get(name)
        if g is None:
            continue
        if g.shape != w.shape:
            failures.append(f"{name}: shape {g.shape} vs onnxruntime {w.shape}")
            continue
        scale = float(np.max(np.abs(w))) or 1.0
        ratio = float(np.max(np.abs(g.astype(np.float64) - w.astype(np.float64)))) / scale
        ratios[name] = ratio
        if not ratio <= a.tol:
            failures.append(f"{name}: max |smelt - ort| / max |ort| = {ratio:.3e} > {a.tol:g}")
    print(json.dumps({"schemes": schemes, "max_rel_err": ratios}))
    if failures:
        for f in failures:
            print("FAIL:", f)
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
