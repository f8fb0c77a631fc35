#!/usr/bin/python3
"""make_golden.py: golden files from PyTorch for the classifier models (test ladder step 4
of docs/engine.md).

Writes, for each model below, into tests/data/golden/:
    <model>.safetensors   the weights (float64), under the C++ parameter names
    <model>.json          a versioned header, the config, a fixed batch, the logits, the
                          mean cross-entropy loss, the gradient of that loss for every
                          parameter, and the losses of 5 AdamW steps on the same batch
tests/test_golden.cpp checks hkt::Classifier against them (the C++ tests never need
PyTorch; only this generator does). Run it from anywhere with Debian's Python:

    /usr/bin/python3 tools/make_golden.py [--output DIR]

The models are written here in plain torch float64 from docs/hkt-attention.md
(sections 1-3), not translated from the C++ code:
    input       x = E[tokens] + P[0:T]   (with "cls" pooling a learned vector is
                prepended as a real token at position 0, and positions run 0..T)
    block       x = x + Attn(LN1(x), mask);  x = x + fc2(GELU_erf(fc1(LN2(x))))
                (pre-LayerNorm, biased variance, eps 1e-5; linear is x W^T + b)
    output      LN_f, then mean pooling over real tokens (or the CLS row), then head
    loss        torch.nn.functional.cross_entropy (mean over the batch)
Attention, per head h, scale = 1 / sqrt(d_h):
    X0 = X with padded rows set to 0
    X_l[t] = b_l + sum_r w_l[:, r] * X_{l-1}[2t - r]     (depthwise; dense: X_{l-1}[2t - r] W_r^T)
             with X_{l-1}[p < 0] = 0, t = 0..ceil(T_{l-1} / 2) - 1
    Q_l = X_l W_Q_l^T, K_l = X_l W_K_l^T, V = X0 W_V^T, S_l = scale Q_l K_l^T
    alpha = softmax(level_logits) over levels (per head [H, L], or one [L] for all heads)
    "scores":  S = sum_l alpha_l S_l[i // 2^l, j // 2^l]; P = softmax_j(S, keys with
               mask 0 removed); O = P V
    "outputs": O[i] = sum_l alpha_l (softmax(S_l with coarse key mask m[2^l t]) V_l)[i // 2^l],
               V_l = X_l W_V^T
    Y = concat_h(O_h) W_O^T
"mha" is the same with one level (no downsampler, no level weights).

Parameters are random (seeded), float64, of order 1/sqrt(fan-in); level_logits and
downsampler taps are random too, so every path carries a non-trivial gradient.

AdamW: torch.optim.AdamW (foreach=False, amsgrad=False), lr 0.01 constant, betas
(0.9, 0.999), eps 1e-8, weight_decay 0.1 on the parameters of rank >= 2 whose names hold
neither "level_logits" nor "downsample." (docs/engine.md convention 7), 0 on the others. The
loss is recorded before each of the 5 steps (loss[0] is the golden loss) and once more
after the last one ("loss_after").

Models: "mha", "hkt_scores" (3 levels, per-head weights, depthwise k = 2), "hkt_outputs"
(2 levels, per-layer weights, dense k = 2), "mha_cls" (as "mha" with CLS pooling). All
four share one batch. Numbers are written with repr (shortest round-trip); gradients are
first rounded at the 14th significant digit of their tensor's largest element (see
GRAD_DIGITS) to keep the files small. The output is deterministic for a given PyTorch
version. The safetensors files are written by this script (struct + json, the format of
engine/io/safetensors.h): the `safetensors` package is not needed.
"""

import argparse
import json
import math
import os
import struct

import torch
import torch.nn.functional as F

FORMAT = "hkt-golden"
VERSION = 1
GENERATOR = "tools/make_golden.py"
SEED = 20240917
DT = torch.float64

# Shared by every model (docs/engine.md, test ladder step 4).
COMMON = {
    "vocab_size": 13,
    "max_len": 16,
    "num_classes": 3,
    "d_model": 8,
    "n_heads": 2,
    "n_layers": 2,
    "d_ff": 16,
    "dropout": 0.0,
    "positions": "learned",
    "layer_norm_eps": 1e-5,
    "causal": False,
}

# name -> attention / pooling settings. "mha" ignores levels, fusion, weights, downsampler.
MODELS = {
    "mha": {"attention": "mha", "levels": 1, "fusion": "scores", "level_weights": "per_head",
            "downsampler": "depthwise", "kernel_size": 2, "pooling": "mean"},
    "hkt_scores": {"attention": "hkt", "levels": 3, "fusion": "scores", "level_weights": "per_head",
                   "downsampler": "depthwise", "kernel_size": 2, "pooling": "mean"},
    "hkt_outputs": {"attention": "hkt", "levels": 2, "fusion": "outputs", "level_weights": "per_layer",
                    "downsampler": "dense", "kernel_size": 2, "pooling": "mean"},
    "mha_cls": {"attention": "mha", "levels": 1, "fusion": "scores", "level_weights": "per_head",
                "downsampler": "depthwise", "kernel_size": 2, "pooling": "cls"},
}

