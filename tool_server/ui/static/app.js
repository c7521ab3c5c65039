// Toolbridge UI: one vanilla ES module over the JSON API, no build step, nothing loaded from elsewhere.
// Views (by URL hash): #/signin, #/ (catalog), #/tools/NAME (try a tool, client snippets), #/ops (admin).
// Every data call sends the key from sessionStorage as "Authorization: Bearer"; a 401 signs the tab out.
// Everything the server sends is put in the page as text (textContent), never as HTML.

const STORE = "toolbridge.key";
const ROOT = new URL("../", location.href); // the page is served at <server>/ui/
const main = document.getElementById("main");
const state = { key: sessionStorage.getItem(STORE), who: null, query: "", timer: null, notice: null, firstRender: true };

class SignedOut extends Error {}

// ---------- DOM helpers ----------
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "text") el.textContent = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}
function s(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, String(value));
  el.append(...children);
  return el;
}
const put = (el, ...children) => el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
const announce = (text) => { const a = document.getElementById("announcer"); a.textContent = ""; setTimeout(() => { a.textContent = text; }, 50); };
const badge = (text, kind) => h("span", { class: `badge ${kind || ""}` }, text);
const stateBadge = (value) => h("span", { class: `badge state-${value}` }, value);
const table = (label, head, rows, cls) => h("div", { class: "scroll", role: "region", "aria-label": label, tabindex: 0 },
  h("table", { class: cls || "" }, h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col", class: c.num ? "num" : "" }, c.label ?? c)))),
    h("tbody", {}, rows)));
const td = (label, content, cls) => h("td", { "data-label": label, class: cls || "" }, content ?? "—");
const fmtMs = (ms) => (ms === null || ms === undefined ? "—" : ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`);
const fmtMB = (bytes) => (bytes === null || bytes === undefined ? "—" : bytes < 2 ** 20 ? `${Math.round(bytes / 1024)} kB`
  : `${(bytes / 2 ** 20).toFixed(bytes < 10 * 2 ** 20 ? 1 : 0)} MB`);
const fmtAge = (seconds) => (seconds === null || seconds === undefined ? "never" : seconds < 90 ? `${seconds.toFixed(1)} s ago` : `${Math.round(seconds / 60)} min ago`);
const pretty = (value) => JSON.stringify(value, null, 2);

// ---------- API ----------
async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.key}`, Accept: "application/json", ...(options.headers || {}) };
  const response = await fetch(new URL(path, ROOT), { ...options, headers });
  if (response.status === 401) {
    signOut("This key was refused: it is unknown, expired or has been revoked. Sign in with a valid key.");
    throw new SignedOut();
  }
  return response;
}
async function json(path) {
  const response = await api(path);
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error((body && body.message) || `${path} answered ${response.status}`);
  return body;
}

// ---------- session ----------
function signOut(notice) {
  sessionStorage.removeItem(STORE);
  Object.assign(state, { key: null, who: null, notice: notice || null });
  chrome();
  if (location.hash !== "#/signin") location.hash = "#/signin"; else render();
}
function chrome() {
  const signedIn = Boolean(state.who);
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("who").hidden = !signedIn;
  document.querySelector('[data-page="ops"]').hidden = !(state.who && state.who.admin);
  document.getElementById("who-name").textContent = signedIn ? state.who.name : "";
}
function viewSignIn() {
  const input = h("input", { id: "api-key", name: "api-key", type: "password", autocomplete: "off", spellcheck: "false", required: true, "aria-describedby": "api-key-hint" });
  const error = h("p", { class: "problem", id: "signin-error", role: "alert", hidden: true });
  const form = h("form", { class: "signin", novalidate: true, onsubmit: async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) { show("Enter an API key (it starts with tb_)."); return; }
    let response;
    try {
      response = await fetch(new URL("ui/session", ROOT), { headers: { Authorization: `Bearer ${key}` } });
    } catch (error) { show(`The server cannot be reached (${error.message}).`); return; }
    if (!response.ok) { show(response.status === 401 ? "This key is unknown, expired or revoked." : `The server answered ${response.status}.`); return; }
    sessionStorage.setItem(STORE, key);
    Object.assign(state, { key, who: await response.json(), notice: null });
    chrome();
    location.hash = "#/";
  } },
  h("div", { class: "field" }, h("label", { for: "api-key" }, "API key"),
    h("p", { class: "hint", id: "api-key-hint" }, "Kept in this browser tab only (session storage) and sent as Authorization: Bearer. The page shows what this key may see."),
    input, error),
  h("button", { type: "submit" }, "Sign in"));
  function show(text) { error.textContent = text; error.hidden = false; input.setAttribute("aria-invalid", "true"); input.focus(); }
  return [h("h1", { tabindex: -1 }, "Sign in"),
    state.notice ? h("p", { class: "notice bad", role: "alert" }, state.notice) : null,
    h("p", { class: "lead" }, "Browse the tools an API key may call, try them, copy client snippets, and (with an admin key) watch operations."),
    form,
    h("p", { class: "muted" }, "No key? toolbridge up writes an admin key to .toolbridge/admin.key; toolbridge keys create issues scoped ones.")];
}

