"use strict";
(function () {
  const D = JSON.parse(document.getElementById("audit-data").textContent);
  const R = D.rows;
  const PAGE = 200;
  const PALETTE = ["#2f6fdf", "#e08a1e", "#0f8a6a", "#d1453b", "#7b4fc9", "#8c6d31", "#d45fa9", "#5d6677",
    "#9bb31f", "#17a2b8", "#a33b6b", "#3b7a57", "#b5651d", "#4b4fa8", "#c0392b", "#16a085", "#7f8c8d",
    "#d35400", "#2c3e50", "#8e44ad"];
  const FINDING = { "label issue": "#d1453b", "duplicate": "#e08a1e", "outlier": "#7b4fc9", "none": "#c3c8d2" };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }
  function fmt(x, digits) { return x === null || x === undefined ? "" : Number(x).toFixed(digits); }
  function item(r, caption) {
    const box = el("span", { class: "item" });
    if (R.thumb[r]) {
      box.append(el("img", { class: "thumb", src: R.thumb[r], alt: String(R.label[r] ?? ""), title: R.id[r] }));
    } else if (R.text[r]) {
      box.append(el("span", { class: "text" }, R.text[r]));
    } else {
      box.append(el("span", { class: "text" }, R.path[r] || R.id[r]));
    }
    if (caption !== undefined) box.append(el("span", {}, caption));
    return box;
  }
  function tag(split) { return el("span", { class: "tag " + (split || "") }, split || "none"); }
  function where(r) { return el("td", { class: "id" }, R.path[r] || R.id[r]); }

  // A sortable table: columns [{name, key(row) -> sortable value, cell(row) -> td, numeric}]
  function table(host, columns, rows, initial, total) {
    if (!rows.length) { host.append(el("p", { class: "empty" }, "Nothing flagged.")); return; }
    if (total > rows.length) {
      host.append(el("p", { class: "about" }, "The " + rows.length.toLocaleString() + " most likely of " +
        total.toLocaleString() + " on this page; the Parquet table beside it holds them all."));
    }
    const head = el("tr");
    const body = el("tbody");
    const more = el("button", { class: "more" }, "");
    let order = rows.slice(), shown = PAGE, sortedBy = null, direction = 1;
    function draw() {
      body.replaceChildren();
      for (const row of order.slice(0, shown)) {
        const tr = el("tr");
        for (const c of columns) tr.append(c.cell(row));
        body.append(tr);
      }
      more.textContent = "Show " + Math.min(PAGE, order.length - shown) + " more of " + (order.length - shown);
      more.style.display = order.length > shown ? "" : "none";
    }
    columns.forEach((c, i) => {
      const th = el("th", c.key ? { class: "sortable", "aria-sort": "none", tabindex: "0" } : {}, c.name);
      if (c.key) {
        const sort = () => {
          direction = sortedBy === i ? -direction : (c.numeric ? -1 : 1);
          sortedBy = i;
          order = rows.slice().sort((a, b) => {
            const x = c.key(a), y = c.key(b);
            return (x < y ? -1 : x > y ? 1 : 0) * direction;
          });
          head.querySelectorAll("th").forEach((h) => h.setAttribute("aria-sort", "none"));
          th.setAttribute("aria-sort", direction > 0 ? "ascending" : "descending");
          draw();
        };
        th.addEventListener("click", sort);
        th.addEventListener("keydown", (e) => { if (e.key === "Enter") sort(); });
      }
      head.append(th);
    });
    more.addEventListener("click", () => { shown += PAGE; draw(); });
    host.append(el("table", {}, el("thead", {}, head), body), more);
    if (initial !== undefined) head.children[initial].setAttribute("aria-sort", "descending");
    draw();
  }
  function td(value, cls) { return el("td", cls ? { class: cls } : {}, value); }
  function tdNode(...nodes) { return el("td", {}, ...nodes); }

  // summary
  const S = D.summary;
  const cards = document.getElementById("cards");
  function card(name, value, note, wide) {
    cards.append(el("div", { class: "card" + (wide ? " wide" : "") }, el("div", { class: "name" }, name),
      el("div", { class: "value" }, value), el("div", { class: "note" }, note || "")));
  }
  if (S.score !== null && S.score !== undefined) {
    card("test " + S.metric + " (" + S.head + ")", fmt(S.score, 4),
      S.leaked ? fmt(S.score_without_leaked, 4) + " without the " + S.leaked +
        " test images that have a near-copy in train/val" : "no test image has a near-copy in train/val", true);
  }
  card("images", S.rows.toLocaleString(), S.classes + " classes");
  card("duplicate pairs", S.duplicates, S.cross_split + " across splits");
  card("likely label errors", S.label_issues, "confident learning, out of sample");
  card("outliers", S.outliers, "far from every neighbour");
  card("misclassified test", S.misclassified, "with their nearest train images");

  // duplicates
  table(document.getElementById("dups-table"), [
    { name: "pair", cell: (d) => tdNode(item(d[0], R.label[d[0]] ?? ""), item(d[1], R.label[d[1]] ?? "")) },
    { name: "cosine", key: (d) => d[2], numeric: true, cell: (d) => td(fmt(d[2], 4), "num") },
    { name: "hash bits", key: (d) => (d[3] < 0 ? 99 : d[3]), numeric: true,
      cell: (d) => td(d[3] < 0 ? "" : d[3], "num") },
    { name: "pixel correlation", key: (d) => (d[4] === null ? -2 : d[4]), numeric: true,
      cell: (d) => td(d[4] === null ? "" : fmt(d[4], 4), "num") },
    { name: "found by", key: (d) => d[5], cell: (d) => td(d[5]) },
    { name: "splits", key: (d) => R.split[d[0]] + R.split[d[1]],
      cell: (d) => tdNode(tag(R.split[d[0]]), " ", tag(R.split[d[1]])) },
    { name: "where", cell: (d) => el("td", { class: "id" }, (R.path[d[0]] || R.id[d[0]]) + "\n" +
      (R.path[d[1]] || R.id[d[1]])) },
  ], D.duplicates, 1, D.summary.duplicates);

  // label issues
  table(document.getElementById("labels-table"), [
    { name: "image", cell: (d) => tdNode(item(d[0])) },
    { name: "label", key: (d) => String(R.label[d[0]]), cell: (d) => el("td", { class: "label" }, R.label[d[0]]) },
    { name: "suggested", key: (d) => d[1], cell: (d) => el("td", { class: "label" }, d[1]) },
    { name: "score", key: (d) => d[2], numeric: true, cell: (d) => td(fmt(d[2], 3), "num") },
    { name: "split", key: (d) => R.split[d[0]], cell: (d) => tdNode(tag(R.split[d[0]])) },
    { name: "where", cell: (d) => where(d[0]) },
  ], D.label_issues, 3, D.summary.label_issues);

  // outliers
  table(document.getElementById("outliers-table"), [
    { name: "image", cell: (d) => tdNode(item(d[0])) },
    { name: "label", key: (d) => String(R.label[d[0]]), cell: (d) => el("td", { class: "label" }, R.label[d[0]] ?? "") },
    { name: "score", key: (d) => d[1], numeric: true, cell: (d) => td(fmt(d[1], 4), "num") },
    { name: "split", key: (d) => R.split[d[0]], cell: (d) => tdNode(tag(R.split[d[0]])) },
    { name: "where", cell: (d) => where(d[0]) },
  ], D.outliers, 2, D.summary.outliers);

  // confused pairs
  table(document.getElementById("confused-table"), [
    { name: "classes", key: (d) => d.a + d.b, cell: (d) => el("td", { class: "label" }, d.a + " \u2194 " + d.b) },
    { name: "mistakes", key: (d) => d.count, numeric: true, cell: (d) => td(d.count, "num") },
    { name: "a as b", key: (d) => d.a_as_b, numeric: true, cell: (d) => td(d.a_as_b, "num") },
    { name: "b as a", key: (d) => d.b_as_a, numeric: true, cell: (d) => td(d.b_as_a, "num") },
    { name: "examples (labelled \u2192 predicted)",
      cell: (d) => tdNode(...d.rows.map((r) => item(r[0], R.label[r[0]] + " \u2192 " + r[1]))) },
  ], D.confused, 1);

  // misclassified test images
  table(document.getElementById("wrong-table"), [
    { name: "test image", cell: (d) => tdNode(item(d.row)) },
    { name: "label", key: (d) => String(R.label[d.row]), cell: (d) => el("td", { class: "label" }, R.label[d.row]) },
    { name: "predicted", key: (d) => d.predicted, cell: (d) => el("td", { class: "label" }, d.predicted) },
    { name: "confidence", key: (d) => d.confidence, numeric: true, cell: (d) => td(fmt(d.confidence, 3), "num") },
    { name: "nearest train images (label, cosine)",
      cell: (d) => tdNode(...d.neighbours.map((n) => item(n[0], R.label[n[0]] + " \u00b7 " + fmt(n[1], 3)))) },
  ], D.misclassified, 3);

  // the map
  const M = D.map;
  const canvas = document.getElementById("map");
  const tip = document.getElementById("tip");
  const colourBy = document.getElementById("colour-by");
  const legend = document.getElementById("legend");
  const flags = {};
  for (const d of D.label_issues) flags[d[0]] = "label issue";
  for (const d of D.outliers) flags[d[0]] = flags[d[0]] || "outlier";
  for (const d of D.duplicates) { flags[d[0]] = flags[d[0]] || "duplicate"; flags[d[1]] = flags[d[1]] || "duplicate"; }
  const classes = Array.from(new Set(M.rows.map((r) => String(R.label[r] ?? "(none)")))).sort();
  const classColour = Object.fromEntries(classes.map((c, i) => [c, PALETTE[i % PALETTE.length]]));
  let points = [];
  function colourOf(r) {
    return colourBy.value === "class" ? classColour[String(R.label[r] ?? "(none)")] : FINDING[flags[r] || "none"];
  }
  function drawMap() {
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const pad = 14, radius = M.rows.length > 2000 ? 2.2 : 3.2;
    points = M.rows.map((r, i) => [pad + M.x[i] * (w - 2 * pad), pad + (1 - M.y[i]) * (h - 2 * pad), r]);
    const ordered = colourBy.value === "class" ? points : points.slice().sort((a, b) => (flags[a[2]] ? 1 : 0) - (flags[b[2]] ? 1 : 0));
    for (const [x, y, r] of ordered) {
      ctx.beginPath(); ctx.arc(x, y, flags[r] && colourBy.value !== "class" ? radius + 1.5 : radius, 0, 2 * Math.PI);
      ctx.fillStyle = colourOf(r); ctx.globalAlpha = 0.85; ctx.fill();
    }
    ctx.globalAlpha = 1;
    legend.replaceChildren();
    const entries = colourBy.value === "class" ? classes.slice(0, 30).map((c) => [c, classColour[c]]) : Object.entries(FINDING);
    for (const [name, colour] of entries) {
      const s = el("span", {}, name); s.style.setProperty("--c", colour); legend.append(s);
    }
  }
  canvas.addEventListener("mousemove", (e) => {
    const box = canvas.getBoundingClientRect();
    const mx = e.clientX - box.left, my = e.clientY - box.top;
    let best = null, bestD = 64;
    for (const p of points) {
      const d = (p[0] - mx) ** 2 + (p[1] - my) ** 2;
      if (d < bestD) { bestD = d; best = p; }
    }
    if (!best) { tip.style.display = "none"; return; }
    const r = best[2];
    tip.replaceChildren(item(r), el("div", { class: "label" }, String(R.label[r] ?? "")),
      el("div", {}, (R.split[r] || "") + (flags[r] ? " \u00b7 " + flags[r] : "")),
      el("div", { class: "id" }, R.path[r] || R.id[r]));
    tip.style.display = "block";
    tip.style.left = Math.min(mx + 14, canvas.clientWidth - 200) + "px";
    tip.style.top = (my + 14) + "px";
  });
  canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  colourBy.addEventListener("change", drawMap);
  window.addEventListener("resize", drawMap);
  document.getElementById("map-note").textContent = M.rows.length.toLocaleString() + " of " +
    S.rows.toLocaleString() + " images, " + M.method + " (seed " + M.seed + "); point at one to see it";
  drawMap();
  document.body.dataset.ready = "true";
})();