# Gradients are written rounded at the 14th significant digit of each tensor's largest
# element: an absolute error of at most 5e-14 * max |grad|, 20x inside the 1e-12 that
# tests/test_golden.cpp allows in the same measure (max |error| / max |grad|). This keeps
# the four models under 200 KB; logits and losses are written exact.
GRAD_DIGITS = 14

ADAMW = {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.1, "steps": 5}

# The batch: B = 4, T = 11 (not a multiple of 4), right padding with token 0. Lengths
# include 1 and the full 11. Real tokens are drawn from the generator.
LENGTHS = [7, 11, 1, 4]
LABELS = [2, 0, 1, 2]
T = 11


def levels_of(cfg):
    return 1 if cfg["attention"] == "mha" else cfg["levels"]


# ---- parameters ---------------------------------------------------------------------------

def parameter_shapes(cfg):
    """(name, shape) in the order hkt::Classifier::named_parameters() lists them."""
    d, f, H, k, L = cfg["d_model"], cfg["d_ff"], cfg["n_heads"], cfg["kernel_size"], levels_of(cfg)
    n_pos = cfg["max_len"] + (1 if cfg["pooling"] == "cls" else 0)
    out = [("cls", (d,))] if cfg["pooling"] == "cls" else []  # the model's own parameter comes first
    out += [("embedding.weight", (cfg["vocab_size"], d)), ("pos_embedding.weight", (n_pos, d))]
    for i in range(cfg["n_layers"]):
        b = f"blocks.{i}."
        out += [(b + "ln1.weight", (d,)), (b + "ln1.bias", (d,))]
        if L > 1:
            out.append((b + "attn.level_logits", (H, L) if cfg["level_weights"] == "per_head" else (L,)))
        out += [(b + f"attn.w_q.{l}.weight", (d, d)) for l in range(L)]
        out += [(b + f"attn.w_k.{l}.weight", (d, d)) for l in range(L)]
        out += [(b + "attn.w_v.weight", (d, d)), (b + "attn.w_o.weight", (d, d))]
        for l in range(1, L):
            shape = (d, k) if cfg["downsampler"] == "depthwise" else (k, d, d)
            out += [(b + f"attn.downsample.{l}.weight", shape), (b + f"attn.downsample.{l}.bias", (d,))]
        out += [(b + "ln2.weight", (d,)), (b + "ln2.bias", (d,)),
                (b + "mlp.fc1.weight", (f, d)), (b + "mlp.fc1.bias", (f,)),
                (b + "mlp.fc2.weight", (d, f)), (b + "mlp.fc2.bias", (d,))]
    out += [("ln_f.weight", (d,)), ("ln_f.bias", (d,)),
            ("head.weight", (cfg["num_classes"], d)), ("head.bias", (cfg["num_classes"],))]
    return out


def random_parameter(name, shape, gen):
    """Random float64 values of a sensible size for the parameter's role."""
    def randn(scale):
        return torch.randn(shape, generator=gen, dtype=DT) * scale
    leaf = name.split(".")[-1]
    if name in ("embedding.weight", "pos_embedding.weight", "cls"):
        return randn(0.5)
    if any(part in name for part in ("ln1.", "ln2.", "ln_f.")):
        return 1.0 + randn(0.2) if leaf == "weight" else randn(0.2)
    if name.endswith("level_logits"):
        return randn(1.0)
    if ".downsample." in name:
        if leaf == "bias":
            return randn(0.2)
        fan_in = shape[1] if len(shape) == 2 else shape[0] * shape[2]  # depthwise [d, k]; dense [k, d, d]
        return randn(1.0 / math.sqrt(fan_in))
    # linear layers [out, in] and their biases [out]: fan-in is the input width
    if leaf == "weight":
        return randn(1.0 / math.sqrt(shape[1]))
    return randn(0.5)


# ---- the model ----------------------------------------------------------------------------