// ---------- schemas ----------
const types = (schema) => [].concat(schema.type ?? []);
function typeText(schema) {
  const t = types(schema).filter((x) => x !== "null");
  let text = t.join(" or ") || "any";
  if (schema.enum) text = `one of ${schema.enum.filter((v) => v !== null).join(", ")}`;
  else if (schema.format === "date-time") text = "date-time (ISO 8601)";
  else if (schema.contentEncoding === "base64") text = "base64 text";
  else if (t[0] === "array" && schema.items) text = `array of ${typeText(schema.items)}`;
  else if (t[0] === "object" && schema.properties) text = `object {${Object.keys(schema.properties).join(", ")}}`;
  return types(schema).includes("null") ? `${text}, or null` : text;
}
function fields(tool) {
  const schema = tool.input_schema || {};
  const required = new Set(schema.required || []);
  return Object.entries(schema.properties || {}).map(([name, prop]) => ({ name, prop, required: required.has(name) }));
}
function outputText(tool) {
  const props = (tool.output_schema || {}).properties || {};
  if (props.label && props.label.enum) return `label: one of ${props.label.enum.join(", ")}${props.probabilities ? "; probabilities per label" : ""}`;
  if (props.prediction) return `prediction: ${typeText(props.prediction)}`;
  const names = Object.keys(props).filter((n) => n !== "model");
  return names.length ? names.join(", ") : "see the output schema";
}
// The description's first line, or its first sentence when that line is long (the whole text is one click away).
function summary(text) {
  const line = (text || "").split("\n")[0];
  if (line.length <= 200) return line;
  const sentence = line.slice(0, 200).match(/^(.+?[.!?])\s/);
  return sentence ? sentence[1] : `${line.slice(0, 197)}…`;
}
function fieldTable(tool) {
  const rows = fields(tool).map((f) => h("tr", {}, td("Field", h("code", {}, f.name)), td("Type", typeText(f.prop)),
    td("Required", f.required ? "required" : "optional"), td("Description", f.prop.description || "—")));
  return table(`Fields of ${tool.name}`, ["Field", "Type", "Required", "Description"], rows, "stack");
}
function routingText(tool, routing) {
  const r = routing && routing[tool.name];
  if (!r) return [badge(`version ${tool.model.version}`)];
  const out = [badge(`live: version ${r.champion}`, "ok")];
  if (r.canary) out.push(badge(`canary: version ${r.canary} takes ${Math.round(r.canary_weight * 100)}%`, "warn"));
  return out;
}

// ---------- catalog ----------
async function viewCatalog() {
  const admin = state.who.admin;
  const [tools, status, stats] = await Promise.all([json("tools"), admin ? json("status").catch(() => null) : null,
    admin ? json("stats/calls").catch(() => null) : null]);
  const routing = stats && stats.routing;
  const notLive = {};
  for (const v of (status && status.versions) || []) if (v.state !== "live") (notLive[v.tool] ||= []).push(v);
  const count = h("p", { id: "count", "aria-live": "polite" });
  const cards = tools.map((tool) => {
    const haystack = [tool.name, tool.description, ...fields(tool).flatMap((f) => [f.name, f.prop.description || ""])].join(" ").toLowerCase();
    const card = h("li", { class: "card", "data-tool": tool.name },
      h("h2", {}, h("a", { href: `#/tools/${encodeURIComponent(tool.name)}` }, tool.name)),
      h("div", { class: "badges" }, badge(tool.kind), routingText(tool, routing), badge(`model ${tool.model.name}`)),
      (notLive[tool.name] || []).map((v) => h("p", { class: `notice ${v.state === "failed" ? "bad" : ""}` },
        `Version ${v.version} (${v.role}) is ${v.state}${v.reason ? `: ${v.reason}` : ""}`)),
      h("p", {}, summary(tool.description)),
      h("details", {}, h("summary", {}, "Description as agents read it"), h("p", { class: "prose" }, tool.description)),
      h("details", { class: "fields" }, h("summary", {}, h("strong", {}, "Fields: "), fields(tool).map((f) => `${f.name}${f.required ? "" : " (optional)"}`).join(", ") || "none"),
        fieldTable(tool)),
      h("p", {}, h("strong", {}, "Output: "), outputText(tool)));
    card.haystack = haystack;
    return card;
  });
  const list = h("ul", { class: "cards grid", id: "tool-list", "aria-label": "Tools" }, cards);
  const empty = h("p", { class: "notice", hidden: true }, "No tool matches this search.");
  const search = h("input", { id: "search", type: "search", value: state.query, autocomplete: "off", "aria-describedby": "search-hint", "aria-controls": "tool-list", oninput: filter });
  function filter() {
    state.query = search.value;
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const card of cards) { card.hidden = !words.every((w) => card.haystack.includes(w)); shown += card.hidden ? 0 : 1; }
    empty.hidden = shown > 0 || tools.length === 0;
    count.textContent = words.length ? `${shown} of ${tools.length} tools match` : `${tools.length} tools`;
  }
  filter();
  return [h("h1", { tabindex: -1 }, "Tools"),
    h("p", { class: "lead" }, `The tools the key ${state.who.name} may call, as agents see them.`),
    h("div", { class: "search" }, h("label", { for: "search" }, "Search tools"),
      h("p", { class: "hint", id: "search-hint" }, "By name, description or field."), search), count,
    tools.length ? list : h("p", { class: "notice" }, "This key may call no live tool. An admin can widen its scopes (toolbridge keys create --scopes)."), empty];
}

