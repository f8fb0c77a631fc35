#!/usr/bin/python3
"""make_op_references.py: float64 reference values from PyTorch for every op of engine/ops.h.

Writes tests/data/op_references.json, which tests/test_op_references.cpp checks our ops
against (the C++ tests never need PyTorch; only this generator does). Run it from
anywhere with Debian's Python (PyTorch and numpy installed):

    /usr/bin/python3 tools/make_op_references.py [--output PATH]

Every case is computed in torch float64 with the PyTorch function that matches the
docstring in engine/ops.h:

  * name, op, params (the scalar parameters of the C++ call),
  * inputs: float64 tensors (requires_grad true: differentiated; false: a constant such
    as a softmax mask) and int64 index tensors, each as a flat row-major list + shape,
  * output: the expected float64 output,
  * grad_output: a fixed upstream gradient w of the output's shape,
  * grads: for every differentiated input, d sum(output * w) / d input (the
    vector-Jacobian product torch.autograd.grad(output, input, w)).

Conventions of the file:
  * Non-finite numbers (JSON has none) are written as the strings "inf", "-inf", "nan".
  * Inputs and w are drawn from one seeded torch generator in full float64 precision (not
    rounded to float32-exact values: a float64 op that secretly computed in float32 must
    not pass). Every number is written with repr (shortest round-trip, at most 17
    significant digits).
  * Where the output is -inf (a masked log_softmax entry, masked_fill with -inf), w is
    0: output * w is then a constant 0 term (its output does not depend on the input),
    and the gradient of sum(output * w) is well defined. (PyTorch's log_softmax backward
    would pass a nonzero w at a -inf output straight through to x; our engine treats a
    masked entry as a constant, see engine/ops/softmax.cpp.)
  * Not covered: dropout (its Philox mask cannot be reproduced in torch), rows of a
    softmax/log_softmax that are entirely -inf, and cross_entropy with every target
    ignored (our docs/engine.md convention 4 differs from PyTorch there on purpose).

The output is deterministic for a given PyTorch version.
"""

import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

FORMAT = "hkt-op-references"
VERSION = 1
GENERATOR = "tools/make_op_references.py"
SEED = 20240611

DT = torch.float64
_gen = torch.Generator().manual_seed(SEED)


# ---- random inputs -----------------------------------------------------------------------
def normal(*shape, scale=1.0):
    return torch.randn(tuple(shape), generator=_gen, dtype=DT) * scale


def uniform(*shape, lo=-1.0, hi=1.0):
    return torch.rand(tuple(shape), generator=_gen, dtype=DT) * (hi - lo) + lo


def positive(*shape, lo=0.5, hi=2.0):
    """Values in [lo, hi]: for log, sqrt, fractional powers."""
    return uniform(*shape, lo=lo, hi=hi)


def away_from_zero(*shape, lo=0.5, hi=2.0):
    """|value| in [lo, hi] with a random sign: divisors, relu inputs, 1/x."""
    mag = uniform(*shape, lo=lo, hi=hi)
    sign = torch.where(torch.rand(tuple(shape), generator=_gen) < 0.5, -1.0, 1.0).to(DT)
    return mag * sign


def distinct(*shape, scale=1.0):
    """Normal values, all different (max reductions must have no ties)."""
    while True:
        t = normal(*shape, scale=scale)
        if t.numel() == torch.unique(t).numel():
            return t


def randint(lo, hi, *shape):
    return torch.randint(lo, hi, shape, generator=_gen, dtype=torch.int64)


def idx(values):
    return torch.tensor(values, dtype=torch.int64)


def causal_mask(t):
    """[t, t]: 0 on and below the diagonal, -inf above (no row entirely -inf)."""
    m = torch.zeros(t, t, dtype=DT)
    return m.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1), -math.inf)


