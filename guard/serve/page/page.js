"use strict";
// The verification page: send the chosen image to POST v1/images/verify and show the report.
// Everything shown is set as text (never as HTML), so nothing read from an image can run here.
(function () {
  const config = JSON.parse(document.getElementById("config").textContent);
  const $ = (id) => document.getElementById(id);
  const form = $("upload"), input = $("file"), status = $("status"), keyRow = $("key-row"), keyInput = $("key");
  let previewUrl = null;

  keyRow.hidden = config.verify_public;

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function say(text, isError) {
    status.textContent = text;
    status.className = isError ? "error" : "";
  }

  function originClass(origin) {
    if (origin === "ai-generated") return "origin-ai-generated";
    if (origin === "ai-edited") return "origin-ai-edited";
    if (origin && origin.indexOf("captured") === 0) return "origin-captured";
    return "origin-unknown";
  }

  function renderVerdict(verdict) {
    const box = $("verdict");
    box.className = "verdict " + originClass(verdict.origin);
    $("origin").textContent = verdict.origin;
    $("strength").textContent = verdict.strength;
    $("integrity").textContent = verdict.integrity;
    const reasons = $("reasons");
    clear(reasons);
    for (const reason of verdict.reasons || []) reasons.appendChild(el("li", reason));
  }

  function renderEvidence(rows) {
    const body = $("evidence").tBodies[0];
    clear(body);
    for (const row of rows) {
      const tr = el("tr");
      tr.appendChild(el("td", row.source));
      tr.appendChild(el("td", row.finding));
      body.appendChild(tr);
    }
  }

  function renderWatermarks(marks) {
    const list = $("watermarks");
    clear(list);
    for (const mark of marks) {
      const item = el("li");
      item.appendChild(el("span", mark.scheme + ": "));
      if (mark.error) {
        item.appendChild(el("span", "not read (" + mark.error + ")", "no"));
      } else if (mark.detected) {
        const confidence = mark.confidence === null || mark.confidence === undefined ? "" : ", confidence " + mark.confidence;
        item.appendChild(el("span", "present, payload " + mark.payload + confidence, "yes"));
      } else {
        item.appendChild(el("span", "not found", "no"));
      }
      list.appendChild(item);
    }
  }

  function fact(list, name, value) {
    if (value === undefined || value === null || value === "") return;
    list.appendChild(el("dt", name));
    list.appendChild(el("dd", value));
  }

  function renderRecovered(recovered) {
    const section = $("recovered");
    section.hidden = !recovered;
    if (!recovered) return;
    const facts = $("recovered-facts");
    clear(facts);
    fact(facts, "manifest", recovered.manifest_id);
    fact(facts, "found by", recovered.via + " (" + recovered.source + ")");
    fact(facts, "signature", recovered.signature_state);
    fact(facts, "matches this file", recovered.binding_matches_this_file ? "yes" : "no");
    const signer = (recovered.manifest || {}).signer || {};
    fact(facts, "signed by", [signer.common_name, signer.organization].filter(Boolean).join(", "));
    fact(facts, "what it means", recovered.explanation);
  }

  function tree(items) {
    const list = el("ul", null, "tree");
    for (const item of items) {
      const node = el("li", item.text);
      if (item.children && item.children.length) node.appendChild(tree(item.children));
      list.appendChild(node);
    }
    return list;
  }

  function renderHistories(histories) {
    const holder = $("history");
    clear(holder);
    $("history-section").hidden = histories.length === 0;
    for (const history of histories) {
      const label = history.source === "recovered" ? "Recovered manifest: " : "In the file: ";
      holder.appendChild(el("p", label + history.title, "tree-title"));
      holder.appendChild(tree(history.items));
    }
  }

  function render(report, file) {
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(file);
    $("preview").src = previewUrl;
    $("name").textContent = file.name;
    renderVerdict(report.verdict);
    renderEvidence(report.summary.evidence);
    renderWatermarks(report.watermarks);
    renderRecovered(report.recovered);
    renderHistories(report.summary.histories);
    $("json").textContent = JSON.stringify(report, null, 2);
    $("report").hidden = false;
  }

  async function problemText(response) {
    try {
      const problem = await response.json();
      if (problem && problem.detail) return problem.detail;
    } catch (ignored) { /* not JSON: fall through */ }
    return "The service answered HTTP " + response.status + ".";
  }

  async function verify(file) {
    if (!file) return;
    if (file.size > config.max_upload_bytes) {
      say("This file is larger than the " + Math.floor(config.max_upload_bytes / 1048576) + " MiB this service accepts.", true);
      return;
    }
    $("report").hidden = true;
    say("Checking " + file.name + " …", false);
    const body = new FormData();
    body.append("file", file, file.name);
    const headers = {};
    if (keyInput.value.trim()) headers.Authorization = "Bearer " + keyInput.value.trim();
    let response;
    try {
      response = await fetch("v1/images/verify", { method: "POST", body: body, headers: headers });
    } catch (error) {
      say("The service could not be reached: " + error.message, true);
      return;
    }
    if (!response.ok) {
      if (response.status === 401) keyRow.hidden = false;
      say(await problemText(response), true);
      return;
    }
    const report = await response.json();
    say("", false);
    render(report, file);
  }

  input.addEventListener("change", () => verify(input.files[0]));
  form.addEventListener("submit", (event) => event.preventDefault());
  for (const name of ["dragenter", "dragover"]) {
    form.addEventListener(name, (event) => { event.preventDefault(); form.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    form.addEventListener(name, () => form.classList.remove("over"));
  }
  form.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) verify(file);
  });
})();
