// SONA console: plain browser JavaScript over the service's own HTTP API (no framework,
// nothing loaded from the internet). Each panel owns one block below.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  model: null,          // GET /console/api/model
  titles: new Map(),    // content id -> {title, year, genres, platforms}
  filters: {genres: [], platforms: [], year: null},
  experiment: null,     // id of the open report
  reportTimer: null,
};
const MLFLOW_UI = "http://127.0.0.1:5000";

// --- helpers -------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c !== null && c !== undefined) node.append(c);
  }
  return node;
}

function apiKey() { return $("api-key").value.trim(); }

async function api(method, path, body, withKey = false) {
  const headers = {"content-type": "application/json"};
  if (withKey && apiKey()) headers.authorization = "Bearer " + apiKey();
  const resp = await fetch(path, {method, headers,
                                  body: body === undefined ? undefined : JSON.stringify(body)});
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const err = new Error(data.message || data.error || resp.statusText);
    err.status = resp.status;
    throw err;
  }
  return data;
}

function fmt(x, digits = 3) {
  return x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(digits);
}

function bar(fraction) {
  const f = Math.max(0, Math.min(1, Number(fraction) || 0));
  return el("span", {class: "bar"}, el("span", {style: `width:${(100 * f).toFixed(1)}%`}));
}

function chips(values, cls = "chip") {
  return (values || []).map((v) => el("span", {class: cls + " " + String(v).toLowerCase(),
                                               text: String(v)}));
}

async function loadTitles(ids) {
  const missing = [...new Set(ids.map(String))].filter((i) => !state.titles.has(i));
  if (!missing.length) return;
  try {
    const out = await api("GET", "/console/api/items?ids=" + encodeURIComponent(missing.join(",")));
    for (const [id, item] of Object.entries(out.items)) state.titles.set(id, item);
  } catch (err) {
    // no search engine: lists show bare ids
  }
}

function itemLabel(id) {
  const item = state.titles.get(String(id));
  if (!item) return el("span", {class: "title", text: "item " + id});
  return el("span", {class: "title"}, item.title + " ",
            el("span", {class: "year", text: item.year ? `(${item.year})` : ""}));
}

// --- status: health, readiness, served model --------------------------------------------

async function loadStatus() {
  try {
    const health = await api("GET", "/health");
    $("health-pill").textContent = "health: " + health.status;
    $("health-pill").className = "pill " + (health.status === "healthy" ? "ok" : "bad");
  } catch (err) {
    $("health-pill").textContent = "health: " + err.message;
    $("health-pill").className = "pill bad";
  }
  try {
    const ready = await api("GET", "/ready");
    $("ready-pill").textContent = "ready: " + ready.status;
    $("ready-pill").className = "pill ok";
  } catch (err) {
    $("ready-pill").textContent = "ready: " + err.message;
    $("ready-pill").className = "pill bad";
  }
  try {
    state.model = await api("GET", "/console/api/model");
    const m = state.model;
    $("model-pill").textContent = `model: ${m.name} v${m.version}` +
      (m.model_class ? ` · ${m.model_class.split(".").pop()}` : "");
    $("model-pill").className = "pill ok";
    renderBlend();
    const select = $("viewer-select");
    select.replaceChildren(...m.viewers.map((v) => el("option", {value: v, text: v})));
  } catch (err) {
    $("model-pill").textContent = "model: " + err.message;
    $("model-pill").className = "pill bad";
  }
}

function renderBlend() {
  const m = state.model;
  if (!m || !m.weights) return;
  const parts = Object.entries(m.weights).map(([s, w]) => `${s} ${fmt(w, 2)}`);
  $("blend").replaceChildren(el("span", {},
    el("strong", {text: "Blend: "}), parts.join(" · "),
    ` · MMR λ ${fmt(m.mmr_lambda, 2)}`,
    m.run_id ? el("span", {}, " · run ",
                  el("a", {href: `${MLFLOW_UI}/#/runs/${m.run_id}`, target: "_blank",
                           text: m.run_id.slice(0, 8)})) : null));
}

// --- search with autocomplete and facets -------------------------------------------------

