// claude-route customer page. The key is kept in sessionStorage (this tab
// only) and sent in the x-api-key header of GET /v1/usage: never in a URL.
// Values reach the DOM as text or attributes, never as markup (CSP: scripts
// and styles from this server only; sizes are SVG attributes or CSSOM).
'use strict';

(() => {
  const STORE = 'claude-route.customer-key';
  const NS = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);
  const nf = new Intl.NumberFormat('en-US');
  // Dollars: cents once there are some, else the fractions a few requests cost.
  const usd = (v) => '$' + (Number(v) || 0).toFixed(Math.abs(Number(v) || 0) >= 10 ? 2 : 4);
  const usdFine = (v) => '$' + (Number(v) || 0).toFixed(4);

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') e.textContent = String(v);
      else e.setAttribute(k, String(v));
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  const fmtDate = (iso) => new Date(iso).toLocaleString('en-US', { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  function rel(iso) {
    const s = Math.round((new Date(iso) - Date.now()) / 1000);
    const a = Math.abs(s);
    const txt = a < 90 ? `${a} s` : a < 5400 ? `${Math.round(a / 60)} min` : a < 172800 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86400)} days`;
    return s >= 0 ? 'in ' + txt : txt + ' ago';
  }
  const origin = () => window.location.origin;
  const mask = (k) => k.slice(0, 14) + '…';

  function showError(msg) {
    $('error').textContent = msg;
    $('error').hidden = !msg;
  }

  async function load() {
    const key = sessionStorage.getItem(STORE);
    if (!key) {
      $('signin').hidden = false;
      $('view').hidden = true;
      return;
    }
    let res;
    try {
      res = await fetch('/v1/usage?days=30', { headers: { 'x-api-key': key }, cache: 'no-store', referrerPolicy: 'no-referrer' });
    } catch (e) {
      showError('The server could not be reached. Try again in a moment.');
      return;
    }
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      const msg = (body && body.error && body.error.message) || `The server answered ${res.status}.`;
      if (res.status === 401) sessionStorage.removeItem(STORE);
      $('signin').hidden = false;
      $('view').hidden = true;
      showError(msg);
      return;
    }
    showError('');
    render(body, key);
    $('signin').hidden = true;
    $('view').hidden = false;
  }

  function render(u, key) {
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString('en-US', { hour12: false });
    $('tier').textContent = u.tier;
    $('key-id').textContent = 'key ' + u.id + (u.status && u.status !== 'active' ? ' · ' + u.status : '');

    const exp = $('expiry');
    exp.className = 'value';
    if (u.activated === false) {
      exp.textContent = 'not activated';
      $('expiry-sub').textContent = u.validity_seconds
        ? `valid ${Math.round(u.validity_seconds / 86400)} days from your first request`
        : 'valid from your first request';
    } else if (u.expires_at) {
      exp.textContent = fmtDate(u.expires_at);
      const past = new Date(u.expires_at) <= new Date();
      if (past) exp.className = 'value bad';
      $('expiry-sub').textContent = past ? 'expired ' + rel(u.expires_at) : 'expires ' + rel(u.expires_at);
    } else {
      exp.textContent = 'no expiry';
      $('expiry-sub').textContent = '';
    }

    const c = u.cost_usd || {};
    $('cost').textContent = usd(c.last_30d);
    $('cost-sub').textContent = `24 h: ${usdFine(c.last_24h)} · at list prices`;
    const t30 = (u.tokens && u.tokens.last_30d) || {};
    const tok = (t) => (t.input_tokens || 0) + (t.output_tokens || 0) + (t.cache_creation_input_tokens || 0) + (t.cache_read_input_tokens || 0);
    $('tokens').textContent = nf.format(tok(t30));
    $('tokens-sub').textContent = `${nf.format(t30.requests || 0)} requests`;

    const hours = Math.round((u.window_seconds || 0) / 3600);
    $('window-note').textContent = `Each limit counts requests in a sliding ${hours}-hour window: a request frees its place ${hours} hours after it was made.`;
    const fams = Object.entries(u.families || {}).sort((a, b) => a[0].localeCompare(b[0]));
    $('windows-body').replaceChildren(...fams.map(([name, f]) => {
      if (f.unlimited) {
        return el('tr', { 'data-testid': 'window-row', 'data-family': name },
          el('td', { text: name }), el('td', { class: 'num', text: 'unlimited' }), el('td', { class: 'num', text: '—' }), el('td', { text: '—' }));
      }
      const meter = el('div', { class: 'meter' + (f.used >= f.limit ? ' full' : '') }, el('span'));
      meter.firstChild.style.width = Math.min(100, (100 * f.used) / Math.max(1, f.limit)) + '%';
      return el('tr', { 'data-testid': 'window-row', 'data-family': name },
        el('td', { text: name }),
        el('td', { class: 'num' }, el('span', { 'data-testid': 'window-used', text: `${f.used}/${f.limit}` }), meter),
        el('td', { class: 'num', text: String(f.remaining) }),
        el('td', { title: f.reset ? fmtDate(f.reset) : '', text: f.used > 0 && f.reset ? rel(f.reset) : 'nothing used' }));
    }));

    const budgets = u.budgets || [];
    $('budgets').replaceChildren(...(budgets.length ? budgets.map((b) => {
      const meter = el('div', { class: 'meter' + (b.spent_usd >= b.budget_usd ? ' full' : '') }, el('span'));
      meter.firstChild.style.width = Math.min(100, (100 * b.spent_usd) / Math.max(1e-9, b.budget_usd)) + '%';
      return el('div', { class: 'budget', 'data-testid': 'budget-row', 'data-window': b.window },
        el('div', { class: 'line' },
          el('strong', { text: b.window === 'day' ? 'Today (UTC day)' : 'This week (UTC, from Monday)' }),
          el('span', { 'data-testid': 'budget-spent', text: `${usdFine(b.spent_usd)} of $${Number(b.budget_usd).toFixed(2)}` })),
        meter,
        el('div', { class: 'muted small', text: 'resets ' + rel(b.reset) + ' (' + fmtDate(b.reset) + ')' }));
    }) : [el('p', { class: 'muted', text: 'No spending budget on this key: only the request windows above apply.' })]));

    const days = u.days || [];
    $('chart-tokens').replaceChildren(bars(days, 'tokens', 'chart-tokens', (v) => nf.format(v), ''));
    $('chart-cost').replaceChildren(bars(days, 'cost_usd', 'chart-cost', usdFine, ' cost'));

    const claude = [`export ANTHROPIC_BASE_URL=${origin()}`, `export ANTHROPIC_API_KEY=${mask(key)}`, 'claude'];
    const openai = [`base URL: ${origin()}/v1`, `API key:  ${mask(key)}`];
    $('setup-claude').textContent = claude.join('\n');
    $('setup-openai').textContent = openai.join('\n');
    $('copy-claude').onclick = () => copy($('copy-claude'), claude.join('\n').replace(mask(key), key));
    $('copy-openai').onclick = () => copy($('copy-openai'), openai.join('\n').replace(mask(key), key));
  }

  async function copy(btn, text) {
    try {
      await navigator.clipboard.writeText(text);
      btn.textContent = 'Copied';
    } catch (e) {
      btn.textContent = 'Copy failed: select the text';
    }
    setTimeout(() => { btn.textContent = 'Copy with my key'; }, 2000);
  }

  // bars draws one value per day as an SVG bar chart; data-points and
  // data-total say what it drew (for tests and screen readers).
  function bars(days, metric, testid, fmt, cls) {
    const W = 600; const H = 160; const L = 8; const B = 22; const T = 18;
    const vals = days.map((d) => Number(d[metric]) || 0);
    const max = Math.max(0, ...vals);
    const top = max > 0 ? max : 1;
    const bw = (W - 2 * L) / Math.max(1, vals.length);
    const total = vals.reduce((a, b) => a + b, 0);
    const root = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'data-testid': testid,
      'data-points': vals.length, 'data-total': metric === 'cost_usd' ? total.toFixed(6) : total,
      'aria-label': `${metric === 'cost_usd' ? 'cost' : 'tokens'} per day: ${fmt(total)} in ${vals.length} days` });
    root.append(svg('line', { class: 'chart-axis', x1: L, x2: W - L, y1: H - B, y2: H - B }));
    root.append(svg('text', { class: 'chart-label', x: L, y: 12 }, 'max ' + fmt(max)));
    vals.forEach((v, i) => {
      const h = ((H - B - T) * v) / top;
      const r = svg('rect', { class: 'chart-bar' + (cls ? ' cost' : ''), x: L + i * bw + 1, y: H - B - h, width: Math.max(1, bw - 2), height: h });
      r.append(svg('title', {}, `${days[i].day}: ${fmt(v)}`));
      root.append(r);
    });
    if (days.length) {
      root.append(svg('text', { class: 'chart-label', x: L, y: H - 6 }, days[0].day));
      root.append(svg('text', { class: 'chart-label', x: W - L, y: H - 6, 'text-anchor': 'end' }, 'today'));
    }
    return root;
  }

  $('key-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const k = $('key').value.trim();
    if (!k) return;
    sessionStorage.setItem(STORE, k);
    $('key').value = '';
    load();
  });
  $('refresh').addEventListener('click', load);
  $('forget').addEventListener('click', () => {
    sessionStorage.removeItem(STORE);
    showError('');
    load();
  });
  load();
})();
