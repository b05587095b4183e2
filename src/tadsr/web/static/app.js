// The tadsr serve page: uploads each image as its own job and follows it. Jobs outlive the
// page: their ids are kept in localStorage, so a reload (or a crash) reconnects to them; a
// failed status request is retried with back-off; only Cancel stops a job (the server drops
// a job nobody asks about for a long time, tadsr serve --abandon-after).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const STORE = "tadsr-jobs", OPTIONS = "tadsr-options";
const cards = new Map();    // job id -> its card on this page
let config = null;

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const mb = (bytes) => `${+(bytes / 2 ** 20).toFixed(1)} MB`;

function secs(s) {
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function stored() {
  try { return JSON.parse(localStorage.getItem(STORE)) || []; } catch { return []; }
}
function remember(id, name) {
  const list = stored().filter((j) => j.id !== id);
  list.push({ id, name });
  localStorage.setItem(STORE, JSON.stringify(list.slice(-100)));  // the server keeps 100
}
function forget(id) {
  localStorage.setItem(STORE, JSON.stringify(stored().filter((j) => j.id !== id)));
}

function showMessage(text) {
  const box = $("#message");
  box.textContent = text;
  box.hidden = !text;
}

function announce(text) {  // read out by screen readers (aria-live)
  $("#announce").textContent = text;
}

async function loadConfig() {
  const resp = await fetch("/api/config");
  if (!resp.ok) throw new Error((await resp.json()).error);
  config = await resp.json();
  for (const m of config.models) {
    $("#model").add(new Option(`${m.name} (${m.kind === "teacher" ? "multi-step" : "one-step"})`, m.name));
  }
  for (const t of config.tiles) {
    $("#tile").add(new Option(t === null ? "auto" : t === 0 ? "off (whole image)" : `${t} px`,
      t === null ? "auto" : String(t)));
  }
  for (const c of config.color_fixes) $("#color_fix").add(new Option(c, c));
  for (const f of config.formats) $("#format").add(new Option(f.toUpperCase(), f));
  $("#steps").max = config.teacher_steps;
  $("#steps").value = config.teacher_steps;
  $("#quality").value = config.quality;
  restoreOptions();
  $("#model").addEventListener("change", () => syncModel(true));
  $("#fidelity").addEventListener("input", showFidelity);
  $("#fidelity-auto").addEventListener("change", showFidelity);
  $("#format").addEventListener("change", syncOutput);
  $("#size").addEventListener("change", syncOutput);
  $("#options").addEventListener("change", saveOptions);
  syncModel(!localStorage.getItem(OPTIONS));
  syncOutput();
  const px = config.max_pixels ? `, up to ${config.max_pixels.toLocaleString("en")} pixels` : "";
  $("#limits").textContent = `PNG, JPEG, WebP, BMP, TIFF; up to ${mb(config.max_upload_bytes)}${px}`;
}

const SAVED = ["model", "steps", "fidelity", "fidelity-auto", "tile", "color_fix", "seed",
  "size", "width", "format", "quality"];

function saveOptions() {
  const values = {};
  for (const id of SAVED) {
    const el = $(`#${id}`);
    values[id] = el.type === "checkbox" ? el.checked : el.value;
  }
  localStorage.setItem(OPTIONS, JSON.stringify(values));
}

function restoreOptions() {
  let values = {};
  try { values = JSON.parse(localStorage.getItem(OPTIONS)) || {}; } catch { /* none kept */ }
  for (const [id, value] of Object.entries(values)) {
    const el = $(`#${id}`);
    if (!el) continue;
    if (el.type === "checkbox") el.checked = !!value;
    else if (el.tagName !== "SELECT" || [...el.options].some((o) => o.value === value)) el.value = value;
  }
}

function syncModel(reset) {
  const m = config.models.find((x) => x.name === $("#model").value);
  $("#steps").disabled = !m || m.kind !== "teacher";
  // what it is, and how fast: the registry's figure, then this server's own last job
  const speed = m && m.s_per_mp ? ` About ${secs(m.s_per_mp * 16)} per megapixel of input.` : "";
  $("#model-help").textContent = m && m.description ? `${m.description}.${speed}` : speed.trim();
  // the fidelity dial: for a model with a faithful endpoint, starting at its default
  const dial = m && m.fidelity !== null && m.fidelity !== undefined;
  $("#fidelity").disabled = $("#fidelity-auto").disabled = !dial;
  if (dial && reset) {  // a default of "auto" ticks the box; the slider keeps its place
    $("#fidelity-auto").checked = m.fidelity === "auto";
    if (m.fidelity !== "auto") $("#fidelity").value = m.fidelity;
  }
  showFidelity();
}

function showFidelity() {
  const auto = $("#fidelity-auto").checked;
  $("#fidelity").disabled = auto || $("#fidelity-auto").disabled;
  $("#fidelity-value").textContent = $("#fidelity-auto").disabled ? "-" : auto ? "auto" : (+$("#fidelity").value).toFixed(2);
}

function syncOutput() {
  $("#quality").disabled = $("#format").value === "png";
  $("#width").hidden = $("#size").value !== "width";
}

function options() {
  const q = new URLSearchParams({
    model: $("#model").value,
    tile: $("#tile").value,
    color_fix: $("#color_fix").value,
    seed: $("#seed").value || "0",
    format: $("#format").value,
  });
  if (!$("#steps").disabled) q.set("steps", $("#steps").value);
  if (!$("#fidelity-auto").disabled) {
    q.set("fidelity", $("#fidelity-auto").checked ? "auto" : $("#fidelity").value);
  }
  const size = $("#size").value;
  if (size === "width") q.set("width", $("#width").value);
  else if (size !== "4") q.set("outscale", size);
  if (!$("#quality").disabled) q.set("quality", $("#quality").value);
  return q;
}

function newCard(name) {
  const card = $("#job-template").content.firstElementChild.cloneNode(true);
  $(".name", card).textContent = name;
  $("progress", card).setAttribute("aria-label", `progress of ${name}`);
  $("#jobs").prepend(card);
  return card;
}

function setState(card, text, said = false) {
  $(".state", card).textContent = text;
  if (said) announce(`${$(".name", card).textContent}: ${text}`);
}

function fail(card, text) {
  card.classList.add("finished");
  setState(card, "failed");
  announce(text);
  const p = $(".error", card);
  p.textContent = text;
  p.hidden = false;
}

async function upload(file) {
  const card = newCard(file.name);
  if (file.size > config.max_upload_bytes) {
    // the server's own words, said before sending the file
    fail(card, `${file.name}: the file is larger than the upload limit of ${mb(config.max_upload_bytes)} (tadsr serve --max-upload-mb)`);
    return;
  }
  setState(card, "uploading...", true);
  const q = options();
  q.set("name", file.name);
  const upload = new AbortController();
  let cancelled = false;
  $(".cancel", card).onclick = () => { cancelled = true; upload.abort(); };
  let resp;
  try {
    resp = await fetch(`/api/jobs?${q}`, { method: "POST", body: file, headers: { "X-Tadsr": "1" }, signal: upload.signal });
  } catch (err) {
    if (cancelled) { card.classList.add("finished"); setState(card, "cancelled", true); return; }
    fail(card, `${file.name}: the upload failed (${err.message}); is the server running?`);
    return;
  }
  const body = await resp.json().catch(() => ({ error: `${file.name}: server answered ${resp.status}` }));
  if (!resp.ok) {
    fail(card, body.error);
    return;
  }
  remember(body.id, file.name);
  follow(card, body.id);
  if (cancelled) cancel(body.id);  // Cancel came as the upload ended
}

function follow(card, id, quiet = false) {
  card.dataset.id = id;
  cards.set(id, card);
  $(".cancel", card).onclick = () => cancel(id);
  watch(card, id, quiet);
}

async function cancel(id) {
  await fetch(`/api/jobs/${id}/cancel`, { method: "POST", headers: { "X-Tadsr": "1" } }).catch(() => {});
}

// Follows one job until it ends; a request that fails is retried after 1, 2, 4 ... 30 s.
// `quiet`: a job remembered from before a reload, whose card goes if the server lost it.
async function watch(card, id, quiet) {
  let failures = 0;
  for (;;) {
    let st;
    try {
      const resp = await fetch(`/api/jobs/${id}`);
      if (resp.status === 404) {
        forget(id);
        cards.delete(id);
        if (quiet) { card.remove(); return; }
        fail(card, `${$(".name", card).textContent}: the server no longer has this job (restarted, or more than 100 results since)`);
        return;
      }
      st = await resp.json();
      if (!resp.ok) throw new Error(st.error || `the server answered ${resp.status}`);
      failures = 0;
    } catch (err) {
      failures += 1;
      const wait = Math.min(30, 2 ** (failures - 1));
      setState(card, `cannot reach the server (${err.message}); trying again in ${wait} s`);
      await sleep(wait * 1000);
      continue;
    }
    if (show(card, st)) return;
    await sleep(document.hidden ? 3000 : 500);
  }
}

// Shows a job's status on its card; true once the job has ended.
function show(card, st) {
  const bar = $("progress", card);
  const changed = card.dataset.state !== st.state;
  card.dataset.state = st.state;
  if (st.note) { $(".note", card).textContent = `note: ${st.note}`; $(".note", card).hidden = false; }
  if (st.state === "queued") {
    const then = st.estimate_s ? `; it will take about ${secs(st.estimate_s)}` : "";
    setState(card, st.ahead > 0 ? `waiting in the queue: ${st.ahead} job${st.ahead > 1 ? "s" : ""} ahead${then}` : "starting...", changed);
  } else if (st.state === "running") {
    const parts = [];
    const teacher = (config.models.find((m) => m.name === st.model) || {}).kind === "teacher";
    if (teacher && st.total > 1) parts.push(`${st.done} of ${st.total} steps`);
    if (st.estimate_s && st.elapsed_s !== undefined) {
      const left = st.estimate_s - st.elapsed_s;
      parts.push(left >= 1 ? `about ${secs(left)} left` : "nearly done");
      bar.max = st.estimate_s;
      bar.value = Math.min(st.elapsed_s, st.estimate_s * 0.99);
    } else if (st.total) {
      bar.max = st.total;
      bar.value = st.done;
    }
    setState(card, st.total ? `upscaling: ${parts.join(", ") || "started"}` : "loading the model...", changed);
  } else if (st.state === "done") {
    showResult(card, st);
    return true;
  } else if (st.state === "cancelled") {
    card.classList.add("finished");
    setState(card, st.message || "cancelled", true);
    return true;
  } else {
    fail(card, st.message);
    return true;
  }
  return false;
}

function facts(st) {
  return `${st.width} x ${st.height} -> ${st.out_width} x ${st.out_height} px, ${secs(st.seconds)}, ${st.model}, ${st.format.toUpperCase()}`;
}

function showResult(card, st) {
  card.classList.add("finished", "done");
  setState(card, "done", true);
  const dial = $(".fidelity", card);
  dial.textContent = `fidelity ${st.fidelity}`;
  dial.hidden = st.fidelity === null || st.fidelity === undefined;
  $(".facts", card).textContent = facts(st);
  $(".facts", card).hidden = false;
  $("#zip").disabled = false;
  const link = $("a.download", card);
  link.href = `/api/jobs/${st.id}/result?download=1`;
  link.textContent = `Download ${st.format.toUpperCase()}`;
  $(".result", card).hidden = false;
  // eslint-disable-next-line no-undef
  setupCompare(card, { ...st, preview: Math.max(st.out_width, st.out_height) > 1600 });
  loadHistory();
}

async function loadHistory() {
  let jobs;
  try {
    const resp = await fetch("/api/jobs");
    jobs = (await resp.json()).jobs || [];
  } catch { return; }  // the next finished job tries again
  const list = $("#history");
  list.replaceChildren();
  for (const st of jobs) {
    const li = document.createElement("li");
    const img = Object.assign(document.createElement("img"), { src: `/api/jobs/${st.id}/thumb`, alt: `${st.name}, result`, loading: "lazy" });
    const name = Object.assign(document.createElement("span"), { className: "hname", textContent: st.name });
    const about = Object.assign(document.createElement("span"), { className: "hfacts", textContent: facts(st) });
    const buttons = Object.assign(document.createElement("span"), { className: "hbuttons" });
    const open = Object.assign(document.createElement("button"), { type: "button", textContent: "Compare" });
    open.addEventListener("click", () => reopen(st.id, st.name));
    const get = Object.assign(document.createElement("a"), { className: "download", href: `/api/jobs/${st.id}/result?download=1`, textContent: "Download" });
    buttons.append(open, get);
    li.append(img, name, about, buttons);
    list.append(li);
  }
  $("#history-box").hidden = jobs.length === 0;
}

function reopen(id, name) {  // a result of the history (or of a reload) as a card again
  const card = cards.get(id);
  if (card) { card.scrollIntoView({ block: "nearest" }); return; }
  remember(id, name);
  follow(newCard(name), id);
}

function addFiles(files) {
  showMessage("");
  for (const f of files) upload(f);
}

function setupInputs() {
  const input = $("#files");
  $("#drop").addEventListener("click", () => input.click());
  input.addEventListener("change", () => { addFiles([...input.files]); input.value = ""; });
  // the whole window takes a drop: a file never falls through to the browser, which
  // would open it in place of the page
  let depth = 0;
  const carriesFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes("Files");
  const cover = (on) => { $("#dropcover").hidden = !on; document.body.classList.toggle("dragging", on); };
  window.addEventListener("dragenter", (e) => { if (carriesFiles(e)) { depth += 1; cover(true); } });
  window.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) cover(false); });
  window.addEventListener("dragover", (e) => { e.preventDefault(); });
  window.addEventListener("drop", (e) => {
    e.preventDefault();
    depth = 0;
    cover(false);
    const files = [...(e.dataTransfer ? e.dataTransfer.files : [])];
    if (files.length) addFiles(files);
  });
  document.addEventListener("paste", (e) => {
    const items = [...(e.clipboardData ? e.clipboardData.items : [])];
    const files = items.filter((i) => i.kind === "file" && i.type.startsWith("image/")).map((i) => i.getAsFile()).filter(Boolean);
    if (!files.length) return;
    e.preventDefault();
    const stamp = new Date().toISOString().slice(0, 19).replace(/[T:]/g, "-");
    addFiles(files.map((f, i) => new File([f], `pasted-${stamp}${i ? `-${i + 1}` : ""}.${f.type.split("/")[1] || "png"}`, { type: f.type })));
  });
  $("#zip").addEventListener("click", () => {
    const done = [...cards].filter(([, c]) => c.classList.contains("done")).map(([id]) => id);
    location.href = `/api/results.zip?ids=${done.slice(-100).join(",")}`;  // the server keeps 100
  });
}

window.addEventListener("DOMContentLoaded", async () => {
  setupInputs();
  try {
    await loadConfig();
  } catch (err) {
    showMessage(`cannot reach the tadsr server: ${err.message}`);
    return;
  }
  for (const { id, name } of stored()) follow(newCard(name), id, true);  // after a reload
  loadHistory();
});
