// The tadsr serve page: uploads each chosen image as its own job, polls its state (which also
// tells the server that this page is still open), shows the result against bicubic.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const active = new Map();   // job id -> card, for jobs not finished yet
const finished = [];        // ids of done jobs (for the zip)
let config = null;

function showMessage(text) {
  const box = $("#message");
  box.textContent = text;
  box.hidden = !text;
}

function mb(bytes) {
  return `${+(bytes / 2 ** 20).toFixed(1)} MB`;
}

async function loadConfig() {
  const resp = await fetch("/api/config");
  if (!resp.ok) throw new Error((await resp.json()).error);
  config = await resp.json();
  const model = $("#model");
  for (const m of config.models) {
    model.add(new Option(m.kind === "teacher" ? `${m.name} (multi-step)` : m.name, m.name));
  }
  for (const t of config.tiles) {
    $("#tile").add(new Option(t === null ? "auto" : t === 0 ? "off (whole image)" : `${t} px`,
      t === null ? "auto" : String(t)));
  }
  for (const c of config.color_fixes) $("#color_fix").add(new Option(c, c));
  $("#steps").max = config.teacher_steps;
  $("#steps").value = config.teacher_steps;
  model.addEventListener("change", syncSteps);
  $("#fidelity").addEventListener("input", showFidelity);
  $("#fidelity-auto").addEventListener("change", showFidelity);
  syncSteps();
  const px = config.max_pixels ? `, up to ${config.max_pixels.toLocaleString("en")} pixels` : "";
  $("#limits").textContent = `PNG, JPEG, WebP, BMP, TIFF; up to ${mb(config.max_upload_bytes)}${px}`;
}