# ---- encoding ----------------------------------------------------------------------------
def _num(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v  # json writes float repr: shortest round-trip, at most 17 digits


def _tensor(t):
    t = t.detach()
    if t.dtype == torch.int64:
        values = [int(v) for v in t.reshape(-1).tolist()]
    else:
        values = [_num(v) for v in t.reshape(-1).tolist()]
    return {"shape": list(t.shape), "values": values}


# ---- cases -------------------------------------------------------------------------------
CASES = []


def case(name, op, params, inputs, fn):
    """inputs: list of (name, tensor, kind), kind "float" (differentiated), "const"
    (float64, not differentiated) or "int" (int64). fn(*tensors) -> output."""
    assert "/" not in name and name not in {c["name"].split("/", 1)[1] for c in CASES if c["op"] == op}, name
    tensors = []
    entries = []
    for in_name, t, kind in inputs:
        if kind == "int":
            assert t.dtype == torch.int64, in_name
            t = t.clone()
        else:
            t = t.to(DT).clone().requires_grad_(kind == "float")
        tensors.append(t)
        entry = {"name": in_name, "dtype": "int64" if kind == "int" else "float64",
                 "requires_grad": kind == "float"}
        entry.update(_tensor(t))
        entries.append(entry)
    out = fn(*tensors)
    assert out.dtype == DT, (name, out.dtype)
    assert not torch.isnan(out).any(), name
    w = normal(*out.shape)
    w = torch.where(torch.isfinite(out), w, torch.zeros_like(w))
    diff = [t for t in tensors if t.requires_grad]
    grads = torch.autograd.grad(out, diff, grad_outputs=w, allow_unused=True)
    grad_entries = {}
    for (in_name, _, kind), t in zip(inputs, tensors):
        if kind == "float":
            g = grads[[d is t for d in diff].index(True)]
            if g is None:
                g = torch.zeros_like(t)
            assert torch.isfinite(g).all(), (name, in_name)
            grad_entries[in_name] = _tensor(g)
    CASES.append({
        "name": f"{op}/{name}",
        "op": op,
        "params": {k: _num(v) if isinstance(v, float) else v for k, v in params.items()},
        "inputs": entries,
        "output": _tensor(out),
        "grad_output": _tensor(w),
        "grads": grad_entries,
    })


def binary_cases():
    fns = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}
    for op, fn in fns.items():
        rhs = away_from_zero if op == "div" else normal
        case("same_3x5", op, {}, [("a", normal(3, 5), "float"), ("b", rhs(3, 5), "float")], fn)
        case("broadcast_2x1x5_3x1", op, {},
             [("a", normal(2, 1, 5), "float"), ("b", rhs(3, 1), "float")], fn)
        case("broadcast_1x5_3x1", op, {}, [("a", normal(1, 5), "float"), ("b", rhs(3, 1), "float")], fn)
        case("broadcast_rank0_rhs", op, {}, [("a", normal(4, 3), "float"), ("b", rhs(), "float")], fn)
        case("broadcast_lhs_7_3x1x7", op, {},
             [("a", normal(7), "float"), ("b", rhs(3, 1, 7), "float")], fn)


def scalar_cases():
    case("s1.75", "add_scalar", {"value": 1.75}, [("x", normal(3, 1, 5), "float")], lambda x: x + 1.75)
    case("s-0.3", "add_scalar", {"value": -0.3}, [("x", normal(7), "float")], lambda x: x + (-0.3))
    case("s-0.625", "sub_scalar", {"value": -0.625}, [("x", normal(3, 1, 5), "float")], lambda x: x - (-0.625))
    case("s0.1", "sub_scalar", {"value": 0.1}, [("x", normal(2, 3), "float")], lambda x: x - 0.1)
    case("s2.5", "rsub_scalar", {"value": 2.5}, [("x", normal(3, 1, 5), "float")], lambda x: 2.5 - x)
    case("s-0.7", "rsub_scalar", {"value": -0.7}, [("x", normal(5, 1), "float")], lambda x: -0.7 - x)
    case("s-1.5", "mul_scalar", {"value": -1.5}, [("x", normal(3, 1, 5), "float")], lambda x: x * -1.5)
    case("s0.3", "mul_scalar", {"value": 0.3}, [("x", normal(7), "float")], lambda x: x * 0.3)
    case("s0.375", "div_scalar", {"value": 0.375}, [("x", normal(3, 1, 5), "float")], lambda x: x / 0.375)
    case("s-3", "div_scalar", {"value": -3.0}, [("x", normal(2, 3), "float")], lambda x: x / -3.0)
    case("s1.25", "rdiv_scalar", {"value": 1.25}, [("x", away_from_zero(3, 1, 5), "float")], lambda x: 1.25 / x)
    case("s-0.7", "rdiv_scalar", {"value": -0.7}, [("x", away_from_zero(7), "float")], lambda x: -0.7 / x)
    case("p2_mixed_signs", "pow", {"p": 2.0}, [("x", normal(3, 1, 5), "float")], lambda x: torch.pow(x, 2.0))
    case("p3_mixed_signs", "pow", {"p": 3.0}, [("x", normal(7), "float")], lambda x: torch.pow(x, 3.0))
    case("p0.5", "pow", {"p": 0.5}, [("x", positive(3, 1, 5), "float")], lambda x: torch.pow(x, 0.5))
    case("p-1.5", "pow", {"p": -1.5}, [("x", positive(7), "float")], lambda x: torch.pow(x, -1.5))
    case("p1", "pow", {"p": 1.0}, [("x", normal(2, 3), "float")], lambda x: torch.pow(x, 1.0))
    case("p2.7", "pow", {"p": 2.7}, [("x", positive(5, 1), "float")], lambda x: torch.pow(x, 2.7))


