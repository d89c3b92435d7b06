#!/usr/bin/env python3
"""Driver of `tools/bench-delta` (see that script): makes and applies an update for every pair
with smelt and with bsdiff, xdelta3 and `zstd --patch-from`, checks every patched file against
NEW with cmp, and prints a markdown table of update sizes and patch speeds (MB/s of output,
wall clock, best of --repeat runs)."""
from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import time


def run(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def same(a: pathlib.Path, b: pathlib.Path) -> None:
    subprocess.run(["cmp", "-s", str(a), str(b)], check=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("smelt")
    ap.add_argument("work", type=pathlib.Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--level", default="19")
    ap.add_argument("--only", default="", help="comma-separated tools to run (default: all), "
                    "e.g. smelt,smelt-lz4 to re-measure smelt after a change")
    args = ap.parse_args()
    w: pathlib.Path = args.work
    models = {}
    for v in ["base", "few", "lora", "noise"]:
        models[("bf16", v)] = w / v / "model.safetensors"
        q = w / f"{v}.q8_0.gguf"
        if not q.exists():
            subprocess.run([args.smelt, "convert", str(w / v), "-o", str(q), "--quant", "q8_0"], check=True,
                           stderr=subprocess.DEVNULL)
        models[("q8_0", v)] = q
    # The small fine-tune requantized with --like the old version (issue: "with and without
    # --like"): same checkpoint as `noise`, its blocks reused from base.q8_0.gguf wherever they
    # stay within the bound (default tolerance, then 1.5).
    for tol in ["1", "1.5"]:
        q = w / f"noise.like{tol}.q8_0.gguf"
        if not q.exists():
            subprocess.run([args.smelt, "convert", str(w / "noise"), "-o", str(q), "--quant", "q8_0",
                            "--like", str(models[("q8_0", "base")]), "--like-tolerance", tol], check=True,
                           stderr=subprocess.DEVNULL)
        models[("q8_0", f"noise --like {tol}")] = q
    pairs = [(form, v) for form in ["bf16", "q8_0"] for v in ["few", "lora", "noise"]]
    pairs += [("q8_0", "noise --like 1"), ("q8_0", "noise --like 1.5")]
    tools = {
        "smelt": (lambda o, n, p: [args.smelt, "diff", o, n, "-o", p, "--level", args.level],
                  lambda o, p, n: [args.smelt, "patch", o, p, "-o", n]),
        "smelt-lz4": (lambda o, n, p: [args.smelt, "diff", o, n, "-o", p, "--codec", "lz4"],
                      lambda o, p, n: [args.smelt, "patch", o, p, "-o", n]),
        "bsdiff": (lambda o, n, p: ["bsdiff", o, n, p], lambda o, p, n: ["bspatch", o, n, p]),
        "xdelta3": (lambda o, n, p: ["xdelta3", "-e", "-9", "-f", "-s", o, n, p],
                    lambda o, p, n: ["xdelta3", "-d", "-f", "-s", o, p, n]),
        "zstd": (lambda o, n, p: ["zstd", "-q", "-f", "-19", "--long=31", f"--patch-from={o}", n, "-o", p],
                 lambda o, p, n: ["zstd", "-q", "-f", "-d", "--long=31", f"--patch-from={o}", p, "-o", n]),
    }
    if args.only:
        tools = {k: t for k, t in tools.items() if k in args.only.split(",")}
    rows = []
    for form, v in pairs:
        old, new = models[(form, "base")], models[(form, v)]
        size_new = new.stat().st_size
        row = {"pair": f"{v} ({form})", "new": size_new}
        # Baseline in the same run: copying NEW (read + write, no hashing) on this machine.
        cp_out = w / "copy.out"
        row["cp"] = size_new / 1e6 / min(run(["cp", str(new), str(cp_out)]) for _ in range(args.repeat))
        cp_out.unlink()
        for name, (mk, ap_) in tools.items():
            tag = v.replace(" ", "").replace("--", "-")
            upd = w / f"{form}-{tag}.{name}.patch"
            out = w / f"{form}-{tag}.{name}.out"
            t_diff = run(mk(str(old), str(new), str(upd)))
            best = min(run(ap_(str(old), str(upd), str(out))) for _ in range(args.repeat))
            same(out, new)
            out.unlink()
            row[name] = (upd.stat().st_size, t_diff, size_new / 1e6 / best)
            print(f"{row['pair']:<14} {name:<9} update {upd.stat().st_size:>11} B  diff {t_diff:6.1f} s  "
                  f"patch {size_new / 1e6 / best:7.0f} MB/s", file=sys.stderr, flush=True)
        rows.append(row)
    names = list(tools)
    print()
    print("| pair | NEW | " + " | ".join(f"{n} update" for n in names) + " | " + " | ".join(f"{n} patch" for n in names) + " | cp NEW |")
    print("|---|---:|" + "---:|" * (2 * len(names) + 1))
    for r in rows:
        sizes = " | ".join(f"{r[n][0] / 1e6:.3f} MB" for n in names)
        speeds = " | ".join(f"{r[n][2]:.0f} MB/s" for n in names)
        print(f"| {r['pair']} | {r['new'] / 1e6:.1f} MB | {sizes} | {speeds} | {r['cp']:.0f} MB/s |")
    print()
    print("| pair | " + " | ".join(f"{n} diff s" for n in names) + " |")
    print("|---|" + "---:|" * len(names))
    for r in rows:
        print(f"| {r['pair']} | " + " | ".join(f"{r[n][1]:.1f}" for n in names) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
