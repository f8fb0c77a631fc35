"""Helpers shared by the plotting scripts (plot_experiment.py, plot_theory.py): one
error convention (a message on stderr naming the script, exit status 2) and JSON reading
that reports the file."""
import json
import os
import sys


def fail(message):
    """Prints 'SCRIPT: error: message' to stderr and exits with status 2."""
    print(f"{os.path.basename(sys.argv[0])}: error: {message}", file=sys.stderr)
    sys.exit(2)


def read_json(path):
    """The parsed JSON document at path; fails naming the file when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{path}: {e}")
