// The console's little JavaScript: the event log follows the log live
// (polling events.json), and a rebuild starts without leaving the page and
// shows its progress (polling projections.json) until it finishes.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;

function cell(text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  td.textContent = text;
  return td;
}

function fmtTime(iso) {
  return iso ? iso.replace("T", " ").replace(/(\.\d{3})\d*Z$/, "$1Z") : "";
}

function followEvents() {
  const table = document.getElementById("events");
  const box = document.getElementById("follow");
  if (!table || !box) return;
  const state = document.getElementById("follow-state");
  const filters = table.dataset.filters;
  const tbody = table.tBodies[0];
  let head = table.dataset.head;
  let busy = false;
  async function poll() {
    if (!box.checked || busy) return;
    busy = true;
    try {
      const q = new URLSearchParams(filters);
      q.set("after", head);
      const res = await fetch("/console/events.json?" + q, { credentials: "same-origin" });
      if (!res.ok) throw new Error(res.status + " " + res.statusText);
      const body = await res.json();
      const empty = tbody.querySelector("tr.empty");
      if (empty && body.events.length) empty.remove();
      for (const e of body.events.slice().reverse()) {
        const tr = document.createElement("tr");
        tr.className = "new";
        tr.dataset.position = e.position;
        const a = document.createElement("a");
        a.href = "/console/events/" + encodeURIComponent(e.position);
        a.textContent = e.position;
        const pos = document.createElement("td");
        pos.appendChild(a);
        const data = cell("", "wide opt");
        const code = document.createElement("code");
        code.textContent = e.summary;
        data.appendChild(code);
        tr.append(pos, cell(fmtTime(e.time), "opt"), cell(e.stream), cell(e.type), cell(e.user), data);
        tbody.insertBefore(tr, tbody.firstChild);
      }
      head = body.head;
      state.textContent = "head " + head;
    } catch (err) {
      state.textContent = "follow paused: " + err.message;
    } finally {
      busy = false;
    }
  }
  setInterval(poll, 1500);
}

function rebuilds() {
  const table = document.getElementById("projections");
  if (!table) return;
  let timer = null;
  function show(p) {
    const tr = table.querySelector('tr[data-name="' + CSS.escape(p.name) + '"]');
    if (!tr) return;
    tr.querySelector(".checkpoint").textContent = p.checkpoint;
    tr.querySelector(".head").textContent = p.head;
    tr.querySelector(".lag").textContent = p.lag;
    tr.querySelector(".state").textContent = p.state;
    const bar = tr.querySelector("progress");
    const text = tr.querySelector(".progress-text");
    const button = tr.querySelector("button");
    const r = p.rebuild;
    if (!r) return;
    bar.hidden = false;
    bar.value = r.head ? Math.min(100, Math.floor((r.through * 100) / r.head)) : (r.running ? 0 : 100);
    button.disabled = r.running;
    text.textContent = r.running ? r.through + " / " + r.head : r.error ? "failed: " + r.error : "rebuilt: " + r.events + " events";
  }
  async function poll() {
    const res = await fetch("/console/projections.json", { credentials: "same-origin" });
    if (!res.ok) return;
    const body = await res.json();
    body.projections.forEach(show);
    if (!body.projections.some((p) => p.rebuild && p.rebuild.running)) {
      clearInterval(timer);
      timer = null;
    }
  }
  function watch() {
    if (!timer) timer = setInterval(poll, 500);
    poll();
  }
  for (const form of table.querySelectorAll("form")) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      form.querySelector("button").disabled = true;
      await fetch(form.action, { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf } });
      watch();
    });
  }
  watch();
}

followEvents();
rebuilds();