// ---------- tool page: the form ----------
// Element ids of a field (MLflow column names may hold spaces or dots): "age" → "f-age", "a b" → "f-a_20b".
const fid = (name) => `f-${name.replace(/[^A-Za-z0-9_-]/g, (c) => `_${c.charCodeAt(0).toString(16)}`)}`;
function control(f) {
  const id = fid(f.name);
  const t = types(f.prop).filter((x) => x !== "null");
  const common = { id, name: f.name, "aria-describedby": `${id}-hint ${id}-problem`, required: f.required };
  if (f.prop.enum || t[0] === "boolean") {
    const values = f.prop.enum ? f.prop.enum.filter((v) => v !== null) : [true, false];
    return h("select", common, h("option", { value: "" }, f.required ? "Choose…" : "(omit: null)"),
      values.map((v) => h("option", { value: JSON.stringify(v) }, String(v))));
  }
  if (t[0] === "array" || t[0] === "object" || t.length !== 1) {
    return h("textarea", { ...common, rows: 4, spellcheck: "false", placeholder: t[0] === "object" ? '{"key": "value"}' : "[1.5, 2.0]" });
  }
  const numeric = t[0] === "integer" || t[0] === "number";
  return h("input", { ...common, type: "text", autocomplete: "off", spellcheck: numeric ? "false" : null,
    inputmode: t[0] === "integer" ? "numeric" : t[0] === "number" ? "decimal" : null,
    placeholder: f.prop.format === "date-time" ? "2026-01-31T12:00:00Z" : null });
}
const NUMBER = /^\s*-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;
// The arguments as typed: numbers that parse become numbers; anything else goes as typed, so the server's 422
// explains it exactly as an agent would read it. Empty optional fields are left out (= null).
function collect(form, tool) {
  const args = {};
  const problems = [];
  for (const f of fields(tool)) {
    const el = form.elements.namedItem(f.name);
    const raw = el.value;
    if (raw.trim() === "") continue;
    const t = types(f.prop).filter((x) => x !== "null");
    if (el.tagName === "SELECT") args[f.name] = JSON.parse(raw);
    else if (el.tagName === "TEXTAREA") {
      try { args[f.name] = JSON.parse(raw); } catch (e) { problems.push({ field: f.name, message: `field \`${f.name}\`: not valid JSON (${e.message})` }); }
    } else if ((t[0] === "integer" || t[0] === "number") && NUMBER.test(raw)) args[f.name] = Number(raw);
    else args[f.name] = raw;
  }
  return { args, problems };
}
function showProblems(form, problems, tool) {
  const known = new Set(fields(tool).map((f) => f.name));
  const items = problems.map((p) => {
    const top = known.has(p.field) ? p.field : (p.field || "").split(/[.[]/)[0];
    if (known.has(top)) {
      const el = form.elements.namedItem(top);
      el.setAttribute("aria-invalid", "true");
      const slot = document.getElementById(`${fid(top)}-problem`);
      slot.hidden = false;
      slot.textContent = slot.textContent ? `${slot.textContent} ${p.message}` : p.message;
      return h("li", {}, h("a", { href: `#${fid(top)}`, onclick: (e) => { e.preventDefault(); el.focus(); } }, p.message));
    }
    return h("li", {}, p.message);
  });
  return h("ul", {}, items);
}
function clearProblems(form) {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of form.querySelectorAll(".problem")) { el.hidden = true; el.textContent = ""; }
}
function answerView(body, tool) {
  const parts = [];
  if (body && body.label !== undefined) {
    parts.push(h("p", {}, "Label ", h("span", { class: "answer-label", id: "answer-label" }, String(body.label))));
    const probs = Object.entries(body.probabilities || {}).sort((a, b) => b[1] - a[1]);
    if (probs.length) parts.push(h("div", { role: "list", "aria-label": "Probabilities" }, probs.map(([label, p]) =>
      h("div", { class: "prob", role: "listitem" }, h("span", {}, label),
        h("div", { class: "track", "aria-hidden": "true" }, (() => { const d = h("div", { class: "fill" }); d.style.width = `${(p * 100).toFixed(1)}%`; return d; })()),
        h("span", { class: "mono" }, `${(p * 100).toFixed(1)}%`)))));
  } else if (body && body.prediction !== undefined) {
    parts.push(h("p", {}, "Prediction ", h("span", { class: "answer-label", id: "answer-label" }, JSON.stringify(body.prediction))));
  }
  parts.push(h("details", { open: !parts.length }, h("summary", {}, `Answer as ${tool.name} returns it (JSON)`), h("pre", { tabindex: 0 }, pretty(body))));
  return parts;
}
async function call(form, tool, result, button, onArgs) {
  clearProblems(form);
  put(result, h("p", { class: "muted" }, "Calling…"));
  const { args, problems } = collect(form, tool);
  onArgs(args);
  if (problems.length) {
    const box = h("div", { class: "summary-box", tabindex: -1, id: "problems" }, h("h3", {}, "Fix these fields before calling"), showProblems(form, problems, tool));
    result.replaceChildren(box);
    box.focus();
    return;
  }
  button.disabled = true;
  const started = performance.now();
  try {
    const response = await api(`tools/${encodeURIComponent(tool.name)}/invoke`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(args) });
    const latency = performance.now() - started;
    const body = await response.json().catch(() => null);
    const sent = h("details", {}, h("summary", {}, "Arguments sent"), h("pre", { tabindex: 0 }, pretty(args)));
    if (response.ok) {
      const version = response.headers.get("X-Toolbridge-Model-Version") || (body && body.model && body.model.version);
      const cache = response.headers.get("X-Toolbridge-Cache");
      put(result, h("div", { class: "notice ok", id: "outcome" }, `200 OK · answered by version `, h("strong", { id: "answer-version" }, version),
        ` of ${body.model.name} · ${fmtMs(latency)} round trip`, cache ? ` · cache ${cache}` : ""), answerView(body, tool), sent);
      announce(`Answered by version ${version}`);
    } else {
      const retry = response.headers.get("Retry-After");
      const box = h("div", { class: "summary-box", tabindex: -1, id: "problems" },
        h("h3", {}, `${response.status} ${(body && body.error) || "error"}`),
        (body && body.problems && body.problems.length) ? showProblems(form, body.problems, tool) : h("p", { class: "prose" }, (body && body.message) || response.statusText),
        retry ? h("p", {}, `Retry after ${retry} s.`) : null, h("p", { class: "muted" }, `${fmtMs(latency)} round trip`));
      result.replaceChildren(box, sent);
      box.focus();
    }
  } catch (error) {
    if (!(error instanceof SignedOut)) result.replaceChildren(h("p", { class: "notice bad", role: "alert" }, `The call failed: ${error.message}`));
  } finally {
    button.disabled = false;
  }
}

