// symgrad explorer: draws the graph from the page's JSON data and steps through the backward pass.
// User text is only ever shown through textContent or KaTeX (never innerHTML).
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("symgrad-data").textContent);
  const nodes = data.nodes, edges = data.edges, steps = data.steps;
  const SVG = "http://www.w3.org/2000/svg";
  const W = 150, H = 58;
  const $ = (id) => document.getElementById(id);

  // the numbers shown: start with the derivation's, recomputed when a leaf is edited
  let value = nodes.map((n) => n.value);
  let grad = nodes.map((n) => n.gradient);
  let local = edges.map((e) => e.local);
  let current = 0; // 0: the forward pass; k: step k of the backward pass
  let selected = null;

  function fmt(x) {
    if (x === null || x === undefined) return "\u2014";
    if (!Number.isFinite(x)) return String(x);
    const s = String(Number(x.toPrecision(6)));
    return s === "-0" ? "0" : s;
  }

  function el(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function html(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  function tex(target, source) {
    try {
      katex.render(source, target, { displayMode: true, throwOnError: true, trust: false });
    } catch (err) {
      target.textContent = source;
      console.warn("KaTeX: " + err.message);
    }
  }

  // ------------------------------------------------------------------ the graph
  // Folded: a generated intermediate node used once is drawn inside the node it feeds (its
  // group), so a neuron is one box; unfolded: every node. The layouts come from the page data.
  const svg = $("svg");
  let folded = data.folded;
  let boxes = {}; // drawn node index -> <g>
  let lines = []; // [path, edge indices it stands for]
  const members = nodes.map(() => 0);
  nodes.forEach((n) => (members[n.group] += 1));

  function drawGraph() {
    svg.replaceChildren();
    boxes = {};
    lines = [];
    const X = (n) => (folded ? n.gx : n.x), Y = (n) => (folded ? n.gy : n.y);
    const drawn = nodes.map((n, i) => i).filter((i) => !folded || nodes[i].group === i);
    let width = 0, height = 0;
    for (const i of drawn) {
      width = Math.max(width, X(nodes[i]) + W + 20);
      height = Math.max(height, Y(nodes[i]) + H + 20);
    }
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    const pairs = {};
    edges.forEach((e, k) => {
      const s = folded ? nodes[e.source].group : e.source;
      const t = folded ? nodes[e.target].group : e.target;
      if (s === t) return; // inside one box
      const key = s + ">" + t;
      if (folded && key in pairs) {
        pairs[key][1].push(k);
        return;
      }
      const twin = folded ? 0 : (pairs[key] = pairs[key] || [null, [], 0])[2]++; // a*a
      const a = nodes[s], b = nodes[t];
      const x1 = X(a) + W, y1 = Y(a) + H / 2 + twin * 8, x2 = X(b), y2 = Y(b) + H / 2 + twin * 8;
      const mx = (x1 + x2) / 2;
      const path = el("path", {
        d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`,
        class: "edge",
      });
      svg.appendChild(path);
      const entry = [path, [k]];
      lines.push(entry);
      if (folded) pairs[key] = entry;
    });
    for (const i of drawn) {
      const n = nodes[i], x = X(n), y = Y(n);
      const g = el("g", { class: "node " + n.kind, "data-id": n.id, "data-index": i });
      g.appendChild(el("rect", { x: x, y: y, width: W, height: H, rx: 5 }));
      let title = n.merged && n.op ? n.name + " = " + n.op : n.name;
      if (folded && members[i] > 1) title += " (+" + (members[i] - 1) + ")";
      g.appendChild(el("text", { x: x + 8, y: y + 17, class: "name" }, title));
      g.appendChild(el("text", { x: x + 8, y: y + 34, class: "data" }, ""));
      g.appendChild(el("text", { x: x + 8, y: y + 50, class: "grad" }, ""));
      g.addEventListener("click", () => select(i));
      svg.appendChild(g);
      boxes[i] = g;
    }
    $("fold").textContent = folded ? "show every node" : "fold single-use nodes";
  }

  // ------------------------------------------------------------------ panels
  $("title").textContent = data.title;

  function stepPanel() {
    const box = $("step");
    box.replaceChildren();
    if (current === 0) {
      box.appendChild(html("h2", "Forward pass"));
      box.appendChild(html("p", "Every node's value is computed from its arguments. " +
        "Step through the backward pass with the arrow keys or the buttons above."));
      return;
    }
    const s = steps[current - 1], n = nodes[s.node];
    const h = html("h2", "Step " + current + ": ");
    const name = html("span", n.name);
    name.id = "step-node";
    h.appendChild(name);
    h.appendChild(document.createTextNode(" "));
    h.appendChild(html("span", "(" + s.rule + ")", "rule"));
    box.appendChild(h);
    const math = html("div", undefined, "math");
    math.id = "step-math";
    tex(math, s.tex);
    box.appendChild(math);
    const t = html("table");
    const row = (label, x, id) => {
      const tr = html("tr");
      tr.appendChild(html("td", label));
      const td = html("td", fmt(x), "num");
      if (id) td.id = id;
      tr.appendChild(td);
      t.appendChild(tr);
    };
    row("value of " + n.name, value[s.node], "step-value");
    row("gradient d" + nodes[data.output].name + "/d" + n.name, grad[s.node], "step-grad");
    edges.forEach((e, k) => {
      if (e.target === s.node && e.flows) {
        const c = grad[s.node] === null || local[k] === null ? null : grad[s.node] * local[k];
        row("sends to " + nodes[e.source].name + ": " + fmt(grad[s.node]) + " \u00d7 " +
          fmt(local[k]), c);
      }
    });
    box.appendChild(t);
  }

  function detailsPanel() {
    const box = $("details");
    box.replaceChildren();
    if (selected === null) return;
    const n = nodes[selected];
    box.appendChild(html("h2", "Node " + n.name + " (" + n.kind + ")"));
    if (n.tex) {
      const m = html("div", undefined, "math");
      tex(m, n.nameTex + " = " + n.tex);
      box.appendChild(m);
    }
    const t = html("table");
    const row = (label, x) => {
      const tr = html("tr");
      tr.appendChild(html("td", label));
      tr.appendChild(html("td", fmt(x), "num"));
      t.appendChild(tr);
    };
    row("value", value[selected]);
    row("gradient", grad[selected]);
    box.appendChild(t);
    if (folded && members[selected] > 1) {
      const inside = nodes.filter((m, i) => m.group === selected && i !== selected);
      box.appendChild(html("p", "Drawn inside this box: " + inside.map((m) => m.name).join(", "),
        "note"));
    }
    const partials = edges.map((e, k) => [e, k]).filter(([e]) => e.target === selected && e.tex);
    if (partials.length) {
      box.appendChild(html("p", "Local partials:"));
      for (const [e, k] of partials) {
        const m = html("div", undefined, "math");
        const top = n.nameTex, arg = nodes[e.source].nameTex;
        tex(m, "\\frac{\\partial " + top + "}{\\partial " + arg + "} = " + e.tex +
          (local[k] === null ? "" : " = " + fmt(local[k])));
        box.appendChild(m);
      }
    }
  }

  function leavesPanel() {
    const box = $("leaves");
    box.appendChild(html("h2", "Inputs"));
    if (!data.editable) {
      box.appendChild(html("p", "Values cannot be edited here: " + data.whyNotEditable, "note"));
    }
    const t = html("table");
    nodes.forEach((n, i) => {
      if (n.tex) return;
      const tr = html("tr");
      tr.appendChild(html("td", n.name));
      const td = html("td");
      const input = document.createElement("input");
      input.type = "number";
      input.step = "any";
      input.className = "leaf";
      input.dataset.index = i;
      input.setAttribute("aria-label", n.name);
      input.value = value[i] === null ? "" : String(value[i]);
      input.disabled = !data.editable;
      input.addEventListener("change", recompute);
      td.appendChild(input);
      tr.appendChild(td);
      t.appendChild(tr);
    });
    box.appendChild(t);
  }

  function tablePanel() {
    const box = $("table");
    box.replaceChildren(html("h2", "Every node"));
    const t = html("table");
    t.id = "nodes";
    const head = html("tr");
    for (const h of ["node", "value", "gradient"]) head.appendChild(html("th", h));
    t.appendChild(head);
    nodes.forEach((n, i) => {
      const tr = html("tr");
      tr.dataset.name = n.name;
      tr.appendChild(html("td", n.name));
      tr.appendChild(html("td", fmt(value[i]), "num value"));
      tr.appendChild(html("td", fmt(grad[i]), "num gradient"));
      t.appendChild(tr);
    });
    box.appendChild(t);
    const m = html("div", undefined, "math");
    tex(m, data.gradientsTex);
    box.appendChild(m);
  }

  // ------------------------------------------------------------------ state -> page
  function paint() {
    const s = current ? steps[current - 1] : null;
    const here = s === null ? -1 : folded ? nodes[s.node].group : s.node;
    for (const key in boxes) {
      const i = Number(key), n = nodes[i], g = boxes[key];
      const seen = n.step !== null && n.step <= current; // its gradient is complete
      g.classList.toggle("current", i === here);
      g.classList.toggle("done", seen);
      g.classList.toggle("selected", selected === i);
      g.querySelector(".data").textContent = "data " + fmt(value[i]);
      g.querySelector(".grad").textContent = "grad " + (seen ? fmt(grad[i]) : "\u00b7");
    }
    for (const [path, ks] of lines) {
      const flows = s !== null && ks.some((k) => edges[k].target === s.node && edges[k].flows);
      path.classList.toggle("flow", flows);
    }
    $("stepinfo").textContent = current ? "step " + current + " of " + steps.length
      : "forward pass (" + steps.length + " steps)";
    $("prev").disabled = $("first").disabled = current === 0;
    $("next").disabled = $("last").disabled = current === steps.length;
    stepPanel();
    detailsPanel();
  }

  function go(k) {
    current = Math.max(0, Math.min(steps.length, k));
    paint();
    const box = svg.querySelector("g.current");
    if (box) box.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  function select(i) {
    selected = selected === i ? null : i;
    paint();
  }

  // values from the emitted formulas, then the backward pass as the sweep runs it:
  // every step adds gradient * local partial into each argument, output first
  function recompute() {
    if (!data.editable) return;
    const x = new Array(nodes.length).fill(null);
    for (const input of document.querySelectorAll("input.leaf")) {
      if (input.value.trim() === "" || !Number.isFinite(Number(input.value))) return; // wait
      x[Number(input.dataset.index)] = Number(input.value);
    }
    const [v, l] = symgradForward(x);
    value = v.map((a) => (Number.isFinite(a) ? a : null));
    local = l;
    grad = nodes.map(() => null);
    grad[data.output] = 1;
    for (const s of steps) {
      const g = grad[s.node];
      edges.forEach((e, k) => {
        if (e.target !== s.node || !e.flows) return;
        const add = g === null || l[k] === null ? null : g * l[k];
        grad[e.source] = add === null ? null : (grad[e.source] === null ? 0 : grad[e.source]) + add;
      });
    }
    nodes.forEach((n, i) => {
      if (n.step === null) grad[i] = null;
    });
    tablePanel();
    paint();
  }

  $("fold").addEventListener("click", () => {
    folded = !folded;
    drawGraph();
    paint();
  });
  $("first").addEventListener("click", () => go(0));
  $("prev").addEventListener("click", () => go(current - 1));
  $("next").addEventListener("click", () => go(current + 1));
  $("last").addEventListener("click", () => go(steps.length));
  document.addEventListener("keydown", (ev) => {
    if (ev.target instanceof HTMLInputElement) return;
    const moves = { ArrowRight: current + 1, ArrowLeft: current - 1, Home: 0, End: steps.length };
    if (ev.key in moves) {
      ev.preventDefault();
      go(moves[ev.key]);
    }
  });

  drawGraph();
  leavesPanel();
  tablePanel();
  paint();
})();
