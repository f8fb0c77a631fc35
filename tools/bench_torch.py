#!/usr/bin/env python3
"""The hkt classifier written in PyTorch, and the time and memory of one training step.

What a PyTorch user would write for the same model (models/classifier.h and
docs/attention.md):
- standard attention (MHA, levels = 1) through torch.nn.functional.scaled_dot_product_attention;
- HKT attention ("scores" fusion), causal strided depthwise conv1d downsampling, then
  one of three formulations (--hkt-formulation):
  concat (the default): HKT's fused score is one ordinary
    attention whose query/key rows are the levels' rows repeated and concatenated,
      s(i, j) = scale [a0 Q0[i] | a1 Q1[i>>1] | ...] . [K0[j] | K1[j>>1] | ...],
    so it is one scaled_dot_product_attention call with query/key width L x d_head
    (alpha folded into the query) and the key mask (padding, causal) passed to SDPA;
  concat-padv: the same with V zero-padded to width L x d_head and the output cut back
    to d_head. PyTorch 2.15's CPU SDPA runs its flash kernel only when the value width
    equals the query/key width (with V of width d_head it materialises the T x T
    scores), so padding V trades 2 (L - 1) d_head extra zero features for that kernel;
  composite: per-level Q K^T, the lift by repeat_interleave, the convex level weights,
    one masked softmax and P V (every level's T x T scores held at once).
  Each is checked against hkt's logits, on an unpadded and a padded batch.

It reads a directory written by `hkt bench step --export DIR`:
  DIR/config.json        the resolved hkt config (model, train, data.max_len)
  DIR/model.safetensors  hkt's initial parameters (hkt's names, PyTorch layouts)
  DIR/batch.safetensors  the timed batch (tokens or features, mask, labels), a padded
                         two-example check batch, and hkt's evaluation logits of both
loads the parameters, and refuses (exit status 3) unless its evaluation-mode logits
match hkt's on both batches within --tolerance (max |difference| over max(1, max |logit|)),
or when the config asks for an option written only in hkt (fusion "outputs", the
"dense" downsampler). A directory it cannot read (missing or damaged files, parameters
whose names or shapes differ from the config's model) is exit status 2.
Then it times forward + cross entropy + backward + gradient clipping + AdamW step on the
timed batch with the config's hyperparameters and dropout, like `hkt bench step`.

Memory: peak RSS while stepping (VmHWM after a reset through /proc/self/clear_refs) and
what the steps added to the RSS they started from, as `hkt bench step` reports them;
with --device cuda also the device's peak tensor memory (torch.cuda.max_memory_allocated).

--device cuda runs the model on the GPU (the logits are still checked in float32 there);
--autocast bf16 then runs each step's forward and loss under torch.autocast with
bfloat16, what a PyTorch user training on tensor cores would write (the counterpart of
hkt's model.attention_precision = "bf16", which rounds only the attention's operands).

Needs torch >= 2.1 (scaled_dot_product_attention with scale=) and safetensors, e.g.
  python3 -m venv .venv-torch && .venv-torch/bin/pip install torch safetensors
Usage:
  python3 tools/bench_torch.py --export DIR [--hkt-formulation concat|concat-padv|composite] [--threads N] [--repeats 10] [--warmup 2]
                               [--device cpu|cuda] [--autocast none|bf16] [--json]
"""
import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

try:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
except ImportError:  # pragma: no cover - a clear message instead of a traceback
    sys.exit("bench_torch.py: the safetensors package is missing (pip install safetensors)")


class Refused(Exception):
    """A config this script does not implement, or logits that differ from hkt's (exit 3)."""


class Unreadable(Exception):
    """An export directory that cannot be read as one model and its batches (exit 2)."""


# ---- the model (names and layouts as hkt's, so load_state_dict takes hkt's file) -----------

class CausalDownsample(nn.Module):
    """X^(l)[t] = b + sum_r w[:, r] * X^(l-1)[2t - r] (docs/hkt-attention.md section 1), depthwise.

    weight [d, k] (tap r multiplies the input r steps back), bias [d].
    [B, T, d] -> [B, ceil(T / 2), d]."""

    def __init__(self, d, k):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d, k))
        self.bias = nn.Parameter(torch.empty(d))

    def forward(self, x):
        """x [B, T, d] -> [B, ceil(T / 2), d]."""
        d, k = self.weight.shape
        # conv1d correlates: weight'[c, 0, j] meets input position 2t + j of the input padded
        # by k - 1 zeros in front, i.e. fine position 2t - (k - 1 - j): so weight' = flip(weight).
        w = self.weight.flip(1).unsqueeze(1)  # [d, 1, k]
        y = F.conv1d(F.pad(x.transpose(1, 2), (k - 1, 0)), w, self.bias, stride=2, groups=d)
        return y.transpose(1, 2)