def unary_cases():
    specs = [
        ("neg", normal, torch.neg, {}),
        ("exp", lambda *s: normal(*s), torch.exp, {}),
        ("log", positive, torch.log, {}),
        ("sqrt", positive, torch.sqrt, {}),
        ("tanh", lambda *s: normal(*s, scale=1.5), torch.tanh, {}),
        ("sigmoid", lambda *s: normal(*s, scale=2.0), torch.sigmoid, {}),
        ("relu", lambda *s: away_from_zero(*s, lo=0.05, hi=2.0), torch.relu, {}),
    ]
    for op, make, fn, params in specs:
        case("3x1x5", op, params, [("x", make(3, 1, 5), "float")], fn)
        case("7", op, params, [("x", make(7), "float")], fn)
    case("log_wide_range", "log", {}, [("x", positive(9, lo=0.01, hi=50.0), "float")], torch.log)
    case("exp_wide_range", "exp", {}, [("x", uniform(9, lo=-6.0, hi=6.0), "float")], torch.exp)
    for approx in ("none", "tanh"):
        for name, x in (("3x1x5", normal(3, 1, 5, scale=1.5)), ("7_wide", uniform(7, lo=-5.0, hi=5.0))):
            case(f"{approx}_{name}", "gelu", {"approximation": approx}, [("x", x, "float")],
                 lambda x, a=approx: F.gelu(x, approximate=a))


def matmul_cases():
    shapes = [
        ("plain_3x5_5x4", (3, 5), (5, 4)),
        ("plain_1x5_5x3", (1, 5), (5, 3)),
        ("plain_3x1_1x5", (3, 1), (1, 5)),
        ("batched_2x3x5_2x5x1", (2, 3, 5), (2, 5, 1)),
        ("batched_3x2x3_3x3x5", (3, 2, 3), (3, 3, 5)),
        ("broadcast_3x1x4x5_2x5x3", (3, 1, 4, 5), (2, 5, 3)),
        ("broadcast_4x5_3x5x2", (4, 5), (3, 5, 2)),
        ("broadcast_1x3x4_5x4x3", (1, 3, 4), (5, 4, 3)),
    ]
    for name, sa, sb in shapes:
        case(name, "matmul", {}, [("a", normal(*sa), "float"), ("b", normal(*sb), "float")], torch.matmul)