// ---------- tool page: snippets ----------
function skeleton(tool) {
  const sample = { integer: 1, number: 1.5, boolean: true, string: "text", array: [], object: {} };
  const args = {};
  for (const f of fields(tool)) if (f.required) {
    const t = types(f.prop).filter((x) => x !== "null")[0];
    args[f.name] = f.prop.enum ? f.prop.enum[0] : f.prop.format === "date-time" ? "2026-01-31T12:00:00Z" : sample[t] ?? null;
  }
  return args;
}
const shellQuote = (text) => `'${text.replaceAll("'", "'\\''")}'`;
function snippets(tool, openai, args) {
  const base = tool.invoke_url.replace(/\/tools\/[^/]+\/invoke$/, "");
  const name = state.who.name;
  const entry = (openai || []).find((t) => t.function && t.function.name === tool.name);
  return [
    { id: "dify", label: "Dify", blocks: [
      ["Catalog URL for Import from URL (run where Toolbridge's database is)", `toolbridge keys schema-url ${name} --tools ${tool.name} --url ${base}`],
      ["Authorization of the custom tool", `Authorization method: API Key\nHeader:               Authorization\nPrefix:               Bearer   (Basic, Dify's default, works too)\nValue:                the API key (tb_...)`],
      ["Or Import from text: this tool's OpenAPI document", `curl -s ${base}/tools/${tool.name}/openapi.json -H "Authorization: Bearer $TOOLBRIDGE_API_KEY"`]],
      note: "Dify's Import from URL sends no header: the catalog URL carries a read-only token bound to the key (docs/dify.md)." },
    { id: "mcp", label: "MCP", blocks: [
      ["Claude Code", `claude mcp add --transport http toolbridge ${base}/mcp --header "Authorization: Bearer $TOOLBRIDGE_API_KEY"`],
      ["Other MCP hosts (JSON config, Streamable HTTP)", pretty({ mcpServers: { toolbridge: { type: "http", url: `${base}/mcp`, headers: { Authorization: "Bearer ${TOOLBRIDGE_API_KEY}" } } } })]],
      note: `Every tool this key may call appears, ${tool.name} among them; the list follows MLflow live. Hosts that do not expand \${VAR} need the key written in.` },
    { id: "openai", label: "OpenAI", blocks: [
      ["The tools= entry (strict where the schema allows)", entry ? pretty(entry) : "(this tool is not in GET /openai/tools)"],
      ["All tools of this key, for tools=", `curl -s ${base}/openai/tools -H "Authorization: Bearer $TOOLBRIDGE_API_KEY"`]],
      note: `When the model calls ${tool.name}, POST its arguments to ${tool.invoke_url} and hand the answer back.` },
    { id: "langchain", label: "LangChain", blocks: [
      ["Python (pip install ./client from the Toolbridge repository)", `import os\n\nfrom toolbridge_client.langchain import ToolbridgeToolkit\n\ntoolkit = ToolbridgeToolkit("${base}", api_key=os.environ["TOOLBRIDGE_API_KEY"],\n                            names=["${tool.name}"])\ntools = toolkit.get_tools()  # LangChain tools, arguments checked before any HTTP call`]],
      note: "Leave out names= for every tool of the key." },
    { id: "curl", label: "curl", blocks: [
      ["Call it", `curl -s -X POST ${tool.invoke_url} \\\n  -H "Authorization: Bearer $TOOLBRIDGE_API_KEY" \\\n  -H 'Content-Type: application/json' \\\n  -d ${shellQuote(JSON.stringify(args))}`]],
      note: "With the arguments of your last try (or placeholders). Set TOOLBRIDGE_API_KEY to your key first." },
  ];
}
async function copy(text, button) {
  try { await navigator.clipboard.writeText(text); } catch {
    const area = h("textarea", { class: "visually-hidden" }); area.value = text; document.body.append(area); area.select();
    document.execCommand("copy"); area.remove();
  }
  const label = button.textContent; button.textContent = "Copied"; announce("Copied to the clipboard");
  setTimeout(() => { button.textContent = label; }, 1500);
}
function tabs(items) {
  const buttons = items.map((item, i) => h("button", { type: "button", role: "tab", id: `tab-${item.id}`, "aria-controls": `panel-${item.id}`, "aria-selected": i === 0 ? "true" : "false", tabindex: i === 0 ? 0 : -1 }, item.label));
  const panels = items.map((item, i) => h("div", { role: "tabpanel", id: `panel-${item.id}`, "aria-labelledby": `tab-${item.id}`, tabindex: 0, hidden: i !== 0 },
    item.blocks.map(([title, code]) => { const pre = h("pre", { tabindex: 0 }, h("code", {}, code));
      return [h("div", { class: "copy-row" }, h("h3", {}, title), h("button", { type: "button", class: "secondary", "aria-label": `Copy: ${title}`, onclick: (e) => copy(code, e.currentTarget) }, "Copy")), pre]; }),
    h("p", { class: "muted" }, item.note)));
  const select = (i, focus) => buttons.forEach((b, j) => { b.setAttribute("aria-selected", String(i === j)); b.tabIndex = i === j ? 0 : -1; panels[j].hidden = i !== j; if (i === j && focus) b.focus(); });
  buttons.forEach((b, i) => {
    b.addEventListener("click", () => select(i, false));
    b.addEventListener("keydown", (e) => {
      const n = buttons.length; const to = { ArrowRight: (i + 1) % n, ArrowLeft: (i - 1 + n) % n, Home: 0, End: n - 1 }[e.key];
      if (to !== undefined) { e.preventDefault(); select(to, true); }
    });
  });
  return [h("div", { role: "tablist", "aria-label": "Client snippets" }, buttons), panels];
}