class HktAttention(nn.Module):
    """Hierarchical attention, "scores" fusion (docs/hkt-attention.md sections 1-3); levels = 1 is MHA.

    x [B, T, d], key_mask bool [B, T] (True = real token, padding on the right) or None.
    Returns [B, T, d]."""

    def __init__(self, d, n_heads, hc, levels, formulation):
        super().__init__()
        if hc["fusion"] != "scores":
            raise Refused("model.hkt.fusion '%s': only \"scores\" is written here" % hc["fusion"])
        if levels > 1 and hc["downsampler"] != "depthwise":
            raise Refused("model.hkt.downsampler '%s': only \"depthwise\" is written here" % hc["downsampler"])
        self.d, self.h, self.levels = d, n_heads, levels
        self.formulation = formulation
        self.causal = bool(hc["causal"])
        self.scale = hc["scale"] if hc.get("scale", 0) else 1.0 / math.sqrt(d // n_heads)
        self.w_q = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(levels))
        self.w_k = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(levels))
        self.w_v = nn.Linear(d, d, bias=False)
        self.w_o = nn.Linear(d, d, bias=False)
        self.weights_mode = hc["level_weights"] if levels > 1 else "single"
        if levels > 1:
            self.downsample = nn.ModuleDict({str(l): CausalDownsample(d, hc["kernel_size"]) for l in range(1, levels)})
            if self.weights_mode == "fixed":
                self.register_buffer("fixed_alpha", torch.tensor(hc["fixed_weights"]).repeat(n_heads, 1), persistent=False)
            else:
                shape = (n_heads, levels) if self.weights_mode == "per_head" else (levels,)
                self.level_logits = nn.Parameter(torch.zeros(shape))

    def level_weights(self):
        """alpha [H, L]: softmax of the logits (per head or per layer), or the fixed values."""
        if self.weights_mode == "fixed":
            return self.fixed_alpha
        if self.weights_mode == "per_head":
            return torch.softmax(self.level_logits, -1)
        return torch.softmax(self.level_logits, -1).expand(self.h, self.levels)

    def heads(self, x):
        """[B, T, d] -> [B, H, T, d_h]."""
        B, T, _ = x.shape
        return x.view(B, T, self.h, self.d // self.h).transpose(1, 2)

    def sdpa_mask(self, key_mask, T):
        """SDPA's boolean attn_mask (True = may attend): the key mask [B, 1, 1, T] and/or the causal
        triangle [T, T]; None when neither applies, so that SDPA may pick its fastest kernel."""
        mask = None if key_mask is None else key_mask[:, None, None, :]
        if self.causal:
            tri = torch.ones(T, T, dtype=torch.bool).tril()
            mask = tri if mask is None else mask & tri
        return mask

    def forward(self, x, key_mask):
        """x [B, T, d], key_mask bool [B, T] or None -> [B, T, d]."""
        B, T, d = x.shape
        x0 = x if key_mask is None else x * key_mask.unsqueeze(-1).to(x.dtype)  # padded rows zeroed
        v = self.heads(self.w_v(x0))
        if self.levels == 1:
            # Standard attention, as a PyTorch user writes it. The boolean mask is True where
            # attention is allowed; without padding (the timed batch) no mask is passed, so
            # PyTorch can pick its fastest kernel.
            o = F.scaled_dot_product_attention(self.heads(self.w_q[0](x0)), self.heads(self.w_k[0](x0)), v,
                                               attn_mask=self.sdpa_mask(key_mask, T), scale=self.scale)
            return self.w_o(o.transpose(1, 2).reshape(B, T, d))
        xs = [x0]
        for l in range(1, self.levels):
            xs.append(self.downsample[str(l)](xs[-1]))
        alpha = self.level_weights()  # [H, L]
        qs = [self.heads(self.w_q[l](xl)) for l, xl in enumerate(xs)]  # [B, H, T_l, d_h]
        ks = [self.heads(self.w_k[l](xl)) for l, xl in enumerate(xs)]
        if self.formulation in ("concat", "concat-padv"):
            # Row i of level l is row i >> l of Q_l, K_l: repeat each coarse row 2^l times, cut to T,
            # fold alpha_l into the queries and concatenate along the feature axis.
            qc = torch.cat([alpha[:, l].view(1, self.h, 1, 1) * q.repeat_interleave(2 ** l, dim=2)[:, :, :T]
                            for l, q in enumerate(qs)], -1)  # [B, H, T, L d_h]
            kc = torch.cat([k.repeat_interleave(2 ** l, dim=2)[:, :, :T] for l, k in enumerate(ks)], -1)
            if self.formulation == "concat":
                o = F.scaled_dot_product_attention(qc, kc, v, attn_mask=self.sdpa_mask(key_mask, T), scale=self.scale)
            else:  # V padded with zero features to qc's width; the first d_h output features are O
                vp = F.pad(v, (0, qc.shape[-1] - v.shape[-1]))
                o = F.scaled_dot_product_attention(qc, kc, vp, attn_mask=self.sdpa_mask(key_mask, T),
                                                   scale=self.scale)[..., : v.shape[-1]]
        else:
            s = None
            for l, (q, k) in enumerate(zip(qs, ks)):
                sl = q @ k.transpose(-2, -1) * self.scale
                if l > 0:  # Lift_l: S[i, j] = S_l[floor(i / 2^l), floor(j / 2^l)]
                    r = 2 ** l
                    sl = sl.repeat_interleave(r, -2).repeat_interleave(r, -1)[..., :T, :T]
                term = alpha[:, l].view(1, self.h, 1, 1) * sl
                s = term if s is None else s + term
            if key_mask is not None:
                s = s.masked_fill(~key_mask[:, None, None, :], float("-inf"))
            if self.causal:
                s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
            o = torch.softmax(s, -1) @ v
        return self.w_o(o.transpose(1, 2).reshape(B, T, d))


class Mlp(nn.Module):
    """fc2(GELU(fc1(x))), GELU in its erf form: [..., d] -> [..., d]."""

    def __init__(self, d, d_ff):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, d_ff), nn.Linear(d_ff, d)

    def forward(self, x):
        """[..., d] -> [..., d]."""
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """x + Dropout(Attention(LN(x))), then x + Dropout(MLP(LN(x))) (models/classifier.h)."""

    def __init__(self, mc, levels, formulation):
        super().__init__()
        d, eps = mc["d_model"], mc["layer_norm_eps"]
        self.ln1 = nn.LayerNorm(d, eps=eps)
        self.attn = HktAttention(d, mc["n_heads"], mc["hkt"], levels, formulation)
        self.ln2 = nn.LayerNorm(d, eps=eps)
        self.mlp = Mlp(d, mc["d_ff"])
        self.drop = nn.Dropout(mc["dropout"])

    def forward(self, x, key_mask):
        """x [B, T, d], key_mask bool [B, T] or None -> [B, T, d]."""
        x = x + self.drop(self.attn(self.ln1(x), key_mask))
        return x + self.drop(self.mlp(self.ln2(x)))