def layout_cases():
    case("3x1x5_to_5x3", "reshape", {"shape": [5, 3]}, [("x", normal(3, 1, 5), "float")],
         lambda x: x.reshape(5, 3))
    case("2x3x5_to_m1x5", "reshape", {"shape": [-1, 5]}, [("x", normal(2, 3, 5), "float")],
         lambda x: x.reshape(-1, 5))
    case("6_to_2x1x3", "reshape", {"shape": [2, 1, 3]}, [("x", normal(6), "float")],
         lambda x: x.reshape(2, 1, 3))
    case("1_to_rank0", "reshape", {"shape": []}, [("x", normal(1), "float")], lambda x: x.reshape(()))

    case("2x3x1x5_3021", "permute", {"dims": [3, 0, 2, 1]}, [("x", normal(2, 3, 1, 5), "float")],
         lambda x: x.permute(3, 0, 2, 1))
    case("3x5_10", "permute", {"dims": [1, 0]}, [("x", normal(3, 5), "float")], lambda x: x.permute(1, 0))
    case("2x3x5_120", "permute", {"dims": [1, 2, 0]}, [("x", normal(2, 3, 5), "float")],
         lambda x: x.permute(1, 2, 0))
    case("identity_3x1x5", "permute", {"dims": [0, 1, 2]}, [("x", normal(3, 1, 5), "float")],
         lambda x: x.permute(0, 1, 2))

    case("2x3x5_0_2", "transpose", {"axis0": 0, "axis1": 2}, [("x", normal(2, 3, 5), "float")],
         lambda x: x.transpose(0, 2))
    case("2x3x5_m1_m2", "transpose", {"axis0": -1, "axis1": -2}, [("x", normal(2, 3, 5), "float")],
         lambda x: x.transpose(-1, -2))
    case("3x1x5_1_1", "transpose", {"axis0": 1, "axis1": 1}, [("x", normal(3, 1, 5), "float")],
         lambda x: x.transpose(1, 1))

    case("5x3_axis0_1_4", "slice", {"axis": 0, "start": 1, "end": 4}, [("x", normal(5, 3), "float")],
         lambda x: x[1:4])
    case("2x7x3_axis1_m5_m1", "slice", {"axis": 1, "start": -5, "end": -1}, [("x", normal(2, 7, 3), "float")],
         lambda x: x[:, -5:-1])
    case("3x1x5_axism1_0_5", "slice", {"axis": -1, "start": 0, "end": 5}, [("x", normal(3, 1, 5), "float")],
         lambda x: x[..., 0:5])
    case("3x1x5_axis2_4_5", "slice", {"axis": 2, "start": 4, "end": 5}, [("x", normal(3, 1, 5), "float")],
         lambda x: x[:, :, 4:5])

    case("axis1_three", "concat", {"axis": 1},
         [("x0", normal(2, 1, 5), "float"), ("x1", normal(2, 3, 5), "float"), ("x2", normal(2, 2, 5), "float")],
         lambda *xs: torch.cat(xs, dim=1))
    case("axism1_two", "concat", {"axis": -1}, [("x0", normal(3, 2), "float"), ("x1", normal(3, 5), "float")],
         lambda *xs: torch.cat(xs, dim=-1))
    case("axis0_two", "concat", {"axis": 0}, [("x0", normal(1, 3), "float"), ("x1", normal(4, 3), "float")],
         lambda *xs: torch.cat(xs, dim=0))
    case("axis0_one", "concat", {"axis": 0}, [("x0", normal(3, 1), "float")], lambda *xs: torch.cat(xs, dim=0))


def reduce_cases():
    def red(op, x, axes, keepdim):
        if op == "sum":
            return x.sum() if not axes else x.sum(dim=axes, keepdim=keepdim)
        if op == "mean":
            return x.mean() if not axes else x.mean(dim=axes, keepdim=keepdim)
        # max over several axes: torch.amax; its gradient without ties is the same one-hot
        return x.max() if not axes else torch.amax(x, dim=axes, keepdim=keepdim)

    specs = [
        ("all", (3, 1, 5), [], False),
        ("all_keepdim", (2, 3), [], True),
        ("axis1_keepdim", (3, 1, 5), [1], True),
        ("axis2", (2, 3, 5), [2], False),
        ("axism1_keepdim", (2, 3, 5), [-1], True),
        ("axes0_2", (2, 3, 5), [0, 2], False),
        ("axes0_2_keepdim", (3, 1, 5), [0, 2], True),
        ("axis0", (5, 3), [0], False),
    ]
    for op in ("sum", "mean", "max"):
        for name, shape, axes, keepdim in specs:
            x = distinct(*shape) if op == "max" else normal(*shape)
            if not axes and keepdim:
                # torch.sum() has no keepdim for all axes; keep every dimension as size 1
                fn = (lambda x, o=op, k=x.dim(): red(o, x, list(range(k)), True))
            else:
                fn = (lambda x, o=op, a=axes, k=keepdim: red(o, x, a, k))
            case(name, op, {"axes": axes, "keepdim": keepdim}, [("x", x, "float")], fn)


