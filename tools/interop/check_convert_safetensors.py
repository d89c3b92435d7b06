#!/usr/bin/env python3
"""Decodes a safetensors checkpoint that `smelt convert` wrote in bitsandbytes' NF4 layout or
GPTQ's int4 layout with numpy alone, from the layouts as bitsandbytes and AutoGPTQ define them
(not from smelt's code), and compares every reconstructed weight with the original HF weights.

  NF4: W (uint8, two codes per byte, first element in the high nibble), W.absmax (f32, or uint8
       codes with W.nested_absmax / W.nested_quant_map / nested_offset for double
       quantization), W.quant_map (the 16 NF4 values), W.quant_state.bitsandbytes__nf4 (JSON).
  GPTQ: qweight int32 [in/8, out] (8 codes per word along the input, lowest bits first),
        qzeros int32 [groups, out/8] (v1 "gptq": stored zero + 1; v2: as is), scales f16
        [groups, out], g_idx int32 [in]; W[o, i] = scales[g, o] * (q[i, o] - zero[g, o]).

Usage: check_convert_safetensors.py OUT.safetensors HF_DIR nf4|gptq MIN_COSINE
Exit 0 when every weight decodes with cosine >= MIN_COSINE and the layout is complete.
"""
import json
import sys
from pathlib import Path

import ml_dtypes  # noqa: F401  (bfloat16 for safetensors' numpy reader)
import numpy as np
from safetensors import safe_open

# bitsandbytes' NF4 code (functional.py, get_4bit_type("nf4")).
NF4 = np.array([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=np.float32)


def load(path):
    with safe_open(str(path), framework="numpy") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def cosine(a, b):
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def decode_nf4(t, name):
    state = json.loads(bytes(t[name + ".quant_state.bitsandbytes__nf4"]).decode())
    assert state["quant_type"] == "nf4", state
    assert np.array_equal(t[name + ".quant_map"], NF4), "quant_map is not the NF4 code"
    bs, shape = state["blocksize"], state["shape"]
    n = int(np.prod(shape))
    packed = t[name].reshape(-1)
    codes = np.empty(packed.size * 2, dtype=np.uint8)
    codes[0::2], codes[1::2] = packed >> 4, packed & 0x0F
    codes = codes[:n]
    absmax = t[name + ".absmax"]
    if absmax.dtype == np.uint8:
        nested = t[name + ".nested_absmax"]
        qmap = t[name + ".nested_quant_map"]
        nbs = state["nested_blocksize"]
        absmax = qmap[absmax] * np.repeat(nested, nbs)[: absmax.size] + np.float32(state["nested_offset"])
    scale = np.repeat(absmax.astype(np.float32), bs)[:n]
    return (NF4[codes] * scale).reshape(shape)


def decode_gptq(t, prefix, v1):
    qweight, qzeros, scales, g_idx = (t[prefix + s] for s in (".qweight", ".qzeros", ".scales", ".g_idx"))
    inp, out = qweight.shape[0] * 8, qweight.shape[1]
    shifts = np.arange(8, dtype=np.uint32) * 4
    q = ((qweight.astype(np.uint32)[:, None, :] >> shifts[None, :, None]) & 0xF).reshape(inp, out)
    z = ((qzeros.astype(np.uint32)[:, :, None] >> shifts[None, None, :]) & 0xF).reshape(qzeros.shape[0], out)
    if v1:
        z = (z + 1) & 0xF  # AutoGPTQ stores zero - 1 (wrapping)
    g = g_idx.astype(np.int64)
    w = scales.astype(np.float32)[g] * (q.astype(np.float32) - z[g].astype(np.float32))
    return w.T  # [out, in]


def main():
    out, hf_dir, kind, min_cos = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    t = load(out)
    ref = load(hf_dir / "model.safetensors")
    problems, checked = [], 0
    v1 = True
    if kind == "gptq":
        qc = json.loads((out.parent / "quantize_config.json").read_text())
        v1 = qc.get("checkpoint_format", "gptq") == "gptq"
    for name, w in ref.items():
        w = w.astype(np.float32)
        if kind == "nf4" and name + ".quant_state.bitsandbytes__nf4" in t:
            got = decode_nf4(t, name)
        elif kind == "gptq" and name.endswith(".weight") and name[:-7] + ".qweight" in t:
            got = decode_gptq(t, name[:-7], v1)
        elif name in t:
            got = t[name].astype(np.float32)
            if not np.array_equal(got, w):
                problems.append(f"{name}: kept tensor differs")
            continue
        else:
            problems.append(f"{name}: missing from the output")
            continue
        checked += 1
        if list(got.shape) != list(w.shape):
            problems.append(f"{name}: decoded shape {list(got.shape)} vs {list(w.shape)}")
            continue
        c = cosine(got, w)
        if not c >= min_cos:
            problems.append(f"{name}: cosine {c:.5f} < {min_cos}")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"{out.name}: {checked} quantized weights decoded with numpy ({kind}): "
          f"{'OK' if not problems and checked else str(len(problems)) + ' problems'}")
    return 0 if not problems and checked else 1


if __name__ == "__main__":
    sys.exit(main())
