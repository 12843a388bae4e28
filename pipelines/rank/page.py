"""The annotation page (one self-contained HTML document: no CDN, works offline).

A person enters a name, sees a prompt and its k responses, and orders them best first by
dragging or by keys (1..k picks a response, ArrowUp/ArrowDown move it, Enter submits, S skips).
Progress, the number of annotators and their agreement are shown; server errors (double submit,
incomplete ranking) are shown as they come back and change nothing.
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tokenmill: rank responses</title>
<style>
 body{font-family:system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem;color:#222}
 pre{white-space:pre-wrap;background:#f4f4f4;padding:.6rem;border-radius:4px}
 #ranking{list-style:none;padding:0} #ranking li{border:1px solid #bbb;border-radius:4px;margin:.4rem 0;
 padding:.5rem;background:#fff;cursor:grab} #ranking li.selected{border:2px solid #1565c0;background:#e3f2fd}
 #ranking li .pos{font-weight:bold;margin-right:.5rem} .err{color:#b00020} .ok{color:#1b5e20}
 #help{color:#666;font-size:.9em}
</style></head><body>
<h1>Rank the responses</h1>
<div><label>Annotator <input id="annotator" autocomplete="username"></label>
<button id="start">Start</button></div>
<p id="progress"></p>
<div id="task" hidden>
 <h2>Prompt</h2><pre id="prompt"></pre>
 <h2>Responses, best first</h2>
 <p id="help">Drag to reorder, or press 1..k to pick a response and ArrowUp / ArrowDown to move it.
 Enter submits, S skips.</p>
 <ol id="ranking"></ol>
 <button id="submit">Submit ranking</button> <button id="skip">Skip</button>
</div>
<p id="status" role="status"></p>
<p id="done" hidden>Nothing left to rank. Thank you!</p>
<script>
let current = null, selected = null, dragged = null;
const $ = (id) => document.getElementById(id);
const who = () => $("annotator").value.trim();
function status(text, ok) { $("status").textContent = text; $("status").className = ok ? "ok" : "err"; }
async function api(path, body) {
  const r = await fetch(path, body ? {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify(body)} : {});
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.detail || ("HTTP " + r.status));
  return data;
}
function renumber() {
  [...$("ranking").children].forEach((li, i) => li.querySelector(".pos").textContent = (i + 1) + ".");
}
function select(li) {
  [...$("ranking").children].forEach(x => x.classList.remove("selected"));
  selected = li; if (li) li.classList.add("selected");
}
function render(set) {
  current = set; selected = null;
  $("task").hidden = !set; $("done").hidden = !!set;
  if (!set) return;
  $("task").dataset.setId = set.id;
  $("prompt").textContent = set.prompt;
  const ol = $("ranking"); ol.innerHTML = "";
  set.responses.forEach((r, i) => {
    const li = document.createElement("li");
    li.draggable = true; li.dataset.id = r.id; li.dataset.key = String(i + 1);
    li.innerHTML = '<span class="pos"></span><span class="key">[' + (i + 1) + ']</span> ';
    const t = document.createElement("span"); t.className = "text"; t.textContent = r.text; li.appendChild(t);
    li.addEventListener("click", () => select(li));
    li.addEventListener("dragstart", () => { dragged = li; });
    li.addEventListener("dragover", (e) => { e.preventDefault(); });
    li.addEventListener("drop", (e) => {
      e.preventDefault(); if (!dragged || dragged === li) return;
      const items = [...ol.children];
      if (items.indexOf(dragged) < items.indexOf(li)) li.after(dragged); else li.before(dragged);
      renumber();
    });
    ol.appendChild(li);
  });
  renumber();
}
async function refresh() {
  const p = await api("/api/progress?annotator=" + encodeURIComponent(who()));
  const agr = p.agreement.pairwise_agreement;
  $("progress").textContent = "You ranked " + p.ranked + " of " + p.sets + " (" + p.skipped + " skipped, " +
    p.remaining + " left) · " + p.rankings + " rankings by " + p.annotators.length + " annotators" +
    (agr === null ? "" : " · agreement " + (100 * agr).toFixed(1) + "%");
  const n = await api("/api/next?annotator=" + encodeURIComponent(who()));
  render(n.set);
}
async function submit() {
  if (!current) return;
  const order = [...$("ranking").children].map(li => li.dataset.id);
  try { const r = await api("/api/rank", {set_id: current.id, annotator: who(), order});
        status("Saved ranking #" + r.ranking_id + ".", true); await refresh(); }
  catch (e) { status(e.message, false); }
}
async function skip() {
  if (!current) return;
  try { await api("/api/skip", {set_id: current.id, annotator: who()}); status("Skipped.", true); await refresh(); }
  catch (e) { status(e.message, false); }
}
$("start").addEventListener("click", async () => {
  if (!who()) { status("Enter your name first.", false); return; }
  localStorage.setItem("annotator", who());
  try { await refresh(); status("", true); } catch (e) { status(e.message, false); }
});
$("submit").addEventListener("click", submit);
$("skip").addEventListener("click", skip);
document.addEventListener("keydown", (e) => {
  if (!current || e.target.tagName === "INPUT") return;
  const items = [...$("ranking").children];
  if (/^[1-9]$/.test(e.key)) { select(items.find(li => li.dataset.key === e.key) || null); }
  else if (e.key === "ArrowUp" && selected && selected.previousElementSibling) {
    selected.previousElementSibling.before(selected); renumber(); e.preventDefault(); }
  else if (e.key === "ArrowDown" && selected && selected.nextElementSibling) {
    selected.nextElementSibling.after(selected); renumber(); e.preventDefault(); }
  else if (e.key === "Enter") { submit(); }
  else if (e.key === "s" || e.key === "S") { skip(); }
});
$("annotator").value = localStorage.getItem("annotator") || "";
</script></body></html>
"""
