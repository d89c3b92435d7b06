#!/usr/bin/env python3
"""Loads a GGUF smelt wrote with llama.cpp itself and compares its logits with transformers'.

    check_llama_cpp.py EVAL_BIN FILE.gguf HF_DIR [--tolerance T]

EVAL_BIN is smelt-llama-eval, built by tools/interop/build-llama-cpp.sh. HF_DIR is the checkpoint
the GGUF was written from; its sample.input_ids.npy (int64 [1, n]) is run through llama.cpp in one
batch and the logits of every position are compared with sample.logits.npy (f32 [1, n, vocab],
computed by transformers when the fixture was made). Prints what llama.cpp loaded and the max
absolute difference; exit status 1 if loading fails, the vocabulary or layer count differ from
config.json, or the difference is above the tolerance.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("eval_bin")
    ap.add_argument("gguf")
    ap.add_argument("hf_dir")
    ap.add_argument("--tolerance", type=float, default=1e-3)
    args = ap.parse_args()

    hf_dir = Path(args.hf_dir)
    config = json.loads((hf_dir / "config.json").read_text())
    ids = np.load(hf_dir / "sample.input_ids.npy").reshape(-1)
    want = np.load(hf_dir / "sample.logits.npy").reshape(len(ids), -1)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "logits.f32"
        r = subprocess.run([args.eval_bin, args.gguf, str(out), *[str(int(i)) for i in ids]],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"llama.cpp failed on {args.gguf} (exit {r.returncode}):\n{r.stdout}{r.stderr}", file=sys.stderr)
            return 1
        info = json.loads(r.stdout.strip().splitlines()[-1])
        got = np.fromfile(out, dtype="<f4").reshape(len(ids), -1)

    problems = []
    if info["n_vocab"] != config["vocab_size"]:
        problems.append(f"llama.cpp sees {info['n_vocab']} tokens, config.json says {config['vocab_size']}")
    if info["n_layer"] != config["num_hidden_layers"]:
        problems.append(f"llama.cpp sees {info['n_layer']} layers, config.json says {config['num_hidden_layers']}")
    if got.shape != want.shape:
        problems.append(f"logits shape {got.shape}, transformers' {want.shape}")
        diff = float("inf")
    else:
        diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
        if not diff <= args.tolerance:
            problems.append(f"max |logit difference| {diff:.3g} above tolerance {args.tolerance:g}")
        same_argmax = bool(np.all(got.argmax(-1) == want.argmax(-1)))
        if not same_argmax:
            problems.append("the most likely next token differs from transformers' at some position")
    for p in problems:
        print(f"{Path(args.gguf).name}: {p}", file=sys.stderr)
    print(json.dumps({"gguf": Path(args.gguf).name, "llama_cpp": info, "tokens": len(ids),
                      "max_abs_diff": diff, "tolerance": args.tolerance, "ok": not problems}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