def downsample(x, w, b, kind):
    """One level of causal stride-2 downsampling: [B, n, d] -> [B, ceil(n / 2), d].
    out[t] = b + sum_r tap_r(x[2t - r]); tap r multiplies the input r steps back."""
    B, n, d = x.shape
    k = w.shape[1] if kind == "depthwise" else w.shape[0]
    rows = []
    for t in range((n + 1) // 2):
        acc = b.expand(B, d)
        for r in range(k):
            p = 2 * t - r
            if p < 0:
                continue
            acc = acc + (x[:, p] * w[:, r] if kind == "depthwise" else x[:, p] @ w[r].t())
        rows.append(acc)
    return torch.stack(rows, dim=1)


def level_weights(p, pre, cfg):
    H, L = cfg["n_heads"], levels_of(cfg)
    if L == 1:
        return torch.ones(H, 1, dtype=DT)
    beta = p[pre + "level_logits"]
    if cfg["level_weights"] == "per_head":
        return torch.softmax(beta, dim=-1)
    return torch.softmax(beta, dim=0).unsqueeze(0).expand(H, L)


def attention(p, pre, cfg, x, m):
    """x [B, n, d] (after LN1), m [B, n] float 1 = real token. Returns [B, n, d]."""
    B, n, d = x.shape
    H, L = cfg["n_heads"], levels_of(cfg)
    dh = d // H
    scale = 1.0 / math.sqrt(dh)

    def heads(y):  # [B, n', d] -> [B, H, n', dh]
        return y.reshape(B, y.shape[1], H, dh).transpose(1, 2)

    xs = [x * m.unsqueeze(-1)]
    for l in range(1, L):
        xs.append(downsample(xs[-1], p[pre + f"downsample.{l}.weight"], p[pre + f"downsample.{l}.bias"],
                             cfg["downsampler"]))
    alpha = level_weights(p, pre, cfg)  # [H, L]
    out = torch.zeros(B, H, n, dh, dtype=DT)
    scores = torch.zeros(B, H, n, n, dtype=DT)
    for l in range(L):
        q = heads(F.linear(xs[l], p[pre + f"w_q.{l}.weight"]))
        k = heads(F.linear(xs[l], p[pre + f"w_k.{l}.weight"]))
        s = scale * (q @ k.transpose(-1, -2))          # [B, H, n_l, n_l]
        fine_to_coarse = torch.arange(n) // (2 ** l)   # fine index i -> coarse index i // 2^l
        a = alpha[:, l].reshape(1, H, 1, 1)
        if cfg["fusion"] == "scores":
            scores = scores + a * s[:, :, fine_to_coarse][:, :, :, fine_to_coarse]
        else:
            coarse_mask = m[:, :: 2 ** l]              # key t of level l sits at fine 2^l t
            prob = torch.softmax(s.masked_fill(coarse_mask[:, None, None, :] == 0, -math.inf), dim=-1)
            v = heads(F.linear(xs[l], p[pre + "w_v.weight"]))
            out = out + a * (prob @ v)[:, :, fine_to_coarse]
    if cfg["fusion"] == "scores":
        prob = torch.softmax(scores.masked_fill(m[:, None, None, :] == 0, -math.inf), dim=-1)
        out = prob @ heads(F.linear(xs[0], p[pre + "w_v.weight"]))
    return F.linear(out.transpose(1, 2).reshape(B, n, d), p[pre + "w_o.weight"])


def forward(p, cfg, tokens, mask):
    """Logits [B, C] for int64 tokens [B, T] and mask [B, T] (1 = real)."""
    eps = cfg["layer_norm_eps"]
    d = cfg["d_model"]
    x = p["embedding.weight"][tokens]
    m = mask.to(DT)
    B = x.shape[0]
    if cfg["pooling"] == "cls":
        x = torch.cat([p["cls"].expand(B, 1, d), x], dim=1)
        m = torch.cat([torch.ones(B, 1, dtype=DT), m], dim=1)
    n = x.shape[1]
    x = x + p["pos_embedding.weight"][:n]
    for i in range(cfg["n_layers"]):
        b = f"blocks.{i}."
        h = F.layer_norm(x, (d,), p[b + "ln1.weight"], p[b + "ln1.bias"], eps)
        x = x + attention(p, b + "attn.", cfg, h, m)
        h = F.layer_norm(x, (d,), p[b + "ln2.weight"], p[b + "ln2.bias"], eps)
        h = F.gelu(F.linear(h, p[b + "mlp.fc1.weight"], p[b + "mlp.fc1.bias"]))  # erf form
        x = x + F.linear(h, p[b + "mlp.fc2.weight"], p[b + "mlp.fc2.bias"])
    x = F.layer_norm(x, (d,), p["ln_f.weight"], p["ln_f.bias"], eps)
    if cfg["pooling"] == "cls":
        pooled = x[:, 0]
    else:
        pooled = (x * m.unsqueeze(-1)).sum(dim=1) / m.sum(dim=1, keepdim=True).clamp(min=1.0)
    return F.linear(pooled, p["head.weight"], p["head.bias"])


def decays(name, shape):
    return len(shape) >= 2 and "level_logits" not in name and "downsample." not in name


# ---- files --------------------------------------------------------------------------------

def write_safetensors(path, named, metadata):
    """The safetensors format: u64 little-endian header size, the JSON header padded with
    spaces to a multiple of 8, then every tensor's float64 data, little-endian, row-major."""
    header = {"__metadata__": metadata}
    blobs, offset = [], 0
    for name, t in named:
        data = t.detach().contiguous().numpy().astype("<f8").tobytes()
        header[name] = {"dtype": "F64", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def flat(t, digits=None):
    """Flat list of floats: exact (repr round-trips), or each value rounded at the
    `digits`-th significant digit of the tensor's largest magnitude (an absolute rounding
    of at most 0.5e-(digits - 1) * max |t|)."""
    values = [float(v) for v in t.detach().reshape(-1).tolist()]
    largest = max((abs(v) for v in values), default=0.0)
    if digits is None or largest == 0.0:
        return values
    top = math.floor(math.log10(largest))
    out = []
    for v in values:
        keep = 1 if v == 0.0 else max(1, digits + math.floor(math.log10(abs(v))) - top)
        out.append(float(f"{v:.{keep}g}"))
    return out


def make_batch(cfg, gen):
    tokens = torch.zeros(len(LENGTHS), T, dtype=torch.int64)
    mask = torch.zeros(len(LENGTHS), T, dtype=torch.int64)
    for b, n in enumerate(LENGTHS):
        tokens[b, :n] = torch.randint(1, cfg["vocab_size"], (n,), generator=gen)
        mask[b, :n] = 1
    return tokens, mask, torch.tensor(LABELS, dtype=torch.int64)


def golden(name, settings, gen, batch):
    cfg = dict(COMMON, **settings)
    shapes = parameter_shapes(cfg)
    init = [(n, random_parameter(n, s, gen)) for n, s in shapes]
    tokens, mask, labels = batch

    # logits, loss and gradients at the initial weights
    p = {n: t.clone().requires_grad_(True) for n, t in init}
    logits = forward(p, cfg, tokens, mask)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    for n, _ in shapes:
        assert p[n].grad is not None, f"{name}: no gradient for {n}"
    grads = {n: {"shape": list(p[n].shape), "values": flat(p[n].grad, GRAD_DIGITS)} for n, _ in shapes}

    # 5 AdamW steps on the same batch, from the same initial weights
    q = {n: t.clone().requires_grad_(True) for n, t in init}
    groups = [{"params": [q[n] for n, s in shapes if decays(n, s)], "weight_decay": ADAMW["weight_decay"]},
              {"params": [q[n] for n, s in shapes if not decays(n, s)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=ADAMW["lr"], betas=(ADAMW["beta1"], ADAMW["beta2"]), eps=ADAMW["eps"],
                            amsgrad=False, foreach=False)
    losses = []
    for _ in range(ADAMW["steps"]):
        opt.zero_grad(set_to_none=True)
        step_loss = F.cross_entropy(forward(q, cfg, tokens, mask), labels)
        losses.append(step_loss.item())
        step_loss.backward()
        opt.step()
    with torch.no_grad():
        loss_after = F.cross_entropy(forward(q, cfg, tokens, mask), labels).item()
    assert losses[0] == loss.item()

    doc = {
        "format": FORMAT,
        "version": VERSION,
        "generator": GENERATOR,
        "torch_version": torch.__version__,
        "seed": SEED,
        "model": name,
        "weights": name + ".safetensors",
        "config": cfg,
        "batch": {"tokens": tokens.tolist(), "mask": mask.tolist(), "labels": labels.tolist()},
        "logits": {"shape": list(logits.shape), "values": flat(logits)},
        "loss": loss.item(),
        "gradients": grads,
        "adamw": dict(ADAMW, decay_rule="rank >= 2 and name holds neither 'level_logits' nor 'downsample.'",
                      decayed=[n for n, s in shapes if decays(n, s)], losses=losses, loss_after=loss_after),
    }
    return init, doc


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default=os.path.join(here, "..", "tests", "data", "golden"))
    args = parser.parse_args()
    os.makedirs(args.output, exist_ok=True)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(SEED)
    batch = make_batch(COMMON, gen)
    total = 0
    for name, settings in MODELS.items():
        init, doc = golden(name, settings, gen, batch)
        st = os.path.join(args.output, name + ".safetensors")
        js = os.path.join(args.output, name + ".json")
        write_safetensors(st, init, {"format": FORMAT, "generator": GENERATOR, "model": name})
        with open(js, "w") as f:
            json.dump(doc, f, separators=(",", ":"))
            f.write("\n")
        size = os.path.getsize(st) + os.path.getsize(js)
        total += size
        print(f"{name}: loss {doc['loss']!r}, adamw losses {doc['adamw']['losses']}, {size} bytes")
    print(f"total {total} bytes in {os.path.normpath(args.output)}")


if __name__ == "__main__":
    main()
