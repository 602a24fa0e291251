// claude-route dashboard: what the cards' scripts share (app.js its
// element builder, ops.js and accounts.js all of it): the admin API call
// with the token kept in sessionStorage, the element builder (values reach
// the DOM through textContent only, no inline handlers), a form's outcome
// line and the dashboard's refresh. Loaded before them (index.html).
'use strict';

window.CRUI = (() => {
  const TOKEN_KEY = 'claude-route.admin-token';

  // call asks the admin API; a refusal throws an Error with its message.
  async function call(method, path, body) {
    const headers = { Accept: 'application/json', Authorization: 'Bearer ' + (sessionStorage.getItem(TOKEN_KEY) || '') };
    const init = { method, headers, cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const res = await fetch('api' + path, init);
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) throw new Error((data && data.error && data.error.message) || res.statusText || 'request failed');
    return data;
  }

  // el builds an element; strings among children become text nodes, and
  // null, undefined or false children are skipped.
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = String(v);
      else if (k === 'onclick') e.addEventListener('click', v);
      else e.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // Outcome line under a form: green on success, red on error.
  function outcome(p, ok, text) {
    p.className = ok ? 'muted small' : 'error';
    p.textContent = text;
    p.hidden = false;
  }

  const refreshDashboard = () => { const b = document.getElementById('refresh-now'); if (b) b.click(); };

  return Object.freeze({ TOKEN_KEY, call, el, outcome, refreshDashboard });
})();
