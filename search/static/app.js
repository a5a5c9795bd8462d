// The search page: asks /api/search, shows passages with their evidence, opens a passage in its
// document. Text is only ever inserted as text nodes, never as HTML. Offsets from the API count
// code points (Python's str), so text is split with Array.from, not by UTF-16 units.
"use strict";

const $ = (id) => document.getElementById(id);
const form = $("search");
const input = $("q");
const statusLine = $("status");
const list = $("results");
const dialog = $("doc");
const more = $("more");
const PAGE = 10; // passages per page; "More results" asks for the next ten (offset)
const FACETS = ["type", "lang", "year", "folder"]; // counted over every matching document, shown beside the list
let controller = null;
let last = null; // {q, mode, results}
let where = []; // active filters, "field=value", kept in the URL so a filtered search can be shared

function mode() {
  return form.querySelector('input[name="mode"]:checked').value;
}

function setMode(value) {
  const radio = form.querySelector(`input[name="mode"][value="${CSS.escape(value)}"]`);
  if (radio) radio.checked = true;
}

function fmt(score) {
  return score === null || score === undefined ? "–" : score.toFixed(3);
}

// Split `text` at every boundary of the given ranges; each piece knows which ranges cover it.
// ranges: [{start, end, cls, tag?}] in code points relative to `text`.
function marked(text, ranges) {
  const chars = Array.from(text);
  const cuts = new Set([0, chars.length]);
  for (const r of ranges) {
    cuts.add(Math.max(0, Math.min(chars.length, r.start)));
    cuts.add(Math.max(0, Math.min(chars.length, r.end)));
  }
  const points = [...cuts].sort((a, b) => a - b);
  const frag = document.createDocumentFragment();
  for (let i = 0; i + 1 < points.length; i++) {
    const a = points[i];
    const b = points[i + 1];
    const piece = chars.slice(a, b).join("");
    const covering = ranges.filter((r) => r.start <= a && b <= r.end);
    if (!covering.length) {
      frag.append(piece);
      continue;
    }
    const term = covering.some((r) => r.cls === "term");
    const el = document.createElement(term ? "mark" : "span");
    el.className = [...new Set(covering.map((r) => r.cls))].join(" ");
    const anchor = covering.find((r) => r.id);
    if (anchor && anchor.start === a) el.id = anchor.id;
    const page = covering.find((r) => r.page && r.start === a);
    if (page) el.dataset.page = page.page;
    el.textContent = piece;
    frag.append(el);
  }
  return frag;
}

function ranges(item, offset = 0) {
  const out = item.highlights.map(([s, e]) => ({ start: s - offset, end: e - offset, cls: "term" }));
  const sentence = item.evidence && item.evidence.sentence;
  if (sentence) out.push({ start: sentence[0] - offset, end: sentence[1] - offset, cls: "evidence" });
  return out;
}

