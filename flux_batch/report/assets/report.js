// flux-batch report: renders the grid, the table and the image viewer. The page embeds an index (stages,
// their values, the list of data parts); the rows are in small script files under .report/ that are
// loaded when a view needs them (a <script src> works from file://, where fetch() of a local file does
// not). Only the visible page of the grid or the table is in the DOM, and thumbnails load lazily, so
// 100,000 images stay responsive.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("report-data").textContent);
  const FAILED = new Set(["failed", "canceled", "aborted", "expired", "skipped", "download_failed"]);
  const UNFINISHED = new Set(["pending", "submitted", "running"]);
  const GRID_MAX_COLS = 16;          // columns per grid page; more page sideways
  const GRID_IMAGES_PER_PAGE = 240;  // rows per grid page follow from this
  const TABLE_PAGE = 100;
  const ALL = "\u0000all";

  const stages = DATA.stages;
  const stageModel = new Map(stages.map(function (s) { return [s.id, s.model]; }));
  const rows = new Array(DATA.rows);  // every row, by its number; filled as parts load
  const stageRows = new Map(stages.map(function (s) { return [s.id, new Array(s.count)]; }));
  const byJob = new Map();
  const byFile = new Map();

  // ---- loading the data parts ---------------------------------------------------------------------
  const loads = {};    // "p3" / "d3" -> a promise resolved when that part's script has run
  const arrived = {};  // the same keys -> the resolver
  const have = {};     // the same keys -> true once the part's rows are in
  window.fluxReport = {
    part: function (k, values) {
      const part = DATA.parts[k];
      const list = stageRows.get(part.stage);
      values.forEach(function (v, i) {
        const row = { index: part.base + i, part: k };
        DATA.fields.forEach(function (field, f) { row[field] = v[f]; });
        row.prompt = row.input.prompt === undefined ? "" : row.input.prompt;
        row.seed = row.input.seed === undefined ? null : row.input.seed;
        row.model = row.vars.model || stageModel.get(row.stage);  // a model axis: each row its own
        rows[row.index] = row;
        list[part.offset + i] = row;
        if (!byJob.has(row.job_id)) byJob.set(row.job_id, row);
        if (row.file_name) byFile.set(row.file_name, row);
      });
      have["p" + k] = true;
      if (arrived["p" + k]) arrived["p" + k]();
    },
    detail: function (k, values) {
      const base = DATA.parts[k].base;
      values.forEach(function (v, i) {
        DATA.detail_fields.forEach(function (field, f) { rows[base + i][field] = v[f]; });
      });
      have["d" + k] = true;
      if (arrived["d" + k]) arrived["d" + k]();
    },
  };
  function load(key, file) {
    if (!loads[key]) {
      loads[key] = new Promise(function (resolve, reject) {
        arrived[key] = resolve;
        const script = document.createElement("script");
        script.src = src(DATA.dir + file);
        script.onerror = function () { delete loads[key]; reject(new Error("cannot load " + DATA.dir + file)); };
        document.head.append(script);
      });
    }
    return loads[key];
  }
  // Loads parts (their rows, and their details too when asked), telling `progress` how far it got.
  function loadParts(ks, details, progress) {
    let done = 0;
    const wanted = ks.filter(function (k) { return !loads["p" + k] || (details && !loads["d" + k]); });
    if (progress && wanted.length) progress(0, wanted.length);
    return Promise.all(ks.map(function (k) {
      const both = [load("p" + k, DATA.parts[k].src)];
      if (details) both.push(both[0].then(function () { return load("d" + k, DATA.parts[k].detail); }));
      return Promise.all(both).then(function () { if (progress && wanted.indexOf(k) >= 0) progress(++done, wanted.length); });
    }));
  }
  function stageParts(ids) {
    const out = [];
    stages.forEach(function (s) { if (ids.indexOf(s.id) >= 0) out.push.apply(out, s.parts); });
    return out;
  }
  // Calls draw() at once when the parts are here (so a view redraws synchronously), else after loading
  // them, saying so in the element `where`.
  function withParts(ks, details, where, draw) {
    if (ks.every(function (k) { return have["p" + k] && (!details || have["d" + k]); })) { draw(); return; }
    const box = $(where);
    const hidden = box.hidden;
    loadParts(ks, details, function (done, total) {
      box.hidden = false;
      box.textContent = "Loading the data: part " + done + " of " + total + "…";
    }).then(function () { box.textContent = ""; box.hidden = hidden; draw(); }, function (err) {
      box.hidden = false;
      box.textContent = String(err.message || err);
      ready();
    });
  }
  function ready() { document.body.dataset.ready = "1"; }

  // The upstream image shown beside an edit: the one its image input names (a job with several outputs
  // feeds each to its own edit), else the first image of the first upstream job ("a;b" lists them all).
  function upstreamOf(row) {
    if (!row.upstream_job_id) return undefined;
    for (const name of row.image_inputs) {
      const found = byFile.get(row.input[name]);
      if (found) return found;
    }
    return byJob.get(row.upstream_job_id.split(";")[0]);
  }

  const state = {
    view: "grid",
    stage: stages.length ? stages[0].id : "",
    grids: {},
    table: { stage: ALL, status: ALL, query: "", sort: null, dir: 1, page: 0 },
    viewer: { list: [], pos: 0 },
  };
  stages.forEach(function (s) {
    const fixed = {};
    s.vars.forEach(function (v) {
      if (v !== s.rows && v !== s.cols && v !== s.group && s.values[v].length) fixed[v] = v in s.fixed ? s.fixed[v] : ALL;
    });
    state.grids[s.id] = { rows: s.rows, cols: s.cols, group: s.group, fixed: fixed, rowPage: 0, colPage: 0 };
  });

  // ---- small helpers ----------------------------------------------------------------------------------
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      const v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    });
    (children || []).forEach(function (c) { if (c !== null && c !== undefined) node.append(c); });
    return node;
  }
  function src(path) { return path.split("/").map(encodeURIComponent).join("/"); }
  function money(x) { return x === null || x === undefined ? "" : "$" + Number(x).toFixed(x < 0.1 ? 3 : 2); }
  function seconds(x) { return x === null || x === undefined ? "" : Number(x).toFixed(x < 10 ? 2 : 1); }
  function show(v) {
    if (v === null || v === undefined || v === "") return "";
    return typeof v === "object" ? JSON.stringify(v) : String(v);
  }
  function option(value, label, selected) { return el("option", { value: value, text: label, selected: selected }); }
  function matchesFixed(row, fixed) {
    return Object.keys(fixed).every(function (k) { return fixed[k] === ALL || row.vars[k] === fixed[k]; });
  }
  function statusLabel(row) { return row.status === "succeeded" && !row.thumb ? "missing" : row.status; }

  // ---- tabs -------------------------------------------------------------------------------------------
  function renderTabs() {
    ["grid", "table"].forEach(function (view) {
      $("tab-" + view).setAttribute("aria-selected", String(state.view === view));
      $(view + "-view").hidden = state.view !== view;
    });
    const box = $("stage-tabs");
    box.replaceChildren.apply(box, stages.map(function (s) {
      return el("button", {
        role: "tab", "data-stage": s.id, "aria-selected": String(s.id === state.stage), title: s.model,
        onclick: function () { state.stage = s.id; render(); },
      }, [s.id, el("span", { class: "count", text: String(stageRows.get(s.id).length) })]);
    }));
    box.hidden = state.view !== "grid";
  }

  // ---- grid -------------------------------------------------------------------------------------------
  function axisSelect(id, label, value, onchange) {
    const s = stages.find(function (x) { return x.id === state.stage; });
    const select = el("select", { id: id, onchange: function (e) { onchange(e.target.value || null); } },
      [option("", "(none)", !value)].concat(s.vars.map(function (v) {
        return option(v, v + " (" + s.values[v].length + ")", v === value);
      })));
    return el("label", null, [label, select]);
  }

  function setAxis(g, which, value) {
    const old = g[which];
    ["rows", "cols", "group"].forEach(function (other) {  // picking another axis's variable swaps them
      if (other !== which && value && value === g[other]) g[other] = old;
    });
    g[which] = value;
    const s = stages.find(function (x) { return x.id === state.stage; });
    const fixed = {};
    s.vars.forEach(function (v) {
      if (v === g.rows || v === g.cols || v === g.group || !s.values[v].length) return;
      fixed[v] = v in g.fixed ? g.fixed[v] : s.values[v][0];
    });
    g.fixed = fixed;
    g.rowPage = g.colPage = 0;
    renderGrid();
  }

  function renderGridControls(s, g) {
    const controls = [
      axisSelect("rows-axis", "Rows", g.rows, function (v) { setAxis(g, "rows", v); }),
      el("button", { class: "btn", id: "swap-axes", title: "Swap rows and columns", text: "⇄",
        onclick: function () { const r = g.rows; g.rows = g.cols; g.cols = r; g.rowPage = g.colPage = 0; renderGrid(); } }),
      axisSelect("cols-axis", "Columns", g.cols, function (v) { setAxis(g, "cols", v); }),
      axisSelect("group-axis", "Group", g.group, function (v) { setAxis(g, "group", v); }),
    ];
    const filters = Object.keys(g.fixed);
    if (filters.length) controls.push(el("span", { class: "sep" }));
    filters.forEach(function (v) {
      const select = el("select", { "data-var": v, class: "filter", onchange: function (e) {
        g.fixed[v] = e.target.value; g.rowPage = g.colPage = 0; renderGrid();
      } }, [option(ALL, "all " + s.values[v].length, g.fixed[v] === ALL)].concat(s.values[v].map(function (x) {
        return option(x, x === "" ? "(none)" : x, g.fixed[v] === x);
      })));
      controls.push(el("label", null, [v, select]));
    });
    controls.push(el("span", { class: "sep" }));
    const size = el("input", { type: "range", min: 72, max: 256, step: 8, value: parseInt(getComputedStyle(document.documentElement).getPropertyValue("--thumb"), 10) || 160,
      oninput: function (e) { document.documentElement.style.setProperty("--thumb", e.target.value + "px"); } });
    controls.push(el("label", null, ["Size", size]));
    if (s.sheet && !g.group) controls.push(el("a", { class: "btn", id: "sheet-link", href: src(s.sheet), target: "_blank", text: "Contact sheet (PNG)" }));
    $("grid-controls").replaceChildren.apply($("grid-controls"), controls);
  }

  function pagerControls(what, page, pages, onpage, perPage, total) {
    if (pages <= 1) return [];
    const last = Math.min(total, (page + 1) * perPage);
    return [
      el("button", { class: "btn", text: "‹", disabled: page === 0, "data-pager": what + "-prev", onclick: function () { onpage(page - 1); } }),
      el("span", { class: "what", text: what + " " + (page * perPage + 1).toLocaleString() + "–" + last.toLocaleString() + " of " + total.toLocaleString() }),
      el("button", { class: "btn", text: "›", disabled: page >= pages - 1, "data-pager": what + "-next", onclick: function () { onpage(page + 1); } }),
    ];
  }

  function renderGrid() {
    renderTabs();
    const s = stages.find(function (x) { return x.id === state.stage; });
    const table = $("grid");
    if (!s) {
      table.parentNode.hidden = true;
      $("grid-empty").hidden = false;
      $("grid-empty").textContent = "This run has no jobs yet.";
      ready();
      return;
    }
    renderGridControls(s, state.grids[s.id]);
    withParts(s.parts, false, "grid-empty", drawGrid);
  }

  function drawGrid() {
    const s = stages.find(function (x) { return x.id === state.stage; });
    if (state.view !== "grid") return;
    const table = $("grid");
    const g = state.grids[s.id];
    // With a grouping axis, the rows are those of each of its values in turn, under a heading each.
    const rowValues = [];
    (g.group ? s.values[g.group] : [""]).forEach(function (gv) {
      (g.rows ? s.values[g.rows] : [""]).forEach(function (rv) { rowValues.push([gv, rv]); });
    });
    const colValues = g.cols ? s.values[g.cols] : [""];
    const cells = new Map();
    let shown = 0;
    stageRows.get(s.id).forEach(function (r) {
      if (!matchesFixed(r, g.fixed)) return;
      const key = (g.group ? r.vars[g.group] : "") + "\u0000" + (g.rows ? r.vars[g.rows] : "") + "\u0000" + (g.cols ? r.vars[g.cols] : "");
      if (!cells.has(key)) cells.set(key, []);
      cells.get(key).push(r);
      shown += 1;
    });
    const colPages = Math.ceil(colValues.length / GRID_MAX_COLS);
    g.colPage = Math.min(g.colPage, colPages - 1);
    const cols = colValues.slice(g.colPage * GRID_MAX_COLS, (g.colPage + 1) * GRID_MAX_COLS);
    const perCell = Math.max(1, Math.ceil(shown / Math.max(1, cells.size)));
    const rowsPerPage = Math.max(1, Math.floor(GRID_IMAGES_PER_PAGE / (cols.length * perCell)));
    const rowPages = Math.ceil(rowValues.length / rowsPerPage);
    g.rowPage = Math.min(g.rowPage, rowPages - 1);
    const pageRows = rowValues.slice(g.rowPage * rowsPerPage, (g.rowPage + 1) * rowsPerPage);

    const pager = pagerControls("Rows", g.rowPage, rowPages, function (p) { g.rowPage = p; renderGrid(); }, rowsPerPage, rowValues.length)
      .concat(pagerControls("Columns", g.colPage, colPages, function (p) { g.colPage = p; renderGrid(); }, GRID_MAX_COLS, colValues.length));
    $("grid-pager").replaceChildren.apply($("grid-pager"), pager);

    const chain = s.needs.length > 0;
    const order = [];
    // Header rows and the row-label column exist only for the axes that are set.
    const head = [];
    if (g.cols) {
      head.push(el("tr", { class: "axis-row" }, [
        g.rows ? el("th", { class: "corner", rowspan: 2, text: g.rows + " ↓" }) : null,
        el("th", { class: "axis", colspan: cols.length, text: g.cols + " →" }),
      ]));
      head.push(el("tr", { class: "value-row" }, cols.map(function (c) {
        return el("th", { class: "col-label", "data-value": c, text: c === "" ? "(none)" : c });
      })));
    } else if (g.rows) {
      head.push(el("tr", { class: "axis-row" }, [el("th", { class: "corner", text: g.rows + " ↓" }), el("th")]));
    }
    const body = [];
    pageRows.forEach(function (entry, i) {
      const gv = entry[0], rv = entry[1];
      if (g.group && (i === 0 || pageRows[i - 1][0] !== gv)) {
        const k = s.values[g.group].indexOf(gv);
        const sheet = s.group === g.group && s.sheets[k] ? el("a", { class: "btn", href: src(s.sheets[k]), target: "_blank", text: "Contact sheet (PNG)" }) : null;
        body.push(el("tr", { class: "group-row" }, [el("th", { class: "group-label", colspan: cols.length + (g.rows ? 1 : 0), "data-value": gv },
          [g.group + " = " + (gv === "" ? "(none)" : gv) + " ", sheet])]));
      }
      const label = g.rows ? el("th", { class: "row-label", "data-value": rv, text: rv === "" ? "(none)" : rv }) : null;
      body.push(el("tr", null, [label].concat(cols.map(function (cv) {
        const found = cells.get(gv + "\u0000" + rv + "\u0000" + cv) || [];
        found.forEach(function (r) { order.push(r.index); });
        return el("td", null, [el("div", { class: "cell" }, found.map(function (r) { return shot(r, chain, order); }))]);
      }))));
    });
    table.replaceChildren(el("thead", null, head), el("tbody", null, body));
    table.parentNode.hidden = !shown;
    $("grid-empty").hidden = shown > 0;
    $("grid-empty").textContent = stageRows.get(s.id).length ? "No job matches these filters." : "This stage has no jobs yet.";
    ready();
  }

  // The upstream image of a chain job, from its thumbnail (the full image if that is missing).
  function upstreamImage(row) {
    const full = row.input[row.image_inputs[0]];
    return el("img", { src: src(row.up_thumb), alt: "upstream image", loading: "lazy", decoding: "async",
      onerror: function (e) { if (full && e.target.dataset.fallback !== "1") { e.target.dataset.fallback = "1"; e.target.src = src(full); } } });
  }

  function openUpstream(row) {
    const s = stages.find(function (x) { return x.id === row.stage; });
    withParts(stageParts(s.needs), false, state.view === "grid" ? "grid-empty" : "table-loading", function () {
      const up = upstreamOf(row);
      if (up) openViewer([up.index], 0);
    });
  }

  function thumbImage(row, alt) {
    return el("img", { src: src(row.thumb || row.file_name), alt: alt, loading: "lazy", decoding: "async",
      onerror: function (e) { if (row.thumb && e.target.dataset.fallback !== "1") { e.target.dataset.fallback = "1"; e.target.src = src(row.file_name); } } });
  }

  function describe(row) {
    return Object.keys(row.vars).map(function (k) { return k + "=" + row.vars[k]; }).join(", ");
  }

  function shot(row, chain, order) {
    const open = function (e) { if (e.shiftKey && row.file_name) togglePick(row); else openViewer(order, order.indexOf(row.index)); };
    let main;
    if (row.status === "succeeded" && row.file_name) {
      main = el("button", { class: "shot" + (picks.has(pickKey(row)) ? " picked" : ""), "data-job": row.job_id, "data-index": row.index,
        title: describe(row) + "\nseed " + row.seed + "\np or Shift+click: pick", onclick: open },
        [thumbImage(row, describe(row))]);
    } else {
      const status = statusLabel(row);
      main = el("button", { class: "shot tile " + status, "data-job": row.job_id, title: row.error || status, onclick: open },
        [el("b", { text: status }), el("span", { text: row.error || (UNFINISHED.has(status) ? "not finished yet" : "") })]);
    }
    if (row.cmp) {  // report --compare: the other run's image for the same variables, beside this one
      const other = el("a", { class: "shot cmp", href: src(row.cmp), target: "_blank", title: "the same variables in " + DATA.compare },
        [el("img", { src: src(row.cmp), alt: "other run", loading: "lazy", decoding: "async" })]);
      main = el("div", { class: "pair compare" }, [main, el("span", { class: "arrow", text: "|" }), other]);
    }
    if (!chain) return main;
    const upstream = row.up_thumb
      ? el("button", { class: "shot up", title: "upstream image", onclick: function () { openUpstream(row); } }, [upstreamImage(row)])
      : null;
    return el("div", { class: "pair" }, [upstream, upstream ? el("span", { class: "arrow", text: "→" }) : null, main]);
  }

  // ---- table ------------------------------------------------------------------------------------------
  function tableColumns(selected) {
    const vars = [];
    stages.forEach(function (s) {
      if (state.table.stage !== ALL && s.id !== state.table.stage) return;
      s.vars.forEach(function (v) { if (vars.indexOf(v) < 0) vars.push(v); });
    });
    // model inputs that differ between the selected jobs (the rest are the same for all: see the viewer)
    const seen = {};
    selected.forEach(function (r) {
      Object.keys(r.input).forEach(function (k) {
        if (k === "prompt" || k === "seed" || r.image_inputs.indexOf(k) >= 0 || vars.indexOf(k) >= 0) return;
        (seen[k] = seen[k] || new Set()).add(show(r.input[k]));
      });
    });
    const inputs = Object.keys(seen).filter(function (k) { return seen[k].size > 1; });
    const columns = [
      { key: "thumb", label: "", cls: "thumb", get: function () { return ""; }, sortable: false },
      { key: "stage", label: "stage", get: function (r) { return r.stage; } },
      { key: "status", label: "status", get: function (r) { return statusLabel(r); } },
      { key: "prompt", label: "prompt", cls: "prompt", get: function (r) { return r.prompt; } },
    ];
    vars.forEach(function (v) { columns.push({ key: "var:" + v, label: v, get: function (r) { return v in r.vars ? r.vars[v] : ""; } }); });
    inputs.forEach(function (k) { columns.push({ key: "in:" + k, label: k, get: function (r) { return show(r.input[k]); } }); });
    columns.push(
      { key: "seed", label: "seed", cls: "num", get: function (r) { return r.seed; } },
      { key: "cost", label: "cost", cls: "num", get: function (r) { return r.cost_usd; }, fmt: money },
      { key: "time", label: "time s", cls: "num", get: function (r) { return r.predict_time; }, fmt: seconds },
      { key: "attempts", label: "tries", cls: "num", get: function (r) { return r.attempts; } },
      { key: "flags", label: "flags", cls: "flags", get: function (r) { return (r.flags || "").replace(/_/g, " ").replace(/;/g, ", "); } },
      { key: "error", label: "error", cls: "error", get: function (r) { return r.error; } }
    );
    return columns;
  }

  function isEmpty(v) { return v === null || v === undefined || v === ""; }
  function compare(a, b) {
    const ea = isEmpty(a), eb = isEmpty(b);
    if (ea || eb) return ea === eb ? 0 : ea ? 1 : -1;
    const na = Number(a), nb = Number(b);
    if (!isNaN(na) && !isNaN(nb)) return na - nb;
    return String(a).localeCompare(String(b), undefined, { numeric: true });
  }

  function filteredRows() {
    const t = state.table;
    const q = t.query.trim().toLowerCase();
    return rows.filter(function (r) {
      if (t.stage !== ALL && r.stage !== t.stage) return false;
      if (t.status === "failures" && !FAILED.has(r.status)) return false;
      if (t.status !== ALL && t.status !== "failures" && statusLabel(r) !== t.status) return false;
      if (!q) return true;
      const hay = [r.job_id, r.prompt, r.error, r.status, r.seed, (r.flags || "").replace(/_/g, " ")].concat(Object.values(r.vars)).join(" ").toLowerCase();
      return hay.indexOf(q) >= 0;
    });
  }

  function renderTableControls() {
    const t = state.table;
    const counts = {};
    rows.forEach(function (r) { const s = statusLabel(r); counts[s] = (counts[s] || 0) + 1; });
    const failures = rows.filter(function (r) { return FAILED.has(r.status); }).length;
    const stageSelect = el("select", { id: "table-stage", onchange: function (e) { t.stage = e.target.value; t.page = 0; renderTable(); } },
      [option(ALL, "all stages", t.stage === ALL)].concat(stages.map(function (s) { return option(s.id, s.id, t.stage === s.id); })));
    const statusSelect = el("select", { id: "table-status", onchange: function (e) { t.status = e.target.value; t.page = 0; renderTable(); } },
      [option(ALL, "all statuses", t.status === ALL), option("failures", "failures only (" + failures + ")", t.status === "failures")]
        .concat(Object.keys(counts).sort().map(function (s) { return option(s, s + " (" + counts[s] + ")", t.status === s); })));
    let timer = null;
    const search = el("input", { type: "search", id: "table-search", placeholder: "prompt, value, job id, error…", value: t.query,
      oninput: function (e) { clearTimeout(timer); timer = setTimeout(function () { t.query = e.target.value; t.page = 0; renderTable(false); }, 150); } });
    $("table-controls").replaceChildren(
      el("label", null, ["Stage", stageSelect]), el("label", null, ["Status", statusSelect]), el("label", null, ["Search", search]),
      el("span", { id: "table-count", class: "pager" }));
  }

  function renderTable(withControls) {
    renderTabs();
    const t = state.table;
    const ks = t.stage === ALL ? DATA.parts.map(function (p, k) { return k; }) : stageParts([t.stage]);
    withParts(ks, false, "table-loading", function () {
      if (state.view !== "table") return;
      if (withControls !== false || !$("table-count")) renderTableControls();
      drawTable();
    });
  }

  function drawTable() {
    const t = state.table;
    const selected = filteredRows();
    const columns = tableColumns(selected);
    const sortCol = columns.find(function (c) { return c.key === t.sort; });
    if (sortCol) selected.sort(function (a, b) {
      const x = sortCol.get(a), y = sortCol.get(b);
      return isEmpty(x) || isEmpty(y) ? compare(x, y) : compare(x, y) * t.dir;  // empty cells stay last
    });
    const pages = Math.max(1, Math.ceil(selected.length / TABLE_PAGE));
    t.page = Math.min(t.page, pages - 1);
    const page = selected.slice(t.page * TABLE_PAGE, (t.page + 1) * TABLE_PAGE);
    const order = selected.map(function (r) { return r.index; });
    const head = el("tr", null, columns.map(function (c) {
      return el("th", { "data-key": c.key, "aria-sort": t.sort === c.key ? (t.dir > 0 ? "ascending" : "descending") : null, text: c.label,
        onclick: c.sortable === false ? null : function () { if (t.sort === c.key) t.dir = -t.dir; else { t.sort = c.key; t.dir = 1; } renderTable(false); } });
    }));
    const body = page.map(function (r, i) {
      return el("tr", { "data-job": r.job_id, "data-status": r.status, onclick: function () { openViewer(order, t.page * TABLE_PAGE + i); } },
        columns.map(function (c) {
          if (c.key === "thumb") return el("td", { class: "thumb" }, [r.file_name ? thumbImage(r, "") : null]);
          if (c.key === "status") return el("td", null, [el("span", { class: "chip " + statusLabel(r), text: statusLabel(r) })]);
          const value = c.get(r);
          const text = c.fmt ? c.fmt(value) : show(value);
          return el("td", { class: c.cls || null, "data-key": c.key, title: text.length > 60 ? text : null }, [c.cls === "prompt" || c.cls === "error" ? el("div", { class: "clamp", text: text }) : text]);
        }));
    });
    $("jobs").replaceChildren(el("thead", null, [head]), el("tbody", null, body));
    $("table-count").textContent = selected.length.toLocaleString() + " of " + rows.length.toLocaleString() + " rows";
    $("table-pager").replaceChildren.apply($("table-pager"), pagerControls("Rows", t.page, pages, function (p) { t.page = p; renderTable(false); }, TABLE_PAGE, selected.length));
    ready();
  }

  // ---- viewer -----------------------------------------------------------------------------------------
  function openViewer(list, pos) {
    state.viewer = { list: list, pos: Math.max(0, pos) };
    renderViewer();
    const dialog = $("viewer");
    if (!dialog.open) dialog.showModal();
  }

  function paramRow(name, value, cls) {
    return el("tr", { class: cls || null }, [el("th", { text: name }), el("td", null, [value instanceof Node ? value : show(value)])]);
  }

  function renderViewer() {
    const v = state.viewer;
    const pos = v.pos;
    const row = rows[v.list[pos]];
    $("viewer-title").textContent = row.stage + " · " + describe(row);
    $("viewer-prev").disabled = pos <= 0;
    $("viewer-next").disabled = pos >= v.list.length - 1;
    $("viewer-pos").textContent = v.list.length > 1 ? (pos + 1) + " / " + v.list.length : "";
    drawPicture(row);
    // The one-job manifest, the prediction id and the times are in the row's detail part.
    withParts([row.part], true, "viewer-side", function () { if (state.viewer === v && v.pos === pos) drawDetails(row); });
  }

  function drawPicture(row) {
    const picture = [];
    if (row.status === "succeeded" && row.file_name) {
      picture.push(el("a", { href: src(row.file_name), target: "_blank", title: "open the full-size file" },
        [el("img", { class: "large", id: "viewer-img", src: src(row.file_name), alt: describe(row) })]));
    } else {
      picture.push(el("div", { class: "tile " + statusLabel(row) }, [el("b", { text: statusLabel(row) }), el("span", { text: row.error || "" })]));
    }
    if (row.cmp) {
      picture.push(el("div", { class: "upstream", id: "viewer-compare" }, [
        el("img", { src: src(row.cmp), alt: "other run" }), el("span", { text: "the same variables in " + DATA.compare }),
      ]));
    }
    if (row.upstream_job_id) {
      const up = upstreamOf(row);  // when its stage is loaded
      picture.push(el("div", { class: "upstream" }, [
        row.up_thumb ? el("img", { src: src(row.up_thumb), alt: "upstream image", title: "open the upstream job",
          onclick: function () { openUpstream(row); } }) : null,
        el("span", { text: "input: " + (up ? up.stage + " job " + up.job_id + " (" + describe(up) + ")" : "job " + row.upstream_job_id) }),
      ]));
    }
    $("viewer-picture").replaceChildren.apply($("viewer-picture"), picture);
  }

  function drawDetails(row) {
    const side = [];
    if (row.error) side.push(el("div", { class: "error", id: "viewer-error", text: row.status + ": " + row.error }));
    side.push(el("h3", { text: "Sweep values" }));
    side.push(el("table", { class: "params" }, Object.keys(row.vars).map(function (k) { return paramRow(k, row.vars[k], "var"); })));
    side.push(el("h3", { text: "Model input" }));
    side.push(el("table", { class: "params", id: "viewer-input" }, [paramRow("model", row.model)].concat(Object.keys(row.input).map(function (k) {
      return paramRow(k, row.input[k]);
    }))));
    side.push(el("h3", { text: "Job" }));
    side.push(el("table", { class: "params" }, [
      paramRow("status", el("span", { class: "chip " + statusLabel(row), text: statusLabel(row) })),
      paramRow("job id", row.job_id), paramRow("prediction", row.prediction_id), paramRow("file", row.file_name),
      paramRow("flags", (row.flags || "").replace(/_/g, " ").replace(/;/g, ", ")), paramRow("perceptual hash", row.phash),
      paramRow("size", row.width ? row.width + " × " + row.height : ""), paramRow("predict time", row.predict_time === null ? "" : seconds(row.predict_time) + " s"),
      paramRow("cost", money(row.cost_usd)), paramRow("attempts", row.attempts),
      paramRow("created", row.created_at), paramRow("completed", row.completed_at),
    ].filter(function (tr) { return tr.lastChild.textContent !== ""; })));
    if (row.file_name) side.unshift(el("button", { class: "btn" + (picks.has(pickKey(row)) ? " primary" : ""), id: "viewer-pick",
      text: picks.has(pickKey(row)) ? "★ Picked (p)" : "☆ Pick (p)", onclick: function () { togglePick(row); } }));
    const copied = el("span", { class: "copied", id: "viewer-copied" });
    side.push(el("h3", null, ["One-job manifest", copied,
      el("button", { class: "btn", id: "viewer-download", text: "Download", onclick: function () { download(row); } }),
      el("button", { class: "btn primary", id: "viewer-copy", text: "Copy", onclick: function () { copy(row.manifest, copied); } })]));
    side.push(el("pre", { class: "yaml", id: "viewer-yaml", text: row.manifest }));
    $("viewer-side").replaceChildren.apply($("viewer-side"), side);
  }

  function copy(text, feedback) {
    function fallback() {
      const area = el("textarea", { style: "position:fixed;opacity:0" });
      area.value = text;
      $("viewer").append(area);
      area.select();
      const ok = document.execCommand("copy");
      area.remove();
      feedback.textContent = ok ? "copied" : "select the text and copy it";
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { feedback.textContent = "copied"; }, fallback);
    } else fallback();
  }

  function download(row) { saveFile("repro-" + row.job_id + ".yaml", row.manifest, "application/yaml"); }

  function step(delta) {
    const v = state.viewer;
    if (v.pos + delta < 0 || v.pos + delta >= v.list.length) return;
    v.pos += delta;
    renderViewer();
  }

  // ---- picks: images marked to make again (flux-batch refine) -----------------------------------------
  // Kept in the page's localStorage (per report file, so a reload keeps them) when the browser allows it.
  const PICKS_KEY = "flux-batch-picks:" + location.pathname;
  const picks = new Map();  // job id + file -> {job_id, file_name, stage, model, seed, prompt, vars, thumb}
  function pickKey(row) { return row.job_id + "\u0000" + (row.file_name || ""); }
  try { (JSON.parse(localStorage.getItem(PICKS_KEY) || "[]")).forEach(function (p) { picks.set(pickKey(p), p); }); } catch (e) { /* none kept */ }
  function savePicks() {
    try { localStorage.setItem(PICKS_KEY, JSON.stringify(Array.from(picks.values()))); } catch (e) { /* file:// without storage */ }
    $("picks-count").textContent = picks.size;
  if (location.protocol === "file:") {  // the folder's own path in the refine command
    const folder = decodeURIComponent(location.pathname).replace(/\/[^/]*$/, "") || ".";
    $("picks-command").textContent = $("picks-command").textContent.replace(" OUT ", " " + (/\s/.test(folder) ? JSON.stringify(folder) : folder) + " ");
  }
  }
  function togglePick(row) {
    const key = pickKey(row);
    if (picks.has(key)) picks.delete(key);
    else picks.set(key, { job_id: row.job_id, file_name: row.file_name, stage: row.stage, model: row.model,
      seed: row.seed, prompt: row.prompt, vars: row.vars, thumb: row.thumb });
    savePicks();
    document.querySelectorAll('.shot[data-index="' + row.index + '"]').forEach(function (b) { b.classList.toggle("picked", picks.has(key)); });
    if ($("viewer").open && rows[state.viewer.list[state.viewer.pos]] === row) renderViewer();
    if ($("picks").open) renderPicks();
  }
  function renderPicks() {
    const items = Array.from(picks.values()).map(function (p) {
      return el("li", { "data-job": p.job_id }, [
        p.thumb || p.file_name ? el("img", { src: src(p.thumb || p.file_name), alt: "", loading: "lazy" }) : null,
        el("span", { class: "what", text: p.stage + " · " + Object.keys(p.vars || {}).map(function (k) { return k + "=" + p.vars[k]; }).join(", ") + " · seed " + p.seed }),
        el("button", { class: "btn", text: "Remove", onclick: function () { picks.delete(pickKey(p)); savePicks(); renderPicks(); render(); } }),
      ]);
    });
    $("picks-list").replaceChildren.apply($("picks-list"), items.length ? items : [el("li", { class: "empty", text: "No picks yet." })]);
    $("picks-export").disabled = !picks.size;
  }
  // A download made from a Blob: it works from file://, where the page cannot write a file itself.
  function saveFile(name, text, type) {
    const url = URL.createObjectURL(new Blob([text], { type: type }));
    const a = el("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
  }
  function exportPicks() {
    const list = Array.from(picks.values()).map(function (p) {
      return { job_id: p.job_id, file_name: p.file_name, stage: p.stage, model: p.model, seed: p.seed, prompt: p.prompt, vars: p.vars };
    });
    saveFile("picks.json", JSON.stringify({ flux_batch_picks: 1, run: DATA.name, picks: list }, null, 1) + "\n", "application/json");
  }
  function focusedRow() {
    if ($("viewer").open) return rows[state.viewer.list[state.viewer.pos]];
    const active = document.activeElement;
    return active && active.dataset && active.dataset.index !== undefined ? rows[Number(active.dataset.index)] : undefined;
  }

  // ---- wiring -----------------------------------------------------------------------------------------
  function render() { if (state.view === "grid") renderGrid(); else renderTable(); }
  $("tab-grid").addEventListener("click", function () { state.view = "grid"; render(); });
  $("tab-table").addEventListener("click", function () { state.view = "table"; render(); });
  $("viewer-prev").addEventListener("click", function () { step(-1); });
  $("viewer-next").addEventListener("click", function () { step(1); });
  $("viewer-close").addEventListener("click", function () { $("viewer").close(); });
  $("viewer").addEventListener("click", function (e) { if (e.target === $("viewer")) $("viewer").close(); });
  $("picks-open").addEventListener("click", function () { renderPicks(); $("picks").showModal(); });
  $("picks-close").addEventListener("click", function () { $("picks").close(); });
  $("picks-export").addEventListener("click", exportPicks);
  $("picks-clear").addEventListener("click", function () { picks.clear(); savePicks(); renderPicks(); render(); });
  $("picks-count").textContent = picks.size;
  if (location.protocol === "file:") {  // the folder's own path in the refine command
    const folder = decodeURIComponent(location.pathname).replace(/\/[^/]*$/, "") || ".";
    $("picks-command").textContent = $("picks-command").textContent.replace(" OUT ", " " + (/\s/.test(folder) ? JSON.stringify(folder) : folder) + " ");
  }
  document.addEventListener("keydown", function (e) {
    if ((e.key === "p" || e.key === "P") && !e.ctrlKey && !e.metaKey && !e.altKey && !/^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName)) {
      const row = focusedRow();
      if (row && row.file_name) { togglePick(row); e.preventDefault(); }
      return;
    }
    if (!$("viewer").open) return;
    if (e.key === "ArrowLeft") step(-1);
    if (e.key === "ArrowRight") step(1);
  });
  // Inline parts (a small report carries its rows in the page) run after this script: draw once they have.
  document.addEventListener("DOMContentLoaded", render);
})();
