// aezoo explore: the page. Plain JavaScript, no libraries (the page works offline).
// Every request is asynchronous; slider decodes are coalesced (one in flight, the latest value wins),
// so the page never waits on the model.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const S = {info: null, map: null, thumbs: new Map(), pinA: null, pinB: null, hover: -1, code: null, label: null, view: null,
             inflight: false, pending: false, rtts: []};
  window.aezoo = S; // for the browser test and curious users

  function status(msg, ok) { const s = $("status"); s.textContent = msg || ""; s.className = ok ? "ok" : ""; }

  async function api(path, opts) {
    const r = await fetch(path, opts);
    const body = await r.json().catch(() => ({detail: r.statusText}));
    if (!r.ok) { const e = new Error(body.detail || r.statusText); e.status = r.status; throw e; }
    return body;
  }
  function report(e) { status(e.message); }
  function colour(label) {
    if (label === null || label === undefined) return "#4a6fa5";
    return label < PALETTE.length ? PALETTE[label] : `hsl(${(label * 137.5) % 360},60%,45%)`;
  }
  function className(c) { const n = S.info.class_names; return n && c < n.length ? n[c] : String(c); }
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) { if (k === "on") for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f); else e.setAttribute(k, v); }
    for (const k of kids) e.append(k);
    return e;
  }
  function thumb(src, caption, onclick) {
    const img = el("img", {src, alt: caption});
    if (onclick) img.addEventListener("click", onclick);
    return el("figure", {}, img, el("figcaption", {}, caption));
  }

  // --- the map -------------------------------------------------------------------------------------
  const canvas = $("map"), ctx = canvas.getContext("2d");
  function setupView() {
    const xs = S.map.x, ys = S.map.y;
    let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    const px = 0.06 * (x1 - x0 || 1), py = 0.06 * (y1 - y0 || 1);
    S.view = {x0: x0 - px, x1: x1 + px, y0: y0 - py, y1: y1 + py};
    const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth || 560;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(w * dpr);
  }
  const toPx = (x, y) => [(x - S.view.x0) / (S.view.x1 - S.view.x0) * canvas.width, (1 - (y - S.view.y0) / (S.view.y1 - S.view.y0)) * canvas.height];
  const fromPx = (px, py) => [S.view.x0 + px / canvas.width * (S.view.x1 - S.view.x0), S.view.y0 + (1 - py / canvas.height) * (S.view.y1 - S.view.y0)];
  function draw() {
    const m = S.map, dpr = window.devicePixelRatio || 1, r = 2.6 * dpr;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.globalAlpha = 0.75;
    for (let i = 0; i < m.x.length; i++) {
      const [px, py] = toPx(m.x[i], m.y[i]);
      ctx.fillStyle = colour(m.labels ? m.labels[i] : null);
      ctx.beginPath(); ctx.arc(px, py, r, 0, 6.2832); ctx.fill();
    }
    ctx.globalAlpha = 1;
    const ring = (i, c, label) => {
      if (i === null || i < 0) return;
      const [px, py] = toPx(m.x[i], m.y[i]);
      ctx.strokeStyle = c; ctx.lineWidth = 2 * dpr; ctx.beginPath(); ctx.arc(px, py, 3 * r, 0, 6.2832); ctx.stroke();
      if (label) { ctx.fillStyle = c; ctx.font = `${12 * dpr}px sans-serif`; ctx.fillText(label, px + 4 * r, py - 2 * r); }
    };
    if (S.pinA !== null && S.pinB !== null) {
      const [ax, ay] = toPx(m.x[S.pinA], m.y[S.pinA]), [bx, by] = toPx(m.x[S.pinB], m.y[S.pinB]);
      ctx.strokeStyle = "#555"; ctx.setLineDash([4 * dpr, 4 * dpr]); ctx.lineWidth = dpr;
      ctx.beginPath(); ctx.moveTo(ax, ay); ctx.lineTo(bx, by); ctx.stroke(); ctx.setLineDash([]);
    }
    ring(S.hover, "#333"); ring(S.pinA, "#000", "A"); ring(S.pinB, "#c00", "B");
    if (S.spot) {
      const [px, py] = toPx(S.spot[0], S.spot[1]);
      ctx.strokeStyle = "#000"; ctx.lineWidth = 1.5 * dpr;
      ctx.beginPath(); ctx.moveTo(px - 6 * dpr, py); ctx.lineTo(px + 6 * dpr, py); ctx.moveTo(px, py - 6 * dpr); ctx.lineTo(px, py + 6 * dpr); ctx.stroke();
    }
  }
  function nearest(ev) {
    const rect = canvas.getBoundingClientRect(), sx = canvas.width / rect.width;
    const px = (ev.clientX - rect.left) * sx, py = (ev.clientY - rect.top) * sx;
    let best = -1, bd = (8 * sx) ** 2;
    for (let i = 0; i < S.map.x.length; i++) {
      const [qx, qy] = toPx(S.map.x[i], S.map.y[i]), d = (qx - px) ** 2 + (qy - py) ** 2;
      if (d < bd) { bd = d; best = i; }
    }
    return {best, px, py, cx: ev.clientX - rect.left, cy: ev.clientY - rect.top};
  }
  canvas.addEventListener("mousemove", (ev) => {
    if (!S.map) return;
    const n = nearest(ev), tip = $("tooltip");
    if (n.best !== S.hover) { S.hover = n.best; draw(); }
    if (n.best < 0) { tip.hidden = true; return; }
    tip.hidden = false;
    tip.style.left = `${n.cx + 14}px`; tip.style.top = `${n.cy + 14}px`;
    const src = S.thumbs.get(n.best), want = n.best;
    if (src) $("tip-img").src = src;
    else loadThumbs([want]).then(() => { if (S.hover === want) $("tip-img").src = S.thumbs.get(want); }).catch(report);
    const lab = S.map.labels ? S.map.labels[n.best] : null;
    $("tip-text").textContent = `#${n.best}` + (lab !== null ? ` ${className(lab)}` : "");
  });
  canvas.addEventListener("mouseleave", () => { S.hover = -1; $("tooltip").hidden = true; if (S.map) draw(); });
  canvas.addEventListener("click", (ev) => {
    if (!S.map) return;
    const n = nearest(ev);
    if (n.best >= 0) { (ev.shiftKey ? pinB : pinA)(n.best); return; }
    if (!S.info.invertible) { status(`a ${S.info.projection} map has no inverse: click a point`); return; }
    decodeSpot(...fromPx(n.px, n.py));
  });

  async function loadThumbs(ids) {
    const want = ids.filter((i) => !S.thumbs.has(i));
    for (let k = 0; k < want.length; k += S.info.limits.thumbs) {
      const part = want.slice(k, k + S.info.limits.thumbs);
      const r = await api(`/api/thumbs?ids=${part.join(",")}`);
      r.ids.forEach((id, j) => S.thumbs.set(id, r.images[j]));
    }
  }

  // --- pinning, decoding ------------------------------------------------------------------------------
  function labelParam() { return S.info.panels.classes && S.label !== null ? `&label=${S.label}` : ""; }
  async function pinA(i) {
    try {
      const r = await api(`/api/item/${i}?k=8`);
      S.pinA = i; S.item = r; S.spot = null;
      $("pin-input").src = r.input; $("pin-recon").src = r.reconstruction; $("decoded").src = r.reconstruction;
      $("pinned-note").textContent = `#${i}` + (r.label !== null ? ` (${className(r.label)})` : "");
      if (S.info.panels.classes && r.label !== null) setLabel(r.label, false);
      const box = $("neighbours"); box.replaceChildren();
      for (const h of r.neighbours) box.append(thumb(h.image, `#${h.id} ${h.distance.toFixed(2)}`, () => pinA(h.id)));
      setCode(r.code);
      draw();
      refreshPanels();
      if (S.pinB !== null) interpolate();
    } catch (e) { report(e); }
  }
  async function pinB(i) {
    if (S.pinA === null) return pinA(i);
    S.pinB = i; draw();
    loadThumbs([i]).then(() => { $("pin-b").src = S.thumbs.get(i); }).catch(report);
    interpolate();
  }
  async function decodeSpot(x, y) {
    try {
      const r = await api(`/api/decode_point?x=${x}&y=${y}${labelParam()}`);
      S.spot = [x, y]; $("decoded").src = r.image; setCode(r.code); draw();
    } catch (e) { report(e); }
  }
  function setCode(code) {
    S.code = code.slice();
    for (const s of S.info.sliders) {
      const input = $(`dim-${s.dim}`); if (!input) continue;
      input.value = code[s.dim]; $(`out-${s.dim}`).textContent = (+code[s.dim]).toFixed(2);
    }
  }
  function requestDecode() {
    if (!S.code) return;
    if (S.inflight) { S.pending = true; return; }
    S.inflight = true; S.pending = false;
    const t0 = performance.now(), img = $("decoded");
    api("/api/decode", {method: "POST", headers: {"Content-Type": "application/json"},
                        body: JSON.stringify({codes: [S.code], label: S.info.panels.classes ? S.label : null})})
      .then(async (r) => {
        img.src = r.images[0];
        await img.decode().catch(() => {});
        const ms = performance.now() - t0;
        S.rtts.push(ms); $("rtt").textContent = `${ms.toFixed(0)} ms`;
        status("", true);
      })
      .catch(report)
      .finally(() => { S.inflight = false; if (S.pending) requestDecode(); });
  }
  function buildSliders() {
    const box = $("sliders"), info = S.info;
    $("slider-note").textContent = `${info.sliders.length} of ${info.code_dim}, by ${info.order_by}`;
    for (const s of info.sliders) {
      const step = (s.hi - s.lo) / 200;
      const input = el("input", {type: "range", id: `dim-${s.dim}`, min: s.lo, max: s.hi, step, value: (s.lo + s.hi) / 2, "aria-label": `z${s.dim}`});
      const out = el("output", {id: `out-${s.dim}`}, "");
      input.addEventListener("input", () => {
        if (!S.code) { status("pin an item or click the map first"); return; }
        S.code[s.dim] = +input.value; out.textContent = (+input.value).toFixed(2); requestDecode();
      });
      const what = `${info.order_by} ${s.score.toPrecision(3)}`;
      box.append(el("div", {class: "slider", title: `z${s.dim}: ${what}`}, el("span", {}, `z${s.dim}`), input, out));
    }
    $("reset").addEventListener("click", () => { if (S.item) { setCode(S.item.code); requestDecode(); } });
  }

  // --- interpolation --------------------------------------------------------------------------------
  async function interpolate() {
    if (S.pinA === null || S.pinB === null) return;
    $("interp-card").hidden = false;
    const mode = $("interp-mode").value;
    try {
      const r = await api(`/api/interpolate?a=${S.pinA}&b=${S.pinB}&steps=9&mode=${mode}`);
      const box = $("interp-strip"); box.replaceChildren();
      r.images.forEach((src, k) => box.append(thumb(src, `t=${(k / 8).toFixed(2)}`)));
      scrub();
    } catch (e) { report(e); }
  }
  let scrubbing = false, scrubAgain = false;
  async function scrub() {
    if (scrubbing) { scrubAgain = true; return; }
    scrubbing = true;
    try {
      const t = $("scrub").value, mode = $("interp-mode").value;
      const r = await api(`/api/interpolate?a=${S.pinA}&b=${S.pinB}&mode=${mode}&t=${t}`);
      $("interp-img").src = r.images[0];
    } catch (e) { report(e); }
    scrubbing = false;
    if (scrubAgain) { scrubAgain = false; scrub(); }
  }
  $("scrub").addEventListener("input", scrub);
  $("interp-mode").addEventListener("change", interpolate);

  // --- per-model panels ----------------------------------------------------------------------------
  function card(id, title, ...kids) { return el("div", {class: "card", id}, el("h2", {}, title), ...kids); }
  function setLabel(c, decode) {
    S.label = c; const sel = $("class-pick"); if (sel) sel.value = String(c);
    if (decode) requestDecode();
  }
  function bars(canvasEl, counts) {
    const dpr = window.devicePixelRatio || 1, w = canvasEl.clientWidth * dpr || 300, h = 70 * dpr;
    canvasEl.width = w; canvasEl.height = h;
    const c = canvasEl.getContext("2d"), top = Math.max(...counts, 1), bw = w / counts.length;
    c.fillStyle = "#4a6fa5";
    counts.forEach((v, k) => { const bh = v / top * (h - 2); c.fillRect(k * bw, h - bh, Math.max(bw - (bw > 3 ? 1 : 0), 1), bh); });
  }
  function buildPanels() {
    const p = S.info.panels, box = $("panels");
    if (p.classes) {
      const sel = el("select", {id: "class-pick"});
      for (let c = 0; c < S.info.num_classes; c++) sel.append(el("option", {value: c}, className(c)));
      sel.addEventListener("change", () => setLabel(+sel.value, true));
      S.label = 0;
      box.append(card("class-card", "Class", el("label", {}, "decode as ", sel),
        el("h3", {}, "Style transfer: the pinned item's code with every class"), el("div", {id: "style-strip", class: "strip"})));
    }
    if (p.codebook) {
      box.append(card("vq-card", "Codebook", el("div", {id: "usage"}), el("h3", {}, "Code map of the pinned item"), el("div", {id: "code-maps", class: "row"}),
        el("h3", {}, "Samples from the prior"),
        el("button", {id: "prior-sample", type: "button", ...(p.prior ? {} : {disabled: "", title: "no prior: run aezoo train-prior RUN"})}, p.prior ? "sample from the prior" : "no prior trained (aezoo train-prior RUN)"),
        el("div", {id: "prior-strip", class: "strip"})));
      api("/api/codebook").then((r) => {
        for (const g of r.grids) {
          const used = g.counts.filter((v) => v > 0).length, cv = el("canvas", {class: "bars"});
          $("usage").append(el("h3", {}, `${g.name}: ${used} of ${g.num_codes} codes used on the map's items (grid ${g.shape.join("x")})`), cv);
          bars(cv, g.counts);
        }
      }).catch(report);
      if (p.prior) $("prior-sample").addEventListener("click", () => samples("prior-strip"));
    } else if (p.sample) {
      box.append(card("sample-card", "Samples", el("button", {id: "sample", type: "button"}, "sample from the prior"), el("div", {id: "sample-strip", class: "strip"})));
      $("sample").addEventListener("click", () => samples("sample-strip"));
    }
    if (p.rollout) {
      box.append(card("rollout-card", "Rollout of the pinned sequence",
        el("label", {}, "observe ", el("input", {id: "observe", type: "number", min: 1, value: 3, style: "width:4em"})),
        el("label", {}, "predict ", el("input", {id: "predict", type: "number", min: 1, max: S.info.limits.steps, value: 5, style: "width:4em"})),
        el("button", {id: "roll", type: "button"}, "roll out"), el("div", {id: "rollout-out"})));
      $("roll").addEventListener("click", rollout);
    }
    if (p.codec) {
      box.append(card("codec-card", "Compression of the pinned image (one .aez file)",
        el("div", {id: "codec-out", class: "row"}), el("p", {id: "codec-text"}, "")));
    }
    if (p.corruption) {
      box.append(card("denoise-card", `Denoising: ${S.info.corruption.kind} noise (trained at ${S.info.corruption.level})`,
        el("label", {}, "corruption ", el("input", {id: "level", type: "range", min: 0, max: S.info.corruption.max, step: S.info.corruption.max / 100, value: S.info.corruption.level}), el("output", {id: "level-out"}, "")),
        el("div", {class: "row"}, el("figure", {}, el("img", {id: "noisy", class: "px big", alt: "noisy"}), el("figcaption", {}, "noisy")),
                                  el("figure", {}, el("img", {id: "denoised", class: "px big", alt: "denoised"}), el("figcaption", {}, "denoised")))));
      $("level").addEventListener("input", denoise);
    }
  }
  async function samples(target) {
    try {
      const r = await api(`/api/sample?n=8${labelParam()}`);
      const box = $(target); box.replaceChildren();
      // a sequence model draws whole sequences: one wide row each
      if (S.info.panels.rollout) r.images.forEach((src, k) => box.append(el("img", {src, class: "px wide", alt: `sample ${k + 1}`})));
      else r.images.forEach((src, k) => box.append(thumb(src, `${k + 1}`)));
    } catch (e) { report(e); }
  }
  async function rollout() {
    if (S.pinA === null) { status("pin a sequence first"); return; }
    try {
      const r = await api(`/api/rollout/${S.pinA}?observe=${$("observe").value}&predict=${$("predict").value}&samples=2`);
      const box = $("rollout-out"); box.replaceChildren();
      box.append(el("h3", {}, "observed"), el("img", {src: r.observed, class: "px wide", alt: "observed"}));
      if (r.truth) box.append(el("h3", {}, "true future"), el("img", {src: r.truth, class: "px wide", alt: "truth"}));
      r.rollouts.forEach((src, k) => box.append(el("h3", {}, `rollout ${k + 1}`), el("img", {src, class: "px wide", alt: `rollout ${k + 1}`})));
    } catch (e) { report(e); }
  }
  let denoising = false;
  async function denoise() {
    if (S.pinA === null || denoising) return;
    denoising = true;
    const level = $("level").value; $("level-out").textContent = level;
    try { const r = await api(`/api/denoise/${S.pinA}?level=${level}`); $("noisy").src = r.noisy; $("denoised").src = r.denoised; }
    catch (e) { report(e); }
    denoising = false;
    if ($("level").value !== level) denoise();
  }
  const dB = (v) => (v === null ? "lossless" : `${v.toFixed(2)} dB`);
  function showCodec(r) {
    const fig = (src, caption) => el("figure", {}, el("img", {src, class: "px big", alt: caption}), el("figcaption", {}, caption));
    const up = (c) => (c.bytes < r.payload_bytes ? ", still under the payload" : "");
    $("codec-out").replaceChildren(
      fig(r.input, "input"), fig(r.decoded, `.aez decoded: ${dB(r.psnr)}`),
      fig(r.bit_map, `bits per latent position, summed over channels: dark 0 to bright ${r.bit_map_max.toFixed(1)}`),
      ...r.codecs.map((c) => fig(c.image, `${c.codec.toUpperCase()} q${c.quality}: ${c.bytes} B${up(c)}, ${dB(c.psnr)}`)));
    // who wins: a file that is no larger and no worse than the other (null PSNR: an exact copy)
    const q = (v) => (v === null ? Infinity : v), n = r.payload_bytes;
    const verdict = (c) => {
      const name = c.codec.toUpperCase();
      if (c.bytes >= n && q(r.psnr) >= q(c.psnr)) return `.aez beats ${name}`;
      if (c.bytes <= n && q(c.psnr) >= q(r.psnr)) return `${name} beats .aez`;
      const d = q(c.psnr) - q(r.psnr);  // neither is both smaller and better: trade bytes for dB
      return `${name} ${Math.abs(c.bytes - n)} B ${c.bytes > n ? "more" : "fewer"} and ${Math.abs(d).toFixed(2)} dB ${d > 0 ? "better" : "worse"}`;
    };
    $("codec-text").textContent = `.aez file: ${r.bytes} B, ${r.bpp.toFixed(3)} bits per pixel with its header; payload ` +
      `${n} B, ${r.payload_bpp.toFixed(3)} bpp (the model estimates ${r.bits_y.toFixed(0)} bits of latents, ` +
      `${r.bits_z.toFixed(0)} of hyper-latents). JPEG and WebP (whole files) at the lowest quality whose file is at least ` +
      `the payload: ${r.codecs.map(verdict).join("; ")}.`;
  }
  function refreshPanels() {
    const p = S.info.panels, i = S.pinA;
    if (p.classes) api(`/api/style/${i}`).then((r) => {
      const box = $("style-strip"); box.replaceChildren(); r.images.forEach((src, c) => box.append(thumb(src, className(c), () => setLabel(c, true))));
    }).catch(report);
    if (p.codebook) api(`/api/codes/${i}`).then((r) => {
      const box = $("code-maps"); box.replaceChildren();
      for (const g of r.grids) box.append(el("figure", {}, el("img", {src: g.image, class: "px big", alt: `codes ${g.name}`}), el("figcaption", {}, g.name)));
    }).catch(report);
    if (p.corruption) denoise();
    if (p.codec) api(`/api/codec/${i}`).then((r) => { if (S.pinA === i) showCodec(r); }).catch(report);  // a later pin wins
  }

  // --- start ----------------------------------------------------------------------------------------
  function buildMetrics() {
    const t = $("metrics");
    for (const [k, v] of Object.entries(S.info.metrics)) t.append(el("tr", {}, el("th", {}, k), el("td", {}, Number.isInteger(v) ? String(v) : (+v).toPrecision(4))));
    if (!Object.keys(S.info.metrics).length) t.append(el("tr", {}, el("td", {}, "no eval.json in the run")));
  }
  function buildLegend() {
    const box = $("legend"); if (!S.map.labels) return;
    const seen = [...new Set(S.map.labels)].sort((a, b) => a - b);
    for (const c of seen) { const s = el("span", {}, className(c)); s.style.setProperty("--c", colour(c)); box.append(s); }
  }
  async function start() {
    try {
      S.info = await api("/api/info");
      S.map = await api("/api/map");
    } catch (e) { report(e); return; }
    const i = S.info;
    document.title = `aezoo explore: ${i.model}` + (i.run ? ` (${i.run})` : "");
    $("title").textContent = `aezoo explore: ${i.model}`;
    $("subtitle").textContent = `${i.run ? i.run + " · " : ""}${i.items} ${i.data} ${i.split} items · code size ${i.code_dim}`;
    $("report-link").hidden = !i.report;
    $("map-note").textContent = `${i.projection === "codes" ? "the 2-D codes" : i.projection.toUpperCase() + " of the codes"}: ${i.axes.join(" × ")}`;
    setupView(); draw(); buildLegend(); buildSliders(); buildPanels(); buildMetrics();
    window.addEventListener("resize", () => { setupView(); draw(); });
    document.body.dataset.ready = "1";
    // thumbnails for hovering, in batches, after the page is up
    const ids = [...Array(i.items).keys()];
    loadThumbs(ids).catch(report);
  }
  start();
})();
