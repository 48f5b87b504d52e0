"""Karpathy's micrograd lecture ("The spelled-out intro to neural networks and
backpropagation"), step by step with symgrad: every number of the lecture, plus the symbolic
expression behind each node and the compiled training of the final network.

Run: python examples/lecture.py
"""

from __future__ import annotations

import random

import numpy as np
import sympy as sp

import symgrad
from symgrad import Value, numerical
from symgrad.nn import MLP, SGD, Trainer


def section(title: str) -> None:
    print(f"\n=== {title} ===")


def derivative_of_a_function() -> None:
    section("1. the derivative of f(x) = 3x^2 - 4x + 5")

    def f(x):
        return 3 * x**2 - 4 * x + 5

    h = 0.0001
    x = 3.0
    print(f"f(3) = {f(x)}")
    print(
        f"(f(x + h) - f(x)) / h with h = {h}: {(f(x + h) - f(x)) / h:.6f}  (the lecture's 14.0003)"
    )
    print(f"central difference (symgrad.numerical): {float(numerical.derivative(f, x)):.10f}")
    xs = sp.Symbol("x")
    df = symgrad.grad(3 * xs**2 - 4 * xs + 5, xs)
    print(f"symbolic: f'(x) = {df}, f'(3) = {df.subs(xs, 3)}, zero at x = {sp.solve(df, xs)[0]}")


def the_L_example() -> None:
    section("2. L = (a*b + c) * f")
    a = Value(2.0, label="a")
    b = Value(-3.0, label="b")
    c = Value(10.0, label="c")
    e = a * b
    e.label = "e"
    d = e + c
    d.label = "d"
    f = Value(-2.0, label="f")
    L = d * f
    L.label = "L"
    L.backward()
    print(f"L = {L.data}   (expression: L = {L.expr})")
    for v in (a, b, c, d, e, f):
        print(f"  dL/d{v.label} = {v.grad}")
    syms = sp.symbols("a b c f")
    print("symbolically:", dict(zip(map(str, syms), symgrad.grad(L.expr, list(syms)), strict=True)))


def the_neuron() -> None:
    section("3. a neuron: o = tanh(x1*w1 + x2*w2 + b)")
    for via_exp in (False, True):
        x1 = Value(2.0, label="x1")
        x2 = Value(0.0, label="x2")
        w1 = Value(-3.0, label="w1")
        w2 = Value(1.0, label="w2")
        b = Value(6.8813735870195432, label="b")
        n = x1 * w1 + x2 * w2 + b
        n.label = "n"
        if via_exp:
            e = (2 * n).exp()
            o = (e - 1) / (e + 1)
        else:
            o = n.tanh()
        o.backward()
        how = "tanh written through exp" if via_exp else "tanh"
        print(f"{how}: o = {o.data:.4f}")
        grads = ", ".join(f"{v.label} {v.grad:.4f}" for v in (x1, w1, x2, w2, b))
        print(f"  grads: {grads}")
    print(f"  o as an expression: {o.expr}")


def used_twice() -> None:
    section("4. a variable used more than once: gradients accumulate")
    a = Value(3.0, label="a")
    b = a + a
    b.backward()
    print(f"b = a + a: db/da = {a.grad}")
    a = Value(-2.0, label="a")
    b = Value(3.0, label="b")
    f = (a * b) * (a + b)
    f.backward()
    print(f"f = (a*b)*(a+b) at a=-2, b=3: df/da = {a.grad}, df/db = {b.grad}")


def the_mlp() -> None:
    section("5. MLP(3, [4, 4, 1]): squared-error loss, learning rate 0.1")
    xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    ys = [1.0, -1.0, -1.0, 1.0]
    net = MLP(3, [4, 4, 1], variant="lecture", rng=random.Random(0))
    start = [p.data for p in net.parameters()]
    print(f"{net}: {len(net.parameters())} parameters")

    value_losses = []
    for _ in range(20):  # the lecture's loop, on Values
        ypred = [net(x) for x in xs]
        loss = sum((yout - ygt) ** 2 for ygt, yout in zip(ys, ypred, strict=True))
        net.zero_grad()
        loss.backward()
        for p in net.parameters():
            p.data += -0.1 * p.grad
        value_losses.append(loss.data)
    print("predictions after 20 steps:", [round(net(x).data, 3) for x in xs])

    for p, v in zip(net.parameters(), start, strict=True):  # back to the same start
        p.data = v
    trainer = Trainer(net, loss="sse", optimizer=SGD(lr=0.1))
    history = trainer.fit(np.array(xs), np.array(ys), steps=20)
    print(
        f"compiled once in {trainer.compile_seconds:.2f} s; per-sample loss: {trainer.loss_expr}"[
            :200
        ]
    )
    print("step  Value path           compiled path")
    for k in (0, 1, 2, 5, 10, 19):
        print(f"{k:4d}  {value_losses[k]:.15f}  {history.loss[k]:.15f}")
    diff = max(abs(a - b) for a, b in zip(value_losses, history.loss, strict=True))
    print(f"largest difference between the two paths: {diff:.1e}")


def main() -> None:
    derivative_of_a_function()
    the_L_example()
    the_neuron()
    used_twice()
    the_mlp()


if __name__ == "__main__":
    main()
