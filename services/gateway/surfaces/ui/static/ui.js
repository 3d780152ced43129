// quern's web UI: progressive enhancement of server-rendered pages (no build step, no dependencies).
// Every page works without this file; with it, times show in the browser's time zone, the jobs
// page and the job page follow their event streams, and outputs are previewed.
"use strict";

(function () {
  const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELED", "TIMED_OUT"]);
  const LOG_LINES = 500; // lines kept in a live log tail
  const PREVIEW_ROWS = 20; // rows of a CSV preview
  const PREVIEW_COLUMNS = 16; // and its columns

  function localTimes(root) {
    const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
    for (const node of root.querySelectorAll("time[datetime]")) {
      const when = new Date(node.getAttribute("datetime"));
      if (!Number.isNaN(when.getTime())) {
        node.textContent = format.format(when);
        node.title = when.toISOString();
      }
    }
  }

  function setState(badge, state) {
    badge.textContent = state;
    badge.className = badge.className.replace(/\bstate-[a-z_]+/g, "").trim() + " state-" + state.toLowerCase();
  }

  function confirmations() {
    for (const form of document.querySelectorAll("form[data-confirm]")) {
      form.addEventListener("submit", (event) => {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    }
  }

  // The jobs page: each state or progress event of a listed job changes its row and the counts.
  function jobsPage() {
    loadCounts();
    const table = document.getElementById("jobs");
    const notice = document.getElementById("new-jobs");
    if (!table) return;
    const joiner = table.dataset.events.includes("?") ? "&" : "?";  // an admin's page asks for ?all=true
    const url = table.dataset.events + (table.dataset.after ? joiner + "after=" + encodeURIComponent(table.dataset.after) : "");
    const source = new EventSource(url);
    source.addEventListener("state", (message) => {
      const event = JSON.parse(message.data);
      const row = table.querySelector('tr[data-job="' + CSS.escape(event.job_id) + '"]');
      if (!row) {
        if (event.data.state === "QUEUED" && notice) notice.hidden = false;
        return;
      }
      const before = row.dataset.state;
      const after = event.data.state;
      if (before === after) return;
      row.dataset.state = after;
      setState(row.querySelector('[data-role="state"]'), after);
      if (after === "SUCCEEDED") row.querySelector('[data-role="progress"]').value = 100;
      count(before, -1);
      count(after, +1);
    });
    source.addEventListener("progress", (message) => {
      const event = JSON.parse(message.data);
      const row = table.querySelector('tr[data-job="' + CSS.escape(event.job_id) + '"]');
      if (row) row.querySelector('[data-role="progress"]').value = event.data.percent;
    });
  }

  // The counts per state are fetched after the page shows (counting is the slow part of the page).
  function loadCounts() {
    const nav = document.querySelector("nav[data-counts]");
    if (!nav) return;
    fetch(nav.dataset.counts, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((answer) => (answer.ok ? answer.json() : null))
      .then((found) => {
        if (!found) return;
        nav.querySelector("[data-count-total]").textContent = String(found.total);
        for (const [state, n] of Object.entries(found.counts)) {
          const node = nav.querySelector('[data-count="' + state + '"] .n');
          if (node) node.textContent = String(n);
        }
      });
  }

  function count(state, change) {
    const node = document.querySelector('[data-count="' + state + '"] .n');
    if (node && node.textContent !== "") node.textContent = String(Math.max(0, Number(node.textContent) + change));
  }

  // The job page: state, progress and output lines as they happen; the results once it has ended.
  function jobPage() {
    const job = document.getElementById("job");
    if (!job || job.dataset.terminal === "yes") return;
    const badge = document.getElementById("state");
    const history = document.getElementById("history");
    const log = document.getElementById("log");
    const url = job.dataset.events + (job.dataset.after ? "?after=" + encodeURIComponent(job.dataset.after) : "");
    const source = new EventSource(url);
    source.addEventListener("state", (message) => {
      const event = JSON.parse(message.data);
      const state = event.data.state;
      job.dataset.state = state;
      setState(badge, state);
      const item = document.createElement("li");
      const label = element("span", "badge state-" + state.toLowerCase(), state);
      const time = document.createElement("time");
      time.setAttribute("datetime", event.at);
      item.append(label, " ", time);
      if (event.data.cancel_requested) item.append(" ", muted("cancel requested"));
      if (event.data.reason) item.append(" ", muted(event.data.reason));
      history.append(item);
      localTimes(item);
      if (TERMINAL.has(state)) {
        source.close();
        job.dataset.terminal = "yes";
        const cancel = document.getElementById("cancel-form");
        if (cancel) cancel.remove();
        if (event.data.exit_code !== undefined && event.data.exit_code !== null) {
          document.getElementById("exit-code").textContent = String(event.data.exit_code);
        }
        if (state === "SUCCEEDED") showProgress(100, null);
        refreshResults(job, 0);
      }
    });
    source.addEventListener("progress", (message) => {
      const event = JSON.parse(message.data);
      showProgress(event.data.percent, event.data.step);
    });
    source.addEventListener("log", (message) => {
      const event = JSON.parse(message.data);
      document.getElementById("live-log-section").hidden = false;
      const follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
      for (const line of event.data.lines) {
        log.append(element("span", event.data.stream, line + "\n"));
      }
      while (log.childNodes.length > LOG_LINES) log.firstChild.remove();
      if (follow) log.scrollTop = log.scrollHeight;
    });
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    node.className = className;
    node.textContent = text;
    return node;
  }

  function muted(text) {
    return element("span", "muted", text);
  }

  function showProgress(percent, step) {
    document.getElementById("progress").value = percent;
    document.getElementById("percent").textContent = Math.round(percent) + "%";
    if (step !== null) document.getElementById("step").textContent = step;
  }

  // Fetch the results section again until its archive is there (packaging takes a moment).
  async function refreshResults(job, tries) {
    const answer = await fetch(job.dataset.results, { credentials: "same-origin" });
    if (!answer.ok) return;
    const section = document.getElementById("results");
    section.innerHTML = await answer.text(); // our own server-rendered, escaped fragment
    localTimes(section);
    previews(section);
    if (section.querySelector("#archive-pending") && tries < 30) {
      setTimeout(() => refreshResults(job, tries + 1), 1000);
    }
  }

  // Previews: the head of an output, read from its presigned URL with a byte range.
  function previews(root) {
    for (const node of root.querySelectorAll("[data-preview]")) {
      preview(node).catch((error) => {
        node.textContent = "No preview: " + error.message;
      });
    }
  }

  async function preview(node) {
    const bytes = Number(node.dataset.bytes);
    const whole = Number(node.dataset.size) <= bytes;
    const answer = await fetch(node.dataset.src, { headers: { Range: "bytes=0-" + (bytes - 1) }, credentials: "omit" });
    if (!answer.ok) throw new Error("the store answered " + answer.status);
    let text = await answer.text();
    if (text.length > bytes) text = text.slice(0, bytes);
    const kind = node.dataset.preview;
    if (kind === "csv") node.append(csvTable(text, whole));
    else if (kind === "json" && whole) node.append(pre(JSON.stringify(JSON.parse(text), null, 2)));
    else node.append(pre(whole ? text : text + "\n…"));
  }

  function pre(text) {
    return element("pre", "log", text);
  }

  function csvTable(text, whole) {
    let lines = text.split(/\r?\n/);
    if (!whole) lines = lines.slice(0, -1); // the last line may be cut short
    lines = lines.filter((line) => line.length > 0);
    const table = document.createElement("table");
    table.className = "csv";
    const body = document.createElement("tbody");
    for (const line of lines.slice(0, PREVIEW_ROWS)) {
      const row = document.createElement("tr");
      const cells = line.split(",");
      for (const cell of cells.slice(0, PREVIEW_COLUMNS)) {
        const td = document.createElement("td");
        td.textContent = cell.trim();
        row.append(td);
      }
      if (cells.length > PREVIEW_COLUMNS) {
        const td = document.createElement("td");
        td.textContent = "… " + (cells.length - PREVIEW_COLUMNS) + " more";
        row.append(td);
      }
      body.append(row);
    }
    table.append(body);
    const wrap = document.createElement("div");
    wrap.className = "scroll";
    wrap.append(table);
    const more = lines.length > PREVIEW_ROWS || !whole;
    if (more) wrap.append(muted("The first " + Math.min(PREVIEW_ROWS, lines.length) + " rows."));
    return wrap;
  }

  document.addEventListener("DOMContentLoaded", () => {
    localTimes(document);
    confirmations();
    previews(document);
    const page = document.body.dataset.page;
    if (page === "jobs") jobsPage();
    if (page === "job") jobPage();
  });
})();
