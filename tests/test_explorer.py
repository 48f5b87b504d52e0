"""The explorer page driven in a real headless browser (Debian's chromium through Selenium).

Every number the page shows is compared with ``Value.backward()`` (micrograd's own backward
pass, run by symgrad's Value on the new numbers) or with ``sympy.diff``; the step order is
checked against the graph's structure (a node comes after every node that uses it). The browser
log must be empty of errors and the network log must show no request but the page itself.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp

from symgrad import Value, derive
from symgrad.derivation.html import explorer_page, json_for_html
from symgrad.errors import FileAccessError, InputTypeError, OptionError
from symgrad.files import atomic_write
from symgrad.nn import MLP
from tests.browser import chromium

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "images" / "explorer.png"


def lecture(a=2.0, b=-3.0, c=10.0, f=-2.0) -> tuple[Value, dict[str, Value]]:
    va, vb, vc, vf = (Value(x, label=n) for x, n in ((a, "a"), (b, "b"), (c, "c"), (f, "f")))
    e = va * vb
    e.label = "e"
    d = e + vc
    d.label = "d"
    L = d * vf
    L.label = "L"
    L.backward()
    return L, {"a": va, "b": vb, "c": vc, "f": vf, "e": e, "d": d, "L": L}


def uses(nodes: dict[str, Value]) -> dict[str, set[str]]:
    """name -> names of the nodes that take it as an argument (from the Value graph)."""
    out: dict[str, set[str]] = {n: set() for n in nodes}
    for name, v in nodes.items():
        for child in v._children:
            out[child.label].add(name)
    return out


def num(text: str) -> float:
    return float(text.replace("\u2212", "-"))


# ---------------------------------------------------------------------- browser helpers
@pytest.fixture(scope="module")
def browser():
    with chromium() as web:
        yield web


def open_page(browser, tmp_path: Path, page: str, name: str = "page.html") -> str:
    path = tmp_path / name
    atomic_write(path, page)
    browser.get("about:blank")  # leave the start page (chromium's own chrome:// requests)
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get_log("performance")
    url = path.as_uri()
    browser.get(url)
    browser.execute_script("return document.fonts.ready")
    return url


def page_state(browser) -> dict:
    return browser.execute_script(
        """
        const g = document.querySelector("g.node.current");
        const text = (id) => (document.getElementById(id) || {}).textContent || null;
        const rows = {};
        for (const tr of document.querySelectorAll("#nodes tr[data-name]")) {
          rows[tr.dataset.name] = [tr.querySelector(".value").textContent,
                                   tr.querySelector(".gradient").textContent];
        }
        const boxes = {};
        for (const n of document.querySelectorAll("g.node")) {
          boxes[n.querySelector(".name").textContent] =
            [n.querySelector(".data").textContent, n.querySelector(".grad").textContent];
        }
        return {
          current: g ? g.querySelector(".name").textContent : null,
          stepNode: text("step-node"), stepGrad: text("step-grad"),
          flows: document.querySelectorAll("path.edge.flow").length,
          rows, boxes, info: text("stepinfo"),
        };
        """
    )


def assert_clean_logs(browser, url: str) -> None:
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not errors, errors
    requests = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requests.append(message["params"]["request"]["url"])
    outside = [u for u in requests if u != url and not u.startswith("data:")]
    assert url in requests and not outside, outside


def assert_katex_rendered(browser) -> None:
    text = browser.execute_script("return document.body.innerText")
    assert "\\frac" not in text and "\\partial" not in text and "\\begin" not in text
    assert browser.execute_script("return document.querySelectorAll('.katex').length") > 0
    fonts = browser.execute_script(
        "return [...document.fonts].filter(f => f.status === 'loaded').map(f => f.family)"
    )
    assert any("KaTeX" in f for f in fonts), fonts


def press(browser, key: str, times: int = 1) -> None:
    from selenium.webdriver.common.keys import Keys

    body = browser.find_element("tag name", "body")
    for _ in range(times):
        body.send_keys(getattr(Keys, key))


def set_leaf(browser, name: str, value: float) -> None:
    browser.execute_script(
        """
        const input = [...document.querySelectorAll("input.leaf")]
          .find((i) => i.getAttribute("aria-label") === arguments[0]);
        input.value = String(arguments[1]);
        input.dispatchEvent(new Event("change"));
        """,
        name,
        value,
    )


# ---------------------------------------------------------------------- the lecture's L
def test_lecture_step_by_step_then_edit_a(browser, tmp_path):
    L, nodes = lecture()
    url = open_page(browser, tmp_path, derive(L).html())
    state = page_state(browser)
    assert state["current"] is None and state["info"].startswith("forward pass")
    # every value and gradient in the table: the lecture's numbers from Value.backward()
    for name, v in nodes.items():
        assert [num(x) for x in state["rows"][name]] == pytest.approx([v.data, v.grad])
    users = uses(nodes)
    visited: list[str] = []
    for k in range(1, len(nodes) + 1):
        press(browser, "ARROW_RIGHT")
        state = page_state(browser)
        name = state["current"]
        assert state["stepNode"] == name and state["info"] == f"step {k} of {len(nodes)}"
        assert num(state["stepGrad"]) == pytest.approx(nodes[name].grad)
        assert num(state["boxes"][name][1].split()[1]) == pytest.approx(nodes[name].grad)
        # the adjoint flows along one edge per argument of the node
        assert state["flows"] == len(nodes[name]._children)
        assert users[name] <= set(visited), (name, visited)  # reverse topological order
        visited.append(name)
    assert sorted(visited) == sorted(nodes)
    press(browser, "ARROW_RIGHT")  # past the end: stays on the last step
    assert page_state(browser)["info"] == f"step {len(nodes)} of {len(nodes)}"
    press(browser, "ARROW_LEFT", 2)
    assert page_state(browser)["stepNode"] == visited[-3]
    press(browser, "HOME")
    assert page_state(browser)["current"] is None
    browser.find_element("id", "next").click()
    assert page_state(browser)["stepNode"] == visited[0] == "L"
    assert_katex_rendered(browser)

    set_leaf(browser, "a", 3)
    press(browser, "END")
    state = page_state(browser)
    _, fresh = lecture(a=3.0)  # the reference: Value.backward() on the new numbers
    for name, v in fresh.items():
        assert [num(x) for x in state["rows"][name]] == pytest.approx([v.data, v.grad]), name
        data, grad = state["boxes"][name]
        assert num(data.split()[1]) == pytest.approx(v.data)
        assert num(grad.split()[1]) == pytest.approx(v.grad)
    assert_clean_logs(browser, url)
    assert_katex_rendered(browser)

    # the README's picture: the lecture at step 3, node a selected
    press(browser, "HOME")
    set_leaf(browser, "a", 2)
    press(browser, "ARROW_RIGHT", 3)
    browser.find_element("css selector", "g.node[data-id='n0'] rect").click()
    atomic_write(SCREENSHOT, browser.get_screenshot_as_png())


def test_clicking_a_node_shows_its_formula_value_gradient_and_partials(browser, tmp_path):
    L, _ = lecture()
    open_page(browser, tmp_path, derive(L).html())
    browser.find_element("css selector", "g.node[data-id='n2'] rect").click()  # e = a*b
    text = browser.find_element("id", "details").text
    assert "Node e (intermediate)" in text
    assert re.search(r"value\s+-6\b", text) and re.search(r"gradient\s+-2\b", text)
    assert "Local partials" in text
    # e = a*b: de/da = b = -3 and de/db = a = 2, as KaTeX renders them (MathML text)
    mathml = browser.execute_script(
        "return [...document.querySelectorAll('#details annotation')].map(a => a.textContent)"
    )
    assert any(m.startswith("e = a b") for m in mathml), mathml
    assert any("\\partial a} = b = -3" in m for m in mathml), mathml
    assert any("\\partial b} = a = 2" in m for m in mathml), mathml


# ---------------------------------------------------------------------- other graphs
def neuron(w1: float = -3.0) -> tuple[Value, list[Value]]:
    x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")
    w1, w2 = Value(w1, label="w1"), Value(1.0, label="w2")
    b = Value(6.8813735870195432, label="b")
    n = x1 * w1 + x2 * w2 + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    o.backward()
    return o, [x1, x2, w1, w2, b]


def test_neuron_page_matches_value_backward(browser, tmp_path):
    o, leaves = neuron()
    url = open_page(browser, tmp_path, derive(o).html())
    rows = page_state(browser)["rows"]
    for v in [*leaves, o]:
        assert num(rows[v.label][1]) == pytest.approx(v.grad, abs=1e-5)
    set_leaf(browser, "w1", 0.5)
    rows = page_state(browser)["rows"]
    o2, leaves2 = neuron(w1=0.5)  # the reference: Value.backward() at the new point
    for v in leaves2:
        assert num(rows[v.label][1]) == pytest.approx(v.grad, rel=1e-5, abs=1e-9), v.label
    assert num(rows["o"][0]) == pytest.approx(o2.data, rel=1e-5)
    assert_clean_logs(browser, url)


def mlp_loss(seed: int = 0) -> tuple[Value, MLP, list[list[float]], list[float]]:
    model = MLP(3, [4, 4, 1], rng=random.Random(seed))
    xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    ys = [1.0, -1.0, -1.0, 1.0]
    preds = [
        model([Value(x, label=f"x{i}_{j}") for j, x in enumerate(row)]) for i, row in enumerate(xs)
    ]
    loss = Value.sum([(p - y) ** 2 for p, y in zip(preds, ys, strict=True)])
    loss.label = "loss"
    loss.backward()
    return loss, model, xs, ys


def test_mlp_loss_page_gradients_match_and_edit(browser, tmp_path):
    loss, model, xs, ys = mlp_loss()
    d = derive(loss)
    url = open_page(browser, tmp_path, d.html())
    rows = page_state(browser)["rows"]
    params = model.parameters()
    names = [d.names[s] for s in d.wrt]
    assert len(params) == 41 and len(rows) > 300
    by_label = {p.label: p for p in params}
    checked = 0
    for name in names:
        if name in by_label:
            p = by_label[name]
            assert num(rows[name][1]) == pytest.approx(p.grad, rel=1e-4, abs=1e-6), name
            checked += 1
    assert checked == len(params)
    # edit one input, compare with the Value graph run again on the new number
    set_leaf(browser, "x0_0", -1.5)
    rows = page_state(browser)["rows"]
    xs[0][0] = -1.5
    for p in params:
        p.grad = 0.0
    preds = [model([Value(x) for x in row]) for row in xs]
    again = Value.sum([(p - y) ** 2 for p, y in zip(preds, ys, strict=True)])
    again.backward()
    assert num(rows["loss"][0]) == pytest.approx(again.data, rel=1e-4)
    for p in params:
        assert num(rows[p.label][1]) == pytest.approx(p.grad, rel=1e-4, abs=1e-6), p.label
    assert_clean_logs(browser, url)


def test_large_graphs_fold_each_neuron_into_one_box(browser, tmp_path):
    loss, *_ = mlp_loss()
    d = derive(loss)
    url = open_page(browser, tmp_path, d.html())
    count = "return document.querySelectorAll('g.node').length"
    every = len(page_state(browser)["rows"])
    folded = browser.execute_script(count)
    # 4 samples x 9 neurons + the loss + 41 parameters + 12 inputs: a box per neuron, not per
    # product and partial sum (each neuron's activation feeds several others, so it stays)
    assert folded <= 4 * 9 + 1 + 41 + 12 and every > 3 * folded
    for _ in range(40):  # every step highlights the one box that holds its node
        press(browser, "ARROW_RIGHT")
        assert browser.execute_script("return document.querySelectorAll('g.current').length") == 1
    browser.find_element("id", "fold").click()
    assert browser.execute_script(count) == every
    state = page_state(browser)
    # unfolded: the node itself (large graphs write the operation into the box: "u_7 = +")
    assert state["current"].split(" = ")[0] == state["stepNode"]
    assert_clean_logs(browser, url)


def sigmoid_reference(a):
    return 1 / (1 + sp.exp(-a))  # written out: independent of symgrad's sigmoid rule


@pytest.mark.parametrize("case", ["trig", "sigmoid_relu"])
def test_sympy_expression_page_against_sympy_diff(browser, tmp_path, case):
    from symgrad.functions import sigmoid

    x, y = sp.symbols("x y")
    if case == "trig":
        expr = reference = sp.sin(x * y) + sp.exp(x) / y
    else:
        expr = sigmoid(x * y) + sp.Max(0, x) * y
        reference = sigmoid_reference(x * y) + sp.Max(0, x) * y
    url = open_page(browser, tmp_path, derive(expr, at={x: 0.5, y: 2.0}).html())
    set_leaf(browser, "y", -1.25)
    rows = page_state(browser)["rows"]
    point = {x: 0.5, y: -1.25}
    for s in (x, y):
        want = float(sp.diff(reference, s).subs(point))
        assert num(rows[s.name][1]) == pytest.approx(want, rel=1e-5)
    assert num(rows["f"][0]) == pytest.approx(float(reference.subs(point)), rel=1e-5)
    assert_clean_logs(browser, url)
    assert_katex_rendered(browser)


def test_a_symbolic_derivation_computes_once_every_input_is_given(browser, tmp_path):
    x, y = sp.symbols("x y")
    expr = sp.log(x) * y**2
    url = open_page(browser, tmp_path, derive(expr).html())  # no numbers in the derivation
    assert page_state(browser)["rows"]["x"] == ["\u2014", "\u2014"]
    set_leaf(browser, "x", 2.0)
    assert page_state(browser)["rows"]["f"][0] == "\u2014"  # y is still missing
    set_leaf(browser, "y", 3.0)
    rows = page_state(browser)["rows"]
    point = {x: 2.0, y: 3.0}
    for s in (x, y):
        assert num(rows[s.name][1]) == pytest.approx(float(sp.diff(expr, s).subs(point)))
    assert_clean_logs(browser, url)


HOSTILE = [
    "</script><img src=x onerror=alert(1)>",
    "<b>bold</b>",
    "\\frac{1}{0}",
    "x}\\href{javascript:alert(1)}{y",
    "a`b*c*_d_",
    "\u2028line",
]


def test_hostile_names_are_only_text(browser, tmp_path):
    leaves = [Value(float(i + 1), label=name) for i, name in enumerate(HOSTILE)]
    out = Value.sum([v * v for v in leaves])
    out.label = "<script>alert(2)</script>"
    out.backward()
    page = derive(out).html(title="<img src=y onerror=alert(3)>")
    url = open_page(browser, tmp_path, page)
    assert browser.execute_script("return document.querySelectorAll('img, b, a').length") == 0
    assert browser.execute_script("return document.scripts.length") == 4  # only the page's own
    names = browser.execute_script(
        "return [...document.querySelectorAll('g.node .name')].map(t => t.textContent)"
    )
    assert set(HOSTILE) <= set(names)
    press(browser, "END")
    for v in leaves:
        state = page_state(browser)
        assert num(state["rows"][v.label][1]) == pytest.approx(v.grad)
    title = browser.execute_script("return document.title")
    assert title == "<img src=y onerror=alert(3)>"
    assert_clean_logs(browser, url)


# ---------------------------------------------------------------------- without a browser
def test_page_is_self_contained():
    L, _ = lecture()
    page = derive(L).html()
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", page)
    assert "url(fonts/" not in page and page.count("data:font/woff2;base64,") >= 19
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert (
        "KaTeX" in page and "MIT" in (ROOT / "symgrad/derivation/assets/katex/LICENSE").read_text()
    )


def test_json_for_html_cannot_close_the_script():
    text = json_for_html({"s": "</script><!-- & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"s": "</script><!-- & \u2028"}
    with pytest.raises(ValueError):
        json_for_html({"x": float("nan")})


def test_html_writes_atomically_and_checks_its_arguments(tmp_path):
    x = sp.Symbol("x")
    d = derive(x**2, at={x: 3})
    (tmp_path / "page.html").write_text("old")
    page = d.html(tmp_path / "page.html")
    assert (tmp_path / "page.html").read_text() == page
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]
    with pytest.raises(FileAccessError, match="is a folder"):
        d.html(tmp_path)
    with pytest.raises(OptionError, match="collapse"):
        explorer_page(d, collapse="yes")
    with pytest.raises(InputTypeError, match="Derivation"):
        explorer_page(x**2)


def test_functions_without_javascript_leave_the_page_readable():
    x = sp.Symbol("x")
    page = derive(sp.erf(x) * x, at={x: 1.0}).html()
    data = json.loads(
        re.search(r'id="symgrad-data" type="application/json">(.*?)</script>', page, re.S)[1]
    )
    assert data["editable"] is False and "no JavaScript" in data["whyNotEditable"]


def test_cli_explore_writes_the_page(tmp_path):
    out = tmp_path / "page.html"
    (tmp_path / "page.gv").write_text("mine")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "symgrad",
            "explore",
            "(a*b + c)*f",
            "--at",
            "a=2,b=-3,c=10,f=-2",
            "-o",
            str(out),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().startswith("<!DOCTYPE html>") and f"wrote {out}" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.gv", "page.html"]


def test_missing_browser_skips_or_fails_by_the_environment(monkeypatch):
    import tests.browser as br

    monkeypatch.setattr(br, "_find", lambda candidates: None)
    monkeypatch.delenv("SYMGRAD_REQUIRE_RENDERERS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium"), br.chromium():
        pass
    monkeypatch.setenv("SYMGRAD_REQUIRE_RENDERERS", "1")
    with pytest.raises(pytest.fail.Exception, match="SYMGRAD_REQUIRE_RENDERERS=1"), br.chromium():
        pass


def test_a_deep_chain_page_builds_without_recursion():
    v = Value(0.5, label="x")
    for _ in range(600):  # 1,200 operations: deeper than Python's recursion limit (1,000)
        v = v * 1.0001 + 0.001
    v.backward()
    d = derive(v)
    page = d.html()
    data = json.loads(
        re.search(r'id="symgrad-data" type="application/json">(.*?)</script>', page, re.S)[1]
    )
    assert len(data["steps"]) == len(d.steps) and data["editable"]
    x = next(n for n in data["nodes"] if n["name"] == "x")
    assert x["gradient"] == pytest.approx(1.0001**600)  # d/dx of the chain, by hand