async function viewTool(name) {
  const admin = state.who.admin;
  const path = `tools/${encodeURIComponent(name)}`;
  const response = await api(path);
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    return [h("h1", { tabindex: -1 }, name), h("p", { class: "notice bad" }, body.message || `GET /${path} answered ${response.status}`), h("p", {}, h("a", { href: "#/" }, "Back to the catalog"))];
  }
  const tool = await response.json();
  const [openai, stats, shadow] = await Promise.all([json("openai/tools").catch(() => []), admin ? json("stats/calls").catch(() => null) : null,
    admin ? shadowPanel(tool) : null]);
  let lastArgs = skeleton(tool);
  const snippetArea = h("div", { id: "snippets" });
  const drawSnippets = () => put(snippetArea, tabs(snippets(tool, openai, lastArgs)));
  drawSnippets();
  const waiting = () => h("p", { class: "muted" }, "Fill in the form and call the tool: the answer, the version that answered and the latency appear here.");
  const result = h("div", { class: "result", id: "result", "aria-live": "polite" }, waiting());
  const button = h("button", { type: "submit" }, `Call ${tool.name}`);
  const form = h("form", { id: "try", novalidate: true, "aria-labelledby": "try-heading" },
    fields(tool).map((f) => h("div", { class: "field" },
      h("label", { for: fid(f.name) }, f.name, h("span", { class: "tag" }, f.required ? "required" : "optional")),
      h("p", { class: "hint", id: `${fid(f.name)}-hint` }, `${typeText(f.prop)}${f.prop.description ? ` — ${f.prop.description}` : ""}${f.required || /\bnull\b/.test(f.prop.description || "") ? "" : " Leave empty to send null."}`),
      control(f), h("p", { class: "problem", id: `${fid(f.name)}-problem`, hidden: true }))),
    h("div", { class: "actions" }, button, h("button", { type: "reset", class: "secondary", onclick: () => { clearProblems(form); put(result, waiting()); } }, "Clear")));
  form.addEventListener("submit", (e) => { e.preventDefault(); call(form, tool, result, button, (args) => { lastArgs = args; drawSnippets(); }); });
  return [h("p", {}, h("a", { href: "#/" }, "← Catalog")),
    h("h1", { tabindex: -1 }, tool.name),
    h("div", { class: "badges" }, badge(tool.kind), routingText(tool, stats && stats.routing), badge(`model ${tool.model.name}`)),
    h("p", {}, summary(tool.description)),
    h("details", {}, h("summary", {}, "Description as agents read it"), h("p", { class: "prose" }, tool.description)),
    h("p", {}, h("strong", {}, "Output: "), outputText(tool)),
    h("div", { class: "two" },
      h("section", { "aria-labelledby": "try-heading" }, h("h2", { id: "try-heading" }, "Try it"), form),
      h("section", { "aria-labelledby": "answer-heading" }, h("h2", { id: "answer-heading" }, "Answer"), result)),
    h("section", { "aria-labelledby": "use-heading" }, h("h2", { id: "use-heading" }, "Use it from"),
      h("p", { class: "muted" }, "Snippets read the key from $TOOLBRIDGE_API_KEY: the page never writes your key into them."), snippetArea),
    shadow];
}

