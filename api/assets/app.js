// near-payouts dashboard: polls /status, /claims and /campaigns every second and renders with DOM APIs only
// (textContent, never innerHTML with data). No dependencies, no build step. Amounts are decimal strings
// (u128): they are scaled to token units with string arithmetic, never through a JS number.
"use strict";

(function () {
  const POLL_MS = 1000;
  const $ = (id) => document.getElementById(id);
  const state = {
    token: "",
    search: { text: "", status: "" },
    lastOk: 0,
    inflight: false,
    pendingKey: null, // Idempotency-Key kept for a retry of the same, unchanged form
    pendingBody: null,
    tokens: {}, // contract -> {symbol, decimals} from GET /tokens (null fields: the chain did not tell)
    explorer: null, // transaction link pattern with {hash}, or null
    tokensNext: 0, // when to read /tokens again
    dryKey: null, // the file + name + token the last successful dry run checked
    decision: null, // {id, verb} of the open approve / reject form
    approveToken: "", // the approver's token: in memory only, never in storage
    campaigns: new Map(), // id -> last summary shown
  };

  // ---------- helpers ----------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (k === "class") e.className = v;
        else if (k === "title") e.title = v;
        else e.setAttribute(k, v);
      }
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  function setText(id, v) {
    const e = $(id);
    const s = String(v);
    if (e && e.textContent !== s) e.textContent = s;
  }
  function fmtInt(n) {
    return typeof n === "number" ? n.toLocaleString("en-US") : "–";
  }
  function fmtRate(x) {
    if (typeof x !== "number") return "–";
    return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
  }
  // Amounts are decimal strings (u128): group digits without ever converting to a JS number.
  function fmtAmount(s) {
    return typeof s === "string" ? s.replace(/\B(?=(\d{3})+(?!\d))/g, "\u2009") : "–";
  }

  // ---------- token units ----------
  // `raw` smallest units as token units: "12500000000000000000000000", 24 → "12.5". Exact: string
  // arithmetic only; trailing zeros of the fraction trimmed; thousands grouped with commas.
  function toUnits(raw, decimals) {
    if (typeof raw !== "string" || !/^[0-9]+$/.test(raw)) return null;
    if (!Number.isInteger(decimals) || decimals < 0 || decimals > 255) return null;
    let digits = raw.replace(/^0+(?=[0-9])/, "");
    let frac = "";
    if (decimals > 0) {
      digits = digits.padStart(decimals + 1, "0");
      frac = digits.slice(digits.length - decimals).replace(/0+$/, "");
      digits = digits.slice(0, digits.length - decimals);
    }
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (frac ? "." + frac : "");
  }
  function tokenMeta(token) {
    const m = state.tokens[token];
    return m && Number.isInteger(m.decimals) ? m : null;
  }
  function tokenLabel(token) {
    const m = state.tokens[token];
    return m && m.symbol ? m.symbol + " · " + token : token;
  }
  // "12.5 FT" when the token's metadata is known, else the raw digits (grouped) — never a guessed scale.
  function amountText(raw, token) {
    const m = tokenMeta(token);
    const u = m ? toUnits(raw, m.decimals) : null;
    if (u === null) return fmtAmount(raw);
    return u + " " + (m.symbol || token);
  }
  function amountTitle(raw, token) {
    const m = tokenMeta(token);
    const what = m ? "smallest unit, " + m.decimals + " decimals" : "smallest unit; the token's decimals are unknown";
    return (typeof raw === "string" ? raw : "–") + " (" + what + ")" + (token ? " · " + token : "");
  }
  function amountCell(raw, token) {
    return el("td", { class: "num amount" + (tokenMeta(token) ? "" : " mono"), title: amountTitle(raw, token) }, amountText(raw, token));
  }
  // A transaction hash, linked to the explorer when this network has one.
  function txLink(hash) {
    if (!hash) return "–";
    if (!state.explorer) return el("span", { class: "mono", title: hash }, shortKey(hash));
    return el("a", {
      class: "mono tx",
      href: state.explorer.replace("{hash}", encodeURIComponent(hash)),
      target: "_blank",
      rel: "noopener noreferrer",
      title: hash + " in the explorer",
    }, shortKey(hash));
  }

  function ago(iso) {
    if (!iso) return "";
    const t = Date.parse(iso);
    if (isNaN(t)) return "";
    const s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return new Date(t).toISOString().slice(0, 16).replace("T", " ");
  }
  function shortKey(k) {
    return k && k.length > 22 ? k.slice(0, 14) + "…" + k.slice(-6) : k;
  }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }
  function headers(extra) {
    const h = Object.assign({ Accept: "application/json" }, extra || {});
    if (state.token) h.Authorization = "Bearer " + state.token;
    return h;
  }
  async function getJson(url) {
    const r = await fetch(url, { headers: headers(), cache: "no-store" });
    let body = null;
    try { body = await r.json(); } catch (_) { body = null; }
    return { ok: r.ok, status: r.status, body };
  }
  function errMessage(res) {
    if (res && res.body && res.body.error) return res.body.error.message + " (" + res.body.error.code + ")";
    return "HTTP " + (res ? res.status : "?");
  }
  function banner(msg) {
    const b = $("banner");
    if (msg) { b.textContent = msg; b.classList.remove("hidden"); }
    else b.classList.add("hidden");
  }
  function replaceRows(tbody, rows, cols, emptyText) {
    const frag = document.createDocumentFragment();
    if (rows.length === 0) {
      frag.append(el("tr", { class: "empty" }, el("td", { colspan: String(cols) }, emptyText)));
    } else {
      for (const r of rows) frag.append(r);
    }
    tbody.replaceChildren(frag);
  }
  function badge(status) {
    return el("span", { class: "badge " + status }, status.replace(/_/g, " "));
  }
  // Like replaceRows, but keeps a row element whose data (its key) did not change, so a button in it stays
  // the same element across refreshes (a click is never lost to a re-render) and nothing flickers.
  function keyedRows(tbody, items, keyOf, render, cols, emptyText) {
    const old = new Map();
    for (const tr of tbody.children) if (tr.dataset.key) old.set(tr.dataset.key, tr);
    const rows = items.map((it) => {
      const k = keyOf(it);
      const tr = old.get(k) || render(it);
      tr.dataset.key = k;
      return tr;
    });
    if (rows.length === 0) {
      const prev = tbody.firstElementChild;
      if (prev && prev.classList.contains("empty") && prev.textContent === emptyText && tbody.children.length === 1) return;
      rows.push(el("tr", { class: "empty" }, el("td", { colspan: String(cols) }, emptyText)));
    }
    const same = rows.length === tbody.children.length && rows.every((r, i) => tbody.children[i] === r);
    if (!same) tbody.replaceChildren(...rows);
  }
  function fillTokenSelect(sel, tokens, emptyText) {
    const want = tokens.map(tokenLabel).join("\n");
    if (sel.dataset.tokens === want) return;
    const keep = sel.value;
    sel.dataset.tokens = want;
    sel.replaceChildren(...tokens.map((t) => el("option", { value: t }, tokenLabel(t))));
    if (tokens.length === 0) sel.append(el("option", { value: "" }, emptyText));
    if (tokens.includes(keep)) sel.value = keep;
  }

  // ---------- chart ----------
  function drawChart(series, bucketSecs) {
    const box = $("chart");
    const W = Math.max(200, box.clientWidth), H = Math.max(120, box.clientHeight);
    const padL = 40, padR = 8, padT = 10, padB = 20;
    const n = series.length || 1;
    const max = Math.max(1, ...series);
    const niceMax = niceCeil(max);
    const x = (i) => padL + (i / Math.max(1, n - 1)) * (W - padL - padR);
    const y = (v) => padT + (1 - v / niceMax) * (H - padT - padB);
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "confirmed transfers per second");
    const mk = (tag, attrs, text) => {
      const e = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      if (text !== undefined) e.textContent = text;
      svg.append(e);
      return e;
    };
    for (let i = 0; i <= 4; i++) {
      const v = (niceMax * i) / 4;
      mk("line", { class: "grid", x1: padL, x2: W - padR, y1: y(v), y2: y(v) });
      mk("text", { class: "axis", x: padL - 6, y: y(v) + 4, "text-anchor": "end" }, fmtRate(v));
    }
    const span = n * bucketSecs;
    const labels = [[0, "-" + Math.round(span / 60) + " min"], [Math.floor((n - 1) / 2), "-" + Math.round(span / 120) + " min"], [n - 1, "now"]];
    for (const [i, t] of labels) {
      mk("text", { class: "axis", x: x(i), y: H - 4, "text-anchor": i === 0 ? "start" : i === n - 1 ? "end" : "middle" }, t);
    }
    if (series.length > 1) {
      let d = "";
      series.forEach((v, i) => { d += (i ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1); });
      mk("path", { class: "area", d: d + `L${x(n - 1).toFixed(1)} ${y(0)}L${x(0).toFixed(1)} ${y(0)}Z` });
      mk("path", { class: "line", d });
    }
    box.replaceChildren(svg);
  }
  function niceCeil(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // ---------- rendering ----------
  function renderStatus(s) {
    const c = s.claims.by_status;
    setText("count-held", fmtInt(c.held || 0));
    setText("count-pending", fmtInt(c.pending));
    setText("count-submitted", fmtInt(c.submitted));
    setText("count-confirmed", fmtInt(c.confirmed));
    setText("count-failed", fmtInt(c.failed));
    const t = s.throughput;
    setText("tps-1m", fmtRate(t.transfers_per_second_1m));
    setText("tps-10m", fmtRate(t.transfers_per_second_10m));
    setText("tps-1m-sub", fmtInt(t.confirmed_1m) + " confirmed");
    setText("tps-10m-sub", fmtInt(t.confirmed_10m) + " confirmed");
    drawChart(t.series, t.bucket_secs);

    const ix = s.indexer;
    setText("lag-blocks", ix.lag_blocks === null ? "–" : fmtInt(ix.lag_blocks) + " blk");
    setText("lag-seconds", ix.lag_seconds === null ? (s.chain.error || "head unknown") : ix.lag_seconds.toFixed(1) + " s behind");
    setText("head-height", s.chain.head_height === null ? "unknown" : fmtInt(s.chain.head_height));
    $("pill-chain").title = s.chain.error ? "Chain head unknown: " + s.chain.error : "Chain head (" + s.chain.source + ")";
    setText("indexed-height", ix.indexed_height === null ? "none" : fmtInt(ix.indexed_height));

    // key pool
    const kp = s.key_pool;
    setText("keys-summary", kp.leased + "/" + kp.total + " leased · " + kp.in_flight + " in flight");
    replaceRows($("keys-body"), kp.keys.map((k) => el("tr", null,
      el("td", { class: "mono", title: k.public_key + " (" + k.account_id + ")" }, shortKey(k.public_key)),
      el("td", { title: k.lease_owner || "" }, k.leased ? el("span", { class: "badge leased" }, "leased") : el("span", { class: "badge free" }, "free")),
      el("td", { class: "num" }, k.last_nonce === null ? "–" : String(k.last_nonce)),
      el("td", { class: "num" }, String(k.in_flight)),
    )), 4, "no keys registered");

    replaceRows($("tokens-body"), s.claims.by_token.map((t) => el("tr", null,
      el("td", { title: t.token }, tokenLabel(t.token)),
      el("td", { class: "num" }, fmtInt(t.by_status.pending)),
      el("td", { class: "num" }, fmtInt(t.by_status.confirmed)),
      el("td", { class: "num" }, fmtInt(t.by_status.failed)),
    )), 4, "no claims yet");

    // distributors
    const list = $("dist-list");
    const alive = s.distributors.filter((d) => d.alive);
    const paused = alive.filter((d) => d.paused_reason);
    setText("dist-state", alive.length === 0 ? "none" : paused.length ? "paused" : alive.length + " running");
    const items = s.distributors.map((d) => el("div", { class: "dist" },
      el("div", null, el("span", { class: "owner mono" }, d.owner), " ",
        el("span", { class: "muted" }, d.stopped_at ? "stopped " + ago(d.stopped_at) : d.alive ? "heartbeat " + ago(d.heartbeat_at) : "silent since " + ago(d.heartbeat_at))),
      d.paused_reason ? el("div", { class: "why" }, "paused: " + d.paused_reason) : null,
      d.last_error ? el("div", { class: "err" }, "last error (" + ago(d.last_error_at) + "): " + d.last_error) : null,
    ));
    if (items.length === 0) items.push(el("div", { class: "muted" }, "no distributor has reported yet"));
    list.replaceChildren(...items);

    renderWebhooks(s.webhooks);
    renderIncidents(s.incidents || []);

    // token selects of the send and campaign forms
    fillTokenSelect($("send-token"), s.allowed_tokens, "manual sends disabled");
    fillTokenSelect($("camp-token"), s.allowed_tokens, "payouts disabled");
    showSendUnits();
  }

  // Open incidents: shown above everything else while there are any (each pauses its token, or all).
  function renderIncidents(list) {
    $("incidents").classList.toggle("hidden", list.length === 0);
    replaceRows($("incidents-body"), list.map((i) => {
      const details = JSON.stringify(i.details);
      // Kind-specific facts as `key: value`; a memo payment's amount in token units (raw JSON in the tooltip).
      const facts = i.details && typeof i.details === "object" && !Array.isArray(i.details)
        ? Object.entries(i.details).map(([k, v]) => k + ": " + (k === "amount" && typeof v === "string" && i.token ? amountText(v, i.token) : typeof v === "string" ? v : JSON.stringify(v))).join(" · ")
        : details;
      const where = i.tx_hash ? txLink(i.tx_hash) : i.receipt_id || i.public_key || "–";
      return el("tr", { "data-id": String(i.id) },
        el("td", { class: "num mono" }, String(i.id)),
        el("td", { class: "alert" }, i.kind),
        el("td", null, i.token === null ? "every token" : i.token),
        el("td", { class: "num mono" }, i.claim_id === null ? "–" : String(i.claim_id)),
        el("td", { class: "mono", title: [i.tx_hash, i.receipt_id, i.public_key].filter(Boolean).join(" · ") }, where),
        el("td", { class: "err", title: details }, facts),
        el("td", { title: i.detected_at }, ago(i.detected_at)),
      );
    }), 7, "no open incidents");
  }

  // Webhook endpoints (by name: the URL is never in /status) and the most recent dead deliveries.
  function renderWebhooks(w) {
    const endpoints = (w && w.endpoints) || [];
    const dead = (w && w.dead) || [];
    const enabled = endpoints.filter((e) => e.enabled);
    const deadTotal = endpoints.reduce((n, e) => n + e.dead, 0);
    setText("webhooks-summary", endpoints.length === 0 ? "" :
      enabled.length + " endpoint" + (enabled.length === 1 ? "" : "s") + " · " + fmtInt(deadTotal) + " dead");
    replaceRows($("webhook-endpoints-body"), endpoints.map((e) => {
      const behind = e.oldest_pending_at ? "oldest pending " + ago(e.oldest_pending_at) : "nothing pending";
      return el("tr", { class: e.enabled ? "" : "disabled" },
        el("td", { title: e.name + " · " + e.events.join(", ") + (e.enabled ? "" : " (disabled: no longer configured)") },
          e.name, e.enabled ? null : el("span", { class: "muted" }, " (disabled)")),
        el("td", { class: "num", title: behind + (e.head_error ? " · last error: " + e.head_error : "") }, fmtInt(e.pending)),
        el("td", { class: "num" + (e.dead > 0 ? " alert" : "") }, fmtInt(e.dead)),
        el("td", { class: "num", title: e.last_delivered_at ? "last delivered " + ago(e.last_delivered_at) : "never delivered" }, fmtInt(e.delivered_total)),
      );
    }), 4, "no webhook endpoints configured");
    replaceRows($("webhook-dead-body"), dead.map((d) => {
      const why = (d.last_http_status ? "HTTP " + d.last_http_status + ": " : "") + (d.last_error || "");
      return el("tr", { "data-id": String(d.id) },
        el("td", { class: "num mono", title: "event " + d.event_id }, String(d.id)),
        el("td", { title: d.endpoint }, d.endpoint),
        el("td", null, d.event_type),
        el("td", { class: "num mono" }, d.claim_id === null ? "–" : String(d.claim_id)),
        el("td", { class: "num" }, String(d.attempts)),
        el("td", { class: "err", title: why }, why || "(no error recorded)"),
        el("td", { title: d.dead_at || "" }, ago(d.dead_at)),
      );
    }), 7, endpoints.length === 0 ? "no webhook endpoints configured" : "no dead deliveries");
  }

  function claimRow(c) {
    return el("tr", { "data-id": String(c.id) },
      el("td", { class: "num mono" }, String(c.id)),
      el("td", null, badge(c.status)),
      el("td", null, c.source),
      el("td", { title: c.receiver_id }, c.receiver_id),
      amountCell(c.amount, c.token),
      el("td", { title: c.token }, c.token),
      el("td", null, txLink(c.tx_hash)),
      el("td", { title: c.updated_at }, ago(c.updated_at)),
      el("td", { class: "err", title: c.last_error || "" }, c.last_error || ""),
    );
  }

  function claimsUrl() {
    const q = state.search.text.trim();
    const p = new URLSearchParams();
    if (q && !/^\d+$/.test(q)) p.set("receiver", q);
    if (state.search.status) p.set("status", state.search.status);
    p.set("limit", "50");
    return "/claims?" + p.toString();
  }

  async function refreshClaims() {
    const q = state.search.text.trim();
    const note = $("claims-note");
    if (/^\d+$/.test(q)) {
      const r = await getJson("/claims/" + q);
      if (r.ok) { replaceRows($("claims-body"), [claimRow(r.body)], 9, ""); setText("claims-note", "claim " + q); }
      else { replaceRows($("claims-body"), [], 9, r.status === 404 ? "no claim " + q : errMessage(r)); setText("claims-note", ""); }
      return;
    }
    const r = await getJson(claimsUrl());
    if (!r.ok) { replaceRows($("claims-body"), [], 9, errMessage(r)); note.textContent = ""; return; }
    replaceRows($("claims-body"), r.body.claims.map(claimRow), 9, "no claims match");
    note.textContent = r.body.claims.length + " shown" + (r.body.next_cursor ? " (newest first; more exist)" : "");
  }

  async function refreshFailures() {
    const r = await getJson("/claims?status=failed&limit=20");
    if (!r.ok) return;
    replaceRows($("failures-body"), r.body.claims.map((c) => el("tr", null,
      el("td", { class: "num mono" }, String(c.id)),
      el("td", { title: c.receiver_id }, c.receiver_id),
      amountCell(c.amount, c.token),
      el("td", { class: "num" }, String(c.attempts)),
      el("td", { class: "err", title: c.last_error || "" }, c.last_error || "(no reason recorded)"),
      el("td", { title: c.updated_at }, ago(c.updated_at)),
    )), 6, "no failures");
  }

  async function tick() {
    if (state.inflight) return;
    state.inflight = true;
    try {
      const s = await getJson("/status");
      if (s.ok) {
        await refreshTokens();
        renderStatus(s.body);
        banner(null);
        $("login-form").classList.add("hidden");
        await Promise.all([refreshClaims(), refreshFailures(), refreshCampaigns()]);
        state.lastOk = Date.now();
      } else if (s.status === 401 || s.status === 403) {
        banner(s.status === 403
          ? "This token cannot read the status (it lacks the read scope): paste another one."
          : "This server needs a token with the read scope to show its status: paste one below (it stays in this tab).");
        $("login-form").classList.remove("hidden");
      } else {
        banner("Status unavailable: " + errMessage(s));
      }
    } catch (e) {
      banner("Cannot reach the API: " + (e && e.message ? e.message : e));
    } finally {
      state.inflight = false;
      const fresh = Date.now() - state.lastOk < 5000;
      $("conn-dot").className = "dot " + (fresh ? "ok" : "bad");
      setText("updated", state.lastOk ? "updated " + new Date(state.lastOk).toLocaleTimeString() : "connecting…");
    }
  }

  // ---------- token metadata ----------
  // GET /tokens: symbols and decimals of the allowed tokens and the explorer link pattern. Read once; again
  // every 10 s while the chain has not told some token's metadata.
  async function refreshTokens() {
    if (Date.now() < state.tokensNext) return;
    const r = await getJson("/tokens");
    if (!r.ok || !r.body || !Array.isArray(r.body.tokens)) { state.tokensNext = Date.now() + 10000; return; }
    const map = {};
    let unknown = false;
    for (const t of r.body.tokens) {
      map[t.contract] = { symbol: typeof t.symbol === "string" ? t.symbol : null, decimals: Number.isInteger(t.decimals) ? t.decimals : null };
      if (!Number.isInteger(t.decimals)) unknown = true;
    }
    state.tokens = map;
    const x = r.body.explorer_tx_url;
    state.explorer = typeof x === "string" && /^https?:\/\/[^\s"'<>\\`]+$/.test(x) && x.includes("{hash}") ? x : null;
    state.tokensNext = Date.now() + (unknown ? 10000 : 3600000);
  }

  // The manual send form's amount, as the token units it means.
  function showSendUnits() {
    const v = $("send-amount").value.trim();
    const t = $("send-token").value;
    setText("send-amount-units", /^[0-9]+$/.test(v) && tokenMeta(t) ? "= " + amountText(v, t) : "");
  }

  // ---------- campaigns ----------
  function campaignKey(c) {
    return JSON.stringify([c, state.tokens[c.token] || null]);
  }

  function campaignRow(c) {
    const valid = Number(c.rows_valid) || 0;
    const paid = Number(c.rows_paid) || 0;
    // Row counts are at most a million: exact as JS numbers (amounts never are).
    const pct = valid > 0 ? Math.floor((paid * 100) / valid) : 0;
    const progress = el("progress", { max: String(Math.max(valid, 1)), value: String(paid) });
    const held = c.claims ? c.claims.held : 0;
    const tip = fmtInt(paid) + " of " + fmtInt(valid) + " rows paid" +
      (c.failed ? " · " + fmtInt(c.failed) + " failed" : "") + (held ? " · " + fmtInt(held) + " held" : "") +
      (c.rows_invalid ? " · " + fmtInt(c.rows_invalid) + " invalid rows skipped" : "");
    const actions = el("td", { class: "actions" });
    if (c.status === "awaiting_approval") {
      actions.append(
        el("button", { type: "button", class: "small-btn", id: "approve-" + c.id, "data-action": "approve", "data-id": String(c.id) }, "Approve"),
        " ",
        el("button", { type: "button", class: "small-btn ghost", id: "reject-" + c.id, "data-action": "reject", "data-id": String(c.id) }, "Reject"),
      );
    }
    if (c.failed > 0) {
      actions.append(" ", el("button", { type: "button", class: "link-btn", id: "failures-" + c.id, "data-action": "failures", "data-id": String(c.id), title: "the failed rows with their reasons and whether a retry would queue them" }, "failures.csv"));
      if (c.status !== "rejected") {
        actions.append(" ", el("button", { type: "button", class: "link-btn", id: "retry-" + c.id, "data-action": "retry", "data-id": String(c.id), title: "queue the failed rows whose failure was transient again (scope send); final failures stay failed" }, "retry failed"));
      }
    }
    const who = "created by " + c.created_by + (c.approved_by ? " · approved by " + c.approved_by : "") +
      (c.rejected_by ? " · rejected by " + c.rejected_by + (c.reject_reason ? ": " + c.reject_reason : "") : "");
    return el("tr", { "data-id": String(c.id) },
      el("td", { class: "num mono" }, String(c.id)),
      el("td", { title: c.name + " · " + tokenLabel(c.token) + " · sha256 " + c.file_digest }, c.name),
      el("td", null, badge(c.status)),
      el("td", { class: "progress-cell", title: tip }, progress, el("span", { class: "pct" }, pct + " %"),
        el("span", { class: "muted rows" }, fmtInt(paid) + "/" + fmtInt(valid))),
      amountCell(c.paid_total, c.token),
      amountCell(c.amount_total, c.token),
      el("td", { title: who }, c.created_by),
      actions,
    );
  }

  async function refreshCampaigns() {
    const r = await getJson("/campaigns?limit=20");
    const body = $("campaigns-body");
    if (!r.ok || !r.body || !Array.isArray(r.body.campaigns)) {
      keyedRows(body, [], null, null, 8, r.status === 404 ? "this server lists no campaigns" : errMessage(r));
      return;
    }
    const list = r.body.campaigns;
    state.campaigns = new Map(list.map((c) => [String(c.id), c]));
    keyedRows(body, list, campaignKey, campaignRow, 8, "no campaigns yet");
    setText("campaigns-summary", r.body.next_cursor ? "the " + list.length + " newest (GET /campaigns pages through all)" :
      "payouts from an uploaded file; large ones wait for a second person's approval");
  }

  function onCampaignClick(ev) {
    const b = ev.target.closest("button[data-action]");
    if (!b) return;
    const c = state.campaigns.get(b.dataset.id);
    if (!c) return;
    if (b.dataset.action === "failures") downloadFailures(c, b);
    else if (b.dataset.action === "retry") retryFailed(c, b);
    else openDecision(c, b.dataset.action);
  }

  function openDecision(c, verb) {
    state.decision = { id: c.id, verb };
    setText("approve-what", (verb === "approve" ? "Approve" : "Reject") + " campaign " + c.id + " “" + c.name + "”: " +
      fmtInt(c.rows_valid) + " rows, " + amountText(c.amount_total, c.token) + ", created by " + c.created_by + ".");
    const btn = $("approve-confirm");
    btn.textContent = verb === "approve" ? "Approve" : "Reject";
    btn.classList.toggle("danger", verb === "reject");
    btn.disabled = false;
    const out = $("approve-result");
    out.className = "result";
    out.textContent = "";
    $("approve-token").value = state.approveToken;
    $("approve-form").classList.remove("hidden");
    $("approve-token").focus();
  }

  async function decide(ev) {
    ev.preventDefault();
    const d = state.decision;
    if (!d) return;
    const tok = $("approve-token").value.trim();
    state.approveToken = tok;
    const btn = $("approve-confirm");
    const out = $("approve-result");
    btn.disabled = true;
    out.className = "result";
    out.textContent = d.verb === "approve" ? "approving…" : "rejecting…";
    try {
      const r = await fetch("/admin/campaigns/" + encodeURIComponent(d.id) + "/" + d.verb, {
        method: "POST",
        headers: { Accept: "application/json", Authorization: "Bearer " + tok },
      });
      let res = null;
      try { res = await r.json(); } catch (_) { res = null; }
      if (r.ok) {
        // Done: the form closes, the outcome stays above it.
        const c = res && res.campaign;
        $("approve-form").classList.add("hidden");
        out.className = "result";
        out.textContent = "";
        const done = $("campaigns-result");
        done.className = "result ok";
        done.textContent = "Campaign " + d.id + (d.verb === "approve" ? " approved" : " rejected") +
          (c && (c.approved_by || c.rejected_by) ? " by " + (c.approved_by || c.rejected_by) : "") +
          (res && typeof res.claims_changed === "number" ? " (" + fmtInt(res.claims_changed) + " rows " + (d.verb === "approve" ? "released to the distributor" : "failed unpaid") + ")" : "") + ".";
        state.decision = null;
        tick();
      } else {
        out.className = "result bad";
        out.textContent = errMessage({ status: r.status, body: res });
        btn.disabled = false;
      }
    } catch (e) {
      out.className = "result bad";
      out.textContent = "Network error: " + (e && e.message ? e.message : e);
      btn.disabled = false;
    }
  }

  // The CSV needs the bearer token, so a plain link cannot fetch it: fetch, then save the blob.
  async function downloadFailures(c, btn) {
    btn.disabled = true;
    try {
      const r = await fetch("/campaigns/" + encodeURIComponent(c.id) + "/failures.csv", { headers: headers({ Accept: "text/csv" }), cache: "no-store" });
      if (!r.ok) {
        let res = null;
        try { res = await r.json(); } catch (_) { res = null; }
        const out = $("campaigns-result");
        out.className = "result bad";
        out.textContent = "failures.csv of campaign " + c.id + ": " + errMessage({ status: r.status, body: res });
        return;
      }
      const url = URL.createObjectURL(await r.blob());
      const a = el("a", { href: url, download: "campaign-" + c.id + "-failures.csv", class: "hidden" });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } finally {
      btn.disabled = false;
    }
  }

  // POST /campaigns/{id}/retry-failed with the page's token (scope send).
  async function retryFailed(c, btn) {
    const out = $("campaigns-result");
    btn.disabled = true;
    out.className = "result";
    out.textContent = "re-queueing the retryable failures of campaign " + c.id + "…";
    try {
      const r = await fetch("/campaigns/" + encodeURIComponent(c.id) + "/retry-failed", { method: "POST", headers: headers() });
      let res = null;
      try { res = await r.json(); } catch (_) { res = null; }
      if (r.ok && res) {
        out.className = "result " + (res.requeued > 0 ? "ok" : "bad");
        out.textContent = "Campaign " + c.id + ": " + fmtInt(res.requeued) + " of " + fmtInt(res.failed) + " failed rows queued again" +
          (res.not_retryable ? "; " + fmtInt(res.not_retryable) + " failed for good" : "") +
          (res.unsafe_to_retry ? "; " + fmtInt(res.unsafe_to_retry) + " not yet (a transaction may still pay them)" : "") + ".";
        tick();
      } else {
        out.className = "result bad";
        out.textContent = "Retry of campaign " + c.id + ": " + errMessage({ status: r.status, body: res });
      }
    } catch (e) {
      out.className = "result bad";
      out.textContent = "Network error: " + (e && e.message ? e.message : e);
    } finally {
      btn.disabled = false;
    }
  }

  function selection() {
    const f = $("camp-file").files;
    return { file: f && f.length ? f[0] : null, name: $("camp-name").value.trim(), token: $("camp-token").value };
  }
  function selectionKey(s) {
    return s.file ? JSON.stringify([s.file.name, s.file.size, s.file.lastModified, s.name, s.token]) : "";
  }
  // Upload stays off until a dry run has checked this very file, name and token.
  function syncUploadButton() {
    const ok = state.dryKey !== null && state.dryKey === selectionKey(selection());
    const b = $("camp-upload");
    b.disabled = !ok;
    b.title = ok ? "store the campaign (its valid rows are paid once, after approval when it needs one)" : "run a dry run of this file first";
  }

  function fact(label, value, title, cls) {
    return el("div", { class: "fact" + (cls ? " " + cls : ""), title: title || "" }, el("span", { class: "label" }, label), el("span", { class: "value" }, value));
  }

  // The check's result: totals, whether it needs approval, the treasury, and the row errors.
  function renderReport(res, dry) {
    const t = res.totals || {};
    $("dryrun").classList.remove("hidden");
    setText("dryrun-title", dry ? "Dry run" : "Upload check");
    setText("dryrun-note", (dry ? "nothing was written · " : "") + "sha256 " + (res.file_digest || "").slice(0, 16) + "…");
    const facts = [
      fact("rows", fmtInt(t.rows)),
      fact("valid", fmtInt(t.valid), "", "good"),
      fact("invalid", fmtInt(t.invalid), "", t.invalid ? "bad" : ""),
      fact("total", amountText(t.amount, res.token), amountTitle(t.amount, res.token)),
      fact("token", tokenLabel(res.token)),
      fact("approval", res.approval_required ? "needs a second person" : "not needed", res.approval_required ? "the total is above api.approval_threshold: a token with the approve scope other than the uploader's must approve it" : ""),
    ];
    // What the chain said (the backend's `chain` report): the treasury's balance against the total, and
    // receivers not registered with the token (row errors) when the distributor does not register them.
    const ch = res.chain && typeof res.chain === "object" ? res.chain : null;
    if (ch && typeof ch.covered === "boolean") {
      const bal = typeof ch.treasury_balance === "string" ? amountText(ch.treasury_balance, res.token) : "unknown";
      facts.push(fact("treasury", (ch.covered ? "covers it" : "does not cover it") + " · " + bal,
        (ch.treasury || "treasury") + " balance: " + (typeof ch.treasury_balance === "string" ? amountTitle(ch.treasury_balance, res.token) : "unknown") +
        (ch.covered ? "" : " — the distributor holds transfers the balance cannot cover"), ch.covered ? "good" : "bad"));
    } else if (ch && ch.treasury) {
      facts.push(fact("treasury", "balance unknown", "the chain did not tell " + ch.treasury + "'s balance"));
    }
    if (ch && ch.registration_checked) {
      facts.push(fact("unregistered", fmtInt(ch.unregistered_receivers), "receivers not registered with the token (the distributor does not register them): their rows are errors", ch.unregistered_receivers ? "bad" : ""));
    }
    $("dryrun-facts").replaceChildren(...facts);
    const errors = Array.isArray(res.errors) ? res.errors : [];
    replaceRows($("dryrun-errors"), errors.map((e) => el("tr", null,
      el("td", { class: "num mono" }, String(e.row)),
      el("td", { class: "mono" }, e.field || "(row)"),
      el("td", { class: "err", title: e.reason }, e.reason),
    )), 3, "no row errors");
    if (res.errors_truncated) {
      $("dryrun-errors").append(el("tr", { class: "empty" }, el("td", { colspan: "3" }, "only the first " + fmtInt(errors.length) + " errors are listed; " + fmtInt(t.invalid) + " rows are invalid")));
    }
  }

  async function postCampaign(dry) {
    const s = selection();
    const out = $("camp-result");
    if (!s.file || !s.name) {
      out.className = "result bad";
      out.textContent = "Choose a file and a name.";
      return;
    }
    const skip = $("camp-skip").checked;
    const p = new URLSearchParams({ name: s.name });
    if (s.token) p.set("token", s.token);
    if (dry) p.set("dry_run", "true");
    else if (skip) p.set("skip_invalid", "true");
    const key = selectionKey(s);
    for (const id of ["camp-dry", "camp-upload"]) $(id).disabled = true;
    out.className = "result";
    out.textContent = dry ? "checking every row…" : "uploading…";
    try {
      const r = await fetch("/campaigns?" + p.toString(), {
        method: "POST",
        headers: headers({ "Content-Type": /\.(jsonl|ndjson|json)$/i.test(s.file.name) ? "application/x-ndjson" : "text/csv" }),
        body: s.file,
      });
      let res = null;
      try { res = await r.json(); } catch (_) { res = null; }
      if (res && res.totals) renderReport(res, dry);
      const t = (res && res.totals) || {};
      if (dry && r.ok) {
        state.dryKey = key;
        out.className = "result " + (t.invalid ? "bad" : "ok");
        out.textContent = "Dry run: " + fmtInt(t.valid) + " valid and " + fmtInt(t.invalid) + " invalid rows, nothing written." +
          (t.invalid ? (skip ? " Upload stores the valid rows only." : " Check “skip invalid rows” to upload the valid ones.") : "");
      } else if (!dry && (r.status === 201 || r.status === 200) && res && res.campaign) {
        const c = res.campaign;
        state.dryKey = null;
        out.className = "result ok";
        out.textContent = (r.status === 201 ? "Campaign " + c.id + " stored: " + fmtInt(res.inserted) + " rows" : "Already uploaded as campaign " + c.id + ": nothing added, nothing paid twice") +
          (c.status === "awaiting_approval" ? "; it waits for a second person's approval." : ".");
        tick();
      } else if (!dry && r.status === 422 && res && res.totals) {
        out.className = "result bad";
        out.textContent = "Refused whole: " + fmtInt(t.invalid) + " invalid rows. Fix them, or check “skip invalid rows”.";
      } else {
        out.className = "result bad";
        out.textContent = errMessage({ status: r.status, body: res });
      }
    } catch (e) {
      out.className = "result bad";
      out.textContent = "Network error: " + (e && e.message ? e.message : e) + (dry ? "" : "; uploading the same file under the same name again is safe.");
    } finally {
      $("camp-dry").disabled = false;
      syncUploadButton();
    }
  }

  // ---------- manual send ----------
  async function send(ev) {
    ev.preventDefault();
    const out = $("send-result");
    const body = {
      receiver_id: $("send-receiver").value.trim(),
      amount: $("send-amount").value.trim(),
    };
    const token = $("send-token").value;
    if (token) body.token = token;
    const memo = $("send-memo").value;
    if (memo) body.memo = memo;
    const text = JSON.stringify(body);
    // Same unchanged form after a failed attempt: same key, so a retry can never pay twice.
    if (state.pendingBody !== text) { state.pendingKey = uuid(); state.pendingBody = text; }
    const btn = $("send-submit");
    btn.disabled = true;
    out.className = "result";
    out.textContent = "sending…";
    try {
      const r = await fetch("/send-ft", {
        method: "POST",
        headers: headers({ "Content-Type": "application/json", "Idempotency-Key": state.pendingKey }),
        body: text,
      });
      let res = null;
      try { res = await r.json(); } catch (_) { res = null; }
      if (r.status === 202 || r.status === 200) {
        out.className = "result ok";
        out.textContent = (r.status === 202 ? "Claim " : "Already requested: claim ") + res.id + " (" + res.status.replace(/_/g, " ") + "): " +
          amountText(res.amount, res.token) + " to " + res.receiver_id +
          (res.campaign_id ? "; above the single-send threshold, it waits for a second person to approve campaign " + res.campaign_id : "");
        state.pendingKey = null; state.pendingBody = null;
        $("send-amount").value = ""; $("send-memo").value = "";
        tick();
      } else {
        out.className = "result bad";
        out.textContent = errMessage({ status: r.status, body: res });
        if (r.status < 500) { state.pendingKey = null; state.pendingBody = null; }
      }
    } catch (e) {
      out.className = "result bad";
      out.textContent = "Network error; submit again to retry safely (same Idempotency-Key).";
    } finally {
      btn.disabled = false;
    }
  }

  // ---------- wiring ----------
  document.addEventListener("DOMContentLoaded", () => {
    const tok = $("api-token");
    try { tok.value = sessionStorage.getItem("payouts.token") || ""; } catch (_) { /* storage off */ }
    state.token = tok.value.trim();
    tok.addEventListener("input", () => {
      state.token = tok.value.trim();
      try { sessionStorage.setItem("payouts.token", state.token); } catch (_) { /* storage off */ }
    });
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      state.token = $("login-token").value.trim();
      tok.value = state.token;
      $("login-token").value = "";
      try { sessionStorage.setItem("payouts.token", state.token); } catch (_) { /* storage off */ }
      tick();
    });
    $("send-form").addEventListener("submit", send);
    $("search-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      state.search.text = $("search-text").value;
      state.search.status = $("search-status").value;
      tick();
    });
    $("search-status").addEventListener("change", () => {
      state.search.status = $("search-status").value;
      tick();
    });
    $("search-clear").addEventListener("click", () => {
      $("search-text").value = ""; $("search-status").value = "";
      state.search = { text: "", status: "" };
      tick();
    });
    $("send-amount").addEventListener("input", showSendUnits);
    $("send-token").addEventListener("change", showSendUnits);
    $("camp-form").addEventListener("submit", (ev) => { ev.preventDefault(); postCampaign(true); });
    $("camp-upload").addEventListener("click", () => postCampaign(false));
    for (const id of ["camp-file", "camp-name", "camp-token"]) {
      $(id).addEventListener("input", syncUploadButton);
      $(id).addEventListener("change", syncUploadButton);
    }
    $("campaigns-body").addEventListener("click", onCampaignClick);
    $("approve-form").addEventListener("submit", decide);
    $("approve-cancel").addEventListener("click", () => {
      state.decision = null;
      $("approve-form").classList.add("hidden");
    });
    window.addEventListener("resize", () => tick());
    tick();
    setInterval(tick, POLL_MS);
  });
})();
