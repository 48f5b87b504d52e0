"""The lecture and training-health examples run (in a subprocess, as a user would run them)
and print the lecture's published numbers and the expected diagnostics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, f"examples/{script}", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return proc.stdout


def test_lecture_example():
    out = run("lecture.py")
    assert "with h = 0.0001: 14.000300" in out
    assert "f'(x) = 6*x - 4, f'(3) = 14" in out
    for line in ["dL/da = 6.0", "dL/db = -4.0", "dL/dc = -2.0", "dL/dd = -2.0", "dL/df = 4.0"]:
        assert line in out
    grads = "grads: x1 -1.5000, w1 1.0000, x2 0.5000, w2 0.0000, b 0.5000"
    assert out.count(grads) == 2  # tanh, and tanh written through exp
    assert "b = a + a: db/da = 2.0" in out
    assert "df/da = -3.0, df/db = -8.0" in out
    diff = float(out.split("largest difference between the two paths:")[1].split()[0])
    assert diff < 1e-12


def test_training_health_example():
    out = run("training_health.py")
    sections = out.split("--- ")
    too_large, fine, saturated, xavier = sections[1:5]
    assert "lower the learning rate" in too_large
    # the run stops before a non-finite loss or update, keeping the last finite parameters
    assert "stopped: " in too_large and "kept the last finite parameters" in too_large
    assert "the model kept finite parameters: True" in too_large
    assert "training is healthy" in fine
    assert "layer 0: the gradient norm 0 is below" in saturated
    assert "training is healthy" in xavier