// ---------- operations ----------
const ORDER = { failed: 0, loading: 1, warm: 2, live: 3 };
function bars(minutes) {
  const max = Math.max(1, ...minutes.map((m) => m.calls));
  const w = 4, gap = 1, height = 60;
  const rects = minutes.flatMap((m, i) => {
    const x = i * (w + gap);
    const scale = (n) => (n / max) * height;
    const ok = m.calls - m.errors - m.rejected;
    const parts = [[m.errors, "c-error"], [m.rejected, "c-rejected"], [ok, "c-ok"]];
    let y = height;
    return parts.filter(([n]) => n > 0).map(([n, cls]) => { y -= scale(n); return s("rect", { x, y, width: w, height: scale(n), class: cls }); });
  });
  return { max, svg: s("svg", { viewBox: `0 0 ${minutes.length * (w + gap)} ${height}`, preserveAspectRatio: "none", "aria-hidden": "true", focusable: "false" }, ...rects) };
}
function lines(minutes) {
  const max = Math.max(1, ...minutes.map((m) => m.p99_ms || 0));
  const height = 60, step = 5;
  const path = (key) => {
    let d = "", pen = false;
    minutes.forEach((m, i) => {
      if (m[key] === null) { pen = false; return; }
      const x = i * step, y = height - (m[key] / max) * (height - 4) - 2;
      d += `${pen ? "L" : "M"}${x} ${y.toFixed(1)} h${step} `; pen = true; // a step per minute: a lone one shows
    });
    return d.trim();
  };
  return { max, svg: s("svg", { viewBox: `0 0 ${minutes.length * step} ${height}`, preserveAspectRatio: "none", "aria-hidden": "true", focusable: "false" },
    s("path", { d: path("p50_ms") || "M0 0", class: "c-p50" }), s("path", { d: path("p99_ms") || "M0 0", class: "c-p99" })) };
}
const swatch = (cls, text) => h("span", {}, h("span", { class: `swatch ${cls}`, "aria-hidden": "true" }), text);
function chart(title, drawn, summary, legend, unit, from = "60 min ago") {
  return h("figure", { class: "chart", role: "img", "aria-label": `${title}: ${summary}` },
    h("figcaption", {}, h("strong", {}, title), " ", h("span", { class: "muted" }, summary)), drawn.svg,
    h("div", { class: "axis", "aria-hidden": "true" }, h("span", {}, from), h("span", {}, `max ${unit(drawn.max)}`), h("span", {}, "now")),
    h("div", { class: "legend", "aria-hidden": "true" }, legend));
}
function callsCard(entry, routing) {
  const t = entry.total;
  const r = routing[entry.tool];
  const answered = Object.values(t.versions).reduce((a, b) => a + b, 0);
  const split = Object.entries(t.versions).map(([v, n]) => `version ${v}: ${Math.round((n / answered) * 100)}%`).join(", ");
  return h("li", { class: "card", "data-calls": entry.tool },
    h("h3", {}, entry.tool),
    h("dl", { class: "facts" }, h("dt", {}, "Calls"), h("dd", {}, `${t.calls} (${t.errors} errors, ${t.rejected} rejected)`),
      h("dt", {}, "Latency"), h("dd", {}, `p50 ${fmtMs(t.p50_ms)} · p99 ${fmtMs(t.p99_ms)}`),
      r ? [h("dt", {}, "Routing"), h("dd", {}, `version ${r.champion}${r.canary ? `, canary version ${r.canary} at ${Math.round(r.canary_weight * 100)}%` : ""}`)] : null,
      answered ? [h("dt", {}, "Answered by"), h("dd", {}, split)] : null),
    h("div", { class: "chart-row" },
      chart("Calls per minute", bars(entry.minutes), `${t.calls} calls, ${t.errors} errors, ${t.rejected} rejected in the last hour`,
        [swatch("c-ok", "answered"), swatch("c-error", "errors"), swatch("c-rejected", "rejected")], (n) => `${n}/min`),
      chart("Latency", lines(entry.minutes), `p50 ${fmtMs(t.p50_ms)}, p99 ${fmtMs(t.p99_ms)} over the last hour`,
        [swatch("c-p50", "p50"), swatch("c-p99", "p99 (dashed)")], fmtMs)));
}
function hostCard(host) {
  const budget = host.memory_budget_bytes;
  const meter = budget ? h("div", { class: "meter", "aria-hidden": "true" }, (() => { const d = h("div"); d.style.width = `${Math.min(100, (host.memory_bytes / budget) * 100)}%`; return d; })()) : null;
  const models = host.models || [];
  return h("li", { class: "card", "data-host": host.name },
    h("h3", {}, host.name, " ", badge(host.alive ? "up" : "down", host.alive ? "ok" : "bad")),
    h("dl", { class: "facts" },
      h("dt", {}, "Role"), h("dd", {}, `${host.role}${host.isolation ? ` · ${host.isolation}` : ""}`),
      h("dt", {}, "Restarts"), h("dd", {}, String(host.restarts ?? 0)),
      h("dt", {}, "Models' memory"), h("dd", {}, `${fmtMB(host.memory_bytes)}${budget ? ` of ${fmtMB(budget)} budget` : " (no budget)"}`, meter),
      h("dt", {}, "Process memory"), h("dd", {}, fmtMB(host.process_rss_bytes)),
      h("dt", {}, "Evictions"), h("dd", {}, String(host.evictions ?? 0)),
      host.error ? [h("dt", {}, "Error"), h("dd", { class: "problem" }, host.error)] : null),
    models.length ? table(`Models on ${host.name}`, ["Version", { label: "Memory", num: true }, { label: "Load", num: true }],
      models.map((m) => h("tr", {}, td("Version", h("code", {}, m.key)), td("Memory", fmtMB(m.memory_bytes), "num"), td("Load", `${(m.load_seconds || 0).toFixed(1)} s`, "num"))), "stack")
      : h("p", { class: "muted" }, "No model loaded."));
}
// ---------- shadow traffic (GET /shadow, admin) ----------
// Counts as the CLI report and /metrics give them: the closed windows' totals plus the open window.
function shadowSeen(row) {
  const t = row.totals, o = row.open_window || {};
  const compared = t.calls_compared + (o.compared || 0), agreed = t.agreed + (o.agreed || 0);
  return { compared, agreed, agreement: compared ? agreed / compared : null,
    errors: t.shadow_errors + (o.shadow_errors || 0), dropped: t.dropped + (o.dropped || 0) };
}
// p50 latencies of the newest closed window, or of the open one while none has closed.
function shadowLatency(row) {
  const last = row.windows.length ? row.windows[row.windows.length - 1] : null;
  const from = last || row.open_window || {};
  return { champion: from.champion_p50_ms ?? null, shadow: from.shadow_p50_ms ?? null, open: !last };
}
const fmtShare = (x) => (x === null || x === undefined ? "—" : `${(x * 100).toFixed(1)}%`);
// One bar per window (its height the agreement), the open window last; a window with nothing compared is a gap.
function agreementBars(windows) {
  const w = 6, gap = 2, height = 60;
  const rects = windows.flatMap((win, i) => (win.agreement === null ? [] : [s("rect", { x: i * (w + gap), y: height - win.agreement * height, width: w, height: win.agreement * height, class: "c-ok" })]));
  return { max: 1, svg: s("svg", { viewBox: `0 0 ${Math.max(30, windows.length) * (w + gap)} ${height}`, preserveAspectRatio: "none", "aria-hidden": "true", focusable: "false" }, ...rects) };
}
function shadowCard(row) {
  const seen = shadowSeen(row), latency = shadowLatency(row);
  const o = row.open_window;
  const windows = [...row.windows.map((win, i) => ({ name: `${i + 1}`, compared: win.calls_compared ?? 0, agreement: win.agreement ?? null, errors: win.shadow_errors ?? 0, dropped: win.dropped ?? 0 })),
    ...(o && o.calls + o.dropped > 0 ? [{ name: "open", compared: o.compared, agreement: o.compared ? o.agreed / o.compared : null, errors: o.shadow_errors, dropped: o.dropped }] : [])];
  const fact = (name, label, text, value) => [h("dt", {}, label), h("dd", { "data-field": name, "data-value": value === null || value === undefined ? "" : String(value) }, text)];
  const lows = windows.filter((x) => x.agreement !== null).map((x) => x.agreement);
  const summary = windows.length ? `${windows.length} window${windows.length > 1 ? "s" : ""}, agreement from ${fmtShare(Math.min(...lows))} to ${fmtShare(Math.max(...lows))}` : "no call compared yet";
  return h("li", { class: "card", "data-shadow": `${row.model}/${row.shadow_version}` },
    h("h3", {}, `${row.tool}: shadow version ${row.shadow_version} `, badge(row.mirroring ? "mirroring" : "stopped", row.mirroring ? "ok" : "")),
    row.blocked ? h("p", { class: "notice" }, row.blocked) : null,
    h("dl", { class: "facts" },
      fact("shadow_version", "Shadow version", `${row.shadow_version} (champion ${row.champion_version || "—"}${row.rate !== null && row.rate !== undefined ? `, ${Math.round(row.rate * 100)}% of calls offered` : ""})`, row.shadow_version),
      fact("agreement", "Agreement", seen.compared ? `${fmtShare(seen.agreement)} (${seen.agreed} of ${seen.compared})` : "—", seen.agreement),
      fact("compared", "Calls compared", String(seen.compared), seen.compared),
      fact("errors", "Shadow errors", String(seen.errors), seen.errors),
      fact("dropped", "Dropped (queue full)", String(seen.dropped), seen.dropped),
      fact("champion_p50_ms", "Latency p50, champion", fmtMs(latency.champion), latency.champion),
      fact("shadow_p50_ms", "Latency p50, shadow", `${fmtMs(latency.shadow)}${latency.open ? " (open window)" : " (last window)"}`, latency.shadow)),
    lows.length ? chart("Agreement per window", agreementBars(windows), summary, [swatch("c-ok", "agreement (bar height, 0 to 100%)")], () => "100%", "first window") : null,
    windows.length ? h("details", {}, h("summary", {}, "Agreement per window as a table"),
      table(`Windows of shadow version ${row.shadow_version}`, ["Window", { label: "Compared", num: true }, { label: "Agreement", num: true }, { label: "Errors", num: true }, { label: "Dropped", num: true }],
        windows.map((x) => h("tr", {}, td("Window", x.name), td("Compared", String(x.compared), "num"), td("Agreement", fmtShare(x.agreement), "num"), td("Errors", String(x.errors), "num"), td("Dropped", String(x.dropped), "num"))), "stack")) : null);
}
// The shadow panel: every shadow version this process mirrors or saw (`tool` set: that tool's only).
async function shadowPanel(tool) {
  const body = await json(`shadow?examples=0${tool ? `&model=${encodeURIComponent(tool.model.name)}` : ""}`).catch(() => null);
  const rows = body ? body.shadows.filter((r) => !tool || r.tool === tool.name) : [];
  if (tool && !rows.length) return null;
  return h("section", { "aria-labelledby": "shadow-heading", id: "shadow" }, h("h2", { id: "shadow-heading" }, "Shadow traffic"),
    h("p", { class: "muted" }, "A version holding the shadow alias answers the champion's calls in the background, never a caller; counted by this process since it started. toolbridge shadow report has the confusion table."),
    body ? (rows.length ? h("ul", { class: "cards" }, rows.map(shadowCard)) : h("p", { class: "muted" }, "No shadow version (set the alias shadow on a version to compare it).")) : h("p", { class: "notice" }, "GET /shadow did not answer."));
}
async function viewOps() {
  if (!state.who.admin) return [h("h1", { tabindex: -1 }, "Operations"), h("p", { class: "notice" }, "The operations page needs an API key with the admin scope.")];
  const [status, stats, shadow] = await Promise.all([json("status"), json("stats/calls"), shadowPanel(null)]);
  const sync = status.sync;
  const versions = [...status.versions].sort((a, b) => (ORDER[a.state] ?? 9) - (ORDER[b.state] ?? 9) || a.tool.localeCompare(b.tool));
  const failed = versions.filter((v) => v.state === "failed").length;
  const auto = h("input", { type: "checkbox", id: "auto", checked: state.timer !== false, onchange: (e) => { state.timer = e.target.checked ? null : false; schedule(); } });
  return [h("h1", { tabindex: -1 }, "Operations"),
    h("div", { class: "actions" }, h("button", { type: "button", id: "refresh", class: "secondary", onclick: () => render(true) }, "Refresh"),
      h("label", { class: "check", for: "auto" }, auto, "Refresh every 10 s"), h("span", { class: "muted" }, `Updated ${new Date().toLocaleTimeString()}`)),
    h("h2", {}, "Registry sync"),
    h("dl", { class: "facts", id: "sync" }, h("dt", {}, "State"), h("dd", {}, stateBadge(sync.state)),
      h("dt", {}, "Last pass"), h("dd", {}, fmtAge(sync.last_success_age_seconds)),
      h("dt", {}, "Passes"), h("dd", {}, `${sync.passes} ok, ${sync.failures} failed (${sync.consecutive_failures} in a row)`),
      sync.last_error ? [h("dt", {}, "Last error"), h("dd", { class: "problem" }, sync.last_error)] : null,
      h("dt", {}, "MLflow"), h("dd", { class: "mono" }, sync.mlflow_uri)),
    h("h2", {}, "Versions"),
    failed ? h("p", { class: "notice bad" }, `${failed} version${failed > 1 ? "s" : ""} failed: not exposed until fixed in MLflow.`) : null,
    versions.length ? table("Versions", ["Tool", "Version", "Role", "State", "Host", "Reason"], versions.map((v) =>
      h("tr", { "data-version": `${v.model}/${v.version}`, "data-state": v.state }, td("Tool", v.tool, "nowrap"),
        td("Version", v.model === v.tool ? v.version : `${v.model} ${v.version}`, "nowrap"), td("Role", v.role, "nowrap"),
        td("State", stateBadge(v.state), "nowrap"), td("Host", v.host, "nowrap"), td("Reason", v.reason, "reason"))), "stack") : h("p", { class: "muted" }, "No approved version."),
    status.excluded.length ? [h("h2", {}, "Excluded by the approval policy"), table("Excluded versions", ["Model", "Version", "Reason"],
      status.excluded.map((e) => h("tr", {}, td("Model", e.name), td("Version", e.version), td("Reason", e.reason, "reason"))), "stack")] : null,
    h("h2", {}, "Model hosts"), h("ul", { class: "cards grid" }, status.hosts.map(hostCard)),
    h("h2", {}, "Calls in the last hour"),
    h("p", { class: "muted" }, `Counted by this worker process (pid ${stats.worker_pid}); with several workers each reports its own calls. /metrics has the Prometheus series.`),
    stats.tools.length ? h("ul", { class: "cards" }, stats.tools.map((t) => callsCard(t, stats.routing))) : h("p", { class: "muted" }, "No call in the last hour."),
    shadow];
}
function schedule() {
  clearTimeout(state.refresh);
  if (location.hash === "#/ops" && state.timer !== false) state.refresh = setTimeout(() => { if (!document.hidden) render(true); else schedule(); }, 10000);
}