let suggestTimer = null;
let suggestSeq = 0;

async function suggest() {
  const q = $("search-input").value;
  const list = $("suggestions");
  if (q.trim().length < 2) { list.hidden = true; return; }
  const seq = ++suggestSeq;
  try {
    const out = await api("GET", `/api/v1/search/autocomplete?q=${encodeURIComponent(q)}&limit=8`);
    if (seq !== suggestSeq) return;
    list.replaceChildren(...out.suggestions.map((s) => el("li", {
      role: "option", onmousedown: (e) => { e.preventDefault(); pickSuggestion(s.text); },
    }, el("span", {text: s.text}), el("span", {class: "type", text: s.type}))));
    list.hidden = out.suggestions.length === 0;
  } catch (err) {
    list.hidden = true;
  }
}

function pickSuggestion(text) {
  $("search-input").value = text;
  $("suggestions").hidden = true;
  runSearch();
}

function toggleFilter(kind, value) {
  if (kind === "years") {
    state.filters.year = state.filters.year === value ? null : value;
  } else {
    const list = state.filters[kind];
    const at = list.indexOf(value);
    if (at >= 0) list.splice(at, 1); else list.push(value);
  }
  runSearch();
}

function requestFilters() {
  const f = {};
  if (state.filters.genres.length) f.genres = state.filters.genres;
  if (state.filters.platforms.length) f.platforms = state.filters.platforms;
  const decade = /^(\d{4})s$/.exec(state.filters.year || "");
  if (decade) f.year_range = {min: Number(decade[1]), max: Number(decade[1]) + 9};
  return Object.keys(f).length ? f : undefined;
}

function renderFacets(facets) {
  const box = $("facets");
  box.replaceChildren();
  const on = {genres: state.filters.genres, platforms: state.filters.platforms,
              years: state.filters.year ? [state.filters.year] : []};
  for (const kind of ["genres", "platforms", "years", "ratings"]) {
    const buckets = (facets && facets[kind]) || [];
    box.append(el("h4", {text: kind}));
    if (!buckets.length) {
      box.append(el("div", {class: "meta", text: kind === "platforms" ? "no platform data" : "–"}));
      continue;
    }
    for (const b of buckets.slice(0, 10)) {
      const clickable = kind !== "ratings";
      const active = clickable && on[kind].includes(b.value);
      box.append(el("button", {
        class: "facet" + (active ? " on" : ""), "data-facet": kind, "data-value": b.value,
        onclick: clickable ? () => toggleFilter(kind, b.value) : () => {},
      }, el("span", {text: b.value}), el("span", {text: String(b.count)})));
    }
  }
  const active = [...state.filters.genres.map((g) => ["genres", g]),
                  ...state.filters.platforms.map((p) => ["platforms", p]),
                  ...(state.filters.year ? [["years", state.filters.year]] : [])];
  $("active-filters").replaceChildren(...active.map(([k, v]) => el("span", {
    class: "chip", title: "remove filter", onclick: () => toggleFilter(k, v), text: `${v} ✕`})));
}

async function runSearch() {
  const query = $("search-input").value.trim();
  $("suggestions").hidden = true;
  if (!query) return;
  $("search-meta").textContent = "searching…";
  try {
    const out = await api("POST", "/api/v1/search",
                          {query, page_size: 10, filters: requestFilters()});
    $("search-meta").textContent =
      `${out.total_count} results in ${fmt(out.search_time_ms, 1)} ms` +
      (out.query_parsed && out.query_parsed.intent ? ` · intent ${JSON.stringify(out.query_parsed.intent)}` : "");
    renderFacets(out.facets);
    $("search-results").replaceChildren(...out.results.map((r, pos) => {
      const c = r.content;
      state.titles.set(String(c.id), {title: c.title, year: c.release_year, genres: c.genres,
                                      platforms: c.platforms});
      return el("li", {class: "result", "data-id": c.id},
        el("span", {class: "title"}, c.title + " ",
           el("span", {class: "year", text: c.release_year ? `(${c.release_year})` : ""})),
        " ", el("span", {class: "meta", text: `score ${fmt(r.relevance_score)}`}),
        el("button", {class: "link", text: "similar",
                      onclick: () => { click(out.search_event_id, c.id, pos + 1); showSimilar(c.id); }}),
        el("div", {}, ...chips(c.platforms, "badge"), ...chips(c.genres)),
        el("div", {class: "reasons", text: (r.match_reasons || []).join(" · ")}));
    }));
  } catch (err) {
    $("search-meta").replaceChildren(el("span", {class: "error", text: "search failed: " + err.message}));
  }
}

