"""Benchmark (not a test): two smelt binaries on the end-to-end models, in alternation, for
judging a change on a machine whose speed drifts from minute to minute.

    .venv/bin/python tools/bench/alternate_e2e.py OLD_SMELT NEW_SMELT [--threads 2 --rounds 3 --repeat 20]

Uses the models `bench_e2e.py` made in target/bench/e2e/ (run it once first) and the same
inputs (decode: 1 token after 127 cached; prefill: 128 tokens). Per model and step, each round
runs `smelt run --repeat N --threads T` with the old binary, then with the new one, and takes
each run's median per-run time (the process's first runs included: both sides pay them); the
table gives the median over the rounds and new / old. The outputs of the two binaries are
compared bit for bit (`-o` npz files), so a change that moves any output says so.
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_llama_onnx  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def median_ms(smelt: str, model: Path, npz: Path, out: Path, threads: int, repeat: int) -> float:
    p = subprocess.run([smelt, "run", str(model), "--inputs", str(npz), "-o", str(out), "--threads", str(threads),
                        "--repeat", str(repeat)], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{smelt} run {model} failed:\n{p.stderr}")
    return float(re.search(r"median ([0-9.]+) ms", p.stderr).group(1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeat", type=int, default=20, help="runs per process (prefill: half as many)")
    p.add_argument("--models", default="float,q-int8,q-int4")
    p.add_argument("--steps", default="decode,prefill")
    a = p.parse_args()
    work = ROOT / "target" / "bench" / "e2e"
    stamp = work / "model.json"
    if not stamp.exists():
        raise SystemExit(f"{work} has no models: run tools/bench/bench_e2e.py first")
    shape = json.loads(stamp.read_text())
    hd = shape["hidden"] // shape["heads"]
    ctx = 128
    steps = {
        "decode": gen_llama_onnx.feeds(shape["layers"], shape["kv_heads"], hd, shape["vocab"], 1, ctx - 1),
        "prefill": gen_llama_onnx.feeds(shape["layers"], shape["kv_heads"], hd, shape["vocab"], ctx, 0),
    }
    print("| model | step | old ms | new ms | new / old | old per round | new per round | outputs |")
    print("|---|---|---:|---:|---:|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for step in a.steps.split(","):
            npz = tmp / f"{step}.npz"
            np.savez(npz, **steps[step])
            repeat = a.repeat if step == "decode" else max(a.repeat // 2, 2)
            for model in a.models.split(","):
                path = work / f"{model}.onnx"
                old, new = [], []
                for _ in range(a.rounds):
                    old.append(median_ms(a.old, path, npz, tmp / "old.npz", a.threads, repeat))
                    new.append(median_ms(a.new, path, npz, tmp / "new.npz", a.threads, repeat))
                same = (tmp / "old.npz").read_bytes() == (tmp / "new.npz").read_bytes()
                mo, mn = statistics.median(old), statistics.median(new)
                print(f"| {model} | {step} | {mo:.2f} | {mn:.2f} | {mn / mo:.3f} | "
                      f"{' / '.join(f'{t:.1f}' for t in old)} | {' / '.join(f'{t:.1f}' for t in new)} | "
                      f"{'same bits' if same else 'DIFFER'} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
