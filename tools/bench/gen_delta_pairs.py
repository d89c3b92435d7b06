#!/usr/bin/env python3
"""Writes the model versions `tools/bench-delta` makes updates between.

Usage:  python tools/bench/gen_delta_pairs.py OUT_DIR [--size bench|small]

A random BF16 Llama-shaped checkpoint (`base`; bench size: hidden 768, 3 layers, 12 heads,
4 KV heads, intermediate 2048, vocab 6000, untied head: 28M parameters, 57 MB) and three new
versions of it, each a single `model.safetensors` + `config.json` directory:

- `few`:   a fine-tune touching a few tensors: layer 0 q_proj and v_proj, the last layer's
           down_proj and the final norm get W + N(0, 0.002) (10% of the weights' std);
- `lora`:  a LoRA merged into every attention projection: W + (alpha/r) B A, rank r = 8,
           alpha = 16, A and B ~ N(0, 0.02);
- `noise`: a small fine-tune everywhere: every tensor W + N(0, 0.0002) (1% of the std).

Weights are drawn with numpy's PCG64 from fixed seeds and rounded to BF16 by ml_dtypes (the
deltas are added in float32 to the BF16 base, then rounded): the same bytes every run. Each file
is written one tensor at a time in the safetensors layout (8-byte header length, JSON header
padded to 8, tensors contiguous in header order).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import ml_dtypes
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from gen_llama_checkpoint import config_json, tensor_specs  # noqa: E402  (one Llama layout for both benchmarks)

SIZES = {
    "bench": dict(hidden=768, layers=3, heads=12, kv_heads=4, intermediate=2048, vocab=6000),
    "small": dict(hidden=128, layers=2, heads=4, kv_heads=2, intermediate=352, vocab=500),
}
SEED = 20261206
STD = 0.02
BF16 = ml_dtypes.bfloat16


def base_tensor(rng, shape) -> np.ndarray:
    if len(shape) == 1:
        return np.ones(shape, dtype=BF16)
    return (rng.standard_normal(shape, dtype=np.float32) * np.float32(STD)).astype(BF16)


def edit(variant: str, name: str, w: np.ndarray, rng, c: dict) -> np.ndarray:
    f = w.astype(np.float32)
    last = c["layers"] - 1
    if variant == "few":
        few = {"model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.v_proj.weight",
               f"model.layers.{last}.mlp.down_proj.weight", "model.norm.weight"}
        if name not in few:
            return w
        return (f + rng.standard_normal(w.shape, dtype=np.float32) * np.float32(0.002)).astype(BF16)
    if variant == "lora":
        if ".self_attn." not in name:
            return w
        r, alpha = 8, 16
        b = rng.standard_normal((w.shape[0], r), dtype=np.float32) * np.float32(0.02)
        a = rng.standard_normal((r, w.shape[1]), dtype=np.float32) * np.float32(0.02)
        return (f + np.float32(alpha / r) * (b @ a)).astype(BF16)
    if variant == "noise":
        return (f + rng.standard_normal(w.shape, dtype=np.float32) * np.float32(0.0002)).astype(BF16)
    return w


def write(path: pathlib.Path, tensors: list[tuple[str, np.ndarray]]) -> None:
    header, offset = {}, 0
    for name, t in tensors:
        header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-(8 + len(raw)) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for _, t in tensors:
            f.write(t.tobytes())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--size", choices=sorted(SIZES), default="bench")
    args = ap.parse_args()
    c = SIZES[args.size]
    rng = np.random.default_rng(SEED)
    base = [(n, base_tensor(rng, s)) for n, s in tensor_specs(c)]
    for k, variant in enumerate(["base", "few", "lora", "noise"]):
        d = args.out / variant
        d.mkdir(parents=True, exist_ok=True)
        vrng = np.random.default_rng(SEED + 1 + k)
        write(d / "model.safetensors", [(n, edit(variant, n, w, vrng, c)) for n, w in base])
        (d / "config.json").write_text(json.dumps(config_json(c), indent=2) + "\n")
    print(f"{args.out}: base, few, lora, noise")
    return 0


if __name__ == "__main__":
    sys.exit(main())