// The document's id, with its title in front where the title says more than the file name.
function docName(id, title) {
  const stem = id.replace(/^.*\//, "").replace(/\.[^.]*$/, "");
  return title && title !== id && title !== stem ? `${title} — ${id}` : id;
}

function scoreLine(r) {
  const p = document.createElement("p");
  p.className = "scores muted";
  const parts = [["score", r.score], ["keyword", r.scores.keyword], ["semantic", r.scores.semantic]];
  for (const [name, value] of parts) {
    const span = document.createElement("span");
    span.className = `score score-${name}`;
    span.textContent = `${name} ${fmt(value)}`;
    p.append(span);
  }
  return p;
}

// "why?": the explain object the API sent, opened on demand; every number it shows recomputes the score
function why(e) {
  const details = document.createElement("details");
  details.className = "why";
  const summary = document.createElement("summary");
  summary.textContent = "why?";
  const rows = document.createElement("dl");
  const row = (name, text) => {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = text;
    rows.append(dt, dd);
  };
  const k = e.keyword;
  if (k) {
    let text = `${fmt(k.raw)}, rank ${k.rank ?? "–"} on its side, normalised ${fmt(k.normalised)}`;
    if (k.document_bm25 !== null) {
      const terms = Object.entries(k.terms).map(([t, v]) => `${t.replace(/^[^:]*:/, "")} ${v.toFixed(2)}`);
      text += `; document BM25 ${k.document_bm25.toFixed(2)} × ${k.document_share}`;
      text += `, sentence ${k.sentence_bm25.toFixed(2)} × ${k.sentence_share}`;
      if (terms.length) text += `; ${terms.join(", ")}`;
    }
    row("keyword", text);
  }
  const m = e.semantic;
  if (m) {
    row(
      "semantic",
      `${fmt(m.raw)}, rank ${m.rank} on its side, normalised ${fmt(m.normalised)}; ` +
        `sentence cosine ${fmt(m.sentence_cosine)}, document cosine ${fmt(m.document_cosine)} × ${m.doc_weight}`,
    );
  }
  const f = e.fusion;
  if (f) {
    row(
      "fusion",
      `${f.method}: ${f.scale} × (${f.weights[0].toFixed(2)} × keyword + ${f.weights[1].toFixed(2)} × semantic)` +
        (f.method === "rrf" ? `, k ${f.rrf_k}` : ""),
    );
  }
  if (e.feedback) row("feedback", `query moved towards ${e.feedback.docs.join(", ")} × ${e.feedback.weight}`);
  details.append(summary, rows);
  return details;
}

function render(data, append = false) {
  if (!append) list.replaceChildren();
  for (const r of data.results) {
    const li = document.createElement("li");
    li.className = "result";
    li.dataset.rank = r.rank;
    const head = document.createElement("div");
    head.className = "result-head";
    const open = document.createElement("button");
    open.type = "button";
    open.className = "doc-link";
    open.textContent = docName(r.doc, r.title);
    open.title = "Show this passage in its document";
    open.addEventListener("click", () => openDocument(r.doc, r.rank));
    head.append(open);
    if (r.page) {
      const where = document.createElement("span");
      where.className = "page-no muted";
      where.textContent = r.pages[1] > r.pages[0] ? `pp. ${r.pages[0]}–${r.pages[1]}` : `p. ${r.page}`;
      head.append(where);
    }
    head.append(scoreLine(r));
    const passage = document.createElement("p");
    passage.className = "passage";
    passage.append(marked(r.passage, ranges(r)));
    li.append(head, passage);
    if (r.evidence.terms.length) {
      const terms = document.createElement("p");
      terms.className = "terms muted";
      terms.textContent = `matched: ${r.evidence.terms.join(", ")}`;
      li.append(terms);
    }
    if (r.explain) li.append(why(r.explain));
    const like = document.createElement("button");
    like.type = "button";
    like.className = "like-link";
    like.textContent = "more like this";
    like.title = "Documents whose vectors are nearest to this one's";
    like.addEventListener("click", () => showSimilar(r.doc));
    li.append(like);
    list.append(li);
  }
  more.hidden = data.results.length < PAGE; // a short page was the last one
}

function shown(m, ms) {
  const n = last.results.length;
  statusLine.textContent = n
    ? `${n} passage${n === 1 ? "" : "s"} in ${m} mode (${ms} ms)`
    : `No passage matches in ${m} mode.`;
}

function params(q, m) {
  const out = new URLSearchParams({ q, mode: m });
  for (const w of where) out.append("where", w);
  return out;
}

// The facet panel: each value with its number of matching documents; a click filters by it (again: unfilters)
function renderFacets(facets) {
  const panel = $("facets");
  panel.replaceChildren();
  const heading = document.createElement("h2");
  heading.textContent = "Narrow down";
  panel.append(heading);
  for (const field of FACETS) {
    const counts = (facets && facets[field]) || {};
    const values = Object.entries(counts);
    const active = where.filter((w) => w.startsWith(`${field}=`)).map((w) => w.slice(field.length + 1));
    for (const v of active) if (!(v in counts)) values.push([v, 0]);
    if (!values.length) continue;
    const group = document.createElement("section");
    group.className = "facet";
    group.dataset.field = field;
    const title = document.createElement("h3");
    title.textContent = field;
    const ul = document.createElement("ul");
    for (const [value, n] of values) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "facet-value";
      button.dataset.value = value;
      button.setAttribute("aria-pressed", String(active.includes(value)));
      button.textContent = `${value} (${n})`;
      button.addEventListener("click", () => toggleFilter(`${field}=${value}`));
      li.append(button);
      ul.append(li);
    }
    group.append(title, ul);
    panel.append(group);
  }
  panel.hidden = panel.children.length < 2;
}

function toggleFilter(w) {
  where = where.includes(w) ? where.filter((x) => x !== w) : [...where, w];
  runSearch(true);
}

async function runSearch(push) {
  const q = input.value.trim();
  const m = mode();
  if (!q) {
    list.replaceChildren();
    more.hidden = true;
    statusLine.textContent = "";
    return;
  }
  if (push) {
    const url = `/?${params(q, m)}`;
    if (location.pathname + location.search !== url) history.pushState({ q, m }, "", url);
  }
  document.title = `${q} – hybrid-search`;
  if (controller) controller.abort();
  controller = new AbortController();
  statusLine.className = "";
  statusLine.textContent = "Searching…";
  const t0 = performance.now();
  try {
    const response = await fetch(`/api/search?${params(q, m)}&k=${PAGE}&explain=true&facets=${FACETS.join(",")}`, {
      signal: controller.signal,
    });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || response.statusText);
    last = { q, mode: m, results: data.results };
    render(data);
    renderFacets(data.facets);
    shown(m, Math.round(performance.now() - t0));
  } catch (err) {
    if (err.name === "AbortError") return;
    list.replaceChildren();
    more.hidden = true;
    statusLine.className = "error";
    statusLine.textContent = `Error: ${err.message}`;
  }
}