function click(searchEventId, contentId, position) {
  // a click is a write: logged only with a key or token in the field above (issue 13)
  if (!apiKey()) return;
  api("POST", "/api/v1/search/click",
      {search_event_id: searchEventId, content_id: String(contentId), position}, true)
    .catch(() => {});
}

// --- a viewer's recommendations, explanations and context ------------------------------

function viewer() { return $("viewer-input").value.trim() || $("viewer-select").value; }

function context() {
  const ctx = {};
  if ($("ctx-mood").value) ctx.mood = $("ctx-mood").value;
  if ($("ctx-time").value) ctx.time_of_day = $("ctx-time").value;
  if ($("ctx-weekday").value) ctx.weekday = Number($("ctx-weekday").value);
  if ($("ctx-device").value) ctx.device_type = $("ctx-device").value;
  const withWhom = [...document.querySelectorAll(".ctx-with:checked")].map((b) => b.value);
  if (withWhom.length) ctx.viewing_with = withWhom;
  return Object.keys(ctx).length ? ctx : undefined;
}

let recSeq = 0;

async function loadRecs() {
  const user = viewer();
  if (!user) return;
  const seq = ++recSeq;
  const limit = Math.max(1, Math.min(50, Number($("rec-limit").value) || 10));
  $("rec-meta").textContent = "loading…";
  try {
    const out = await api("POST", "/api/v1/recommendations",
                          {user_id: user, limit, context: context()});
    await loadTitles(out.recommendations.map((r) => r.content_id));
    if (seq !== recSeq) return;
    $("rec-meta").textContent = `viewer ${out.user_id} · ${out.strategy} · model v${out.model_version}` +
      (out.experiment_id ? ` · experiment ${out.recommendations[0]?.experiment_variant || out.experiment_id}` : "");
    $("rec-list").replaceChildren(...out.recommendations.map((r) => {
      const explain = el("div", {class: "explain", hidden: ""});
      return el("li", {class: "rec", "data-id": r.content_id},
        itemLabel(r.content_id), " ",
        el("span", {class: "meta", text: `${r.recommendation_type} · ${fmt(r.confidence_score)}`}),
        bar(r.confidence_score),
        el("button", {class: "link", text: "why?", onclick: () => explainItem(user, r, explain)}),
        el("button", {class: "link", text: "similar", onclick: () => showSimilar(r.content_id)}),
        el("div", {}, ...chips(r.based_on)),
        el("div", {class: "reasons", text: r.explanation}),
        explain);
    }));
  } catch (err) {
    if (seq === recSeq) {
      $("rec-meta").replaceChildren(el("span", {class: "error", text: "recommendations failed: " + err.message}));
      $("rec-list").replaceChildren();
    }
  }
  loadContinue(user);
}

async function explainItem(user, rec, box) {
  if (!box.hidden) { box.hidden = true; return; }
  box.hidden = false;
  box.textContent = "scoring…";
  try {
    const out = await api("POST", "/api/v1/personalization/score",
                          {user_id: user, content_id: String(rec.content_id), context: context()});
    const weights = (state.model && state.model.weights) || {};
    const rows = Object.entries(out.components).filter(([k]) => k !== "lora_boost").map(([k, v]) => {
      const w = weights[k];
      return el("tr", {},
        el("td", {text: k}), el("td", {class: "num", text: v === null ? "n/a" : fmt(v)}),
        el("td", {}, v === null ? "" : bar(v)),
        el("td", {class: "num", text: w === undefined ? "" : `× ${fmt(w, 2)}`}),
        el("td", {class: "num", text: v === null || w === undefined ? "" : `= ${fmt(v * w)}`}));
    });
    box.replaceChildren(
      el("div", {}, el("strong", {text: `score ${fmt(out.score)}`}),
         ` · LoRA boost ${fmt(out.components.lora_boost)} · based on ${rec.based_on.join(", ")}`),
      el("table", {class: "components"}, ...rows));
  } catch (err) {
    box.replaceChildren(el("span", {class: "error", text: "score failed: " + err.message}));
  }
}