def softmax_cases():
    for op, fn in (("softmax", torch.softmax), ("log_softmax", torch.log_softmax)):
        case("3x5", op, {}, [("x", normal(3, 5, scale=2.0), "float")], lambda x, f=fn: f(x, dim=-1))
        case("2x1x7", op, {}, [("x", normal(2, 1, 7, scale=2.0), "float")], lambda x, f=fn: f(x, dim=-1))
        case("7_wide", op, {}, [("x", uniform(7, lo=-20.0, hi=20.0), "float")], lambda x, f=fn: f(x, dim=-1))
        case("1x1", op, {}, [("x", normal(1, 1), "float")], lambda x, f=fn: f(x, dim=-1))
        case("causal_mask_2x5x5", op, {},
             [("x", normal(2, 5, 5, scale=2.0), "float"), ("mask", causal_mask(5), "const")],
             lambda x, m, f=fn: f(x + m, dim=-1))
        pad = torch.zeros(3, 1, 5, dtype=DT)
        pad[0, 0, 4] = -math.inf
        pad[1, 0, 0] = -math.inf
        pad[1, 0, 2] = -math.inf
        case("padding_mask_3x4x5", op, {},
             [("x", normal(3, 4, 5, scale=2.0), "float"), ("mask", pad, "const")],
             lambda x, m, f=fn: f(x + m, dim=-1))
        finite = normal(5, scale=0.5)
        case("finite_mask_3x5", op, {},
             [("x", normal(3, 5), "float"), ("mask", finite, "const")],
             lambda x, m, f=fn: f(x + m, dim=-1))


def cross_entropy_cases():
    def ce(ignore_index=-100, label_smoothing=0.0):
        def f(logits, targets):
            c = logits.shape[-1]
            return F.cross_entropy(logits.reshape(-1, c), targets.reshape(-1), ignore_index=ignore_index,
                                   label_smoothing=label_smoothing, reduction="mean")
        return f

    def direct(logits, targets, ignore_index, eps):
        """ops.h's formula: mean over kept targets of -((1-eps) log p[t] + eps/C sum_c log p[c])."""
        c = logits.shape[-1]
        logp = torch.log_softmax(logits.reshape(-1, c), dim=-1)
        terms = [-((1 - eps) * logp[i, t] + eps / c * logp[i].sum())
                 for i, t in enumerate(targets.reshape(-1).tolist()) if t != ignore_index]
        return sum(terms) / len(terms)

    def add(name, logits, targets, ignore_index=-100, label_smoothing=0.0):
        assert torch.allclose(ce(ignore_index, label_smoothing)(logits, targets),
                              direct(logits, targets, ignore_index, label_smoothing), rtol=1e-13, atol=1e-13), name
        case(name, "cross_entropy", {"ignore_index": ignore_index, "label_smoothing": label_smoothing},
             [("logits", logits, "float"), ("targets", targets, "int")], ce(ignore_index, label_smoothing))

    add("5x7", normal(5, 7, scale=2.0), randint(0, 7, 5))
    add("2x3x5_ignored_default", normal(2, 3, 5, scale=2.0), idx([[1, -100, 4], [0, 0, 3]]))
    add("5x3_ignore_index_2", normal(5, 3), idx([2, 0, 2, 1, 1]), ignore_index=2)
    add("5x7_smoothing_0.1", normal(5, 7, scale=2.0), randint(0, 7, 5), label_smoothing=0.1)
    add("2x3x5_smoothing_0.2_ignored", normal(2, 3, 5, scale=2.0), idx([[4, 2, -100], [-100, 1, 0]]),
        label_smoothing=0.2)
    add("1x4", normal(1, 4), idx([3]))
    add("3x1x2_smoothing_0.5", normal(3, 1, 2), idx([[1], [0], [1]]), label_smoothing=0.5)


def layer_norm_cases():
    def add(name, x, weight, bias, eps):
        inputs = [("x", x, "float")]
        if weight is not None:
            inputs.append(("weight", weight, "float"))
        if bias is not None:
            inputs.append(("bias", bias, "float"))
        d = x.shape[-1]

        def f(*ts):
            named = dict(zip([n for n, _, _ in inputs], ts))
            return F.layer_norm(named["x"], (d,), named.get("weight"), named.get("bias"), eps)

        case(name, "layer_norm", {"eps": eps}, inputs, f)

    add("3x5_weight_bias", normal(3, 5, scale=2.0), normal(5), normal(5), 1e-5)
    add("2x1x7_plain", normal(2, 1, 7), None, None, 1e-5)
    add("4x3_weight_only", normal(4, 3), normal(3), None, 1e-5)
    add("3x5_bias_only", normal(3, 5), None, normal(5), 1e-5)
    add("2x3x5_eps_0.1", normal(2, 3, 5, scale=0.5), normal(5), normal(5), 0.1)
    add("3x1_single_feature", normal(3, 1), normal(1), normal(1), 1e-5)


