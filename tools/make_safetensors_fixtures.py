#!/usr/bin/env python3
"""make_safetensors_fixtures.py: safetensors fixtures written and checked by the reference
implementation (the `safetensors` package of Hugging Face, through safetensors.numpy, so
no PyTorch is needed).

  make_safetensors_fixtures.py write [--out DIR]
      Writes into DIR (default tests/data/safetensors):
        reference.safetensors  five tensors and metadata with the values REFERENCE below
                               (test_safetensors.cpp expects exactly these values);
        half.safetensors       one float16 tensor 'h' [2] (a dtype hkt refuses).
  make_safetensors_fixtures.py check FILE
      Reads FILE with the reference package and checks it holds exactly the tensors and
      metadata of HKT_WRITTEN below, which test_safetensors.cpp saves with
      hkt::safetensors::save into tests/data/safetensors/written_by_hkt.safetensors.
      Prints "OK ..." or the first difference and exits with status 1.

Needs: pip install safetensors numpy. The C++ tests never run this script; they read the
committed files.
"""
import argparse
import os
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

# Values chosen to catch byte-level mistakes: negative zero, a float32 subnormal (1e-40),
# a float64 subnormal (1e-310), 0.1 (not exact in binary), the int64 extremes and
# 2^53 + 1 (not representable as a double), a rank-0 tensor and a zero-size tensor.
REFERENCE = {
    "weight": np.array([[0.5, -1.25, 3.0], [0.1, -0.0, 1e-40]], dtype=np.float32),
    "bias": np.array([0.1, -2.0, 1e-310], dtype=np.float64),
    "ids": np.array([[-(2**63), 2**63 - 1], [2**53 + 1, -7]], dtype=np.int64),
    "scale": np.array(3.25, dtype=np.float64),
    "empty": np.zeros((0, 3), dtype=np.float32),
}
REFERENCE_METADATA = {"format": "np", "note": "written by the safetensors package"}

# What test_safetensors.cpp ("safetensors: our writer matches the committed fixture")
# saves, in this order.
HKT_WRITTEN = {
    "z.last": np.array([[1.5, -0.0], [np.inf, 1e-40]], dtype=np.float32),
    "a.first": np.array([2**62 + 3, -1, 0], dtype=np.int64),
    "mid": np.array(-2.75, dtype=np.float64),
    "none": np.zeros((2, 0), dtype=np.float64),
}
HKT_WRITTEN_METADATA = {"step": "7", "model": "tiny"}


def same_bits(a, b):
    """Equal dtype, shape and bytes (so -0.0 differs from 0.0, as it should here)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def write(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "reference.safetensors")
    save_file(REFERENCE, path, metadata=REFERENCE_METADATA)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    path = os.path.join(out_dir, "half.safetensors")
    save_file({"h": np.array([1.0, -2.0], dtype=np.float16)}, path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def check(path):
    loaded = load_file(path)
    with safe_open(path, framework="numpy") as f:
        metadata = f.metadata() or {}
    if set(loaded) != set(HKT_WRITTEN):
        sys.exit(f"FAIL {path}: tensors {sorted(loaded)}, expected {sorted(HKT_WRITTEN)}")
    for name, expected in HKT_WRITTEN.items():
        if not same_bits(loaded[name], expected):
            sys.exit(f"FAIL {path}: tensor {name!r}: got {loaded[name]!r} ({loaded[name].dtype}), expected {expected!r}")
    if metadata != HKT_WRITTEN_METADATA:
        sys.exit(f"FAIL {path}: metadata {metadata}, expected {HKT_WRITTEN_METADATA}")
    print(f"OK {path}: {len(loaded)} tensors and the metadata read by safetensors with the expected values")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="write the reference fixtures")
    w.add_argument("--out", default=os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "tests", "data", "safetensors")))
    c = sub.add_parser("check", help="check a file written by hkt")
    c.add_argument("file")
    args = parser.parse_args()
    if args.command == "write":
        write(args.out)
    else:
        check(args.file)


if __name__ == "__main__":
    main()
