"""Benchmark (not a test): end-to-end latency of a Llama-style decoder, float and quantized by
`smelt convert`, in `smelt run` beside onnxruntime, in the same run, batch 1, 2 threads.

    .venv/bin/python tools/bench/bench_e2e.py target/release/smelt [--runs 5 --rounds 3] [--hidden 1024 ...]

The model comes from gen_llama_onnx.py (fixed seed; made once into target/bench/e2e/, reused
while its arguments stay the same), and is quantized with `smelt convert --quant int8`
(DynamicQuantizeLinear + MatMulInteger) and `--quant int4 --group-size 32` (MatMulNBits), and on
request (`--models ...,ort-nbits8`) by ONNX Runtime's own MatMulNBitsQuantizer at 8 bits. Two
steps are timed: decode (1 new token after 127 cached ones) and prefill (128 tokens, empty
cache). onnxruntime: CPU execution provider, intra_op_num_threads=2, inter_op_num_threads=1,
sequential execution, all graph optimizations (its default). smelt: `smelt run --repeat N
--threads 2`, which times each run inside one process, model loading excluded. Each side gets
`--warmup` untimed runs per round (default 10: a fresh process, or a new session, takes several
runs to reach its steady time as caches fill), then `--runs` timed runs, in `--rounds` rounds
that alternate the two (a change in the machine's load falls on both); the median of all timed
runs is reported. smelt's outputs are checked against onnxruntime's (max abs difference of the
logits, printed beside the times).
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_llama_onnx  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def ort_session(path: Path) -> ort.InferenceSession:
    o = ort.SessionOptions()
    o.intra_op_num_threads = 2
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def ort_times(s: ort.InferenceSession, feeds: dict, runs: int, warmup: int) -> list[float]:
    """`warmup` untimed runs, then `runs` timed ones (ms)."""
    for _ in range(warmup):
        s.run(None, feeds)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, feeds)
        times.append((time.perf_counter() - t) * 1e3)
    return times


def smelt_times(smelt: str, path: Path, npz: Path, out: Path, runs: int, warmup: int) -> list[float]:
    """`warmup` untimed runs, then `runs` timed ones (ms), from `smelt run --repeat` (load excluded)."""
    p = subprocess.run([smelt, "run", str(path), "--inputs", str(npz), "-o", str(out), "--threads", "2",
                        "--repeat", str(runs + warmup)], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"smelt run {path} failed:\n{p.stderr}")
    times = [float(t) for t in re.findall(r"^run \d+: ([0-9.]+) ms$", p.stderr, re.M)]
    assert len(times) == runs + warmup, p.stderr
    return times[warmup:]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("smelt")
    p.add_argument("--runs", type=int, default=5, help="timed runs per round and side")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of onnxruntime and smelt")
    p.add_argument("--warmup", type=int, default=10,
                   help="untimed runs before each round's timed ones, on both sides (a fresh smelt process, "
                        "or ORT's session, takes several runs to reach its steady time)")
    gen_llama_onnx.add_shape_args(p)
    p.add_argument("--context", type=int, default=128, help="prefill length; decode runs after context-1 tokens")
    p.add_argument("--models", default="float,int8,int4",
                   help="comma-separated subset of float,int8,int4,ort-nbits8 (the last: ONNX Runtime's own "
                        "MatMulNBitsQuantizer at 8 bits, blocks of 32, asymmetric; not in the default set)")
    a = p.parse_args()

    shape = gen_llama_onnx.shape_of(a)
    work = ROOT / "target" / "bench" / "e2e"
    work.mkdir(parents=True, exist_ok=True)
    stamp = work / "model.json"
    src = work / "float.onnx"
    if not src.exists() or not stamp.exists() or json.loads(stamp.read_text()) != shape:
        print(f"generating {src} ...", file=sys.stderr)
        import onnx
        onnx.save(gen_llama_onnx.build(**shape), str(src))
        for f in work.glob("q*.onnx"):
            f.unlink()
        stamp.write_text(json.dumps(shape))
    models = {"float": src}
    for name, args in [("int8", ["--quant", "int8"]), ("int4", ["--quant", "int4", "--group-size", "32"])]:
        dst = work / f"q-{name}.onnx"
        if name in a.models.split(",") and not dst.exists():
            subprocess.run([a.smelt, "convert", str(src), "-o", str(dst), "--threads", "2", *args], check=True, capture_output=True)
        models[name] = dst
    if "ort-nbits8" in a.models.split(","):
        dst = work / "q-ort-nbits8.onnx"
        if not dst.exists():
            import onnx
            from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
            q = MatMulNBitsQuantizer(onnx.load(str(src)), bits=8, block_size=32, is_symmetric=False)
            q.process()
            onnx.save_model(q.model.model, str(dst))
        models["ort-nbits8"] = dst
    hd = a.hidden // a.heads
    steps = {
        "decode": gen_llama_onnx.feeds(a.layers, a.kv_heads, hd, a.vocab, 1, a.context - 1),
        f"prefill {a.context}": gen_llama_onnx.feeds(a.layers, a.kv_heads, hd, a.vocab, a.context, 0),
    }
    params = 2 * a.hidden * a.vocab + a.layers * (2 * a.hidden * a.hidden + 2 * a.hidden * a.kv_heads * hd + 3 * a.hidden * a.intermediate)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for step, feeds in steps.items():
            npz = tmp / "in.npz"
            np.savez(npz, **feeds)
            for name in a.models.split(","):
                path = models[name]
                session = ort_session(path)
                o_out = session.run(["logits"], feeds)[0]
                # Alternate the two in rounds, so that a change in the machine's load during
                # the run falls on both.
                o_t, s_t = [], []
                for _ in range(a.rounds):
                    o_t += ort_times(session, feeds, a.runs, a.warmup)
                    s_t += smelt_times(a.smelt, path, npz, tmp / "out.npz", a.runs, a.warmup)
                s_out = np.load(tmp / "out.npz")["logits"]
                o_ms, s_ms = float(np.median(o_t)), float(np.median(s_t))
                diff = float(np.abs(s_out - o_out).max())
                rows.append((name, step, s_ms, o_ms, diff))
                print(f"{name} {step}: smelt {s_ms:.2f} ms, onnxruntime {o_ms:.2f} ms", file=sys.stderr)

    print(f"Llama-style decoder: hidden {a.hidden}, {a.layers} layers, {a.heads} heads ({a.kv_heads} KV), "
          f"intermediate {a.intermediate}, vocab {a.vocab}, {params / 1e6:.0f}M parameters; batch 1, 2 threads, "
          f"median of {a.rounds}×{a.runs} runs in alternating rounds, each after {a.warmup} untimed ones; "
          f"onnxruntime {ort.__version__}\n")
    print("| model | step | smelt ms | onnxruntime ms | smelt / ORT | max abs diff of logits |")
    print("|---|---|---:|---:|---:|---:|")
    for name, step, s_ms, o_ms, diff in rows:
        print(f"| {name} | {step} | {s_ms:.1f} | {o_ms:.1f} | {s_ms / o_ms:.2f} | {diff:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