def indexing_cases():
    case("7x3_idx2x3_repeats", "embedding", {},
         [("weight", normal(7, 3), "float"), ("indices", idx([[1, 4, 1], [6, 0, 4]]), "int")],
         lambda w, i: F.embedding(i, w))
    case("5x4_idx5", "embedding", {},
         [("weight", normal(5, 4), "float"), ("indices", idx([2, 2, 2, 0, 4]), "int")],
         lambda w, i: F.embedding(i, w))
    case("3x1_idx1x4", "embedding", {},
         [("weight", normal(3, 1), "float"), ("indices", idx([[0, 2, 2, 1]]), "int")],
         lambda w, i: F.embedding(i, w))
    case("4x5_idx_rank0", "embedding", {},
         [("weight", normal(4, 5), "float"), ("indices", idx(3), "int")],
         lambda w, i: F.embedding(i, w))

    case("3x5_axis1", "gather", {"axis": 1},
         [("x", normal(3, 5), "float"), ("index", idx([[0, 4, 4, 2, 1], [3, 3, 3, 3, 3], [1, 0, 2, 4, 0]]), "int")],
         lambda x, i: torch.gather(x, 1, i))
    case("3x5_axis1_narrow", "gather", {"axis": 1},
         [("x", normal(3, 5), "float"), ("index", idx([[4, 0], [2, 2], [1, 3]]), "int")],
         lambda x, i: torch.gather(x, 1, i))
    case("4x3x2_axis0", "gather", {"axis": 0},
         [("x", normal(4, 3, 2), "float"), ("index", randint(0, 4, 2, 3, 2), "int")],
         lambda x, i: torch.gather(x, 0, i))
    case("2x1x5_axism1_wide", "gather", {"axis": -1},
         [("x", normal(2, 1, 5), "float"), ("index", randint(0, 5, 2, 1, 7), "int")],
         lambda x, i: torch.gather(x, -1, i))
    case("3x5x2_axis1", "gather", {"axis": 1},
         [("x", normal(3, 5, 2), "float"), ("index", randint(0, 5, 3, 4, 2), "int")],
         lambda x, i: torch.gather(x, 1, i))

    case("3x1x5_r2_axis0", "repeat_interleave", {"repeats": 2, "axis": 0}, [("x", normal(3, 1, 5), "float")],
         lambda x: torch.repeat_interleave(x, 2, dim=0))
    case("2x3_r3_axism1", "repeat_interleave", {"repeats": 3, "axis": -1}, [("x", normal(2, 3), "float")],
         lambda x: torch.repeat_interleave(x, 3, dim=-1))
    case("3x1x5_r4_axis1", "repeat_interleave", {"repeats": 4, "axis": 1}, [("x", normal(3, 1, 5), "float")],
         lambda x: torch.repeat_interleave(x, 4, dim=1))
    case("5_r1_axis0", "repeat_interleave", {"repeats": 1, "axis": 0}, [("x", normal(5), "float")],
         lambda x: torch.repeat_interleave(x, 1, dim=0))
    case("2x5x3_r2_axis1", "repeat_interleave", {"repeats": 2, "axis": 1}, [("x", normal(2, 5, 3), "float")],
         lambda x: torch.repeat_interleave(x, 2, dim=1))

    def fill(value):
        return lambda x, m: x.masked_fill(m != 0, value)

    case("3x5_int_mask_v0", "masked_fill", {"value": 0.0},
         [("x", normal(3, 5), "float"), ("mask", randint(0, 2, 3, 5), "int")], fill(0.0))
    case("2x3x5_float_mask_3x1_v-1.5", "masked_fill", {"value": -1.5},
         [("x", normal(2, 3, 5), "float"), ("mask", torch.tensor([[1.0], [0.0], [2.5]], dtype=DT), "const")],
         fill(-1.5))
    case("3x1x5_int_mask_5_vneginf", "masked_fill", {"value": -math.inf},
         [("x", normal(3, 1, 5), "float"), ("mask", idx([0, 1, 0, 0, 1]), "int")], fill(-math.inf))
    case("4x3_no_fill_v7", "masked_fill", {"value": 7.0},
         [("x", normal(4, 3), "float"), ("mask", torch.zeros(4, 3, dtype=torch.int64), "int")], fill(7.0))
    case("2x3_int_mask_rank0_v2", "masked_fill", {"value": 2.0},
         [("x", normal(2, 3), "float"), ("mask", idx(1), "int")], fill(2.0))