// ---------- router ----------
async function render(refresh = false) {
  clearTimeout(state.refresh);
  const hash = location.hash || "#/";
  if (!state.key && hash !== "#/signin") { location.hash = "#/signin"; return; }
  try {
    if (state.key && !state.who) { state.who = await json("ui/session"); chrome(); }
    let view, title, page;
    if (hash === "#/signin") {
      if (state.key) { location.hash = "#/"; return; }
      [view, title, page] = [viewSignIn(), "Sign in", "signin"];
    } else if (hash.startsWith("#/tools/")) {
      const name = decodeURIComponent(hash.slice("#/tools/".length));
      [view, title, page] = [await viewTool(name), name, "catalog"];
    } else if (hash === "#/ops") [view, title, page] = [await viewOps(), "Operations", "ops"];
    else if (hash === "#/") [view, title, page] = [await viewCatalog(), "Catalog", "catalog"];
    else [view, title, page] = [[h("h1", { tabindex: -1 }, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the catalog"))], "Not found", ""];
    const focused = refresh && document.activeElement ? document.activeElement.id : "";
    put(main, view);
    document.title = `${title} · Toolbridge`;
    for (const link of document.querySelectorAll("#nav a")) {
      if (link.dataset.page === page) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
    }
    // A new view takes the focus to its heading (screen readers read it); the first load keeps the browser's.
    if (!refresh && !state.firstRender) (main.querySelector("h1") || main).focus();
    else if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
    state.firstRender = false;
    schedule();
  } catch (error) {
    if (error instanceof SignedOut) return;
    main.replaceChildren(h("h1", { tabindex: -1 }, "Something went wrong"), h("p", { class: "notice bad", role: "alert" }, error.message),
      h("button", { type: "button", onclick: () => render() }, "Try again"));
  }
}

document.getElementById("sign-out").addEventListener("click", () => signOut(null));
window.addEventListener("hashchange", () => render());
render();
