// The before / after view of one result. Both images are laid out in the view's own pixels
// (scale = CSS px per image pixel, tx / ty = where the image's corner is), and the divider is
// a position in the view, so the left side is bicubic and the right side tadsr at every zoom.
// "1:1" shows one image pixel per screen pixel (devicePixelRatio counted). The page starts
// on downscaled previews (large results) and loads the full files once zoomed past them.
"use strict";

// eslint-disable-next-line no-unused-vars
function setupCompare(root, job) {
  const q = (s) => root.querySelector(s);
  const view = q(".compare"), before = q("img.before"), after = q("img.after");
  const clip = q(".afterclip"), divider = q(".divider"), split = q(".split");
  const W = job.out_width, H = job.out_height, dpr = window.devicePixelRatio || 1;
  const base = `/api/jobs/${job.id}`;
  const st = { scale: 1, tx: 0, ty: 0, fit: 1, full: !job.preview };
  const previewSide = 1600;
  before.src = job.preview ? `${base}/preview-bicubic` : `${base}/bicubic`;
  after.src = job.preview ? `${base}/preview` : `${base}/result`;

  function size() {  // the view: the image fitted to the card's width and 75 % of the window
    const room = q(".result").clientWidth || W;
    st.fit = Math.min(room / W, (window.innerHeight * 0.75) / H, 1);
    view.style.width = `${Math.max(1, Math.round(W * st.fit))}px`;
    view.style.height = `${Math.max(1, Math.round(H * st.fit))}px`;
  }

  function clamp() {  // no empty margin beside an image larger than the view; centred if not
    const vw = view.clientWidth, vh = view.clientHeight, w = W * st.scale, h = H * st.scale;
    st.tx = w <= vw ? (vw - w) / 2 : Math.min(0, Math.max(vw - w, st.tx));
    st.ty = h <= vh ? (vh - h) / 2 : Math.min(0, Math.max(vh - h, st.ty));
  }

  function draw() {
    clamp();
    const vw = view.clientWidth, x = (split.value / 100) * vw;
    for (const img of [before, after]) {
      img.style.width = `${W * st.scale}px`;
      img.style.height = `${H * st.scale}px`;
      img.style.transform = `translate(${st.tx}px, ${st.ty}px)`;
    }
    clip.style.clipPath = `inset(0 0 0 ${x}px)`;
    divider.style.left = `${x}px`;
    q(".tag.left").hidden = +split.value <= 0;
    q(".tag.right").hidden = +split.value >= 100;
    view.classList.toggle("pixels", st.scale * dpr >= 2);
    view.dataset.scale = String(st.scale);
    q(".zoomval").textContent = `${Math.round(st.scale * dpr * 100)} %`;
    const shown = Math.max(W, H) * st.scale * dpr;  // screen pixels the image spans
    if (!st.full && shown > previewSide) {  // past the preview's detail: the real files
      st.full = true;
      before.src = `${base}/bicubic`;
      after.src = `${base}/result`;
    }
  }

  function zoomTo(scale, cx, cy) {  // keep the image point under (cx, cy) where it is
    const s = Math.min(Math.max(scale, st.fit * 0.5, 0.01), 32 / dpr);
    if (cx === undefined) { cx = view.clientWidth / 2; cy = view.clientHeight / 2; }
    st.tx = cx - ((cx - st.tx) * s) / st.scale;
    st.ty = cy - ((cy - st.ty) * s) / st.scale;
    st.scale = s;
    draw();
  }

  function local(ev) {
    const box = view.getBoundingClientRect();
    return [ev.clientX - box.left, ev.clientY - box.top];
  }

  const pointers = new Map();
  let mode = null, last = null, pinch = 0;
  view.addEventListener("pointerdown", (ev) => {
    view.setPointerCapture(ev.pointerId);
    pointers.set(ev.pointerId, local(ev));
    const [x, y] = local(ev);
    if (pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      pinch = Math.hypot(a[0] - b[0], a[1] - b[1]);
      mode = "pinch";
      return;
    }
    const near = Math.abs(x - (split.value / 100) * view.clientWidth) <= (ev.pointerType === "mouse" ? 12 : 24);
    const zoomed = W * st.scale > view.clientWidth + 1 || H * st.scale > view.clientHeight + 1;
    mode = near || !zoomed ? "divider" : "pan";
    last = [x, y];
    if (mode === "divider") moveDivider(x);
  });
  view.addEventListener("pointermove", (ev) => {
    if (!pointers.has(ev.pointerId)) return;
    const [x, y] = local(ev);
    pointers.set(ev.pointerId, [x, y]);
    if (mode === "pinch" && pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      const d = Math.hypot(a[0] - b[0], a[1] - b[1]);
      if (pinch > 0) zoomTo((st.scale * d) / pinch, (a[0] + b[0]) / 2, (a[1] + b[1]) / 2);
      pinch = d;
    } else if (mode === "divider") {
      moveDivider(x);
    } else if (mode === "pan") {
      st.tx += x - last[0];
      st.ty += y - last[1];
      last = [x, y];
      draw();
    }
  });
  const up = (ev) => { pointers.delete(ev.pointerId); if (!pointers.size) mode = null; };
  view.addEventListener("pointerup", up);
  view.addEventListener("pointercancel", up);
  view.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const [x, y] = local(ev);
    zoomTo(st.scale * Math.exp(-ev.deltaY * 0.002), x, y);
  }, { passive: false });
  view.addEventListener("keydown", (ev) => {
    const step = 40, keys = {
      "+": () => zoomTo(st.scale * 1.5), "=": () => zoomTo(st.scale * 1.5),
      "-": () => zoomTo(st.scale / 1.5), "0": () => zoomTo(st.fit), "1": () => zoomTo(1 / dpr),
      ArrowLeft: () => { st.tx += step; draw(); }, ArrowRight: () => { st.tx -= step; draw(); },
      ArrowUp: () => { st.ty += step; draw(); }, ArrowDown: () => { st.ty -= step; draw(); },
    };
    if (keys[ev.key]) { ev.preventDefault(); keys[ev.key](); }
  });

  function moveDivider(x) {
    split.value = String(Math.round((Math.min(Math.max(x, 0), view.clientWidth) / view.clientWidth) * 1000) / 10);
    draw();
  }

  split.addEventListener("input", draw);
  q(".fit").addEventListener("click", () => zoomTo(st.fit));
  q(".one").addEventListener("click", () => zoomTo(1 / dpr));
  q(".zin").addEventListener("click", () => zoomTo(st.scale * 1.5));
  q(".zout").addEventListener("click", () => zoomTo(st.scale / 1.5));
  window.addEventListener("resize", () => { const fitted = st.scale === st.fit; size(); if (fitted) st.scale = st.fit; draw(); });
  size();
  st.scale = st.fit;
  draw();
}
