#!/usr/bin/env python3
"""Checks a safetensors file smelt wrote with the `safetensors` package (Hugging Face's own).

    check_safetensors.py FILE.safetensors EXPECTATION.json

EXPECTATION.json (written by smelt's Rust tests) says what smelt meant to write:

    {"tensors": [{"name": ..., "dtype": "<safetensors dtype string, e.g. BF16, F8_E4M3, F4>",
                  "shape": [...], "blake3": "<hex BLAKE3 of the stored bytes>",
                  "head": [first values as floats, optional],
                  "cast_from": {"file": ..., "name": ...} (optional)}, ...],
     "metadata": {"key": "value", ...} or null,
     "header_order": true}

The package must read the file (`safetensors.deserialize` for every dtype, `safe_open(...,
framework="np")` for dtype strings, shapes and metadata, and `get_tensor` for every dtype numpy
holds, `safetensors.numpy.load_file` when numpy holds them all) and find exactly those tensors:
the same names (no more, no fewer), dtype strings, shapes and bytes. Values in "head" are
compared after decoding the stored bytes the way the dtype string says: numpy for plain types,
ml_dtypes for bfloat16 and the float8 formats, and for F4 (float4_e2m1, two per byte) the low
nibble first, as torch's float4_e2m1fn_x2. A tensor with "cast_from" must hold exactly what
numpy (ml_dtypes for bfloat16) makes of that tensor of another safetensors file, read by the
package, cast to the tensor's dtype (round to nearest even, through float32, which holds every
F16 and BF16 value exactly); "blake3" may then be left out. With "header_order", the raw
header's keys must be
`__metadata__` (when there is metadata) then the tensors in the expectation's order.

Prints every difference and exits 1 if there is any. Run with the pinned venv
(tools/python/requirements.txt): safetensors 0.8.0, numpy, ml_dtypes, blake3.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path

import blake3
import ml_dtypes
import numpy as np
import safetensors
import safetensors.numpy
from safetensors import safe_open

# Dtype strings numpy holds natively, with the numpy type (as safetensors.numpy maps them).
NUMPY_TYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "U64": np.uint64,
    "I32": np.int32,
    "U32": np.uint32,
    "I16": np.int16,
    "U16": np.uint16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
    "C64": np.complex64,
}

# Dtype strings numpy holds through ml_dtypes (one element per byte or two bytes).
ML_DTYPES = {
    "BF16": ml_dtypes.bfloat16,
    "F8_E4M3": ml_dtypes.float8_e4m3fn,
    "F8_E5M2": ml_dtypes.float8_e5m2,
    "F8_E4M3FNUZ": ml_dtypes.float8_e4m3fnuz,
    "F8_E5M2FNUZ": ml_dtypes.float8_e5m2fnuz,
    "F8_E8M0": ml_dtypes.float8_e8m0fnu,
}

problems: list[str] = []


def check(cond: bool, msg: str) -> None:
    if not cond:
        problems.append(msg)


def decode(dtype: str, data: bytes) -> list[float] | None:
    """The stored values as floats (complex: real and imaginary parts interleaved), or None
    when this script has no decoder for the dtype."""
    if dtype == "F4":
        packed = np.frombuffer(data, dtype=np.uint8)
        nibbles = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(-1)
        return [float(v) for v in nibbles.astype(np.uint8).view(ml_dtypes.float4_e2m1fn)]
    if dtype == "C64":
        return [float(v) for v in np.frombuffer(data, dtype=np.float32)]
    np_type = numpy_type(dtype)
    if np_type is None:
        return None
    return [float(v) for v in np.frombuffer(data, dtype=np_type)]


def numpy_type(dtype: str):
    return NUMPY_TYPES.get(dtype) or ML_DTYPES.get(dtype)


def cast_reference(source: dict, dtype: str) -> bytes | None:
    """The bytes numpy makes of another file's tensor cast to `dtype`, or None when numpy
    cannot hold one of the two types."""
    raw = {n: i for n, i in safetensors.deserialize(Path(source["file"]).read_bytes())}
    info = raw[source["name"]]
    src_type, dst_type = numpy_type(info["dtype"]), numpy_type(dtype)
    if src_type is None or dst_type is None:
        return None
    values = np.frombuffer(bytes(info["data"]), dtype=src_type).astype(np.float32)
    return values.astype(dst_type).tobytes()


def same_float(got: float, want: float) -> bool:
    if math.isnan(want):
        return math.isnan(got)
    return got == want


def raw_header_keys(path: Path) -> list[str]:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        text = f.read(n).decode("utf-8")
    pairs = json.loads(text, object_pairs_hook=lambda kv: kv)
    return [k for k, _ in pairs]


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(sys.argv[1])
    expected = json.loads(Path(sys.argv[2]).read_text())
    want_tensors = expected["tensors"]
    want_names = [t["name"] for t in want_tensors]

    # Every dtype, raw bytes as the library cuts them out of the file.
    raw = {name: info for name, info in safetensors.deserialize(path.read_bytes())}
    check(
        sorted(raw) == sorted(want_names),
        f"tensor names: file has {sorted(raw)}, expected {sorted(want_names)}",
    )

    with safe_open(str(path), framework="np") as f:
        keys = list(f.keys())
        check(sorted(keys) == sorted(want_names), f"safe_open keys {sorted(keys)} != {sorted(want_names)}")
        got_meta = f.metadata()
        want_meta = expected.get("metadata")
        check(
            (got_meta or None) == (want_meta or None),
            f"metadata: file has {got_meta!r}, expected {want_meta!r}",
        )
        for t in want_tensors:
            name = t["name"]
            if name not in raw or name not in keys:
                continue  # reported above
            info = raw[name]
            data = bytes(info["data"])
            sl = f.get_slice(name)
            check(sl.get_dtype() == t["dtype"], f"{name}: dtype {sl.get_dtype()} (safe_open), expected {t['dtype']}")
            check(info["dtype"] == t["dtype"], f"{name}: dtype {info['dtype']} (deserialize), expected {t['dtype']}")
            check(list(sl.get_shape()) == t["shape"], f"{name}: shape {sl.get_shape()}, expected {t['shape']}")
            check(list(info["shape"]) == t["shape"], f"{name}: shape {info['shape']} (deserialize)")
            if "blake3" in t:
                digest = blake3.blake3(data).hexdigest()
                check(digest == t["blake3"], f"{name}: stored bytes differ (blake3 {digest}, expected {t['blake3']})")
            if "cast_from" in t:
                want = cast_reference(t["cast_from"], t["dtype"])
                if want is None:
                    problems.append(f"{name}: numpy cannot cast {t['cast_from']} to {t['dtype']}")
                elif want != data:
                    size = np.dtype(numpy_type(t["dtype"])).itemsize
                    first = next((i for i in range(0, len(data), size) if data[i : i + size] != want[i : i + size]), None)
                    problems.append(
                        f"{name}: differs from numpy's cast of {t['cast_from']} to {t['dtype']} "
                        f"(lengths {len(data)} and {len(want)}, first differing element {None if first is None else first // size})"
                    )
            if t["dtype"] in NUMPY_TYPES:
                arr = f.get_tensor(name)
                check(arr.dtype == np.dtype(NUMPY_TYPES[t["dtype"]]), f"{name}: numpy dtype {arr.dtype}")
                check(list(arr.shape) == t["shape"], f"{name}: numpy shape {arr.shape}")
                check(arr.tobytes() == data, f"{name}: get_tensor bytes differ from the stored bytes")
            if "head" in t:
                values = decode(t["dtype"], data)
                if values is None:
                    problems.append(f"{name}: no decoder for {t['dtype']} to compare the head")
                    continue
                head = values[: len(t["head"])]
                check(
                    len(head) == len(t["head"]) and all(same_float(g, w) for g, w in zip(head, t["head"])),
                    f"{name}: decoded head {head}, expected {t['head']}",
                )

    if all(t["dtype"] in NUMPY_TYPES for t in want_tensors):
        loaded = safetensors.numpy.load_file(str(path))
        check(sorted(loaded) == sorted(want_names), f"load_file keys {sorted(loaded)}")

    if expected.get("header_order"):
        order = want_names
        if expected.get("metadata"):
            order = ["__metadata__"] + order
        got_order = raw_header_keys(path)
        check(got_order == order, f"header key order {got_order}, expected {order}")

    for p in problems:
        print(f"{path}: {p}")
    if problems:
        print(f"{path}: {len(problems)} difference(s)")
        return 1
    print(f"{path}: ok, {len(want_tensors)} tensors as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
