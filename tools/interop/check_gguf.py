#!/usr/bin/env python3
"""Checks a GGUF file smelt wrote with gguf-py, llama.cpp's own Python GGUF library.

    check_gguf.py FILE.gguf DESCRIPTION.json

DESCRIPTION.json (written by crates/smelt-formats/tests/gguf_writer.rs) lists what smelt meant
to write: tensors (name, smelt dtype, row-major shape) and metadata (key, GGUF type, element
type for arrays, value), in order. gguf-py's GGUFReader must read the file and find exactly
that.

When the description names the HF checkpoint it came from ("hf_dir"), the file is also checked
against what llama.cpp's convert_hf_to_gguf.py would produce, computed here independently of
smelt:
  - tensor names from gguf-py's TensorNameMap for the architecture;
  - tensor values from the safetensors package, with the converter's LlamaModel.permute applied
    to Q/K (llama architecture), cast with numpy to the stored type, compared exactly;
  - architecture metadata built with gguf-py's GGUFWriter.add_* methods (so gguf-py picks the
    value types) following TextModel/LlamaModel.set_gguf_parameters;
  - tokenizer metadata: tokens and token types as the converter's get_vocab_base builds them,
    then gguf-py's own SpecialVocab (merges, special ids, add_bos/eos, chat template).
Keys are compared in order, with their GGUF types. Exit status 1 on any difference.

Run with the pinned venv (tools/python/requirements.txt): gguf 0.19.0, numpy, safetensors.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGUFReader, GGUFValueType, GGUFWriter
from safetensors import safe_open

problems: list[str] = []


def check(cond: bool, msg: str) -> None:
    if not cond:
        problems.append(msg)


def field_value(field):
    """A scalar, string or flat array value of a reader field (smelt's HF metadata has no
    nested arrays)."""
    v = field.contents()
    if isinstance(v, list):
        return [x.item() if hasattr(x, "item") else x for x in v]
    return v.item() if hasattr(v, "item") else v


def same_value(vtype: GGUFValueType, got, want) -> bool:
    if vtype in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
        dt = np.float32 if vtype == GGUFValueType.FLOAT32 else np.float64
        return np.array(got, dtype=dt).tobytes() == np.array(want, dtype=dt).tobytes()
    return got == want


def reader_metadata(r: GGUFReader) -> list[tuple[str, GGUFValueType, GGUFValueType | None, object]]:
    out = []
    for name, field in r.fields.items():
        if name.startswith("GGUF."):
            continue
        vtype = field.types[0]
        elem = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        out.append((name, vtype, elem, field_value(field)))
    return out


def check_against_description(r: GGUFReader, desc: dict) -> None:
    want_t = desc["tensors"]
    got_t = r.tensors
    check([t.name for t in got_t] == [t["name"] for t in want_t], "tensor names or order differ")
    for t, w in zip(got_t, want_t):
        check(t.tensor_type.name == w["dtype"], f"{t.name}: type {t.tensor_type.name}, want {w['dtype']}")
        shape = [int(d) for d in reversed(t.shape.tolist())]
        check(shape == w["shape"], f"{t.name}: shape {shape}, want {w['shape']}")
    got_md = reader_metadata(r)
    want_md = desc["metadata"]
    check([m[0] for m in got_md] == [m["key"] for m in want_md], "metadata keys or order differ")
    for (key, vtype, elem, value), w in zip(got_md, want_md):
        check(vtype.name == w["type"], f"{key}: type {vtype.name}, want {w['type']}")
        if elem is not None:
            check(elem.name == w["elem_type"], f"{key}: element type {elem.name}, want {w['elem_type']}")
        scalar_type = elem if elem is not None else vtype
        if isinstance(value, list):
            ok = len(value) == len(w["value"]) and all(same_value(scalar_type, a, b) for a, b in zip(value, w["value"]))
        else:
            ok = same_value(scalar_type, value, w["value"])
        check(ok, f"{key}: value differs from the description")


# ---------------------------------------------------------------------------------------------
# What convert_hf_to_gguf.py would write, computed without smelt.


def permute(weights: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """convert_hf_to_gguf.py, LlamaModel.permute."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def hf_tensors(hf_dir: Path):
    files = sorted(hf_dir.glob("*.safetensors"))
    for f in files:
        with safe_open(f, framework="np") as st:
            for name in st.keys():
                yield name, st.get_tensor(name)


def expected_arch_metadata(hp: dict, arch: str, name: str, outtype: str) -> GGUFWriter:
    """TextModel.set_gguf_parameters + LlamaModel.set_gguf_parameters, as in the converter."""
    w = GGUFWriter(None, arch)
    w.add_type("model")
    w.add_name(name)
    w.add_block_count(hp["num_hidden_layers"])
    if (n_ctx := hp.get("max_position_embeddings")) is not None:
        w.add_context_length(n_ctx)
    w.add_embedding_length(hp["hidden_size"])
    w.add_feed_forward_length(hp["intermediate_size"])
    w.add_head_count(hp["num_attention_heads"])
    if (n_kv := hp.get("num_key_value_heads")) is not None:
        w.add_head_count_kv(n_kv)
    rope = hp.get("rope_parameters") or hp.get("rope_scaling") or {}
    if (theta := rope.get("rope_theta", hp.get("rope_theta"))) is not None:
        w.add_rope_freq_base(theta)
    if (eps := hp.get("rms_norm_eps")) is not None:
        w.add_layer_norm_rms_eps(eps)
    if (head_dim := hp.get("head_dim")) is not None:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    ftype = {"F32": gguf.LlamaFileType.ALL_F32, "F16": gguf.LlamaFileType.MOSTLY_F16}[outtype]
    w.add_file_type(ftype)
    if arch == "llama":
        w.add_vocab_size(hp["vocab_size"])
        rope_dim = hp.get("head_dim") or hp["hidden_size"] // hp["num_attention_heads"]
        w.add_rope_dimension_count(rope_dim)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    return w


