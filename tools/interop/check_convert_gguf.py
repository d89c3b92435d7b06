#!/usr/bin/env python3
"""Checks a GGUF that `smelt convert` wrote from an HF Llama-family checkpoint against what
gguf-py — llama.cpp's own Python library — makes of the same weights, without smelt:

  * tensor names from gguf-py's TensorNameMap;
  * values from the `safetensors` package, Q/K rows permuted with convert_hf_to_gguf.py's
    `permute` formula, 1-D tensors as F32 (as the converter stores norms);
  * every 2-D tensor quantized with `gguf.quants.quantize(data, qtype)` must equal smelt's
    bytes exactly; F16/F32 tensors must equal numpy's conversion exactly.

Usage: check_convert_gguf.py FILE.gguf HF_DIR QTYPE   (QTYPE: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, F16, F32)
Exit 0 when everything matches; 1 with a list of differences otherwise.
"""
import json
import sys
from pathlib import Path

import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy for safetensors)
import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from safetensors import safe_open


def permute(w: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    # convert_hf_to_gguf.py, LlamaModel.permute
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def load_hf(hf_dir: Path) -> dict:
    index = hf_dir / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    out = {}
    for f in files:
        with safe_open(str(hf_dir / f), framework="numpy") as st:
            for k in st.keys():
                out[k] = st.get_tensor(k).astype(np.float32)
    return out


def main() -> int:
    path, hf_dir, qtype = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].upper()
    cfg = json.loads((hf_dir / "config.json").read_text())
    arch = {"llama": gguf.MODEL_ARCH.LLAMA, "mistral": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2}[cfg["model_type"]]
    permutes = arch == gguf.MODEL_ARCH.LLAMA
    n_head, n_kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads")
    names = gguf.get_tensor_name_map(arch, cfg["num_hidden_layers"])
    want_type = Q[qtype]
    reader = gguf.GGUFReader(str(path))
    got = {t.name: t for t in reader.tensors}
    problems = []
    hf = load_hf(hf_dir)
    for hf_name, w in hf.items():
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None or name not in got:
            problems.append(f"{hf_name}: expected GGUF tensor {name} is missing")
            continue
        t = got.pop(name)
        if permutes and hf_name.endswith("q_proj.weight"):
            w = permute(w, n_head, n_head)
        elif permutes and hf_name.endswith("k_proj.weight"):
            w = permute(w, n_head, n_kv)
        if w.ndim <= 1:
            expect_type, expect = Q.F32, w.astype(np.float32).tobytes()
        elif want_type in (Q.F32, Q.F16):
            expect_type = want_type
            expect = w.astype(np.float32 if want_type == Q.F32 else np.float16).tobytes()
        else:
            expect_type, expect = want_type, gguf.quants.quantize(w, want_type).tobytes()
        if t.tensor_type != expect_type:
            problems.append(f"{name}: type {t.tensor_type.name}, expected {expect_type.name}")
            continue
        shape = [int(d) for d in reversed(t.shape)]
        if shape != list(w.shape):
            problems.append(f"{name}: shape {shape}, expected {list(w.shape)}")
        data = bytes(t.data.tobytes())
        if data != expect:
            diff = next(i for i, (a, b) in enumerate(zip(data, expect)) if a != b) if len(data) == len(expect) else None
            problems.append(f"{name}: bytes differ from gguf-py's (first at byte {diff}, {len(data)} vs {len(expect)} bytes)")
    for name in got:
        problems.append(f"{name}: in the GGUF but not in the checkpoint")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"{path.name}: {len(reader.tensors)} tensors checked against gguf-py ({qtype}): "
          f"{'OK' if not problems else str(len(problems)) + ' problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
