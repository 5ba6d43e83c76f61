"use strict";
// The status page's script, served as a file of its own origin so the
// page's Content-Security-Policy needs no 'unsafe-inline'.
//
// It loads only what it shows, however large the registry: each poll reads
// the summary (counts by group and state, the first failing names), the
// failed or backing-off entries and the stale ones (at most PROBLEMS of
// each list), and one page of the filtered list (at most PAGE rows).
const POLL_MS = 1000;
const PROBLEMS = 100;
const PAGE = 200;
let polls = 0;
const filter = { group: "", state: "", prefix: "" };

function token() { return sessionStorage.getItem("supervised-token") || ""; }

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function ago(s) {
  if (s.seconds_ago === null) return "never";
  return s.seconds_ago + " s ago";
}

// `path` with these parameters and the filter's group and prefix.
function query(path, params) {
  const q = new URLSearchParams(params);
  if (filter.group) q.set("group", filter.group);
  if (filter.prefix) q.set("prefix", filter.prefix);
  return path + "?" + q.toString();
}

async function get(url) {
  const headers = token() ? { "Authorization": "Bearer " + token() } : {};
  const answer = await fetch(url, { headers, cache: "no-store" });
  if (answer.status === 401) throw new Error("401");
  if (!answer.ok) throw new Error(url + " answered " + answer.status);
  return answer.json();
}

function renderSummary(summary) {
  const loops = summary.subsystems;
  const unhealthy = summary.unhealthy;
  const head = document.getElementById("summary");
  head.textContent = (unhealthy === 0
      ? "Healthy: all " + loops + " subsystems"
      : "Unhealthy: " + unhealthy + " of " + loops + " subsystems stale or failed") +
    ", updated " + new Date().toLocaleTimeString() + " (poll " + polls + ")";
  head.className = summary.healthy ? "" : "unhealthy";

  const table = document.createElement("table");
  const states = ["running", "backing_off", "stopped", "failed", "standby", "paused"];
  const top = table.createTHead().insertRow();
  for (const title of ["group", "entries"].concat(states, ["stale"])) {
    const th = document.createElement("th");
    th.textContent = title;
    top.appendChild(th);
  }
  const body = table.createTBody();
  const select = document.getElementById("filter-group");
  const known = new Set(Array.from(select.options).map((o) => o.value));
  for (const g of summary.groups) {
    const row = body.insertRow();
    row.dataset.group = g.group === null ? "" : g.group;
    const name = row.insertCell();
    if (g.group === null) {
      name.textContent = "outside any group";
    } else {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = g.group;
      button.addEventListener("click", () => { setFilter({ group: g.group }); });
      name.appendChild(button);
      if (!known.has(g.group)) {
        const option = document.createElement("option");
        option.value = g.group;
        option.textContent = g.group;
        select.appendChild(option);
      }
    }
    cell(row, String(g.subsystems), "num");
    for (const state of states) {
      const n = g.states[state] || 0;
      cell(row, String(n), n > 0 && (state === "failed" || state === "backing_off") ? "num warn" : "num");
    }
    cell(row, String(g.stale), g.stale > 0 ? "num warn" : "num");
  }
  document.getElementById("fleet").replaceChildren(table);
}

function entriesTable(title, entries) {
  const section = document.createDocumentFragment();
  const h = document.createElement("h2");
  h.textContent = title;
  section.appendChild(h);
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const t of ["subsystem", "group", "state", "last beat", "tick", "stale after", "beats", "restarts", "health", "lease"]) {
    const th = document.createElement("th");
    th.textContent = t;
    head.appendChild(th);
  }
  const tbody = table.createTBody();
  for (const [name, s] of entries) {
    const row = tbody.insertRow();
    row.dataset.subsystem = name;
    if (s.stale) row.className = "stale";
    cell(row, name);
    cell(row, s.group === null ? "" : s.group);
    const state = document.createElement("span");
    // A stale loop's state is "running" in name only: the badge says so.
    state.className = "state state-" + (s.stale ? "stale" : s.state);
    state.textContent = s.stale ? s.state + ", stale" : s.state;
    row.insertCell().appendChild(state);
    cell(row, ago(s), "num");
    cell(row, s.tick_seconds === null ? "" : s.tick_seconds + " s", "num");
    cell(row, s.stale_after_seconds === null ? "" : s.stale_after_seconds + " s", "num");
    cell(row, String(s.beats), "num");
    cell(row, String(s.restarts), "num");
    cell(row, s.stale ? "stale" : (s.healthy ? "ok" : "unhealthy"), s.stale ? "badge-stale" : "");
    cell(row, s.lease === null ? "" : (s.leader ? "leader" : "standby (" + (s.lease.holder || "?") + ")"));
  }
  section.appendChild(table);
  return section;
}

// Every entry of an answer; a group's own entry too, so a nested group
// that gave up is listed with the failing ones.
function loops(body) {
  return Object.entries(body.subsystems);
}

async function poll() {
  polls += 1;
  const box = document.getElementById("token-box");
  try {
    const listParams = { limit: String(PAGE) };
    if (filter.state) listParams.state = filter.state;
    const [summary, failing, stale, page] = await Promise.all([
      get(query("liveness/summary", { limit: "20" })),
      get(query("liveness", { state: "failed,backing_off", limit: String(PROBLEMS) })),
      get(query("liveness", { stale: "true", limit: String(PROBLEMS) })),
      get(query("liveness", listParams)),
    ]);
    box.className = "";
    renderSummary(summary);
    // Failing and stale entries first, then the filtered page without them.
    const problems = new Map(loops(failing).concat(loops(stale)));
    const rest = loops(page).filter(([name]) => !problems.has(name));
    const root = document.getElementById("groups");
    root.replaceChildren();
    if (problems.size > 0) root.appendChild(entriesTable("Failing and stale", Array.from(problems)));
    root.appendChild(entriesTable("Subsystems", rest));
    if (page.next_after !== null) {
      const more = document.createElement("p");
      more.className = "more";
      more.textContent = "Showing the first " + PAGE + " by name; filter to see others.";
      root.appendChild(more);
    }
    document.getElementById("error").textContent = "";
  } catch (e) {
    if (e.message === "401") {
      box.className = "shown";
      document.getElementById("summary").textContent = "Token required to read /admin/liveness.";
    } else {
      box.className = "";
      document.getElementById("error").textContent = "Cannot read /admin/liveness: " + e.message;
    }
  } finally {
    document.body.dataset.polls = String(polls);
    setTimeout(poll, POLL_MS);
  }
}

// Shows `value` in `select`, adding it as an option first if it has none
// (a group not listed yet, several states from the page's URL), so the
// next submit keeps it instead of reading "".
function choose(select, value) {
  if (value && !Array.from(select.options).some((o) => o.value === value)) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = value;
    select.appendChild(option);
  }
  select.value = value;
}

function setFilter(change) {
  Object.assign(filter, change);
  choose(document.getElementById("filter-group"), filter.group);
  choose(document.getElementById("filter-state"), filter.state);
  document.getElementById("filter-prefix").value = filter.prefix;
}

document.getElementById("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  setFilter({
    group: document.getElementById("filter-group").value,
    state: document.getElementById("filter-state").value,
    prefix: document.getElementById("filter-prefix").value.trim(),
  });
});

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("supervised-token", document.getElementById("token").value.trim());
  document.getElementById("token").value = "";
});
// Read the page's own query string once: /admin/?group=...&state=...&prefix=...
{
  const own = new URLSearchParams(location.search);
  setFilter({ group: own.get("group") || "", state: own.get("state") || "", prefix: own.get("prefix") || "" });
}
poll();
