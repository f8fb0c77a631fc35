#!/usr/bin/python3
"""make_optim_references.py: float64 reference values from PyTorch for engine/optim.

Writes tests/data/optim/adamw_reference.json, which tests/test_optim.cpp checks our
AdamW, warmup-cosine schedule and gradient clipping against (the C++ tests never need
PyTorch; only this generator does). Run it from anywhere with Debian's Python:

    /usr/bin/python3 tools/make_optim_references.py [--output PATH]

What it computes, all in torch float64:

  * adamw: five parameters with fixed values (drawn once from a seeded generator in full
    float64 precision) and fixed per-step gradients:
        w                          [3,4]  a matrix: weight decay applies
        b                          [4]    a bias: no decay
        attn.level_logits          [2,3]  level-weight logits: no decay (rank 2, but named)
        attn.downsample.1.weight   [4,2]  downsampler taps: no decay (rank 2, but named)
        frozen.weight              [2,2]  a matrix (decays) that never gets a gradient: untouched
    torch.optim.AdamW (foreach=False, amsgrad=False) runs 5 steps with two parameter
    groups (weight_decay on "w" and "frozen.weight", 0 elsewhere: docs/engine.md convention 7),
    the learning rate of each step set from the warmup of docs/engine.md convention 8 and
    the cosine decay of engine/optim/schedule.h,
    computed here by the same formula as engine/optim/schedule.cpp:
        step <= warmup: lr = base * step / warmup
        else:           lr = min + 0.5 (base - min) (1 + cos(pi (step - warmup) / (total - warmup)))
    Recorded: the lr of each step, every parameter after every step, and the final
    exp_avg / exp_avg_sq (PyTorch's optimizer state).
  * clip: torch.nn.utils.clip_grad_norm_ on a set of three gradients, once with a max_norm
    below their norm (they are scaled) and once above it (they are not); recorded: the
    returned total norm and the gradients afterwards.

Every number is written with repr (shortest round-trip, at most 17 significant digits).
The output is deterministic for a given PyTorch version.
"""

import argparse
import json
import math
import os

import torch

FORMAT = "hkt-optim-references"
VERSION = 1
GENERATOR = "tools/make_optim_references.py"
SEED = 20240701
STEPS = 5

DT = torch.float64
_gen = torch.Generator().manual_seed(SEED)

# AdamW hyperparameters and the schedule (the C++ test reads them from the file).
ADAMW = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.1}
SCHEDULE = {"kind": "cosine", "base_lr": 0.01, "warmup_steps": 2, "total_steps": 5, "min_lr": 0.001}

# name, shape, whether weight decay applies (our rule), whether it gets gradients
PARAMETERS = [
    ("w", (3, 4), True, True),
    ("b", (4,), False, True),
    ("attn.level_logits", (2, 3), False, True),
    ("attn.downsample.1.weight", (4, 2), False, True),
    ("frozen.weight", (2, 2), True, False),
]


def normal(shape, scale=1.0):
    return torch.randn(shape, generator=_gen, dtype=DT) * scale


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def learning_rate(step):
    """Convention 8 warmup then cosine decay; step counted from 1."""
    s = SCHEDULE
    base, warmup, total, low = s["base_lr"], s["warmup_steps"], s["total_steps"], s["min_lr"]
    if step <= warmup:
        return base * min(1.0, step / warmup)
    progress = min(1.0, (step - warmup) / (total - warmup))
    return low + 0.5 * (base - low) * (1.0 + math.cos(math.pi * progress))


def adamw_case():
    params, grads = [], []
    for name, shape, _, has_grad in PARAMETERS:
        p = normal(shape).requires_grad_(True)
        params.append(p)
        # gradients of order 1, away from 0 relative to eps (so float32 runs stay comparable)
        grads.append([normal(shape) if has_grad else None for _ in range(STEPS)])
    initial = [flat(p) for p in params]

    decay = [p for p, spec in zip(params, PARAMETERS) if spec[2]]
    no_decay = [p for p, spec in zip(params, PARAMETERS) if not spec[2]]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": ADAMW["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=SCHEDULE["base_lr"], betas=(ADAMW["beta1"], ADAMW["beta2"]), eps=ADAMW["eps"],
        amsgrad=False, foreach=False)

    lrs, after = [], [[] for _ in params]
    for step in range(1, STEPS + 1):
        lr = learning_rate(step)
        lrs.append(lr)
        for group in opt.param_groups:
            group["lr"] = lr
        for p, g in zip(params, grads):
            p.grad = None if g[step - 1] is None else g[step - 1].clone()
        opt.step()
        for i, p in enumerate(params):
            after[i].append(flat(p))

    out = []
    for i, (name, shape, decays, has_grad) in enumerate(PARAMETERS):
        state = opt.state.get(params[i], {})
        out.append({
            "name": name,
            "shape": list(shape),
            "decays": decays,
            "initial": initial[i],
            "grads": [None if g is None else flat(g) for g in grads[i]],
            "after": after[i],
            "exp_avg": flat(state["exp_avg"]) if state else None,
            "exp_avg_sq": flat(state["exp_avg_sq"]) if state else None,
        })
    return {"config": ADAMW, "schedule": SCHEDULE, "steps": STEPS, "lrs": lrs, "parameters": out}


def clip_cases():
    shapes = [(2, 3), (4,), (1, 2, 2)]
    base = [normal(s, 0.7) for s in shapes]
    cases = []
    for max_norm in (0.5, 100.0):
        params = []
        for g in base:
            p = torch.zeros(g.shape, dtype=DT, requires_grad=True)
            p.grad = g.clone()
            params.append(p)
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        cases.append({
            "max_norm": max_norm,
            "grads": [{"shape": list(g.shape), "values": flat(g)} for g in base],
            "total_norm": float(norm),
            "clipped": [flat(p.grad) for p in params],
        })
    return cases


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "..", "tests", "data", "optim", "adamw_reference.json")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=default)
    args = parser.parse_args()

    doc = {
        "format": FORMAT,
        "version": VERSION,
        "generator": GENERATOR,
        "torch_version": torch.__version__,
        "seed": SEED,
        "adamw": adamw_case(),
        "clip": clip_cases(),
    }
    with open(args.output, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.normpath(args.output)}")


if __name__ == "__main__":
    main()