def looks_special(t: str) -> bool:
    return (
        t in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
        or (t.startswith("<|") and t.endswith("|>"))
        or (t.startswith("<｜") and t.endswith("｜>"))
        or (t.startswith("<unused") and t.endswith(">"))
    )


def add_expected_tokenizer(w: GGUFWriter, hf_dir: Path, hp: dict) -> None:
    """_set_vocab_gpt2 (get_vocab_base from tokenizer.json's vocab and added tokens), with
    tokenizer.ggml.pre = "default" (the converter hashes the tokenizers library's output, which
    neither smelt nor this venv runs), then gguf-py's SpecialVocab."""
    tok = json.loads((hf_dir / "tokenizer.json").read_text(encoding="utf-8"))
    assert tok["model"]["type"] == "BPE" and not tok["model"].get("byte_fallback"), "gpt2 path only"
    reverse = {i: t for t, i in tok["model"]["vocab"].items()}
    added = {a["id"]: a for a in tok.get("added_tokens", [])}
    for i, a in added.items():
        reverse[i] = a["content"]
    vocab_size = hp.get("vocab_size", len(reverse))
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        t = reverse[i]
        if i in added:
            if added[i].get("special") or looks_special(t):
                types.append(gguf.TokenType.CONTROL)
            else:
                t = t.replace("\u2581", " ")
                types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
        tokens.append(t)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    gguf.SpecialVocab(hf_dir, load_merges=True).add_to_gguf(w, quiet=True)


def check_against_converter(r: GGUFReader, desc: dict) -> None:
    hf_dir = Path(desc["hf_dir"])
    hp = json.loads((hf_dir / "config.json").read_text())
    arch = desc["arch"]
    model_arch = {"llama": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2}[arch]
    n_head, n_kv = hp["num_attention_heads"], hp.get("num_key_value_heads")
    name_map = gguf.get_tensor_name_map(model_arch, hp["num_hidden_layers"])
    by_name = {t.name: t for t in r.tensors}
    seen = set()
    checked_q = False
    for hf_name, value in hf_tensors(hf_dir):
        if hf_name.endswith(".rotary_emb.inv_freq"):
            continue
        g = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if g is None or g not in by_name:
            problems.append(f"{hf_name}: maps to {g!r} in gguf-py's TensorNameMap, which the file lacks")
            continue
        seen.add(g)
        t = by_name[g]
        if arch == "llama":
            if hf_name.endswith(("q_proj.weight", "q_proj.bias")):
                value = permute(value, n_head, n_head)
            elif hf_name.endswith(("k_proj.weight", "k_proj.bias")):
                value = permute(value, n_head, n_kv)
        np_type = {"F32": np.float32, "F16": np.float16}[t.tensor_type.name]
        want = np.ascontiguousarray(value.astype(np_type))
        got = np.asarray(t.data)
        check(got.tobytes() == want.tobytes(), f"{g}: values differ from the converter's ({hf_name})")
        if g == "blk.0.attn_q.weight":
            checked_q = True
    check(checked_q, "blk.0.attn_q.weight was not compared")
    check(seen == set(by_name), f"tensors not from the checkpoint: {sorted(set(by_name) - seen)}")

    name = next(field_value(f) for k, f in r.fields.items() if k == "general.name")
    w = expected_arch_metadata(hp, arch, name, desc["outtype"])
    if (hf_dir / "tokenizer.json").is_file():
        add_expected_tokenizer(w, hf_dir, hp)
    want = [(k, v) for k, v in w.kv_data[0].items()]
    got = reader_metadata(r)
    check([k for k, _ in want] == [k for k, *_ in got],
          f"metadata keys/order differ from the converter's:\n  got  {[k for k, *_ in got]}\n  want {[k for k, _ in want]}")
    got_by_key = {k: (t, e, v) for k, t, e, v in got}
    for key, gv in want:
        if key not in got_by_key:
            continue
        vtype, elem, value = got_by_key[key]
        check(vtype == gv.type, f"{key}: type {vtype.name}, converter writes {gv.type.name}")
        wv = gv.value
        if gv.type == GGUFValueType.ARRAY:
            want_elem = gv.sub_type or GGUFValueType.get_type(wv[0])
            check(elem == want_elem, f"{key}: element type {elem.name}, converter writes {want_elem.name}")
            wv = [int(x) if want_elem == GGUFValueType.INT32 else x for x in wv]
            ok = len(value) == len(wv) and all(same_value(want_elem, a, b) for a, b in zip(value, wv))
        else:
            ok = same_value(gv.type, value, wv)
        check(ok, f"{key}: value differs from the converter's")


def main() -> int:
    # SpecialVocab logs warnings about templates it reads crudely; the comparison is what counts.
    logging.getLogger("gguf").setLevel(logging.ERROR)
    path, desc_path = Path(sys.argv[1]), Path(sys.argv[2])
    desc = json.loads(desc_path.read_text())
    r = GGUFReader(path)
    check_against_description(r, desc)
    if "hf_dir" in desc:
        check_against_converter(r, desc)
    for p in problems:
        print(f"{path.name}: {p}", file=sys.stderr)
    print(f"{path.name}: {len(r.tensors)} tensors, {len(r.fields)} fields; "
          f"{'OK' if not problems else str(len(problems)) + ' problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