// "Continue watching": the viewer's synced playback progress (GET /api/v1/sync/state, read
// scope); unfinished titles, most recently updated first.
async function loadContinue(user) {
  const list = $("continue-list");
  if (!apiKey()) {
    $("continue-meta").textContent = "Enter an API key (read scope) to see synced playback progress.";
    list.replaceChildren();
    return;
  }
  try {
    const out = await api("GET", `/api/v1/sync/state?user_id=${encodeURIComponent(user)}`, undefined, true);
    const rows = Object.entries(out.progress || {})
      .map(([id, p]) => ({id, fraction: p.duration_s > 0 ? p.position_s / p.duration_s : 0,
                          updated: p.updated}))
      .filter((p) => p.fraction > 0 && p.fraction < 0.95)
      .sort((a, b) => String(b.updated).localeCompare(String(a.updated)));
    await loadTitles(rows.map((r) => r.id));
    $("continue-meta").textContent = rows.length ? "" : "Nothing in progress for this viewer.";
    list.replaceChildren(...rows.map((r) => el("li", {class: "progress", "data-id": r.id},
      itemLabel(r.id), bar(r.fraction), ` ${Math.round(100 * r.fraction)}%`)));
  } catch (err) {
    $("continue-meta").replaceChildren(el("span", {class: "error", text: "sync state: " + err.message}));
  }
}

// --- similar items ------------------------------------------------------------------------

async function showSimilar(contentId) {
  $("similar-meta").textContent = "loading…";
  try {
    const out = await api("POST", "/api/v1/recommendations/similar",
                          {content_id: String(contentId), limit: 10});
    await loadTitles([contentId, ...out.similar_content.map((s) => s.content_id)]);
    $("similar-meta").replaceChildren("Like ", itemLabel(contentId), ` · model v${out.model_version}`);
    $("similar-list").replaceChildren(...out.similar_content.map((s) => el("li", {"data-id": s.content_id},
      itemLabel(s.content_id), " ", el("span", {class: "meta", text: `cos ${fmt(s.score)}`}),
      bar(s.score))));
  } catch (err) {
    $("similar-meta").replaceChildren(el("span", {class: "error", text: "similar failed: " + err.message}));
  }
}

// --- leaderboard --------------------------------------------------------------------------

const BOARD_METRICS = ["ndcg", "precision", "recall", "map", "mrr", "hit_rate", "coverage",
                       "diversity", "novelty"];
let boards = [];

async function loadBoards() {
  try {
    boards = (await api("GET", "/console/api/leaderboards")).leaderboards;
  } catch (err) {
    $("board-meta").replaceChildren(el("span", {class: "error", text: err.message}));
    return;
  }
  $("board-select").replaceChildren(...boards.map((b, i) => el("option", {value: String(i), text: b.name})));
  const pipeline = boards.findIndex((b) => b.name === "ml100k-pipeline");
  $("board-select").value = String(pipeline >= 0 ? pipeline : 0);
  renderBoard();
}

function runLink(runId) {
  return runId ? el("a", {href: `${MLFLOW_UI}/#/runs/${runId}`, target: "_blank", title: runId,
                          text: runId.slice(0, 8)}) : "";
}

