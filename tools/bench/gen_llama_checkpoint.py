#!/usr/bin/env python3
"""Writes a random BF16 Llama-shaped Hugging Face checkpoint for `tools/bench-convert`.

Usage:  python tools/bench/gen_llama_checkpoint.py OUT_DIR [--size full|small] [--shard-mb N]

`full` is the benchmark's model, about 0.85B parameters (1.7 GB of BF16): hidden 2048, 16
layers, 16 heads, 4 KV heads, intermediate 5632, vocab 32000, untied LM head. `small` has the
same structure at a few MB (hidden 256, 2 layers, vocab 3000: 3000 is not a multiple of 256, so
the vocab-sized tensors exercise partial chunks), for checking that a change to the converter
leaves its output bytes alone.

Weights are Gaussian (std 0.02, norms 1.0) drawn with numpy's PCG64 from a fixed seed, rounded
to BF16 by ml_dtypes: the same bytes every run. Shards are written by hand in the safetensors
layout (8-byte header length, JSON header, tensors in header order, contiguous) with
transformers' names (`model-0000N-of-0000M.safetensors` + `model.safetensors.index.json`), one
tensor at a time, so the generator never holds more than one tensor in memory. A config.json
(LlamaForCausalLM) makes the checkpoint convertible to GGUF.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import ml_dtypes
import numpy as np

SIZES = {
    "full": dict(hidden=2048, layers=16, heads=16, kv_heads=4, intermediate=5632, vocab=32000),
    "small": dict(hidden=256, layers=2, heads=4, kv_heads=2, intermediate=704, vocab=3000),
}
SEED = 20240611
STD = 0.02


def tensor_specs(c: dict) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every tensor, in the order transformers' state dict lists them."""
    h, kv = c["hidden"], c["kv_heads"] * (c["hidden"] // c["heads"])
    specs = [("model.embed_tokens.weight", (c["vocab"], h))]
    for i in range(c["layers"]):
        p = f"model.layers.{i}"
        specs += [
            (f"{p}.self_attn.q_proj.weight", (h, h)),
            (f"{p}.self_attn.k_proj.weight", (kv, h)),
            (f"{p}.self_attn.v_proj.weight", (kv, h)),
            (f"{p}.self_attn.o_proj.weight", (h, h)),
            (f"{p}.mlp.gate_proj.weight", (c["intermediate"], h)),
            (f"{p}.mlp.up_proj.weight", (c["intermediate"], h)),
            (f"{p}.mlp.down_proj.weight", (h, c["intermediate"])),
            (f"{p}.input_layernorm.weight", (h,)),
            (f"{p}.post_attention_layernorm.weight", (h,)),
        ]
    specs += [("model.norm.weight", (h,)), ("lm_head.weight", (c["vocab"], h))]
    return specs


def config_json(c: dict) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": c["hidden"] // c["heads"],
        "hidden_act": "silu",
        "hidden_size": c["hidden"],
        "intermediate_size": c["intermediate"],
        "max_position_embeddings": 2048,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": c["heads"],
        "num_hidden_layers": c["layers"],
        "num_key_value_heads": c["kv_heads"],
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "vocab_size": c["vocab"],
    }


def shard(specs, shard_bytes: int) -> list[list[tuple[str, tuple[int, ...]]]]:
    """Greedy split in order, as transformers' `shard_checkpoint` does."""
    shards, current, size = [], [], 0
    for name, shape in specs:
        n = int(np.prod(shape)) * 2
        if current and size + n > shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append((name, shape))
        size += n
    if current:
        shards.append(current)
    return shards


def values(rng: np.random.Generator, name: str, shape) -> np.ndarray:
    if len(shape) == 1:
        return np.ones(shape, dtype=ml_dtypes.bfloat16)
    return (rng.standard_normal(shape, dtype=np.float32) * np.float32(STD)).astype(ml_dtypes.bfloat16)


def write_shard(path: pathlib.Path, tensors, rng: np.random.Generator) -> None:
    header, offset = {}, 0
    for name, shape in tensors:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-(8 + len(raw)) % 8)  # data starts 8-aligned, as the safetensors writer pads
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for name, shape in tensors:
            f.write(values(rng, name, shape).tobytes())
    tmp.rename(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--shard-mb", type=int, default=1000)
    args = ap.parse_args()
    c = SIZES[args.size]
    out: pathlib.Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    specs = tensor_specs(c)
    shards = shard(specs, args.shard_mb * 1_000_000)
    rng = np.random.default_rng(SEED)
    weight_map, total = {}, 0
    for i, tensors in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_shard(out / fname, tensors, rng)
        for name, shape in tensors:
            weight_map[name] = fname
            total += int(np.prod(shape)) * 2
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n"
    )
    (out / "config.json").write_text(json.dumps(config_json(c), indent=2) + "\n")
    params = sum(int(np.prod(s)) for _, s in specs)
    print(f"{out}: {params / 1e9:.3f}B parameters, {total / 1e9:.2f} GB in {len(shards)} shard(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