function syncSteps() {
  const m = config.models.find((x) => x.name === $("#model").value);
  $("#steps").disabled = !m || m.kind !== "teacher";
  // the fidelity dial: for a model with a faithful endpoint, starting at its default
  const dial = m && m.fidelity !== null && m.fidelity !== undefined;
  $("#fidelity").disabled = $("#fidelity-auto").disabled = !dial;
  if (dial) {  // a default of "auto" ticks the box; the slider keeps its place
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

function options() {
  const q = new URLSearchParams({
    model: $("#model").value,
    tile: $("#tile").value,
    color_fix: $("#color_fix").value,
    seed: $("#seed").value || "0",
  });
  if (!$("#steps").disabled) q.set("steps", $("#steps").value);
  if (!$("#fidelity-auto").disabled) {
    q.set("fidelity", $("#fidelity-auto").checked ? "auto" : $("#fidelity").value);
  }
  return q;
}

function newCard(name) {
  const card = $("#job-template").content.firstElementChild.cloneNode(true);
  $(".name", card).textContent = name;
  $("#jobs").prepend(card);
  return card;
}

function setState(card, text) {
  $(".state", card).textContent = text;
}

function fail(card, text) {
  card.classList.add("finished");
  setState(card, "failed");
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
  setState(card, "uploading...");
  const q = options();
  q.set("name", file.name);
  let resp;
  try {
    resp = await fetch(`/api/jobs?${q}`, { method: "POST", body: file, headers: { "X-Tadsr": "1" } });
  } catch (err) {
    fail(card, `${file.name}: the upload failed (${err.message}); is the server running?`);
    return;
  }
  const body = await resp.json().catch(() => ({ error: `${file.name}: server answered ${resp.status}` }));
  if (!resp.ok) {
    fail(card, body.error);
    return;
  }
  card.dataset.id = body.id;
  active.set(body.id, card);
  $(".cancel", card).addEventListener("click", () => cancel(body.id));
  setState(card, queuedText(body.ahead));
}

function queuedText(ahead) {
  return ahead > 0 ? `waiting in the queue: ${ahead} job${ahead > 1 ? "s" : ""} ahead` : "starting...";
}

async function cancel(id) {
  await fetch(`/api/jobs/${id}/cancel`, { method: "POST", headers: { "X-Tadsr": "1" } }).catch(() => {});
}

async function poll() {
  for (const [id, card] of active) {
    let st;
    try {
      const resp = await fetch(`/api/jobs/${id}`);
      st = await resp.json();
      if (!resp.ok) throw new Error(st.error);
    } catch (err) {
      active.delete(id);
      fail(card, `lost the job: ${err.message}`);
      continue;
    }
    const bar = $("progress", card);
    if (st.note) { $(".note", card).textContent = `note: ${st.note}`; $(".note", card).hidden = false; }
    if (st.state === "queued") {
      setState(card, queuedText(st.ahead));
    } else if (st.state === "running") {
      if (st.total) { bar.max = st.total; bar.value = st.done; }
      setState(card, st.total ? `upscaling: ${st.done} of ${st.total} ${st.total > 1 ? "steps" : "step"}` : "loading the model...");
    } else {
      active.delete(id);
      if (st.state === "done") showResult(card, id, st.fidelity);
      else if (st.state === "cancelled") { card.classList.add("finished"); setState(card, st.message || "cancelled"); }
      else fail(card, st.message);
    }
  }
  setTimeout(poll, 400);
}

function showResult(card, id, fidelity) {
  card.classList.add("finished");
  card.classList.add("done");
  setState(card, "done");
  const dial = $(".fidelity", card);
  dial.textContent = `fidelity ${fidelity}`;
  dial.hidden = fidelity === null || fidelity === undefined;
  finished.push(id);
  $("#zip").disabled = false;
  const result = $(".result", card);
  const after = $("img.after", card);
  const before = $("img.before", card);
  const stage = $(".stage", card);
  const compare = $(".compare", card);
  before.src = `/api/jobs/${id}/bicubic.png`;
  after.src = `/api/jobs/${id}/result.png`;
  $("a.download", card).href = `/api/jobs/${id}/result.png?download=1`;
  const split = $(".split", card);
  const zoom = $(".zoom", card);
  const apply = () => {
    after.style.clipPath = `inset(0 0 0 ${split.value}%)`;
    $(".divider", card).style.left = `${split.value}%`;
    stage.style.transform = `scale(${zoom.value})`;
    compare.classList.toggle("zoomed", zoom.value !== "1");
  };
  split.addEventListener("input", apply);
  zoom.addEventListener("change", apply);
  compare.addEventListener("click", (ev) => {
    const box = compare.getBoundingClientRect();
    const x = ((ev.clientX - box.left) / box.width) * 100;
    const y = ((ev.clientY - box.top) / box.height) * 100;
    stage.style.transformOrigin = `${x}% ${y}%`;
    if (zoom.value === "1") zoom.value = "4";
    apply();
  });
  apply();
  result.hidden = false;
}

function addFiles(files) {
  showMessage("");
  for (const f of files) upload(f);
}

function setupDrop() {
  const drop = $("#drop");
  const input = $("#files");
  input.addEventListener("change", () => { addFiles([...input.files]); input.value = ""; });
  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    drop.addEventListener(ev, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => { e.preventDefault(); addFiles([...e.dataTransfer.files]); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") input.click(); });
  $("#zip").addEventListener("click", () => {
    location.href = `/api/results.zip?ids=${finished.slice(-100).join(",")}`;  // the server keeps 100
  });
  // a closed tab stops its jobs at once (the server would also notice the polling stop)
  window.addEventListener("pagehide", () => {
    // (a keepalive fetch, not sendBeacon: it can carry the X-Tadsr header the server asks for)
    for (const id of active.keys()) {
      fetch(`/api/jobs/${id}/cancel`, { method: "POST", keepalive: true, headers: { "X-Tadsr": "1" } });
    }
  });
}

window.addEventListener("DOMContentLoaded", async () => {
  setupDrop();
  try {
    await loadConfig();
  } catch (err) {
    showMessage(`cannot reach the tadsr server: ${err.message}`);
    return;
  }
  poll();
});
