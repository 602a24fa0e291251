// claude-route operator dashboard: plain ES2020, no framework, no build step.
//
// Rules this file keeps, because the page is served under a strict CSP and
// shows data an attacker may influence (key notes, account names, error
// messages): every value reaches the DOM through textContent or attributes
// set with createElement, never innerHTML; no inline handlers or styles.
// The admin token lives in sessionStorage only (gone when the tab closes),
// and a freshly issued client key lives only in the DOM until dismissed.
'use strict';

(() => {
  const TOKEN_KEY = 'claude-route.admin-token';
  const REFRESH_MS = 5000;
  const REQUEST_TIMEOUT_MS = 10000;
  const TABS = ['overview', 'keys', 'accounts'];

  const $ = (id) => document.getElementById(id);

  const state = {
    tab: 'overview',
    tiers: [],          // last pool read: [{tier, slots_per_account, accounts:[…]}]
    keyDetail: '',      // id of the key whose usage panel is open
    keyCursors: [''],   // the cursor of each keys page seen so far ('' = the first)
    keyPage: 0,         // index in keyCursors of the page shown
    keyNext: null,      // the shown page's next_cursor (null: it is the last)
    timer: 0,
    seq: 0,             // refresh generation; a slower, older answer must not overwrite a newer one
  };

  // ---------- API ----------

  class Unauthorized extends Error {}
  class APIError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // api calls /admin/api relative to the page, so the dashboard also works
  // behind a reverse proxy that mounts it under a prefix.
  async function api(method, path, body, token) {
    const headers = { Accept: 'application/json', Authorization: 'Bearer ' + (token || sessionStorage.getItem(TOKEN_KEY) || '') };
    // A request that hangs must not stall the refresh loop, which waits for it.
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), REQUEST_TIMEOUT_MS);
    const init = { method, headers, cache: 'no-store', credentials: 'omit', signal: ctl.signal };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    let data = null;
    try {
      res = await fetch('api' + path, init);
      try {
        data = await res.json();
      } catch (e) {
        data = null;
      }
    } catch (e) {
      throw new APIError(0, ctl.signal.aborted ? 'the server did not answer in time' : 'the server is unreachable');
    } finally {
      clearTimeout(timer);
    }
    if (res.status === 401) throw new Unauthorized('the admin token was not accepted');
    if (!res.ok) {
      const msg = (data && data.error && data.error.message) || res.statusText || 'request failed';
      throw new APIError(res.status, msg);
    }
    return data;
  }

  // ---------- DOM helpers ----------

  const { el } = window.CRUI; // common.js

  const td = (content, cls) => el('td', { class: cls }, content);

  function badge(text, kind, testid, title) {
    return el('span', { class: 'badge badge-' + kind, 'data-testid': testid, title, text });
  }

  function show(node, on) {
    node.hidden = !on;
  }

  const nf = new Intl.NumberFormat();
  const fmtNum = (n) => nf.format(Number(n) || 0);
  const pad = (n) => String(n).padStart(2, '0');
  const hhmmss = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;

  function fmtDate(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return '—';
    const now = new Date();
    const sameDay = d.toDateString() === now.toDateString();
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    if (sameDay) return hm;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
  }

  // rel says how far a time is from now: "in 3 h 12 min", "5 min ago".
  function rel(iso) {
    if (!iso) return '';
    const ms = new Date(iso).getTime() - Date.now();
    if (Number.isNaN(ms)) return '';
    let s = Math.round(Math.abs(ms) / 1000);
    let text;
    if (s < 60) text = `${s} s`;
    else if (s < 3600) text = `${Math.round(s / 60)} min`;
    else if (s < 86400) {
      s = Math.round(s / 60);
      text = `${Math.floor(s / 60)} h ${s % 60} min`;
    } else text = `${Math.round(s / 86400)} d`;
    return ms >= 0 ? `in ${text}` : `${text} ago`;
  }

  function when(iso) {
    if (!iso) return el('span', { class: 'muted', text: '—' });
    return el('span', { title: new Date(iso).toString() }, fmtDate(iso), ' ', el('span', { class: 'muted small', text: rel(iso) }));
  }

  // Totals: {requests, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens}.
  const totals = (t) => t || {};
  const tokens = (t) => (Number(t.input_tokens) || 0) + (Number(t.output_tokens) || 0) + (Number(t.cache_creation_input_tokens) || 0) + (Number(t.cache_read_input_tokens) || 0);

  // Cost in US dollars at list prices (cost_usd: {last_5h, last_24h, last_30d, total}).
  const fmtUSD = (v) => '$' + (Number(v) || 0).toFixed(4);
  function showCost(prefix, c) {
    c = c || {};
    $(prefix + '-cost').textContent = fmtUSD(c.last_30d);
    $(prefix + '-cost-sub').textContent = `5 h: ${fmtUSD(c.last_5h)} · 24 h: ${fmtUSD(c.last_24h)}`;
  }

  // slotsBar is a capacity bar: slots used of total, as a meter (its
  // aria-valuenow and aria-valuemax are the counts, for readers and tests).
  function slotsBar(used, total, testid) {
    const bar = el('span', { class: 'bar', role: 'meter', 'data-testid': testid, 'aria-label': 'slots used',
      'aria-valuemin': 0, 'aria-valuenow': used || 0, 'aria-valuemax': total || 0 });
    const fill = el('span', { class: 'bar-fill' });
    const pct = total > 0 ? Math.min(100, Math.round((used / total) * 100)) : 0;
    // CSSOM writes are allowed under style-src 'self'; style attributes are not.
    fill.style.width = pct + '%';
    if (pct >= 100) fill.classList.add('full');
    else if (pct >= 80) fill.classList.add('high');
    bar.append(fill);
    return bar;
  }

  // ---------- banner, login, logout ----------

  function banner(msg) {
    const b = $('banner');
    b.textContent = msg || '';
    show(b, !!msg);
    $('conn').className = msg ? 'dot dot-bad' : 'dot dot-ok';
  }

  function fail(err) {
    if (err instanceof Unauthorized) {
      logout('Signed out: the admin token was not accepted. Sign in again.');
      return;
    }
    banner('Could not refresh: ' + err.message + '. Retrying every 5 s.');
  }

  function showLoginError(msg) {
    const e = $('login-error');
    e.textContent = msg || '';
    show(e, !!msg);
  }

  function logout(msg) {
    sessionStorage.removeItem(TOKEN_KEY);
    clearTimeout(state.timer);
    state.seq++; // drop answers still in flight
    clearNewKey();
    state.keyDetail = '';
    show($('key-detail'), false);
    show($('app'), false);
    show($('login'), true);
    showLoginError(msg);
    $('login-token').value = '';
    $('login-token').focus();
  }

  async function login(ev) {
    ev.preventDefault();
    const token = $('login-token').value.trim();
    if (!token) return;
    showLoginError('');
    try {
      await api('GET', '/status', undefined, token);
    } catch (err) {
      if (err instanceof Unauthorized) showLoginError('That token was not accepted.');
      else if (err.status === 403) showLoginError('The admin API is disabled on this server: set ADMIN_TOKEN.');
      else if (err.status === 503) {
        // The token is good; the store is down. Let the operator in to see it.
        enter(token);
      } else showLoginError('Could not sign in: ' + err.message + '.');
      return;
    }
    enter(token);
  }

  function enter(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    $('login-token').value = '';
    show($('login'), false);
    show($('app'), true);
    route();
  }

  // ---------- tabs and the refresh loop ----------

  function route() {
    const h = location.hash.replace(/^#/, '');
    state.tab = TABS.includes(h) ? h : 'overview';
    for (const a of document.querySelectorAll('.tab')) {
      const on = a.dataset.tab === state.tab;
      a.classList.toggle('active', on);
      a.setAttribute('aria-selected', on ? 'true' : 'false');
    }
    for (const t of TABS) show($('view-' + t), t === state.tab);
    refresh();
  }

  const loaders = { overview: loadOverview, keys: loadKeys, accounts: loadAccounts };

  // refresh reloads the visible tab now and schedules the next reload; one
  // timer at a time, and only the newest answer is rendered.
  async function refresh() {
    clearTimeout(state.timer);
    if (!sessionStorage.getItem(TOKEN_KEY)) return;
    const my = ++state.seq;
    const tab = state.tab;
    try {
      const render = await loaders[tab]();
      if (my !== state.seq) return;
      render();
      banner('');
      $('updated').textContent = 'updated ' + hhmmss(new Date());
    } catch (err) {
      if (my !== state.seq) return;
      fail(err);
    } finally {
      if (my === state.seq && sessionStorage.getItem(TOKEN_KEY)) {
        state.timer = setTimeout(refresh, REFRESH_MS);
      }
    }
  }

  // ---------- overview ----------

  async function loadOverview() {
    const [st, al, series] = await Promise.all([
      api('GET', '/status'),
      // Alerts and the chart are reads of their own; a failure leaves them as they were.
      api('GET', '/alerts').catch(() => null),
      api('GET', '/usage/series').catch(() => null),
    ]);
    return () => {
      renderOverview(st);
      if (al) renderAlerts(al);
      if (series) renderCharts('ov-chart', series.points || [], 'ov');
    };
  }

  // Alert events by severity, for the badge colour.
  const ALERT_KIND = {
    account_blacklisted: 'bad', refresh_gave_up: 'bad', tier_full: 'bad', store_down: 'bad',
    account_limited: 'warn', account_cooling: 'warn', tier_nearly_full: 'warn',
    account_recovered: 'ok', store_back: 'ok', test: 'muted',
  };

  // renderCharts draws requests and tokens of a 24-hour series into the
  // element id; prefix names the charts for tests.
  function renderCharts(id, points, prefix) {
    const C = window.CRCharts;
    $(id).replaceChildren(
      el('div', { class: 'chart-box' }, el('div', { class: 'chart-title', text: 'Requests per 5 minutes' }), C.lineChart(points, 'requests', 'Requests per 5 minutes', prefix + '-chart-requests')),
      el('div', { class: 'chart-box' }, el('div', { class: 'chart-title', text: 'Tokens per 5 minutes' }), C.lineChart(points, 'tokens', 'Tokens per 5 minutes', prefix + '-chart-tokens')));
  }

  function renderAlerts(al) {
    const list = al.alerts || [];
    $('ov-alerts-webhook').textContent = al.webhook ? 'sent to ALERT_WEBHOOK_URL' : 'no ALERT_WEBHOOK_URL: kept here only';
    $('ov-alerts').replaceChildren(...(list.length ? list.map((a) => el('li', { 'data-testid': 'alert-item', 'data-event': a.event },
      badge(a.event.replace(/_/g, ' '), ALERT_KIND[a.event] || 'muted', 'alert-event'), ' ',
      el('span', { 'data-testid': 'alert-text', text: a.text }), ' ',
      el('span', { class: 'muted small', title: a.at, text: rel(a.at) })))
      : [el('li', { class: 'muted', text: 'No alerts yet.' })]));
  }

  function renderOverview(st) {
    const accounts = st.accounts || [];
    const tiers = st.tiers || [];
    state.tiers = tiers;
    const black = accounts.filter((a) => a.blacklist);

    $('ov-accounts').textContent = fmtNum(accounts.length);
    $('ov-accounts-sub').textContent = black.length ? `${black.length} blacklisted` : 'all in service';
    $('ov-accounts-sub').className = 'stat-sub' + (black.length ? ' warn' : '');

    let used = 0;
    let total = 0;
    for (const t of tiers) {
      used += t.slots_used || 0;
      total += t.slots_total || 0;
    }
    $('ov-slots').textContent = `${used}/${total}`;

    const u = st.usage || {};
    const l5 = totals(u.last_5h);
    const l24 = totals(u.last_24h);
    const all = totals(u.total);
    $('ov-requests').textContent = fmtNum(l5.requests);
    $('ov-requests-sub').textContent = `24 h: ${fmtNum(l24.requests)} · all time: ${fmtNum(all.requests)}`;
    $('ov-tokens').textContent = fmtNum(tokens(l5));
    $('ov-tokens-sub').textContent = `in ${fmtNum(l5.input_tokens)} · out ${fmtNum(l5.output_tokens)}`;
    showCost('ov', st.cost_usd);

    $('tiers-body').replaceChildren(...tiers.map((t) => {
      const accts = t.accounts || [];
      const nb = accts.filter((a) => a.blacklist).length;
      return el('tr', { 'data-testid': 'tier-row', 'data-tier': t.tier },
        td(badge(t.tier, 'tier', 'tier-name')),
        td(fmtNum(accts.length), 'num'),
        td(nb ? badge(String(nb), 'bad') : el('span', { class: 'muted', text: '0' }), 'num'),
        td(el('span', { class: 'slots' }, slotsBar(t.slots_used, t.slots_total, 'tier-bar'),
          el('span', { 'data-testid': 'tier-slots', text: `${t.slots_used}/${t.slots_total}` }),
          el('span', { class: 'muted small', text: `${t.slots_per_account} per account` }))),
        td(el('span', { 'data-testid': 'tier-sold', class: (t.unbound_keys || 0) > (t.free_slots || 0) ? 'warn' : '',
          title: 'keys not bound yet each need a free slot at their first request',
          text: `${t.sold_keys || 0} sold · ${t.unbound_keys || 0} unbound / ${t.free_slots || 0} free` })));
    }));

    $('ov-blacklisted').replaceChildren(...(black.length ? black.map((a) => el('li', { 'data-testid': 'ov-blacklisted-item', 'data-account': a.name },
      el('strong', { text: a.name }), ' ', badge(a.tier, 'tier'), ' ',
      el('span', { class: 'muted', text: a.blacklist.reason }), ' ',
      el('span', { class: 'muted small', text: rel(a.blacklist.since) })))
      : [el('li', { class: 'muted', text: 'None: every account is in service.' })]));

    const next = accounts.filter((a) => a.next_refresh).sort((a, b) => new Date(a.next_refresh) - new Date(b.next_refresh)).slice(0, 6);
    $('ov-refreshes').replaceChildren(...(next.length ? next.map((a) => el('li', {},
      el('strong', { text: a.name }), ' ', when(a.next_refresh),
      a.cooldown_until ? el('span', {}, ' ', badge('cooldown', 'warn', null, 'until ' + fmtDate(a.cooldown_until))) : null,
      a.last_refresh_error ? el('span', {}, ' ', badge('last refresh failed', 'bad', null, a.last_refresh_error)) : null))
      : [el('li', { class: 'muted', text: 'No OAuth accounts waiting for a refresh.' })]));

    const rows = [['Last 5 h', l5], ['Last 24 h', l24], ['All time', all]];
    for (const [fam, t] of Object.entries(u.by_family || {}).sort()) rows.push([`All time · ${fam}`, totals(t)]);
    $('ov-usage-body').replaceChildren(...rows.map(([label, t], i) => el('tr', { class: i > 2 ? 'sub' : '' },
      td(label), td(fmtNum(t.requests), 'num'), td(fmtNum(t.input_tokens), 'num'), td(fmtNum(t.output_tokens), 'num'),
      td(fmtNum(t.cache_creation_input_tokens), 'num'), td(fmtNum(t.cache_read_input_tokens), 'num'))));

    const sync = $('ov-sync');
    if (st.last_sync) {
      const r = st.last_sync.report || {};
      const parts = [el('span', { text: st.last_sync.summary || 'done' }), el('br'),
        el('span', { class: 'muted small' }, r.started_at ? `${fmtDate(r.started_at)} (${rel(r.started_at)})` : '', r.replica ? ` on ${r.replica}` : '')];
      if (r.error) parts.push(' ', badge('sync error', 'bad', null, r.error));
      sync.replaceChildren(...parts);
    } else {
      sync.textContent = 'No sync recorded yet.';
    }
    $('ov-store').replaceChildren(st.store && st.store.ok ? badge('ok', 'ok', 'store-ok') : badge('unreachable', 'bad'));
  }

  async function syncNow() {
    const btn = $('sync-now');
    btn.disabled = true;
    try {
      await api('POST', '/sync', {});
      await refresh();
    } catch (err) {
      fail(err);
    } finally {
      btn.disabled = false;
    }
  }

  // ---------- keys ----------

  function keyQuery() {
    const p = new URLSearchParams();
    const q = $('keys-search').value.trim();
    if (q) p.set('q', q);
    if ($('keys-tier').value) p.set('tier', $('keys-tier').value);
    if ($('keys-status').value) p.set('status', $('keys-status').value);
    const cur = state.keyCursors[state.keyPage];
    if (cur) p.set('cursor', cur);
    const s = p.toString();
    return s ? '?' + s : '';
  }

  async function loadKeys() {
    const detail = state.keyDetail;
    const [pool, list, kd, series] = await Promise.all([
      api('GET', '/pool'),
      api('GET', '/keys' + keyQuery()),
      detail ? api('GET', '/keys/' + encodeURIComponent(detail)).catch((e) => (e instanceof APIError && e.status === 404 ? null : Promise.reject(e))) : null,
      detail ? api('GET', '/usage/series?key=' + encodeURIComponent(detail)).catch(() => null) : null,
    ]);
    return () => {
      state.tiers = pool.tiers || [];
      fillTierSelects();
      renderKeys(list.keys || []);
      renderKeyPager(list.next_cursor || null, (list.keys || []).length);
      if (detail && detail === state.keyDetail) {
        renderKeyDetail(kd);
        if (kd && series) renderCharts('kd-chart', series.points || [], 'kd');
      }
    };
  }

  // setOptions replaces a select's options only when they changed, so a
  // refresh does not reset what the operator is choosing.
  function setOptions(sel, opts) {
    const sig = JSON.stringify(opts);
    if (sel.dataset.sig === sig) return;
    const cur = sel.value;
    sel.replaceChildren(...opts.map(([value, label, disabled]) => el('option', { value, text: label, disabled: !!disabled })));
    sel.dataset.sig = sig;
    if (opts.some(([v, , d]) => v === cur && !d)) sel.value = cur;
  }

  function fillTierSelects() {
    const names = state.tiers.map((t) => t.tier);
    setOptions($('issue-tier'), names.map((n) => [n, n]));
    setOptions($('keys-tier'), [['', 'all tiers'], ...names.map((n) => [n, n])]);
    fillAccountSelect();
  }

  function fillAccountSelect() {
    const t = state.tiers.find((x) => x.tier === $('issue-tier').value);
    const opts = [['', 'any (least loaded)']];
    for (const a of (t && t.accounts) || []) {
      const full = a.slots_used >= a.slots_total;
      const why = a.blacklist ? ' · blacklisted' : full ? ' · full' : '';
      opts.push([a.name, `${a.name} (${a.slots_used}/${a.slots_total})${why}`, !!a.blacklist || full]);
    }
    setOptions($('issue-account'), opts);
  }

  // The list comes a page (100 keys) at a time, oldest first: the pager
  // walks forward with each page's next_cursor and back through those seen.
  function renderKeyPager(next, shown) {
    state.keyNext = next;
    $('keys-prev').disabled = state.keyPage === 0;
    $('keys-next').disabled = !next;
    const from = state.keyPage * 100 + (shown ? 1 : 0);
    $('keys-page').textContent = `page ${state.keyPage + 1} · keys ${from}–${state.keyPage * 100 + shown}${next ? '' : ' (last)'}`;
  }

  function keysFirstPage() {
    state.keyCursors = [''];
    state.keyPage = 0;
  }

  // lastKeys: as lastAccounts, for the keys table.
  let lastKeys = '';

  function renderKeys(keys) {
    show($('keys-empty'), keys.length === 0);
    const drawn = JSON.stringify([keys, Math.floor(Date.now() / 60000)]);
    if (drawn === lastKeys) return;
    lastKeys = drawn;
    $('keys-body').replaceChildren(...keys.map((k) => {
      const kind = k.status === 'active' ? 'ok' : k.status === 'revoked' ? 'bad' : 'muted';
      const actions = el('td', { class: 'actions' },
        el('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'key-usage', onclick: () => openKey(k.id), text: 'Usage' }));
      if (k.status === 'active') {
        actions.append(el('button', { type: 'button', class: 'btn btn-small btn-danger-ghost', 'data-testid': 'key-revoke', onclick: () => revokeKey(k), text: 'Revoke' }));
      }
      return el('tr', { 'data-testid': 'key-row', 'data-key-id': k.id, class: k.id === state.keyDetail ? 'selected' : '' },
        td(el('span', {}, el('code', { 'data-testid': 'key-prefix', text: k.prefix }), el('br'), el('span', { class: 'muted small', 'data-testid': 'key-id', text: k.id }))),
        td(badge(k.tier, 'tier')),
        td(badge(k.status, kind, 'key-status')),
        td(k.account ? k.account : el('span', { class: 'muted', text: 'unbound' })),
        td(el('span', { class: 'note', title: k.note || '', text: k.note || '' })),
        td(when(k.created_at)),
        td(k.not_activated
          ? el('span', { class: 'muted', 'data-testid': 'key-expiry', title: `valid ${Math.round(k.first_use_validity_seconds / 3600)} h from its first request`, text: 'not activated' })
          : k.expires_at ? when(k.expires_at) : el('span', { class: 'muted', text: 'never' })),
        actions);
    }));
  }

  async function issueKey(ev) {
    ev.preventDefault();
    const btn = ev.submitter || $('issue-form').querySelector('button[type=submit]');
    const body = { tier: $('issue-tier').value };
    if ($('issue-account').value) body.account = $('issue-account').value;
    if ($('issue-note').value.trim()) body.note = $('issue-note').value.trim();
    // Unticked leaves it to the tier's validity_from.
    if ($('issue-first-use').checked) body.from_first_use = true;
    const errBox = $('issue-error');
    show(errBox, false);
    show($('issue-warning'), false);
    btn.disabled = true;
    try {
      const out = await api('POST', '/keys', body);
      $('new-key-value').textContent = out.key;
      // Oversold: the key is issued, but some customer may find no slot.
      $('issue-warning').textContent = out.warning ? 'Warning: ' + out.warning : '';
      show($('issue-warning'), !!out.warning);
      $('new-key-tier').textContent = (out.record && out.record.tier) || body.tier;
      $('copy-key').textContent = 'Copy';
      show($('new-key'), true);
      $('issue-note').value = '';
      await refresh();
    } catch (err) {
      if (err instanceof Unauthorized) return fail(err);
      errBox.textContent = 'Could not issue the key: ' + err.message;
      show(errBox, true);
    } finally {
      btn.disabled = false;
    }
  }

  function clearNewKey() {
    $('new-key-value').textContent = '';
    show($('new-key'), false);
  }

  // copyKey uses the clipboard API where the page is a secure context and
  // falls back to selecting the text (plain-HTTP deployments on a LAN).
  async function copyKey() {
    const node = $('new-key-value');
    const btn = $('copy-key');
    const text = node.textContent;
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        ok = true;
      }
    } catch (e) {
      ok = false;
    }
    const range = document.createRange();
    range.selectNodeContents(node);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    if (!ok) {
      try {
        ok = document.execCommand('copy');
      } catch (e) {
        ok = false;
      }
    }
    btn.textContent = ok ? 'Copied' : 'Selected: press Ctrl+C';
    setTimeout(() => { btn.textContent = 'Copy'; }, 2500);
  }

  async function revokeKey(k) {
    const res = await confirmDialog({
      title: 'Revoke key ' + k.prefix + '?',
      text: `The key stops working at once on every instance and its slot on ${k.account || 'its account'} is freed. This cannot be undone.`,
      ok: 'Revoke',
    });
    if (!res) return;
    try {
      await api('DELETE', '/keys/' + encodeURIComponent(k.id));
      await refresh();
    } catch (err) {
      fail(err);
    }
  }

  function openKey(id) {
    state.keyDetail = id;
    $('kd-title').textContent = id;
    show($('key-detail'), true);
    refresh().then(() => $('key-detail').scrollIntoView({ block: 'nearest' }));
  }

  function closeKey() {
    state.keyDetail = '';
    show($('key-detail'), false);
    for (const r of document.querySelectorAll('#keys-body tr.selected')) r.classList.remove('selected');
  }

  function renderKeyDetail(d) {
    if (!d) {
      closeKey();
      return;
    }
    const k = d.key;
    const u = d.usage || {};
    const l5 = totals(u.last_5h);
    $('kd-title').textContent = `${k.prefix} (${k.id})`;
    $('kd-requests').textContent = fmtNum(l5.requests);
    $('kd-tokens').textContent = fmtNum(tokens(l5));
    $('kd-tokens-sub').textContent = `in ${fmtNum(l5.input_tokens)} · out ${fmtNum(l5.output_tokens)}`;
    showCost('kd', d.cost_usd);
    const budgets = d.budgets || [];
    $('kd-budgets').replaceChildren(...(budgets.length ? budgets.map((b) => el('li', { 'data-testid': 'kd-budget', 'data-window': b.window },
      el('strong', { text: b.window === 'day' ? 'Day (UTC)' : 'Week (UTC, from Monday)' }), ' ',
      el('span', { class: b.spent_usd >= b.budget_usd ? 'warn' : '', text: `${fmtUSD(b.spent_usd)} of $${Number(b.budget_usd).toFixed(2)}` }), ' ',
      el('span', { class: 'muted small', text: 'resets ' + fmtDate(b.reset) }),
      // A window the key sets itself (key budget) rather than its tier.
      k.budgets && k.budgets[b.window + '_usd'] ? el('span', { class: 'badge badge-muted', 'data-testid': 'kd-budget-own', text: "key's own" }) : null))
      : [el('li', { class: 'muted', text: 'No budget: the tier sets none.' })]));
    $('kd-status').replaceChildren(badge(k.status, k.status === 'active' ? 'ok' : 'bad', 'kd-status-badge'));
    $('kd-account').textContent = k.account ? `${k.tier} · on ${k.account}` : `${k.tier} · unbound`;

    const q = Object.entries(d.quotas || {}).sort();
    $('kd-quotas-body').replaceChildren(...(q.length ? q.map(([fam, v]) => el('tr', { 'data-testid': 'kd-quota', 'data-family': fam },
      td(fam), td(el('span', { class: 'slots' }, slotsBar(v.used, v.limit), `${v.used}/${v.limit}`)),
      td(v.used > 0 ? when(v.reset) : el('span', { class: 'muted', text: '—' }))))
      : [el('tr', {}, el('td', { colspan: 3, class: 'muted', text: 'No quotas for this tier.' }))]));

    const rows = [['Last 5 h', l5], ['Last 24 h', totals(u.last_24h)], ['All time', totals(u.total)]];
    for (const [fam, t] of Object.entries(u.by_family || {}).sort()) rows.push([`All time · ${fam}`, totals(t)]);
    $('kd-usage-body').replaceChildren(...rows.map(([label, t], i) => el('tr', { class: i > 2 ? 'sub' : '' },
      td(label), td(fmtNum(t.requests), 'num'), td(fmtNum(t.input_tokens), 'num'), td(fmtNum(t.output_tokens), 'num'),
      td(`${fmtNum(t.cache_creation_input_tokens)} / ${fmtNum(t.cache_read_input_tokens)}`, 'num'))));
  }

  // ---------- accounts ----------

  async function loadAccounts() {
    const [acc, usage] = await Promise.all([
      api('GET', '/accounts'),
      // Usage accounting is optional on the server: without it the column stays empty.
      api('GET', '/usage').catch((e) => (e instanceof APIError && e.status === 404 ? null : Promise.reject(e))),
    ]);
    const byName = {};
    for (const a of (usage && usage.accounts) || []) byName[a.name] = a.usage;
    return () => {
      renderAccounts(acc.accounts || [], byName);
      renderMoney((usage && usage.tiers) || []);
    };
  }

  // renderMoney: per tier, cost at list prices, billed and margin (30 days).
  function renderMoney(list) {
    $('money-body').replaceChildren(...list.map((m) => el('tr', { 'data-testid': 'money-row', 'data-tier': m.tier },
      td(badge(m.tier, 'tier')),
      td('× ' + (Number(m.price_multiplier) || 1), 'num'),
      td(el('span', { 'data-testid': 'money-cost', text: fmtUSD((m.cost_usd || {}).last_30d) }), 'num'),
      td(el('span', { 'data-testid': 'money-billed', text: fmtUSD((m.billed_usd || {}).last_30d) }), 'num'),
      td(el('span', { 'data-testid': 'money-margin', text: fmtUSD((m.margin_usd || {}).last_30d) }), 'num'))));
  }

  function accountState(a) {
    if (a.blacklist) return badge('blacklisted', 'bad', 'account-state', 'since ' + fmtDate(a.blacklist.since));
    if (a.limited_until && new Date(a.limited_until) > new Date()) return badge('limited', 'warn', 'account-state', 'upstream usage limit until ' + fmtDate(a.limited_until));
    if (a.cooldown_until) return badge('refresh cooldown', 'warn', 'account-state', 'until ' + fmtDate(a.cooldown_until));
    return badge('ok', 'ok', 'account-state');
  }

  // utilization shows the upstream's own view of an account: the 5-hour
  // and 7-day windows of a subscription, or an API key's per-minute budgets.
  function utilization(a) {
    const u = a.utilization;
    const C = window.CRCharts;
    if (!u) return el('span', { class: 'muted', text: '—' });
    const rows = [];
    if (u.five_hour !== undefined) rows.push(C.meter(u.five_hour, 'util-5h', '5 h'));
    if (u.seven_day !== undefined) rows.push(C.meter(u.seven_day, 'util-7d', '7 d'));
    if (!rows.length && u.requests_limit && u.requests_remaining !== undefined) {
      rows.push(C.meter(1 - u.requests_remaining / u.requests_limit, 'util-requests', 'req/min'));
    }
    if (!rows.length && u.tokens_limit && u.tokens_remaining !== undefined) {
      rows.push(C.meter(1 - u.tokens_remaining / u.tokens_limit, 'util-tokens', 'tok/min'));
    }
    return rows.length ? el('div', { class: 'meters', title: 'as the upstream reported it at ' + fmtDate(u.observed_at) }, ...rows) : el('span', { class: 'muted', text: '—' });
  }

  // lastAccounts is what the accounts table was last drawn from. A refresh
  // that brings nothing new leaves the rows alone: redrawing them swapped
  // the button under a click in progress (pressed on the old button,
  // released on its copy), and the click was lost. The minute is part of
  // it so relative times still move on.
  let lastAccounts = '';

  function renderAccounts(accounts, usage) {
    show($('accounts-empty'), accounts.length === 0);
    const drawn = JSON.stringify([accounts, usage, Math.floor(Date.now() / 60000)]);
    if (drawn === lastAccounts) return;
    lastAccounts = drawn;
    $('accounts-body').replaceChildren(...accounts.map((a) => {
      const st = el('td', {}, accountState(a));
      if (a.blacklist) st.append(el('div', { class: 'reason', 'data-testid': 'account-reason', text: a.blacklist.reason }));
      else if (a.limited_until && new Date(a.limited_until) > new Date()) st.append(el('div', { class: 'reason muted', text: 'until ' + fmtDate(a.limited_until) }));

      const refresh = el('td', {});
      if (a.kind === 'oauth') {
        refresh.append(el('span', { class: 'muted small', text: `${a.refresh_attempts_24h || 0} tries / 24 h` }));
        if (a.last_refresh_error) refresh.append(el('div', { class: 'reason', title: a.last_refresh_error, text: a.last_refresh_error }));
      } else refresh.append(el('span', { class: 'muted', text: '—' }));

      // Each row carries its own actions: nothing to type, nothing to mistype.
      const btn = (verb, text, fn, danger) => el('button', { type: 'button', class: 'btn btn-small' + (danger ? ' btn-danger-ghost' : ''),
        'data-testid': 'account-' + verb, onclick: fn, text });
      const disabled = a.blacklist && a.blacklist.reason === 'disabled';
      const action = el('div', { class: 'row-actions' },
        disabled ? btn('enable', 'Enable', () => accountVerb(a, 'enable'))
          : a.blacklist ? btn('recover', 'Recover', () => recoverAccount(a))
            : btn('blacklist', 'Blacklist', () => blacklistAccount(a), true),
        disabled ? null : btn('disable', 'Disable', () => accountVerb(a, 'disable'), true),
        btn('probe', 'Probe', () => accountVerb(a, 'probe')),
        btn('replace', 'Replace', () => replaceAccount(a)),
        btn('delete', 'Delete', () => accountVerb(a, 'delete'), true));

      const u = usage[a.name] ? totals(usage[a.name].last_5h) : null;
      return el('tr', { 'data-testid': 'account-row', 'data-account': a.name, class: a.blacklist ? 'dim' : '' },
        td(el('span', {}, el('strong', { text: a.name }), el('br'), el('span', { class: 'muted small', text: a.kind === 'oauth' ? 'OAuth' : a.kind === 'apikey' ? 'API key' : a.kind || '' }))),
        td(badge(a.tier, 'tier')),
        st,
        td(el('span', { class: 'slots' }, slotsBar(a.slots_used, a.slots_total),
          el('span', { 'data-testid': 'account-slots', text: `${a.slots_used}/${a.slots_total}` }),
          el('span', { class: 'muted small', text: `${a.bound_keys} key${a.bound_keys === 1 ? '' : 's'}` }))),
        td(utilization(a)),
        td(u ? fmtNum(u.requests) : el('span', { class: 'muted', text: '—' }), 'num'),
        td(a.expires_at ? when(a.expires_at) : el('span', { class: 'muted', text: '—' })),
        td(a.next_refresh ? when(a.next_refresh) : el('span', { class: 'muted', text: '—' })),
        refresh,
        el('td', { class: 'actions' }, action));
    }));
  }

  async function blacklistAccount(a) {
    const res = await confirmDialog({
      title: 'Blacklist ' + a.name + '?',
      text: `It stops serving at once; its ${a.bound_keys} bound key${a.bound_keys === 1 ? '' : 's'} move to other ${a.tier} accounts where slots are free.`,
      ok: 'Blacklist',
      reason: true,
    });
    if (!res) return;
    try {
      await api('POST', '/accounts/' + encodeURIComponent(a.name) + '/blacklist', { reason: res.reason });
      await refresh();
    } catch (err) {
      fail(err);
    }
  }

  // accountResult says what an account action did, under the table.
  function accountResult(ok, text) {
    const p = $('acct-result');
    p.className = ok ? 'muted small' : 'error';
    p.textContent = text;
    show(p, true);
  }

  // accountVerb runs disable, enable, probe or delete on one account; the
  // ones that take keys away ask first.
  async function accountVerb(a, verb) {
    if (verb === 'disable' || verb === 'delete') {
      const res = await confirmDialog({
        title: (verb === 'disable' ? 'Disable ' : 'Delete ') + a.name + '?',
        text: verb === 'disable'
          ? `It takes no keys while disabled; its ${a.bound_keys} bound key${a.bound_keys === 1 ? '' : 's'} move to other ${a.tier} accounts.`
          : `Its file goes to ACCOUNT_DIR/.trash/ and it leaves the pool; its ${a.bound_keys} bound key${a.bound_keys === 1 ? '' : 's'} move.`,
        ok: verb === 'disable' ? 'Disable' : 'Delete',
      });
      if (!res) return;
    }
    try {
      const n = encodeURIComponent(a.name);
      const d = verb === 'delete' ? await api('DELETE', '/accounts/' + n) : await api('POST', `/accounts/${n}/${verb}`, {});
      if (verb === 'probe') {
        const p = (d && d.probe) || d || {};
        accountResult(p.status === 200, `${a.name}: probe answered ${p.status || p.error_type || 'nothing'}` + (p.latency_ms !== undefined ? ` in ${p.latency_ms} ms` : '') + (p.error_type && p.status ? ` (${p.error_type})` : ''));
      } else {
        accountResult(true, `${a.name}: ${{ disable: 'disabled', enable: 'enabled', delete: 'deleted' }[verb]}`);
      }
      await refresh();
    } catch (err) {
      if (err instanceof Unauthorized) return fail(err);
      accountResult(false, `${a.name}: ${err.message}`);
    }
  }

  // replaceAccount pastes new credentials for one account.
  function replaceAccount(a) {
    const dlg = $('replace-dlg');
    $('replace-title').textContent = 'Replace the credentials of ' + a.name;
    $('replace-json').value = '';
    dlg.returnValue = '';
    dlg.addEventListener('close', async () => {
      const body = $('replace-json').value;
      $('replace-json').value = ''; // the secret leaves the page with the request
      if (dlg.returnValue !== 'ok' || !body.trim()) return;
      let file;
      try {
        file = JSON.parse(body);
      } catch (e) {
        accountResult(false, `${a.name}: the pasted credentials are not JSON`);
        return;
      }
      try {
        const d = await api('PUT', '/accounts/' + encodeURIComponent(a.name) + '/credentials', file);
        accountResult(true, `${a.name}: credentials replaced` + (d && d.account && d.account.fingerprint ? `, fingerprint ${d.account.fingerprint}` : ''));
        await refresh();
      } catch (err) {
        if (err instanceof Unauthorized) return fail(err);
        accountResult(false, `${a.name}: ${err.message}`);
      }
    }, { once: true });
    dlg.showModal();
  }

  async function recoverAccount(a) {
    try {
      await api('POST', '/accounts/' + encodeURIComponent(a.name) + '/recover', {});
      await refresh();
    } catch (err) {
      fail(err);
    }
  }

  // ---------- confirmation dialog ----------

  // confirmDialog resolves to {reason} when confirmed and to null otherwise.
  function confirmDialog({ title, text, ok, reason }) {
    const dlg = $('confirm');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = ok;
    $('confirm-ok').value = 'ok';
    show($('confirm-reason-label'), !!reason);
    $('confirm-reason').value = '';
    dlg.returnValue = '';
    return new Promise((resolve) => {
      dlg.addEventListener('close', () => {
        resolve(dlg.returnValue === 'ok' ? { reason: $('confirm-reason').value.trim() } : null);
      }, { once: true });
      dlg.showModal();
      (reason ? $('confirm-reason') : $('confirm-cancel')).focus();
    });
  }

  // ---------- wiring ----------

  let searchTimer = 0;
  function init() {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', () => logout(''));
    $('refresh-now').addEventListener('click', () => refresh());
    $('sync-now').addEventListener('click', syncNow);
    $('issue-form').addEventListener('submit', issueKey);
    $('issue-tier').addEventListener('change', fillAccountSelect);
    $('copy-key').addEventListener('click', copyKey);
    $('dismiss-key').addEventListener('click', clearNewKey);
    $('kd-close').addEventListener('click', closeKey);
    $('keys-search').addEventListener('input', () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => { keysFirstPage(); refresh(); }, 250);
    });
    $('keys-tier').addEventListener('change', () => { keysFirstPage(); refresh(); });
    $('keys-status').addEventListener('change', () => { keysFirstPage(); refresh(); });
    $('keys-next').addEventListener('click', () => {
      if (!state.keyNext) return;
      state.keyCursors = state.keyCursors.slice(0, state.keyPage + 1).concat([state.keyNext]);
      state.keyPage++;
      refresh();
    });
    $('keys-prev').addEventListener('click', () => {
      if (state.keyPage === 0) return;
      state.keyPage--;
      refresh();
    });
    $('confirm-cancel').addEventListener('click', () => $('confirm').close('cancel'));
    $('replace-cancel').addEventListener('click', () => $('replace-dlg').close('cancel'));
    window.addEventListener('hashchange', () => {
      if (sessionStorage.getItem(TOKEN_KEY)) route();
    });
    // Catch up at once when the operator comes back to the tab.
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && sessionStorage.getItem(TOKEN_KEY)) refresh();
    });

    if (sessionStorage.getItem(TOKEN_KEY)) {
      show($('login'), false);
      show($('app'), true);
      route();
    } else {
      show($('app'), false);
      show($('login'), true);
      $('login-token').focus();
    }
  }

  init();
})();