def conv_cases():
    def conv(stride):
        def f(x, w, b=None):
            k = w.shape[1]
            tw = w.flip(1).unsqueeze(1)  # our weight[c, r] = torch weight[c, 0, k-1-r]
            xt = F.pad(x.permute(0, 2, 1), (k - 1, 0))  # [B, C, T], k-1 zeros on the left
            y = F.conv1d(xt, tw, b, stride=stride, groups=x.shape[2])
            return y.permute(0, 2, 1)  # [B, T_out, C]
        return f

    specs = [
        ("2x7x3_k2_s1_bias", (2, 7, 3), 2, 1, True),
        ("2x7x3_k3_s1", (2, 7, 3), 3, 1, False),
        ("2x7x3_k2_s2", (2, 7, 3), 2, 2, False),
        ("1x5x4_k3_s2_bias", (1, 5, 4), 3, 2, True),
        ("3x6x1_k2_s2_bias", (3, 6, 1), 2, 2, True),
        ("2x8x3_k3_s3", (2, 8, 3), 3, 3, False),
        ("1x2x3_k3_s1_bias_k_gt_t", (1, 2, 3), 3, 1, True),
        ("2x5x2_k1_s1_bias", (2, 5, 2), 1, 1, True),
    ]
    def direct(x, w, b, stride):
        """ops.h's formula, term by term: the torch mapping above must agree with it."""
        bsz, t, c = x.shape
        k = w.shape[1]
        y = torch.zeros(bsz, -(-t // stride), c, dtype=DT)
        for tt in range(y.shape[1]):
            for r in range(k):
                if stride * tt - r >= 0:
                    y[:, tt, :] += w[:, r] * x[:, stride * tt - r, :]
        return y if b is None else y + b

    for name, (b, t, c), k, stride, with_bias in specs:
        inputs = [("x", normal(b, t, c), "float"), ("weight", normal(c, k), "float")]
        if with_bias:
            inputs.append(("bias", normal(c), "float"))
        ts = [v for _, v, _ in inputs]
        assert torch.allclose(conv(stride)(*ts), direct(ts[0], ts[1], ts[2] if with_bias else None, stride),
                              rtol=1e-13, atol=1e-13), name
        case(name, "causal_conv1d", {"stride": stride}, inputs, conv(stride))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--output", default=os.path.join(here, "..", "tests", "data", "op_references.json"))
    args = parser.parse_args()

    torch.use_deterministic_algorithms(True)
    binary_cases()
    scalar_cases()
    unary_cases()
    matmul_cases()
    layout_cases()
    reduce_cases()
    softmax_cases()
    cross_entropy_cases()
    layer_norm_cases()
    indexing_cases()
    conv_cases()

    doc = {
        "format": FORMAT,
        "version": VERSION,
        "generator": GENERATOR,
        "torch_version": torch.__version__,
        "seed": SEED,
        "cases": CASES,
    }
    # The header, then one case per line: readable diffs, still compact.
    def dump(obj):
        return json.dumps(obj, allow_nan=False, separators=(",", ":"))

    header = dump({k: v for k, v in doc.items() if k != "cases"})
    text = header[:-1] + ',"cases":[\n' + ",\n".join(dump(c) for c in CASES) + "\n]}"
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(text + "\n")
    counts = {}
    for c in CASES:
        counts[c["op"]] = counts.get(c["op"], 0) + 1
    print(f"wrote {len(CASES)} cases of {len(counts)} ops to {os.path.normpath(args.output)} "
          f"({len(text) // 1024} KiB)", file=sys.stderr)
    for op, n in counts.items():
        print(f"  {op}: {n}", file=sys.stderr)


if __name__ == "__main__":
    main()
