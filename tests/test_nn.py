"""Tests of symgrad.nn: micrograd's initialisation and numbers, the compiled trainer against the
Value path and finite differences, optimisers against hand-written formulas, health warnings,
and atomic saving."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symgrad import Value, numerical
from symgrad.errors import (
    DomainError,
    FileAccessError,
    InputTypeError,
    OptionError,
    ParseError,
    ShapeError,
    SymgradWarning,
)
from symgrad.nn import (
    MLP,
    SGD,
    Adam,
    HealthMonitor,
    Layer,
    Neuron,
    Trainer,
    TrainingWarning,
    linear_schedule,
    load_parameters,
    save_parameters,
)

ROOT = Path(__file__).resolve().parents[1]

# micrograd's published demo losses (demo.ipynb)
DEMO_STEP0 = 0.8958441028683222
DEMO_STEP99 = 0.010978370135492717


# ------------------------------------------------------------------ modules
def test_mlp_initialisation_matches_micrograd_order():
    random.seed(1337)
    model = MLP(2, [16, 16, 1])
    # micrograd: layer by layer, neuron by neuron, nin weights from random.uniform(-1, 1), b = 0
    random.seed(1337)
    expected = []
    for nin, nout in [(2, 16), (16, 16), (16, 1)]:
        for _ in range(nout):
            expected += [random.uniform(-1, 1) for _ in range(nin)] + [0.0]
    assert [p.data for p in model.parameters()] == expected
    assert len(expected) == 337


def test_injectable_rng_and_lecture_variant():
    a = MLP(3, [4, 4, 1], rng=random.Random(7))
    b = MLP(3, [4, 4, 1], rng=random.Random(7))
    assert [p.data for p in a.parameters()] == [p.data for p in b.parameters()]
    lec = MLP(3, [4, 4, 1], variant="lecture", rng=random.Random(7))
    # the lecture draws a bias after each neuron's weights
    r = random.Random(7)
    expected = []
    for nin, nout in [(3, 4), (4, 4), (4, 1)]:
        for _ in range(nout):
            expected += [r.uniform(-1, 1) for _ in range(nin + 1)]
    assert [p.data for p in lec.parameters()] == expected
    out = lec([2.0, 3.0, -1.0])
    assert out._op == "tanh"  # tanh on the output too


def test_micrograd_forward_semantics():
    n = Neuron(2, nonlin=False, rng=random.Random(0))
    x = [1.5, -2.0]
    out = n(x)
    want = n.b.data + n.w[0].data * 1.5 + n.w[1].data * -2.0
    assert out.data == pytest.approx(want, rel=1e-15)
    layer = Layer(2, 3, rng=random.Random(0))
    assert len(layer(x)) == 3 and all(v.data >= 0 for v in layer(x))  # ReLU
    model = MLP(2, [3, 1], rng=random.Random(0))
    model.parameters()[0].grad = 5.0
    model.zero_grad()
    assert all(p.grad == 0 for p in model.parameters())


def test_init_schemes():
    rng = random.Random(3)
    xav = MLP(50, [30, 1], init="xavier", rng=rng)
    w = [p.data for p in xav.layers[0].parameters() if p.label.split(".")[-1].startswith("w")]
    bound = math.sqrt(6 / (50 + 30))
    assert max(map(abs, w)) <= bound and max(map(abs, w)) > 0.8 * bound
    he = MLP(200, [100, 1], init="he", rng=random.Random(4))
    w = np.array([p.data for p in he.layers[0].parameters() if ".w" in p.label])
    assert np.std(w) == pytest.approx(math.sqrt(2 / 200), rel=0.05)
    assert all(p.data == 0 for p in he.parameters() if p.label.endswith(".b"))


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        (("2", [3]), {}, InputTypeError),
        ((2, []), {}, InputTypeError),
        ((2, [0]), {}, InputTypeError),
        ((2, "16"), {}, InputTypeError),
        ((2, [3]), {"activation": "gelu"}, OptionError),
        ((2, [3]), {"init": "zeros"}, OptionError),
        ((2, [3]), {"variant": "pytorch"}, OptionError),
        ((2, [3]), {"rng": 42}, InputTypeError),
    ],
)
def test_bad_module_arguments(args, kwargs, error):
    with pytest.raises(error):
        MLP(*args, **kwargs)


def test_wrong_input_length():
    with pytest.raises(ShapeError, match="takes 2 inputs"):
        MLP(2, [3, 1], rng=random.Random(0))([1.0, 2.0, 3.0])
    with pytest.raises(InputTypeError):
        Neuron(2, rng=random.Random(0))("ab")


# ------------------------------------------------------------------ the compiled path vs Value
def _demo_data():
    sklearn = pytest.importorskip("sklearn.datasets")
    np.random.seed(1337)
    random.seed(1337)
    X, y = sklearn.make_moons(n_samples=100, noise=0.1)
    return X, y * 2 - 1


def _value_demo_loss(model, X, y):
    """micrograd's demo loss, written exactly as in demo.ipynb, on the Value path."""
    inputs = [list(map(Value, row)) for row in X.tolist()]
    scores = list(map(model, inputs))
    losses = [(1 + -yi * si).relu() for yi, si in zip(y.tolist(), scores, strict=True)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = 1e-4 * sum(p * p for p in model.parameters())
    return data_loss + reg_loss


def test_compiled_demo_reproduces_micrograd():
    # also: pytest turns warnings into errors, so the healthy demo run must not warn
    X, y = _demo_data()
    model = MLP(2, [16, 16, 1])
    trainer = Trainer(model, loss="hinge", l2=1e-4, optimizer=SGD(lr=lambda k: 1 - 0.9 * k / 100))
    history = trainer.fit(X, y, steps=100)
    assert history.loss[0] == pytest.approx(DEMO_STEP0, rel=1e-6)
    assert history.loss[99] == pytest.approx(DEMO_STEP99, rel=1e-6)
    assert history.accuracy[-1] == 1.0
    assert history.stopped is None


def test_compiled_gradient_equals_value_path():
    X, y = _demo_data()
    model = MLP(2, [16, 16, 1])
    trainer = Trainer(model, loss="hinge", l2=1e-4)
    for _ in range(2):  # at the initial parameters and after one SGD step
        loss_v = _value_demo_loss(model, X, y)
        model.zero_grad()
        loss_v.backward()
        grads_v = np.array([p.grad for p in model.parameters()])
        loss_c, grads_c, _ = trainer.loss_and_grad(trainer.parameter_vector(), X, y)
        assert loss_c == pytest.approx(loss_v.data, rel=1e-12)
        np.testing.assert_allclose(grads_c, grads_v, rtol=1e-9, atol=1e-15)
        for p in model.parameters():
            p.data -= 1.0 * p.grad


LOSS_DATA = {
    "mse": lambda r: r.normal(size=8),
    "sse": lambda r: r.normal(size=8),
    "hinge": lambda r: r.choice([-1.0, 1.0], size=8),
    "logistic": lambda r: r.choice([0.0, 1.0], size=8),
}


@pytest.mark.parametrize("loss", sorted(LOSS_DATA))
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_loss_gradients_match_finite_differences(loss, activation):
    r = np.random.default_rng(1)
    X, y = r.normal(size=(8, 3)), LOSS_DATA[loss](r)
    model = MLP(3, [4, 1], activation=activation, rng=random.Random(2))
    trainer = Trainer(model, loss=loss, l2=0.01)
    theta = trainer.parameter_vector()
    _, g, _ = trainer.loss_and_grad(theta, X, y)
    fd = numerical.gradient(lambda th: trainer.loss_and_grad(th, X, y)[0], theta)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_lecture_losses_match_value_path():
    # the lecture: MLP(3, [4, 4, 1]) with tanh everywhere, loss = sum of squared errors
    xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    ys = [1.0, -1.0, -1.0, 1.0]
    model = MLP(3, [4, 4, 1], variant="lecture", rng=random.Random(42))
    trainer = Trainer(model, loss="sse")
    ypred = [model(x) for x in xs]
    loss = sum((yout - ygt) ** 2 for ygt, yout in zip(ys, ypred, strict=True))
    loss.backward()
    c_loss, c_grad, _ = trainer.loss_and_grad(trainer.parameter_vector(), xs, ys)
    assert c_loss == pytest.approx(loss.data, rel=1e-12)
    np.testing.assert_allclose(c_grad, [p.grad for p in model.parameters()], rtol=1e-9)


def test_softmax_cross_entropy():
    r = np.random.default_rng(0)
    centers = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    labels = np.repeat(np.arange(3), 20)
    X = centers[labels] + 0.3 * r.normal(size=(60, 2))
    model = MLP(2, [8, 3], activation="tanh", init="xavier", rng=random.Random(0))
    trainer = Trainer(model, loss="softmax_cross_entropy", optimizer=Adam(lr=0.05))
    theta = trainer.parameter_vector()
    _, g, _ = trainer.loss_and_grad(theta, X[:9], labels[:9])
    fd = numerical.gradient(lambda th: trainer.loss_and_grad(th, X[:9], labels[:9])[0], theta)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
    # log-sum-exp is stable: huge scores give a finite loss
    huge = trainer.loss_and_grad(theta * 400, X[:9], labels[:9])[0]
    assert math.isfinite(huge)
    history = trainer.fit(X, labels, steps=60)
    assert history.accuracy[-1] == 1.0
    assert trainer.predict(X).shape == (60, 3)


def test_minibatches_and_progress(capsys):
    r = np.random.default_rng(0)
    X = r.normal(size=(40, 2))
    y = np.sign(X[:, 0] + 0.1)
    trainer = Trainer(MLP(2, [4, 1], rng=random.Random(0)), loss="hinge", optimizer=SGD(0.1))
    history = trainer.fit(X, y, steps=5, batch_size=8, rng=np.random.default_rng(1), progress=True)
    assert len(history.loss) == 5 and len(history.health) == 5


def test_bad_trainer_input():
    model = MLP(2, [3, 1], rng=random.Random(0))
    with pytest.raises(OptionError, match="loss must be one of"):
        Trainer(model, loss="l1")
    with pytest.raises(OptionError, match="reduction"):
        Trainer(model, reduction="max")
    with pytest.raises(OptionError, match="l2"):
        Trainer(model, l2=-1.0)
    with pytest.raises(InputTypeError):
        Trainer("model")
    with pytest.raises(InputTypeError):
        Trainer(model, optimizer="sgd")
    trainer = Trainer(model)
    with pytest.raises(ShapeError, match="shape"):
        trainer.fit(np.zeros((4, 3)), np.zeros(4))
    with pytest.raises(ShapeError, match="samples"):
        trainer.fit(np.zeros((4, 2)), np.zeros(5))
    with pytest.raises(InputTypeError, match="array of numbers"):
        trainer.fit("abc", np.zeros(4))
    with pytest.raises(DomainError, match="NaN"):
        trainer.fit([[1.0, None]], [1.0])
    with pytest.raises(DomainError, match="NaN"):
        trainer.fit([[1.0, 2.0]], [np.inf])
    with pytest.raises(ShapeError):
        trainer.loss_and_grad(np.zeros(3), np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(InputTypeError):
        trainer.fit(np.zeros((4, 2)), np.zeros(4), steps=-1)
    with pytest.raises(OptionError):
        SGD(lr=-1.0)
    with pytest.raises(OptionError):
        SGD(lr=0.1, momentum=1.5)
    with pytest.raises(InputTypeError):
        SGD(lr="fast")


# ------------------------------------------------------------------ optimisers
def test_sgd_schedule_and_momentum_by_hand():
    lr = linear_schedule(1.0, 0.1, 100)
    assert [lr(k) for k in (0, 100)] == [1.0, pytest.approx(0.1)]
    opt = SGD(lr=0.5, momentum=0.9)
    theta = np.array([1.0])
    for k, g in enumerate([2.0, -1.0, 3.0]):
        opt.update([theta], [np.array([g])], k)  # in place
    assert theta[0] == pytest.approx(1.0 - 0.5 * (2.0) - 0.5 * (0.8) - 0.5 * (3.72))
    # a schedule: the rate of step k is lr(k)
    opt, theta = SGD(lr=lambda k: 1.0 / (k + 1)), np.array([0.0])
    for k in range(3):
        opt.update([theta], [np.array([6.0])], k)
    assert theta[0] == pytest.approx(-6.0 * (1 + 1 / 2 + 1 / 3), rel=1e-15)


def test_adam_by_hand():
    opt = Adam(lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    theta = np.array([0.5])
    m = v = 0.0
    want = 0.5
    for t, g in enumerate([1.0, -2.0, 0.5], start=1):
        opt.update([theta], [np.array([g])], t - 1)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        want -= 0.1 * (m / (1 - 0.9**t)) / (math.sqrt(v / (1 - 0.999**t)) + 1e-8)
    assert theta[0] == pytest.approx(want, rel=1e-12)


# ------------------------------------------------------------------ health
def test_diverging_learning_rate_warns_and_stops_on_nan():
    r = np.random.default_rng(0)
    X, y = r.normal(size=(20, 2)), r.normal(size=20)
    model = MLP(2, [8, 1], rng=random.Random(0))
    trainer = Trainer(model, loss="mse", optimizer=SGD(lr=50.0))
    with pytest.warns(TrainingWarning) as caught:
        history = trainer.fit(X, y, steps=200)
    messages = " ".join(str(w.message) for w in caught)
    assert "lower the learning rate" in messages
    assert history.stopped is not None and "last finite loss" in history.stopped
    theta = trainer.parameter_vector()
    assert np.all(np.isfinite(theta))
    assert math.isfinite(trainer.loss_and_grad(theta, X, y)[0])
    assert issubclass(TrainingWarning, SymgradWarning)


def test_saturated_tanh_network_warns_vanishing():
    r = np.random.default_rng(0)
    X, y = r.normal(size=(20, 4)), r.choice([-1.0, 1.0], size=20)
    model = MLP(4, [32, 32, 1], activation="tanh", rng=random.Random(0))
    for n in model.layers[0].neurons:
        n.b.data = 25.0  # every first-layer tanh sits at +1: 1 - tanh^2 underflows
    trainer = Trainer(model, loss="mse", optimizer=SGD(lr=0.01))
    with pytest.warns(TrainingWarning, match="layer 0: the gradient norm .* stopped learning"):
        history = trainer.fit(X, y, steps=3)
    by_layer = {s.layer: s for s in history.health[0]}
    assert by_layer["layer 0"].grad_norm < 1e-7 < by_layer["layer 1"].grad_norm


def test_health_monitor_reports_nan_gradient():
    m = HealthMonitor([("layer 0", np.array([0, 1]))])
    with pytest.warns(TrainingWarning, match="NaN"):
        m.observe(0, np.array([np.nan, 1.0]), np.ones(2), np.ones(2))


# ------------------------------------------------------------------ saving
def test_save_load_roundtrip_and_atomicity(tmp_path, monkeypatch):
    model = MLP(2, [3, 1], rng=random.Random(0))
    path = tmp_path / "params.json"
    save_parameters(model, path)
    before = path.read_text()
    other = MLP(2, [3, 1], rng=random.Random(5))
    load_parameters(other, path)
    assert [p.data for p in other.parameters()] == [p.data for p in model.parameters()]

    # an interrupted save leaves the previous file intact and no temporary file behind
    for p in model.parameters():
        p.data += 1.0

    def broken_write(fd, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "write", broken_write)
    with pytest.raises(KeyboardInterrupt):
        save_parameters(model, path)
    monkeypatch.undo()
    assert path.read_text() == before
    assert os.listdir(tmp_path) == ["params.json"]


def _model_with(values, labels=None):
    model = MLP(2, [1], rng=random.Random(0))
    for i, (p, v) in enumerate(zip(model.parameters(), values, strict=True)):
        p.data = v
        if labels is not None:
            p.label = labels[i]
    return model


def test_save_refuses_nonfinite_parameters_unless_asked(tmp_path):
    path = tmp_path / "p.json"
    save_parameters(_model_with([1.0, 2.0, 3.0]), path)
    good = path.read_bytes()
    for bad in (math.inf, -math.inf, math.nan):
        with pytest.raises(DomainError, match=r"non-finite.*allow_nonfinite=True"):
            save_parameters(_model_with([1.0, bad, 3.0]), path)
        assert path.read_bytes() == good  # the good checkpoint survives
    save_parameters(_model_with([1.0, -math.inf, math.nan]), path, allow_nonfinite=True)
    target = _model_with([0.0, 0.0, 0.0])
    with pytest.raises(ParseError, match="finite"):
        load_parameters(target, path)
    assert [p.data for p in target.parameters()] == [0.0, 0.0, 0.0]  # nothing half-loaded
    load_parameters(target, path, allow_nonfinite=True)
    data = [p.data for p in target.parameters()]
    assert data[0] == 1.0 and data[1] == -math.inf and math.isnan(data[2])


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits and symbolic links")
def test_save_keeps_mode_and_updates_a_symlinks_target(tmp_path):
    path = tmp_path / "p.json"
    model = _model_with([1.0, 2.0, 3.0])
    for mode in (0o644, 0o640, 0o600):
        save_parameters(model, path)
        os.chmod(path, mode)
        save_parameters(model, path)
        assert oct(path.stat().st_mode & 0o777) == oct(mode)
    # a new file gets the usual permissions: 0o666 less the umask
    umask = os.umask(0o022)
    os.umask(umask)
    fresh = tmp_path / "fresh.json"
    save_parameters(model, fresh)
    assert oct(fresh.stat().st_mode & 0o777) == oct(0o666 & ~umask)
    # through a symbolic link (also a relative one, and a chain of two): the target changes
    real = tmp_path / "store" / "real.json"
    real.parent.mkdir()
    save_parameters(_model_with([0.0, 0.0, 0.0]), real)
    link = tmp_path / "link.json"
    link.symlink_to(os.path.join("store", "real.json"))
    link2 = tmp_path / "link2.json"
    link2.symlink_to(link)
    save_parameters(model, link2)
    assert link.is_symlink() and link2.is_symlink()
    assert json.loads(real.read_text())["values"] == [1.0, 2.0, 3.0]
    assert sorted(os.listdir(real.parent)) == ["real.json"]


def test_save_to_a_bad_place_is_a_typed_error(tmp_path):
    model = _model_with([1.0, 2.0, 3.0])
    (tmp_path / "plain").write_text("a regular file")
    for path, match in [
        (tmp_path, "it is a folder"),
        (tmp_path / "nope" / "p.json", "does not exist"),
        (tmp_path / "plain" / "p.json", "is a file, not a folder"),
        (Path("/proc/symgrad-test/p.json"), "does not exist"),
        (Path("/proc/p.json"), "cannot write"),
    ]:
        with pytest.raises(FileAccessError, match=match):
            save_parameters(model, path)
    assert (tmp_path / "plain").read_text() == "a regular file"


def test_stale_temporary_files_are_removed_by_the_next_save(tmp_path):
    path = tmp_path / "p.json"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f".p.json.{dead.stdout.strip()}.0123456789ab.tmp"
    stale.write_text("half a file")
    alive = tmp_path / f".p.json.{os.getppid()}.0123456789ab.tmp"  # a live process: kept
    alive.write_text("someone else's save in progress")
    other = tmp_path / ".other.json.1.0123456789ab.tmp"  # not ours: kept
    other.write_text("x")
    save_parameters(_model_with([1.0, 2.0, 3.0]), path)
    assert sorted(os.listdir(tmp_path)) == sorted([alive.name, other.name, "p.json"])


# The child process saves in a loop (versions 1, 2, ...; every value of version v is v + 0.5)
# and is SIGKILLed at random times; after each kill the file must load and hold one whole
# version, never older than the one before.
KILL_SCRIPT = r"""
import json, os, random, signal, sys, time
from symgrad.nn import MLP, load_parameters, save_parameters
kills, path = int(sys.argv[1]), sys.argv[2]
model = MLP(8, [64, 64, 1], rng=random.Random(0))  # 4,801 parameters: a save takes a while
params = model.parameters()
def write(v):
    for p in params:
        p.data = v + 0.5
    save_parameters(model, path)
write(0)
rng, last, problems, leftovers = random.Random(1), 0, [], 0
for k in range(kills):
    pid = os.fork()
    if pid == 0:
        v = last
        while True:
            v += 1
            write(v)
    time.sleep(rng.uniform(0.005, 0.08))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    leftovers += sum(1 for n in os.listdir(os.path.dirname(path)) if n.endswith(".tmp"))
    try:
        load_parameters(model, path)
    except Exception as exc:
        problems.append(f"kill {k}: {type(exc).__name__}: {exc}")
        continue
    found = {p.data for p in params}
    if len(found) != 1 or min(found) - 0.5 < last:
        problems.append(f"kill {k}: mixed or older values {sorted(found)[:3]}")
    last = int(min(found))
write(last + 1)  # the next save cleans up what killed saves left
print(json.dumps({"problems": problems, "last": last, "leftovers_seen": leftovers,
                  "files": sorted(os.listdir(os.path.dirname(path)))}))
"""


def _kill_saves(tmp_path, kills):
    path = tmp_path / "params.json"
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(kills), str(path)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["problems"] == []
    assert result["last"] >= 1  # saves really completed between the kills
    assert result["files"] == ["params.json"]  # no temporary file left behind
    assert path.stat().st_size > 50_000
    return result


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork and SIGKILL")
def test_saves_survive_sigkill(tmp_path):
    _kill_saves(tmp_path, 20)


@pytest.mark.slow
@pytest.mark.stress
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork and SIGKILL")
def test_saves_survive_200_sigkills(tmp_path):
    _kill_saves(tmp_path, 200)


def test_load_errors(tmp_path):
    model = MLP(2, [3, 1], rng=random.Random(0))
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    with pytest.raises(ParseError):
        load_parameters(model, bad)
    bad.write_text('{"format": "other"}')
    with pytest.raises(ParseError):
        load_parameters(model, bad)
    path = tmp_path / "p.json"
    save_parameters(MLP(2, [4, 1], rng=random.Random(0)), path)
    with pytest.raises(ShapeError):
        load_parameters(model, path)


def _file(labels, values_text):
    head = '{"format": "symgrad-parameters", "version": 1, "labels": '
    return f'{head}{json.dumps(labels)}, "values": [{values_text}]}}'.encode()


HOSTILE = {
    "400-digit integer": (lambda ls: _file(ls, "1, 2, " + "9" * 400), ParseError, "finite"),
    "5000-digit integer": (lambda ls: _file(ls, "1, 2, " + "7" * 5000), ParseError, "finite"),
    "400-digit float": (lambda ls: _file(ls, "1, 2, 1" + "0" * 400 + ".5"), ParseError, "finite"),
    "deep nesting": (lambda ls: b"[" * 20_000 + b"]" * 20_000, ParseError, "nested too deep"),
    "deep object": (lambda ls: b'{"a":' * 5_000 + b"1" + b"}" * 5_000, ParseError, "nested"),
    "non-UTF-8": (lambda ls: b"\xff\xfe{\x00", ParseError, "not UTF-8"),
    "pickle": (lambda ls: b"\x80\x04\x95\x10\x00\x00\x00", ParseError, "UTF-8"),
    "a string value": (lambda ls: _file(ls, '1, 2, "3"'), ParseError, "numbers"),
    "a boolean value": (lambda ls: _file(ls, "1, 2, true"), ParseError, "numbers"),
    "a list value": (lambda ls: _file(ls, "1, 2, [3]"), ParseError, "numbers"),
    "huge file": (lambda ls: _file(ls, "1, 2, 3" + " " * 10_000_000), ParseError, "larger"),
    "empty": (lambda ls: b"", ParseError, "not a symgrad parameter file"),
    "labels not a list": (lambda ls: _file("w0", "1, 2, 3"), ParseError, "lists"),
    "NaN token": (lambda ls: _file(ls, "1, 2, NaN"), ParseError, "finite"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_parameter_files_are_one_typed_error(tmp_path, case):
    make, error, match = HOSTILE[case]
    model = _model_with([0.25, 0.5, 0.75])
    path = tmp_path / "hostile.json"
    path.write_bytes(make([p.label for p in model.parameters()]))
    with pytest.raises(error, match=match) as info:
        load_parameters(model, path)
    assert "hostile.json" in str(info.value)  # names the file
    err = info.value  # one error, not a chain of tracebacks
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    assert [p.data for p in model.parameters()] == [0.25, 0.5, 0.75]  # unchanged


def test_missing_file_or_folder_is_a_file_access_error(tmp_path):
    model = _model_with([0.25, 0.5, 0.75])
    with pytest.raises(FileAccessError, match=r"missing\.json.*No such file"):
        load_parameters(model, tmp_path / "missing.json")
    with pytest.raises(FileAccessError, match="folder"):
        load_parameters(model, tmp_path)
    with pytest.raises(InputTypeError, match="file name"):
        load_parameters(model, 42)
    with pytest.raises(InputTypeError, match="parameters"):
        save_parameters("model", tmp_path / "x.json")


# ------------------------------------------------------------------ training: hostile cases
@pytest.mark.parametrize("seed", range(4))
def test_fit_with_a_huge_rate_stops_with_the_last_finite_parameters(seed):
    # SGD(lr=1e308): the first update either overflows (inf parameters) or gives parameters so
    # large that the next loss is inf; both stop with a warning and the starting parameters
    r = np.random.default_rng(seed)
    X, y = r.normal(size=(10, 2)), 3 * r.normal(size=10)
    model = MLP(2, [4, 1], rng=random.Random(seed))
    trainer = Trainer(model, loss="mse", optimizer=SGD(lr=1e308))
    start = trainer.parameter_vector()
    with pytest.warns(TrainingWarning) as caught:
        history = trainer.fit(X, y, steps=50)
    assert history.stopped is not None and "last finite" in history.stopped
    assert any(history.stopped == str(w.message) for w in caught)
    assert len(history.loss) <= 1
    np.testing.assert_array_equal(trainer.parameter_vector(), start)
    np.testing.assert_array_equal([p.data for p in model.parameters()], start)


def test_set_parameters_refuses_nonfinite_values():
    model = MLP(2, [1], rng=random.Random(0))
    trainer = Trainer(model)
    before = [p.data for p in model.parameters()]
    for bad in (math.inf, -math.inf, math.nan):
        with pytest.raises(DomainError, match=r"theta\[1\]"):
            trainer.set_parameters([0.5, bad, 1.0])
    with pytest.raises(InputTypeError):
        trainer.set_parameters("abc")
    assert [p.data for p in model.parameters()] == before


def test_fit_on_zero_samples_is_an_error():
    trainer = Trainer(MLP(2, [1], rng=random.Random(0)))
    with pytest.raises(ShapeError, match="0 samples"):
        trainer.fit(np.zeros((0, 2)), np.zeros(0))


@pytest.mark.parametrize(
    "labels",
    [
        ["w", "w", "b", "w", "w", "b", "v", "v", "b"],  # duplicated
        [""] * 9,  # empty
        ["x0", "x1", "t0", "t1", "x2", "t12", "theta0", "a", "b"],  # the Trainer's own names
        ["theta1", "theta0", "a", "b", "c", "d", "e", "f", ""],  # the fallback names + empty
    ],
)
def test_trainer_accepts_any_labels(labels):
    # reference: micrograd's Value path (forward + backward) on the same model and data
    r = np.random.default_rng(3)
    X, y = r.normal(size=(5, 2)), r.normal(size=5)
    model = MLP(2, [2, 1], rng=random.Random(4))
    for p, lab in zip(model.parameters(), labels, strict=True):
        p.label = lab
    trainer = Trainer(model, loss="mse")
    assert [p.label for p in model.parameters()] == labels  # labels restored
    loss_c, grad_c, _ = trainer.loss_and_grad(trainer.parameter_vector(), X, y)
    model.zero_grad()
    residuals = [model([Value(a) for a in row]) - t for row, t in zip(X, y, strict=True)]
    loss_v = sum((r**2 for r in residuals), Value(0.0))
    loss_v = loss_v * (1.0 / len(y))
    loss_v.backward()
    assert loss_c == pytest.approx(loss_v.data, rel=1e-12)
    np.testing.assert_allclose(grad_c, [p.grad for p in model.parameters()], rtol=1e-9)
    history = trainer.fit(X, y, steps=20)
    assert history.loss[-1] < history.loss[0]


def test_loss_curve_plot(tmp_path):
    pytest.importorskip("matplotlib")
    X = np.array([[0.0], [1.0]])
    trainer = Trainer(MLP(1, [2, 1], rng=random.Random(0)), loss="mse")
    history = trainer.fit(X, [0.0, 1.0], steps=5)
    history.plot(tmp_path / "loss.png")
    assert (tmp_path / "loss.png").stat().st_size > 1000


# ------------------------------------------------------------------ the example script
def test_micrograd_demo_example(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    proc = subprocess.run(
        [sys.executable, "examples/micrograd_demo.py", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("step ")]
    assert len(lines) == 100
    first, last = lines[0].split(), lines[-1].split()
    assert float(first[3].rstrip(",")) == pytest.approx(DEMO_STEP0, rel=1e-6)
    assert float(last[3].rstrip(",")) == pytest.approx(DEMO_STEP99, rel=1e-6)
    assert lines[-1].endswith("accuracy 100.0%")
    assert (tmp_path / "micrograd_demo_boundary.png").stat().st_size > 1000


# the layering of value.py and nn/ is checked by tests/test_architecture.py (LAYERS)


def test_progress_fallback_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails as if not installed
    trainer = Trainer(MLP(1, [1], rng=random.Random(0)), loss="mse")
    trainer.fit([[0.0], [1.0]], [0.0, 1.0], steps=20, progress=True)
    err = capsys.readouterr().err
    assert "step 1/20" in err and "step 20/20" in err


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("loss", ["hinge", "mse", "softmax_cross_entropy"])
def test_steps_by_layers_equal_the_per_sample_program(loss, reduction, monkeypatch):
    # an MLP's steps run by layers (codegen/lift.py); the per-sample program is the reference
    from symgrad.nn import train as train_module

    r = np.random.default_rng(3)
    nout = 3 if loss == "softmax_cross_entropy" else 1
    X = r.normal(size=(11, 2))
    y = r.integers(0, 3, 11) if nout == 3 else r.choice([-1.0, 1.0], size=11)
    trainer = Trainer(
        MLP(2, [5, 4, nout], rng=random.Random(4)), loss=loss, reduction=reduction, l2=0.01
    )
    assert trainer._program._net is not None
    monkeypatch.setattr(train_module, "_layers", lambda *a: None)
    model = MLP(2, [5, 4, nout], rng=random.Random(4))  # the same network, trained apart
    reference = Trainer(model, loss=loss, reduction=reduction, l2=0.01)
    assert reference._program._net is None
    theta = trainer.parameter_vector()
    got, want = trainer.loss_and_grad(theta, X, y), reference.loss_and_grad(theta, X, y)
    assert got[0] == pytest.approx(want[0], rel=1e-13)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(trainer.predict(X), reference.predict(X), rtol=1e-13, atol=1e-15)
    # the per-sample function is still there (built on first use), with its own signature
    per, grads, _ = trainer.fn(theta, X.T, reference._targets(y, 11))
    assert np.shape(grads) == (len(theta), 11)
    np.testing.assert_allclose(np.mean(per) if reduction == "mean" else np.sum(per),
                               want[0] - 0.01 * theta @ theta, rtol=1e-12)  # fmt: skip
    # fitting takes the same path and agrees step by step
    h1 = trainer.fit(X, y, steps=5)
    h2 = reference.fit(X, y, steps=5)
    np.testing.assert_allclose(h1.loss, h2.loss, rtol=1e-10)
