"""Benchmark (not a test): quantized ONNX written by `smelt convert` beside onnxruntime's own
quantization tools, on the same synthetic model, in the same run.

    .venv/bin/python tools/bench/bench_onnx_quant.py target/release/smelt [--layers 8 --dim 2048]

The model is a chain of MatMuls (`--layers` weights of `--dim` x `--dim`, N(0, 0.02²), numpy
seed 0). For each tool and scheme it reports the conversion wall time, the output size, the
onnxruntime (CPU EP, 2 threads) latency of one batch-1 inference (median of 20), and the
output's max abs error relative to the float model's max abs output.

- smelt int8: `--quant int8` (DynamicQuantizeLinear + MatMulInteger, per channel, int8)
  vs onnxruntime `quantize_dynamic(per_channel=True, weight_type=QInt8)`;
- smelt int4: `--quant int4 --group-size 128` (MatMulNBits, symmetric) vs onnxruntime
  `MatMulNBitsQuantizer(block_size=128, is_symmetric=True)`;
- smelt nf4 (MatMulBnb4) and int4 QDQ (`--format onnx-qdq`), which onnxruntime's tools do not
  write from a float model.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer


def make_model(path: Path, layers: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(layers):
        inits.append(numpy_helper.from_array((rng.standard_normal((dim, dim)) * 0.02).astype(np.float32), f"w{i}"))
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"h{i}"], name=f"mm{i}"))
        x = f"h{i}"
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", 1, [1, dim])],
                          [helper.make_tensor_value_info(x, 1, [1, dim])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


def latency(path: Path, feeds: dict) -> tuple[float, np.ndarray]:
    o = ort.SessionOptions()
    o.intra_op_num_threads = 2
    s = ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])
    out = s.run(None, feeds)[0]
    times = []
    for _ in range(20):
        t = time.perf_counter()
        s.run(None, feeds)
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3, out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("smelt")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--dim", type=int, default=2048)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "float.onnx"
        make_model(src, a.layers, a.dim)
        feeds = {"x": np.random.default_rng(1).standard_normal((1, a.dim)).astype(np.float32)}
        f_ms, f_out = latency(src, feeds)
        scale = float(np.abs(f_out).max())
        rows = [("float", "-", 0.0, src.stat().st_size, f_ms, 0.0)]

        def timed(label, scheme, fn, out):
            t = time.perf_counter()
            fn()
            secs = time.perf_counter() - t
            ms, y = latency(out, feeds)
            size = out.stat().st_size + sum(f.stat().st_size for f in tmp.glob(out.name + ".data"))
            rows.append((label, scheme, secs, size, ms, float(np.abs(y - f_out).max()) / scale))

        def smelt(out, *args):
            return lambda: subprocess.run([a.smelt, "convert", str(src), "-o", str(out), "--threads", "2", *args],
                                          check=True, capture_output=True)

        timed("smelt", "int8 MatMulInteger", smelt(tmp / "s8.onnx", "--quant", "int8"), tmp / "s8.onnx")
        timed("onnxruntime", "int8 MatMulInteger", lambda: quantize_dynamic(
            src, tmp / "o8.onnx", per_channel=True, weight_type=QuantType.QInt8), tmp / "o8.onnx")
        timed("smelt", "int4 MatMulNBits g128", smelt(tmp / "s4.onnx", "--quant", "int4", "--group-size", "128"), tmp / "s4.onnx")

        def ort4():
            q = MatMulNBitsQuantizer(onnx.load(src), block_size=128, is_symmetric=True)
            q.process()
            q.model.save_model_to_file(str(tmp / "o4.onnx"))
        timed("onnxruntime", "int4 MatMulNBits g128", ort4, tmp / "o4.onnx")
        timed("smelt", "int4 QDQ g128 (opset 21)", smelt(tmp / "s4q.onnx", "--quant", "int4", "--group-size", "128", "--format", "onnx-qdq"), tmp / "s4q.onnx")
        timed("smelt", "nf4 MatMulBnb4", smelt(tmp / "sn.onnx", "--quant", "nf4"), tmp / "sn.onnx")

    print(f"{a.layers} MatMul weights of {a.dim}x{a.dim}, batch 1, onnxruntime {ort.__version__} CPU, 2 threads\n")
    print("| tool | scheme | convert s | file MB | ORT latency ms | max abs err / max abs out |")
    print("|---|---|---|---|---|---|")
    for tool, scheme, secs, size, ms, err in rows:
        print(f"| {tool} | {scheme} | {secs:.2f} | {size / 1e6:.1f} | {ms:.2f} | {err:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
