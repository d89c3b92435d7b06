#!/usr/bin/env python3
"""ONNX backend node tests against `smelt run`.

The pinned `onnx` wheel ships the node tests' generator code (onnx/backend/test/case/node),
not their data, so this script first materializes every node test case into a temporary
directory exactly as `onnx.backend.test.cmd_tools generate-data` would (model.onnx,
test_data_set_N/input_i.pb, output_i.pb), then runs `smelt run` on each one and compares its
outputs with the expected ones the way ONNX's backend runner does (same dtype, then
numpy.testing.assert_allclose with the case's rtol/atol, 1e-3/1e-7 by default).

Classification of each test:
  pass         outputs match;
  unsupported  smelt reported an op it does not implement (exit 2, "unsupported ops") and
               the test uses an op outside the list smelt promises (CORE_OPS below);
  excluded     listed in exclusions.txt with a reason (an unexpected pass is reported, too);
  FAIL         anything else, including a test made only of CORE_OPS that smelt refuses.

Exit status: 0 when there is no FAIL and the pass count is at least expected_pass_count.txt;
1 otherwise. Usage:

  python tools/conformance/run_onnx_node_tests.py --smelt target/debug/smelt [-k FILTER] [-v]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import fnmatch
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

# The ops the issue lists (what torch.onnx.export and ORT's quantization tools emit); a node
# test made only of these must pass or be excluded with a reason.
CORE_OPS = set("""
MatMul Gemm Add Sub Mul Div Pow Sqrt Reciprocal Neg Exp Log Erf Tanh Sigmoid Relu Gelu Softmax
LayerNormalization ReduceMean ReduceSum ReduceMax Max Min Reshape Transpose Gather GatherND
Concat Slice Split Unsqueeze Squeeze Flatten Expand Cast Shape Constant ConstantOfShape Range
Where Equal Less LessOrEqual Greater And Not CumSum Trilu Cos Sin Identity Conv MaxPool
AveragePool GlobalAveragePool BatchNormalization QuantizeLinear DequantizeLinear
DynamicQuantizeLinear MatMulInteger QLinearMatMul
""".split())


def materialize(out_dir: Path) -> list[tuple[str, Path, set[str]]]:
    """Writes every node test case under out_dir; returns (name, dir, op types)."""
    import onnx
    from onnx import numpy_helper
    from onnx.backend.test.case import node as node_cases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = np.seterr(all="ignore")
        cases = node_cases.collect_testcases(None)
        np.seterr(**old)
    tests = []
    for case in cases:
        d = out_dir / case.name
        d.mkdir(parents=True, exist_ok=True)
        (d / "model.onnx").write_bytes(case.model.SerializeToString())
        (d / "tolerance.txt").write_text(f"{case.rtol} {case.atol}\n")
        ok = True
        for i, (inputs, outputs) in enumerate(case.data_sets):
            ds = d / f"test_data_set_{i}"
            ds.mkdir(exist_ok=True)
            for kind, values, infos in (("input", inputs, case.model.graph.input), ("output", outputs, case.model.graph.output)):
                for j, v in enumerate(values):
                    if not infos[j].type.HasField("tensor_type"):
                        ok = False
                        continue
                    t = v if isinstance(v, onnx.TensorProto) else numpy_helper.from_array(np.asarray(v), infos[j].name)
                    t.name = infos[j].name
                    (ds / f"{kind}_{j}.pb").write_bytes(t.SerializeToString())
        ops = {n.op_type for n in case.model.graph.node}
        if not ok:
            ops.add("<non-tensor input or output>")
        tests.append((case.name, d, ops))
    return tests


def to_array(path: Path):
    import onnx
    from onnx import numpy_helper

    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(t)


def run_one(smelt: str, name: str, d: Path, ops: set[str]) -> tuple[str, str, str]:
    """Returns (name, status, detail) with status pass / unsupported / fail."""
    rtol, atol = (float(x) for x in (d / "tolerance.txt").read_text().split())
    sets = sorted(p for p in d.iterdir() if p.name.startswith("test_data_set_"))
    for ds in sets:
        inputs = sorted(ds.glob("input_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
        outputs = sorted(ds.glob("output_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
        out_npz = ds / "smelt_out.npz"
        cmd = [smelt, "run", str(d / "model.onnx"), "-o", str(out_npz)]
        for p in inputs:
            cmd += ["--input", str(p)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            msg = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"
            if "unsupported ops" in msg and not ops <= CORE_OPS:
                return name, "unsupported", msg
            return name, "fail", msg
        got = np.load(out_npz)
        names = list(got.keys())
        if len(names) != len(outputs):
            return name, "fail", f"{len(names)} outputs, expected {len(outputs)}"
        for k, p in zip(names, outputs):
            exp = to_array(p)
            act = got[k]
            # .npz has no bfloat16 or 4-bit types: smelt writes bf16 as f32 and int4/uint4
            # as one int8/uint8 per element (documented in the README); compare values.
            if str(exp.dtype) == "bfloat16":
                exp = exp.astype(np.float32)
            elif str(exp.dtype) in ("int4", "uint4"):
                exp = exp.astype(np.int8 if str(exp.dtype) == "int4" else np.uint8)
            if exp.dtype != act.dtype:
                return name, "fail", f"output {k}: dtype {act.dtype}, expected {exp.dtype}"
            if exp.shape != act.shape:
                return name, "fail", f"output {k}: shape {act.shape}, expected {exp.shape}"
            try:
                if exp.dtype == bool or exp.dtype.kind in "iu":
                    np.testing.assert_array_equal(act, exp)
                else:
                    np.testing.assert_allclose(act, exp, rtol=rtol, atol=atol)
            except AssertionError as e:
                lines = [l for l in str(e).splitlines() if l.strip()]
                return name, "fail", f"output {k}: " + " | ".join(lines[1:4])
    return name, "pass", ""


def excluded(name: str, exclusions: dict[str, str]) -> str | None:
    """The reason `name` is excluded (entries may be fnmatch patterns), or None."""
    for pattern, reason in exclusions.items():
        if fnmatch.fnmatchcase(name, pattern):
            return reason
    return None


def read_exclusions() -> dict[str, str]:
    out = {}
    for line in (HERE / "exclusions.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        out[name] = reason.strip().lstrip("#").strip()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smelt", required=True, help="path to the smelt binary")
    ap.add_argument("-k", default="", help="only tests whose name contains this")
    ap.add_argument("-v", action="store_true", help="list every test's result")
    ap.add_argument("-j", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    args = ap.parse_args()

    exclusions = read_exclusions()
    expected_pass = int((HERE / "expected_pass_count.txt").read_text().split()[0])
    with tempfile.TemporaryDirectory(prefix="smelt-node-tests-") as tmp:
        tests = [t for t in materialize(Path(tmp)) if args.k in t[0]]
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.j) as ex:
            results = list(ex.map(lambda t: run_one(args.smelt, *t), tests))
    counts = {"pass": 0, "unsupported": 0, "excluded": 0, "fail": 0}
    failures, unexpected_passes = [], []
    for name, status, detail in sorted(results):
        if excluded(name, exclusions) is not None:
            if status == "pass":
                unexpected_passes.append(name)
                counts["pass"] += 1
            else:
                counts["excluded"] += 1
                if args.v:
                    print(f"{'excluded':12} {name} {detail}")
            continue
        if status == "fail":
            failures.append((name, detail))
        counts[status] += 1
        if args.v:
            print(f"{status:12} {name} {detail}")
    print(f"ONNX node tests: {len(results)} cases ({counts['unsupported']} use ops smelt does not implement)")
    if exclusions:
        print(f"excluded ({counts['excluded']}), from tools/conformance/exclusions.txt:")
        for name, reason in sorted(exclusions.items()):
            print(f"  {name}: {reason}")
    for name in unexpected_passes:
        print(f"note: excluded test now passes: {name} (remove it from exclusions.txt)")
    for name, detail in failures:
        print(f"FAIL {name}: {detail}")
    print(f"conformance: {counts['pass']} passed, {counts['fail']} failed, {counts['excluded']} skipped")
    if not args.k and counts["pass"] < expected_pass:
        print(f"pass count {counts['pass']} is below the expected {expected_pass} (tools/conformance/expected_pass_count.txt)")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
