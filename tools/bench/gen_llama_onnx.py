"""A Llama-style decoder as ONNX, built node by node with the ops torch.onnx.export (opset 17)
emits for Hugging Face's LlamaForCausalLM, for benchmarks (not a fixture: large, made on demand).

    .venv/bin/python tools/bench/gen_llama_onnx.py OUT.onnx [--hidden 1024 --layers 4 ...]

Graph: Gather embedding; per layer RMSNorm as Pow/ReduceMean/Add/Sqrt/Reciprocal/Mul, q/k/v/o
projections as MatMul with the Linear weight transposed ([in, out]), Reshape/Transpose to heads,
rotary embedding from position_ids (Cast, MatMul with inv_freq, Concat, Cos, Sin; rotate_half
via Slice/Neg/Concat), a KV cache (past_key_i/past_value_i in, present_key_i/present_value_i
out, Concat on the sequence axis), grouped-query heads repeated by Unsqueeze/Expand/Reshape,
scores by MatMul with the transposed keys, Div by sqrt(head_dim), a causal mask built in the
graph (Shape/Gather/Range/Greater/Where), Softmax, SwiGLU MLP (Sigmoid/Mul); final RMSNorm and
an untied lm_head MatMul to logits. Inputs: input_ids and position_ids int64 [1, seq], past
keys/values float [1, kv_heads, past, head_dim]. Weights N(0, 0.02²) from numpy seed 0 (norm
weights 1 ± 0.1), so the same arguments give the same file.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Builder:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, inputs, name=None, outputs=1, **attrs):
        self.n += 1
        base = name or f"/{op_type}_{self.n}"
        outs = [f"{base}_output_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=base, **attrs))
        return outs[0] if outputs == 1 else outs


def build(hidden, layers, heads, kv_heads, inter, vocab, seed=0, eps=1e-5, theta=10000.0):
    rng = np.random.default_rng(seed)
    hd = hidden // heads
    b = Builder()

    def weight(name, shape):
        return b.const(name, (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32))

    def norm_weight(name):
        return b.const(name, (1.0 + 0.1 * rng.standard_normal(hidden, dtype=np.float32)).astype(np.float32))

    two = b.const("two", np.array(2.0, np.float32))
    eps_c = b.const("eps", np.array(eps, np.float32))
    scale = b.const("sqrt_head_dim", np.array(np.sqrt(hd), np.float32))
    neg_inf = b.const("mask_min", np.array(np.finfo(np.float32).min, np.float32))
    zero_f = b.const("zero_f", np.array(0.0, np.float32))
    i64 = lambda name, v: b.const(name, np.array(v, np.int64))
    ax_last = i64("axes_last", [-1])
    ax0, ax1, ax2 = i64("axes_0", [0]), i64("axes_1", [1]), i64("axes_2", [2])
    idx1, idx2 = i64("idx_1", 1), i64("idx_2", 2)
    zero_i, one_i = i64("zero_i", 0), i64("one_i", 1)
    half_lo, half_hi, big = i64("half_start", [0]), i64("half_mid", [hd // 2]), i64("half_end", [np.iinfo(np.int64).max])
    q_shape = i64("q_shape", [1, -1, heads, hd])
    kv_shape = i64("kv_shape", [1, -1, kv_heads, hd])
    out_shape = i64("attn_shape", [1, -1, hidden])
    rep_shape = i64("rep_shape", [1, kv_heads, heads // kv_heads, 1, 1])
    gqa_shape = i64("gqa_shape", [1, heads, -1, hd])
    inv_freq = b.const("inv_freq", (1.0 / theta ** (np.arange(0, hd, 2, dtype=np.float32) / hd)).reshape(1, hd // 2).astype(np.float32))

    def rms_norm(x, w):
        var = b.op("ReduceMean", [b.op("Pow", [x, two])], axes=[-1], keepdims=1)
        inv = b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [var, eps_c])])])
        return b.op("Mul", [w, b.op("Mul", [x, inv])])

    def rotate_half(x):
        x1 = b.op("Slice", [x, half_lo, half_hi, ax_last])
        x2 = b.op("Slice", [x, half_hi, big, ax_last])
        return b.op("Concat", [b.op("Neg", [x2]), x1], axis=-1)

    def rope(x, cos, sin):
        return b.op("Add", [b.op("Mul", [x, cos]), b.op("Mul", [rotate_half(x), sin])])

    embed = weight("model.embed_tokens.weight", (vocab, hidden))
    h = b.op("Gather", [embed, "input_ids"], axis=0)

    # Rotary tables from position_ids: [1, 1, seq, head_dim].
    pos = b.op("Unsqueeze", [b.op("Cast", ["position_ids"], to=TensorProto.FLOAT), ax_last])
    freqs = b.op("MatMul", [pos, inv_freq])
    emb = b.op("Concat", [freqs, freqs], axis=-1)
    cos = b.op("Unsqueeze", [b.op("Cos", [emb]), ax1])
    sin = b.op("Unsqueeze", [b.op("Sin", [emb]), ax1])

    # Causal mask [1, 1, seq, past + seq]: -inf where key position > query position.
    seq = b.op("Gather", [b.op("Shape", ["input_ids"]), idx1], axis=0)
    past = b.op("Gather", [b.op("Shape", ["past_key_0"]), idx2], axis=0)
    total = b.op("Add", [past, seq])
    q_pos = b.op("Unsqueeze", [b.op("Range", [past, total, one_i]), ax1])
    k_pos = b.op("Unsqueeze", [b.op("Range", [zero_i, total, one_i]), ax0])
    mask = b.op("Where", [b.op("Greater", [k_pos, q_pos]), neg_inf, zero_f])
    mask = b.op("Unsqueeze", [mask, i64("axes_01", [0, 1])])

    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "seq"]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, [1, "seq"]),
    ]
    outputs = []
    for i in range(layers):
        p = f"model.layers.{i}"
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_{kind}_{i}", TensorProto.FLOAT, [1, kv_heads, "past", hd]))
        x = rms_norm(h, norm_weight(f"{p}.input_layernorm.weight"))
        q = b.op("MatMul", [x, weight(f"{p}.self_attn.q_proj.weight.T", (hidden, hidden))])
        k = b.op("MatMul", [x, weight(f"{p}.self_attn.k_proj.weight.T", (hidden, kv_heads * hd))])
        v = b.op("MatMul", [x, weight(f"{p}.self_attn.v_proj.weight.T", (hidden, kv_heads * hd))])
        q = b.op("Transpose", [b.op("Reshape", [q, q_shape])], perm=[0, 2, 1, 3])
        k = b.op("Transpose", [b.op("Reshape", [k, kv_shape])], perm=[0, 2, 1, 3])
        v = b.op("Transpose", [b.op("Reshape", [v, kv_shape])], perm=[0, 2, 1, 3])
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        k = b.op("Concat", [f"past_key_{i}", k], name=f"present_key_{i}", axis=2)
        v = b.op("Concat", [f"past_value_{i}", v], name=f"present_value_{i}", axis=2)
        outputs += [(k, f"present_key_{i}"), (v, f"present_value_{i}")]
        # repeat_kv: [1, kv, T, hd] -> [1, kv, rep, T, hd] -> [1, heads, T, hd].
        kr = b.op("Reshape", [b.op("Expand", [b.op("Unsqueeze", [k, ax2]), rep_shape]), gqa_shape])
        vr = b.op("Reshape", [b.op("Expand", [b.op("Unsqueeze", [v, ax2]), rep_shape]), gqa_shape])
        scores = b.op("Div", [b.op("MatMul", [q, b.op("Transpose", [kr], perm=[0, 1, 3, 2])]), scale])
        probs = b.op("Softmax", [b.op("Add", [scores, mask])], axis=-1)
        attn = b.op("Reshape", [b.op("Transpose", [b.op("MatMul", [probs, vr])], perm=[0, 2, 1, 3]), out_shape])
        h = b.op("Add", [h, b.op("MatMul", [attn, weight(f"{p}.self_attn.o_proj.weight.T", (hidden, hidden))])])
        x = rms_norm(h, norm_weight(f"{p}.post_attention_layernorm.weight"))
        gate = b.op("MatMul", [x, weight(f"{p}.mlp.gate_proj.weight.T", (hidden, inter))])
        up = b.op("MatMul", [x, weight(f"{p}.mlp.up_proj.weight.T", (hidden, inter))])
        act = b.op("Mul", [b.op("Mul", [gate, b.op("Sigmoid", [gate])]), up])
        h = b.op("Add", [h, b.op("MatMul", [act, weight(f"{p}.mlp.down_proj.weight.T", (inter, hidden))])])
    h = rms_norm(h, norm_weight("model.norm.weight"))
    logits = b.op("MatMul", [h, weight("lm_head.weight.T", (hidden, vocab))])

    # Graph outputs get their HF names through Identity-free renaming of the producing nodes.
    rename = {logits: "logits", **{src: dst for src, dst in outputs}}
    for n in b.nodes:
        n.input[:] = [rename.get(x, x) for x in n.input]
        n.output[:] = [rename.get(x, x) for x in n.output]
    outs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "seq", vocab])]
    for i in range(layers):
        for kind in ("key", "value"):
            outs.append(helper.make_tensor_value_info(f"present_{kind}_{i}", TensorProto.FLOAT, [1, kv_heads, "total", hd]))
    g = helper.make_graph(b.nodes, "llama", inputs, outs, b.inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="smelt-bench")
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def feeds(layers, kv_heads, hd, vocab, seq, past, seed=1):
    """Inputs for one step: `seq` new tokens after `past` cached ones (random cache)."""
    rng = np.random.default_rng(seed)
    f = {
        "input_ids": rng.integers(0, vocab, (1, seq), dtype=np.int64),
        "position_ids": np.arange(past, past + seq, dtype=np.int64).reshape(1, seq),
    }
    for i in range(layers):
        for kind in ("key", "value"):
            f[f"past_{kind}_{i}"] = rng.standard_normal((1, kv_heads, past, hd), dtype=np.float32)
    return f


def add_shape_args(p: argparse.ArgumentParser) -> None:
    """The model's dimensions as options (defaults: a ~110M-parameter model)."""
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=2816)
    p.add_argument("--vocab", type=int, default=32000)


def shape_of(a: argparse.Namespace) -> dict:
    """`build`'s keyword arguments from parsed `add_shape_args` options."""
    return dict(hidden=a.hidden, layers=a.layers, heads=a.heads, kv_heads=a.kv_heads, inter=a.intermediate, vocab=a.vocab)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    add_shape_args(p)
    a = p.parse_args()
    m = build(**shape_of(a))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