// the next page: ranks after the ones shown, exactly as a longer list would have them
async function loadMore() {
  if (!last) return;
  const { q, mode: m } = last;
  more.disabled = true;
  const t0 = performance.now();
  try {
    const offset = last.results.length;
    const response = await fetch(`/api/search?${params(q, m)}&k=${PAGE}&offset=${offset}&explain=true`);
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || response.statusText);
    if (!last || last.q !== q || last.mode !== m) return; // a new search started meanwhile
    last.results = last.results.concat(data.results);
    render(data, true);
    shown(m, Math.round(performance.now() - t0));
    const next = list.querySelector(`.result[data-rank="${offset + 1}"] .doc-link`);
    if (next) next.focus();
  } catch (err) {
    statusLine.className = "error";
    statusLine.textContent = `Error: ${err.message}`;
  } finally {
    more.disabled = false;
  }
}

// "more like this": the documents nearest to this one, each by its sentence closest to one of this one's
async function showSimilar(docId) {
  if (controller) controller.abort();
  controller = new AbortController();
  const m = mode();
  statusLine.className = "";
  statusLine.textContent = "Searching…";
  try {
    const url = `/api/similar?doc_id=${encodeURIComponent(docId)}&k=${PAGE}`;
    const response = await fetch(url, { signal: controller.signal });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || response.statusText);
    last = { q: "", mode: m, results: data.results };
    render(data);
    more.hidden = true; // one list of the nearest documents, no pages
    const n = data.results.length;
    statusLine.textContent = n
      ? `${n} document${n === 1 ? "" : "s"} like ${docId}`
      : `No other document to compare ${docId} with.`;
    list.focus();
  } catch (err) {
    if (err.name === "AbortError") return;
    statusLine.className = "error";
    statusLine.textContent = `Error: ${err.message}`;
  }
}

async function openDocument(docId, rank) {
  const q = last ? last.q : "";
  const m = last ? last.mode : mode();
  const k = last ? Math.max(last.results.length, PAGE) : PAGE; // every passage shown, on every page
  // the id as a parameter: in the path a ".." segment would be dropped by the browser
  const url = `/api/document?doc_id=${encodeURIComponent(docId)}&${params(q, m)}&k=${k}`;
  $("doc-title").textContent = docId;
  $("doc-meta").textContent = "Loading…";
  $("doc-text").replaceChildren();
  if (!dialog.open) dialog.showModal();
  try {
    const response = await fetch(url);
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || response.statusText);
    $("doc-title").textContent = docName(data.id, data.title);
    const marks = [];
    for (const p of data.passages) {
      const cls = p.rank === rank ? "hit current" : "hit";
      marks.push({ start: p.start, end: p.end, cls, id: p.rank === rank ? "current-passage" : undefined });
      marks.push(...ranges(p));
    }
    const ranks = data.passages.map((p) => p.rank);
    $("doc-meta").textContent = ranks.length
      ? `Passages of the result list in this document: ranks ${ranks.join(", ")}; the one you chose is green.`
      : "";
    const starts = data.page_starts || [];
    starts.forEach((start, i) => {
      const end = i + 1 < starts.length ? starts[i + 1] : Array.from(data.text).length;
      if (end > start) marks.push({ start, end, cls: "page", page: String(i + 1) });
    });
    $("doc-text").append(marked(data.text, marks));
    const current = $("current-passage");
    if (current) current.scrollIntoView({ block: "center" });
    $("doc-text").focus({ preventScroll: true });
  } catch (err) {
    $("doc-meta").textContent = `Error: ${err.message}`;
  }
}

function fromUrl() {
  const p = new URLSearchParams(location.search);
  input.value = p.get("q") || "";
  setMode(p.get("mode") || "hybrid");
  where = p.getAll("where");
  runSearch(false);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  runSearch(true);
});
form.addEventListener("change", (event) => {
  if (event.target.name === "mode" && input.value.trim()) runSearch(true);
});
more.addEventListener("click", loadMore);
$("doc-close").addEventListener("click", () => dialog.close());
dialog.addEventListener("click", (event) => {
  if (event.target === dialog) dialog.close(); // a click on the backdrop
});
window.addEventListener("popstate", fromUrl);
document.addEventListener("keydown", (event) => {
  const el = document.activeElement;
  const typing = el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && ["search", "text"].includes(el.type));
  if (event.key === "/" && !typing && !dialog.open) {
    event.preventDefault();
    input.focus();
    input.select();
  }
});

fetch("/healthz")
  .then((r) => r.json())
  .then((h) => {
    const n = (count, word) => `${count.toLocaleString("en")} ${word}${count === 1 ? "" : "s"}`;
    $("about").textContent = `${n(h.documents, "document")} · ${n(h.sentences, "sentence")} · ${h.model}`;
  })
  .catch(() => {});
fromUrl();