def sinusoidal_positions(n, d):
    """pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(...) (Vaswani et al. 2017), float64."""
    p = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(0, d, 2, dtype=torch.float64)[None, :]
    angle = p / torch.pow(torch.tensor(10000.0, dtype=torch.float64), i / d)
    pe = torch.zeros(n, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d // 2])
    return pe


class Classifier(nn.Module):
    """Input map, positions, pre-LN blocks, final LN, pooling, linear head (models/classifier.h).

    tokens int64 [B, T] (or features [B, T, F]), mask int64 [B, T] -> logits [B, classes]."""

    def __init__(self, mc, vocab_size, num_features, num_classes, max_len, formulation="concat"):
        super().__init__()
        d = mc["d_model"]
        levels = 1 if mc["attention"] == "mha" else mc["hkt"]["levels"]
        self.pooling = mc["pooling"]
        if vocab_size > 0:
            self.embedding = nn.Embedding(vocab_size, d)
        else:
            self.input_proj = nn.Linear(num_features, d)
        n_pos = max_len + (1 if self.pooling == "cls" else 0)
        if mc["positions"] == "learned":
            self.pos_embedding = nn.Embedding(n_pos, d)
        else:
            # float64 here; build() casts the whole model, buffers included, to the parameters' dtype
            self.register_buffer("positions", sinusoidal_positions(n_pos, d), persistent=False)
        if self.pooling == "cls":
            self.cls = nn.Parameter(torch.zeros(d))
        self.blocks = nn.ModuleList(Block(mc, levels, formulation) for _ in range(mc["n_layers"]))
        self.ln_f = nn.LayerNorm(d, eps=mc["layer_norm_eps"])
        self.head = nn.Linear(d, num_classes)

    def forward(self, tokens, features, mask):
        """tokens int64 [B, T] or None, features [B, T, F] or None, mask int64 [B, T] -> logits [B, classes]."""
        x = self.embedding(tokens) if tokens is not None else self.input_proj(features)
        key_mask = mask != 0
        if self.pooling == "cls":
            x = torch.cat([self.cls.expand(x.shape[0], 1, -1), x], 1)
            key_mask = torch.cat([torch.ones_like(key_mask[:, :1]), key_mask], 1)
        T = x.shape[1]
        pos = self.pos_embedding.weight[:T] if hasattr(self, "pos_embedding") else self.positions[:T]
        x = x + pos
        attn_mask = None if bool(key_mask.all()) else key_mask
        for block in self.blocks:
            x = block(x, attn_mask)
        x = self.ln_f(x)
        if self.pooling == "cls":
            return self.head(x[:, 0])
        m = key_mask.to(x.dtype).unsqueeze(-1)
        if self.pooling == "mean":
            pooled = (x * m).sum(1) / m.sum(1).clamp(min=1)
        else:  # "last": the last real step
            last = (key_mask.sum(1) - 1).clamp(min=0)
            pooled = x[torch.arange(x.shape[0]), last]
        return self.head(pooled)


# ---- the task's input shape, as `hkt bench step` (tools/cmd_bench_step.cpp task_shape) ----

def task_shape(data):
    """(vocab_size, num_features, num_classes) of data.task."""
    task = data["task"]
    if task == "listops":
        return 16, 0, 10
    if task == "imdb":
        return 257, 0, 2
    if task == "fashion-mnist":
        return 256, 0, 10
    if task == "cifar10":
        return (0, 3, 10) if data["cifar10"]["mode"] == "rgb" else (256, 0, 10)
    raise Refused("data.task '%s' is not one of listops, imdb, fashion-mnist, cifar10" % task)


def proc_status_mib(name):
    """One 'Name: value kB' line of /proc/self/status, in MiB (0 where unreadable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def reset_peak_rss():
    """VmHWM := VmRSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def build(export_dir, formulation):
    """The model with hkt's parameters loaded, the batches, and the config.

    Raises Unreadable for a missing or damaged file, a config without the keys used here,
    or parameters whose names or shapes differ from the model the config describes; and
    Refused for an option this script does not implement."""
    try:
        with open(os.path.join(export_dir, "config.json")) as f:
            config = json.load(f)
        data, mc, tc = config["data"], config["model"], config["train"]
        for key in ("weight_decay", "lr", "beta1", "beta2", "eps", "label_smoothing", "clip_norm", "batch_size"):
            if key not in tc:  # fail here, naming the key, rather than in the timed loop
                raise KeyError("train." + key)
        vocab, features, classes = task_shape(data)
        model = Classifier(mc, vocab, features, classes, data["max_len"], formulation)
        state = load_file(os.path.join(export_dir, "model.safetensors"))
        batch = load_file(os.path.join(export_dir, "batch.safetensors"))
    except KeyError as e:
        raise Unreadable("%s/config.json lacks the key %s" % (export_dir, e))
    except (OSError, ValueError, TypeError, SafetensorError) as e:
        raise Unreadable("%s: %s" % (export_dir, e))
    expected = {n: tuple(t.shape) for n, t in model.state_dict().items()}
    found = {n: tuple(t.shape) for n, t in state.items()}
    problems = ["'%s' missing" % n for n in expected if n not in found]
    problems += ["'%s' unexpected" % n for n in found if n not in expected]
    problems += ["'%s' has shape %s, the config's model %s" % (n, list(found[n]), list(expected[n]))
                 for n in expected if n in found and found[n] != expected[n]]
    if problems:
        more = " (and %d more)" % (len(problems) - 5) if len(problems) > 5 else ""
        raise Unreadable("model.safetensors does not fit the model of config.json: " + "; ".join(problems[:5]) + more)
    model.to(next(iter(state.values())).dtype)
    model.load_state_dict(state)
    return model, batch, config


def check_logits(model, batch, tolerance):
    """Evaluation-mode logits against hkt's, on the timed batch and the padded check batch."""
    model.eval()
    worst = 0.0
    for name in ("mask", "labels", "logits", "check_mask", "check_logits"):
        if name not in batch:
            raise Unreadable("batch.safetensors lacks the tensor '%s'" % name)
    with torch.no_grad():
        for prefix in ("", "check_"):
            out = model(batch.get(prefix + "tokens"), batch.get(prefix + "features"), batch[prefix + "mask"]).double()
            ref = batch[prefix + "logits"]
            err = (out - ref).abs().max().item() / max(1.0, ref.abs().max().item())
            worst = max(worst, err)
            if not err <= tolerance:  # also refuses NaN
                raise Refused("logits differ from hkt's on the %s batch: scaled max error %.3g > tolerance %.3g"
                              % ("timed" if prefix == "" else "padded check", err, tolerance))
    return worst


def main():
    """Checks the logits, then times --repeats steps; prints a line (or JSON). Exit 0, 2 or 3."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--export", required=True, help="directory written by `hkt bench step --export DIR`")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: PyTorch's default)")
    ap.add_argument("--repeats", type=int, default=10, help="timed steps (the median is reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="largest scaled logit difference accepted")
    ap.add_argument("--hkt-formulation", choices=("concat", "concat-padv", "composite"), default="concat",
                    help="HKT attention as one SDPA call over concatenated levels (default), the same with V "
                         "zero-padded to their width, or composed per level")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model runs")
    ap.add_argument("--autocast", choices=("none", "bf16"), default="none",
                    help="bf16: forward and loss under torch.autocast(bfloat16) (with --device cuda)")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    a = ap.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        print("bench_torch.py: --device cuda, but PyTorch sees no CUDA device", file=sys.stderr)
        return 2
    if a.autocast == "bf16" and a.device != "cuda":
        ap.error("--autocast bf16 needs --device cuda")
    if a.repeats < 1 or a.warmup < 0 or a.threads < 0:
        ap.error("--repeats must be >= 1, --warmup and --threads >= 0")
    if not (a.tolerance >= 0 and math.isfinite(a.tolerance)):
        ap.error("--tolerance must be a finite number >= 0, got %s" % a.tolerance)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    try:
        model, batch, config = build(a.export, a.hkt_formulation)
        if a.device == "cuda":
            model.cuda()
            batch = {name: t.cuda() for name, t in batch.items()}
        max_err = check_logits(model, batch, a.tolerance)
    except Unreadable as e:
        print("bench_torch.py: cannot read the export: %s" % e, file=sys.stderr)
        return 2
    except Refused as e:
        print("bench_torch.py: refused: %s" % e, file=sys.stderr)
        return 3

    tc = config["train"]
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "level_logits" not in n and "downsample." not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "level_logits" not in n and "downsample." not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": tc["weight_decay"]}, {"params": rest, "weight_decay": 0.0}],
                                  lr=tc["lr"], betas=(tc["beta1"], tc["beta2"]), eps=tc["eps"])
    tokens, features, mask, labels = batch.get("tokens"), batch.get("features"), batch["mask"], batch["labels"]
    params = list(model.parameters())

    gpu = a.device == "cuda"

    def step():
        """One training step, as `hkt bench step` times it; returns the loss (reading it
        waits for the device)."""
        with torch.autocast("cuda", dtype=torch.bfloat16) if a.autocast == "bf16" else contextlib.nullcontext():
            logits = model(tokens, features, mask)
            loss = F.cross_entropy(logits, labels, label_smoothing=tc["label_smoothing"])
        loss.backward()
        if tc["clip_norm"] > 0:
            torch.nn.utils.clip_grad_norm_(params, tc["clip_norm"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    model.train()
    torch.manual_seed(7)
    for _ in range(a.warmup):
        step()
    rss_before = proc_status_mib("VmRSS")
    reset_peak_rss()
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    ms = []
    loss = 0.0
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        loss = step()
        if gpu:
            torch.cuda.synchronize()  # the optimizer's step, queued after the loss was read
        ms.append((time.perf_counter() - t0) * 1e3)
    peak = proc_status_mib("VmHWM")
    mc = config["model"]
    levels = 1 if mc["attention"] == "mha" else mc["hkt"]["levels"]
    row = {"framework": "pytorch", "torch_version": torch.__version__, "attention": mc["attention"],
           "formulation": "sdpa" if levels == 1 else a.hkt_formulation,
           "levels": levels, "T": config["data"]["max_len"],
           "batch_size": tc["batch_size"], "threads": torch.get_num_threads(),
           "parameters": sum(p.numel() for p in params), "repeats": a.repeats, "median_ms": statistics.median(ms),
           "min_ms": min(ms), "peak_rss_mib": peak, "step_rss_mib": peak - rss_before, "final_loss": loss,
           "logit_error": max_err, "device": a.device, "autocast": a.autocast}
    if gpu:
        row["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    if a.json:
        print(json.dumps(row))
    else:
        print("pytorch %s attention=%s (%s) T=%d B=%d threads=%d: median %.1f ms/step (min %.1f, %d steps), peak RSS %.1f MiB "
              "(%+.1f while stepping); logits match hkt's to %.2g"
              % (torch.__version__, row["attention"], row["formulation"], row["T"], row["batch_size"], row["threads"], row["median_ms"],
                 row["min_ms"], a.repeats, peak, peak - rss_before, max_err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
