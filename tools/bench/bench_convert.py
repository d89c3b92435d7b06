#!/usr/bin/env python3
"""The measuring half of `tools/bench-convert` (which builds smelt, sets up the venv and calls
this): runs `smelt convert` on a BF16 checkpoint once per scheme and prints a markdown table of
wall time, input GB/s, CPU time and peak RSS beside a baseline measured in the same run, the time to
simply read the input and write an output of the q8_0 output's size.

Usage: bench_convert.py --smelt BIN --model DIR --out-dir DIR [--threads N] [--repeat N]
                        [SCHEME[:gguf] ...]

Each conversion runs under GNU time (`/usr/bin/time -f "%M %U %S"`: peak RSS, user and system
CPU seconds; on a busy machine CPU time is the steadier figure) and is timed by
the wall clock around it. Outputs go to --out-dir and are deleted after each run. With
--out-dir on a tmpfs (the default of tools/bench-convert) the fsync smelt does when it commits
a file costs nothing, so times exclude it, as the targets say; the baseline writes there too.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

DEFAULT_RUNS = [
    "q8_0", "q8_0:gguf", "q4_0", "q4_0:gguf", "q4_1", "q5_0", "q5_1",
    "int8", "nf4", "int4", "ternary", "tq1_0", "tq2_0",
]


def model_files(model: pathlib.Path) -> list[pathlib.Path]:
    return sorted(model.glob("*.safetensors"))


def timed(cmd: list[str], **kw) -> tuple[float, int, float]:
    """(wall seconds, peak RSS in MiB, CPU seconds user + system) of `cmd` run under GNU
    time."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t0 = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", tf.name, *cmd], stderr=subprocess.PIPE, **kw)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            sys.stderr.buffer.write(done.stderr)
            raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}")
        rss_kib, user, system = tf.read().strip().splitlines()[-1].split()
    return wall, int(rss_kib) // 1024, float(user) + float(system)


def warm(files: list[pathlib.Path]) -> None:
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass


def baseline(files: list[pathlib.Path], out_dir: pathlib.Path, out_bytes: int) -> dict:
    """Read every input file once (`cat > /dev/null`), then write `out_bytes` of zeros
    (`dd`, no fsync), each timed on its own."""
    read_s, read_rss, read_cpu = timed(["cat", *map(str, files)], stdout=subprocess.DEVNULL)
    target = out_dir / "baseline.bin"
    mib, rest = divmod(out_bytes, 1 << 20)
    write_s, write_rss, write_cpu = timed(
        ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={mib + (1 if rest else 0)}", "status=none"]
    )
    target.unlink()
    return {"read": read_s, "write": write_s, "rss": max(read_rss, write_rss), "cpu": read_cpu + write_cpu}


def convert(smelt: str, model: pathlib.Path, out_dir: pathlib.Path, run: str, threads: int) -> dict:
    scheme, _, fmt = run.partition(":")
    out = out_dir / f"out.{'gguf' if fmt == 'gguf' else 'smelt'}"
    report = out_dir / "report.json"
    cmd = [smelt, "convert", str(model), "-o", str(out), "--quant", scheme, "--threads", str(threads),
           "--report", str(report)]
    wall, rss, cpu = timed(cmd, stdout=subprocess.DEVNULL)
    size = out.stat().st_size
    r = json.loads(report.read_text())
    out.unlink()
    report.unlink()
    return {"wall": wall, "rss": rss, "cpu": cpu, "size": size, "timings": r["timings"],
            "fallbacks": r["totals"]["fallbacks"], "bytes_in": r["totals"]["bytes_in"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smelt", required=True)
    ap.add_argument("--model", type=pathlib.Path, required=True)
    ap.add_argument("--out-dir", type=pathlib.Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="runs per scheme; the fastest is shown")
    ap.add_argument("runs", nargs="*", default=DEFAULT_RUNS, help="scheme, or scheme:gguf")
    args = ap.parse_args()

    files = model_files(args.model)
    input_bytes = sum(f.stat().st_size for f in files)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    warm(files)
    warm(files)

    results = {}
    for run in args.runs:
        best = None
        for _ in range(args.repeat):
            r = convert(args.smelt, args.model, args.out_dir, run, args.threads)
            if best is None or r["wall"] < best["wall"]:
                best = r
        results[run] = best
        print(f"  {run}: {best['wall']:.2f} s, {best['rss']} MiB", file=sys.stderr)

    # The baseline writes as much as the q8_0 blob (the largest output of the list).
    q8 = results.get("q8_0") or convert(args.smelt, args.model, args.out_dir, "q8_0", args.threads)
    base = None
    for _ in range(max(args.repeat, 3)):
        b = baseline(files, args.out_dir, q8["size"])
        if base is None or b["read"] + b["write"] < base["read"] + base["write"]:
            base = b
    rw = base["read"] + base["write"]

    gb = input_bytes / 1e9
    print(f"Input: {args.model.name}, {gb:.2f} GB of BF16 in {len(files)} file(s); "
          f"`smelt convert --threads {args.threads}`, warm page cache, outputs in {args.out_dir}.\n")
    print("| scheme | output | output MB | time s | GB/s of input | × read+write | CPU s | peak RSS MB | "
          "smelt: convert / hash s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    print(f"| read input (`cat`) | - | - | {base['read']:.2f} | {gb / base['read']:.2f} | - | - | - | - |")
    print(f"| write {q8['size'] / 1e6:.0f} MB (`dd`) | - | - | {base['write']:.2f} | - | - | - | - | - |")
    print(f"| **read + write** | - | - | **{rw:.2f}** | **{gb / rw:.2f}** | 1.00 | {base['cpu']:.2f} | "
          f"{base['rss']} | - |")
    for run, r in results.items():
        scheme, _, fmt = run.partition(":")
        t = r["timings"]
        note = f" ({r['fallbacks']} fallbacks)" if r["fallbacks"] else ""
        print(f"| {scheme}{note} | {fmt or 'blob'} | {r['size'] / 1e6:.0f} | {r['wall']:.2f} | "
              f"{gb / r['wall']:.2f} | {r['wall'] / rw:.2f} | {r['cpu']:.2f} | {r['rss']} | "
              f"{t['convert']:.2f} / {t['hash']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