function renderBoard() {
  const board = boards[Number($("board-select").value)];
  const table = $("board-table");
  if (!board) { table.replaceChildren(); $("board-meta").textContent = "no results yet: run `sona run`"; return; }
  if (board.kind === "sweep") {
    $("board-meta").textContent = `${board.model}: ${board.n_trials} trials, best ${board.metric}@${board.k} = ${fmt(board.best_value)}`;
    table.replaceChildren(
      el("tr", {}, el("th", {text: "best params"}), el("th", {text: "test metrics"}), el("th", {text: "sweep run"})),
      el("tr", {}, el("td", {text: JSON.stringify(board.best_params)}),
         el("td", {text: Object.entries(board.test_metrics || {}).map(([k, v]) => `${k} ${fmt(v)}`).join(", ")}),
         el("td", {}, runLink(board.parent_run_id))));
    return;
  }
  const sortBy = board.sort_metric || "ndcg";
  const metrics = [sortBy, ...BOARD_METRICS.filter((m) => m !== sortBy)];
  $("board-meta").textContent = `${board.rows.length} runs · sorted by ${sortBy}@${board.k}` +
    (board.git_sha ? ` · git ${String(board.git_sha).slice(0, 8)}` : "") + " · italics: published figures";
  const head = el("tr", {}, el("th", {text: "#"}), el("th", {text: "model"}),
                  ...metrics.map((m) => el("th", {text: `${m}@${board.k}`})), el("th", {text: "fit s"}),
                  el("th", {text: "MLflow run"}));
  const row = (r, i, cls) => el("tr", {class: cls},
    el("td", {text: i === null ? "" : String(i + 1)}), el("td", {text: r.name}),
    ...metrics.map((m) => el("td", {class: "num", text: fmt(r.metrics ? r.metrics[m] : null)})),
    el("td", {class: "num", text: fmt(r.fit_s, 1)}), el("td", {}, runLink(r.run_id)));
  table.replaceChildren(head, ...board.rows.map((r, i) => row(r, i, "run")),
                        ...(board.published || []).map((r) => row(r, null, "published")));
}

// --- A/B experiments and their live report ----------------------------------------------

async function loadExperiments() {
  const table = $("experiments-table");
  if (!apiKey()) {
    $("experiments-meta").textContent = "Enter an API key with admin scope to list experiments.";
    table.replaceChildren();
    return;
  }
  try {
    const out = await api("GET", "/api/v1/experiments", undefined, true);
    $("experiments-meta").textContent = `${out.count} experiments`;
    table.replaceChildren(
      el("tr", {}, ...["name", "status", "variants", "metric", ""].map((h) => el("th", {text: h}))),
      ...out.experiments.map((e) => el("tr", {"data-id": e.id},
        el("td", {text: e.name}), el("td", {text: e.status}),
        el("td", {text: (e.variants || []).map((v) => `${v.name} ${fmt(v.weight, 2)}`).join(", ")}),
        el("td", {text: e.primary_metric || ""}),
        el("td", {}, el("button", {class: "link report-button", text: "report",
                                   onclick: () => openReport(e.id, e.name)})))));
  } catch (err) {
    $("experiments-meta").replaceChildren(el("span", {class: "error", text: "experiments: " + err.message}));
  }
}

function openReport(id, name) {
  state.experiment = id;
  $("report").hidden = false;
  $("report-title").textContent = `Report: ${name}`;
  refreshReport();
}

async function refreshReport() {
  clearTimeout(state.reportTimer);
  const id = state.experiment;
  if (!id) return;
  try {
    const r = await api("GET", `/api/v1/experiments/${encodeURIComponent(id)}/report`, undefined, true);
    if (id !== state.experiment) return;
    renderReport(r);
  } catch (err) {
    $("report-meta").replaceChildren(el("span", {class: "error", text: "report: " + err.message}));
  }
  if ($("report-live").checked) state.reportTimer = setTimeout(refreshReport, 5000);
}

function renderReport(r) {
  const when = new Date(r.computed_at * 1000).toLocaleTimeString();
  $("report-meta").replaceChildren(`metric ${r.metric} · α ${r.alpha} · computed ${when} · `,
    r.srm.flagged ? el("span", {class: "flag", text: `sample-ratio mismatch (p ${fmt(r.srm.p_value, 4)})`})
                  : `no sample-ratio mismatch (p ${fmt(r.srm.p_value, 3)})`);
  $("report-chart").replaceChildren(reportChart(r.variants));
  $("report-variants").replaceChildren(
    el("tr", {}, ...["variant", "weight", "users", "exposures", "converted", "conversion",
                     "mean / user"].map((h) => el("th", {text: h}))),
    ...r.variants.map((v) => el("tr", {class: "variant-row"},
      el("td", {text: v.name}), el("td", {class: "num", text: fmt(v.weight, 2)}),
      el("td", {class: "num", text: String(v.users)}), el("td", {class: "num", text: String(v.exposures)}),
      el("td", {class: "num", text: String(v.converted)}),
      el("td", {class: "num", text: fmt(v.conversion_rate)}), el("td", {class: "num", text: fmt(v.mean)}))));
  $("report-comparisons").replaceChildren(
    el("tr", {}, ...["vs control", "uplift (rel.)", "95% CI", "p", "P(beat control)", ""]
      .map((h) => el("th", {text: h}))),
    ...r.comparisons.map((c) => {
      const t = c.cuped ? c.cuped.test : c.welch;
      return el("tr", {},
        el("td", {text: `${c.variant} vs ${c.control}`}),
        el("td", {class: "num", text: t ? `${fmt(100 * t.relative_uplift, 1)}%` : "–"}),
        el("td", {class: "num", text: t ? `[${fmt(t.ci_low)}, ${fmt(t.ci_high)}]` : "–"}),
        el("td", {class: "num", text: t ? fmt(t.p_value, 4) : "–"}),
        el("td", {class: "num", text: fmt(c.bayes && c.bayes.p_beat_control)}),
        el("td", {class: c.significant ? "sig" : "nsig", text: c.significant ? "significant" : "not significant"}));
    }));
}

function reportChart(variants) {
  // conversion rate per arm, as an inline SVG bar chart
  const ns = "http://www.w3.org/2000/svg";
  const width = 460, rowH = 26, pad = 110;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(rowH * variants.length + 8));
  svg.setAttribute("role", "img");
  const top = Math.max(1e-9, ...variants.map((v) => v.conversion_rate || 0));
  variants.forEach((v, i) => {
    const y = 4 + i * rowH;
    const w = ((v.conversion_rate || 0) / top) * (width - pad - 60);
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", "0"); label.setAttribute("y", String(y + 16));
    label.setAttribute("font-size", "12"); label.textContent = v.name;
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", String(pad)); rect.setAttribute("y", String(y + 3));
    rect.setAttribute("width", String(Math.max(1, w))); rect.setAttribute("height", "16");
    rect.setAttribute("fill", i === 0 ? "#98a2b3" : "#4f46e5");
    const value = document.createElementNS(ns, "text");
    value.setAttribute("x", String(pad + w + 6)); value.setAttribute("y", String(y + 16));
    value.setAttribute("font-size", "12"); value.textContent = `${fmt(100 * (v.conversion_rate || 0), 1)}%`;
    svg.append(label, rect, value);
  });
  return svg;
}

// --- wiring -------------------------------------------------------------------------------

function init() {
  $("api-key").value = sessionStorage.getItem("sona-api-key") || "";
  $("api-key").addEventListener("change", () => {
    sessionStorage.setItem("sona-api-key", apiKey());
    loadExperiments();
    if (viewer()) loadContinue(viewer());
  });
  $("search-input").addEventListener("input", () => {
    clearTimeout(suggestTimer);
    suggestTimer = setTimeout(suggest, 150);
  });
  $("search-input").addEventListener("keydown", (e) => { if (e.key === "Enter") runSearch(); });
  $("search-input").addEventListener("blur", () => { $("suggestions").hidden = true; });
  $("search-button").addEventListener("click", runSearch);
  for (const id of ["viewer-select", "ctx-mood", "ctx-time", "ctx-weekday", "ctx-device", "rec-limit"]) {
    $(id).addEventListener("change", loadRecs);
  }
  $("viewer-input").addEventListener("change", loadRecs);
  for (const box of document.querySelectorAll(".ctx-with")) box.addEventListener("change", loadRecs);
  $("board-select").addEventListener("change", renderBoard);
  $("report-live").addEventListener("change", refreshReport);
  loadStatus().then(loadRecs);
  loadBoards();
  loadExperiments();
}

document.addEventListener("DOMContentLoaded", init);
