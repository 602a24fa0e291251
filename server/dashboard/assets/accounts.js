// claude-route dashboard: account probe and account login (OAuth sign-in
// with PKCE). Same rules as app.js: values reach the DOM through
// textContent only, no inline handlers or styles, the token stays in
// sessionStorage. The probe never shows a credential; the login's pasted
// code leaves the page with the request and is cleared at once.
// window.CRAccounts.probe(name) lets other cards (per-row actions) probe.
'use strict';

(() => {
  const { TOKEN_KEY, call, el, outcome, refreshDashboard } = window.CRUI;

  // probeText says a probe's result in one line, as the CLI does.
  function probeText(name, p) {
    let what = p.error_type || '';
    if (p.status) what = p.status + (p.error_type ? ' ' + p.error_type : p.ok ? ' OK' : '');
    return `${name}: ${what} in ${p.latency_ms} ms` + (p.message ? ': ' + p.message : '');
  }

  async function probe(name) {
    const d = await call('POST', `/accounts/${encodeURIComponent(name)}/probe`);
    return d.probe;
  }

  function probeCard() {
    const name = el('input', { 'data-testid': 'probe-name', placeholder: 'account name', required: '', spellcheck: 'false' });
    const go = el('button', { type: 'submit', class: 'btn', 'data-testid': 'probe-submit', text: 'Probe' });
    const out = el('p', { 'data-testid': 'probe-result', role: 'status' });
    out.hidden = true;
    const form = el('form', { class: 'form-row', autocomplete: 'off' }, el('label', { class: 'grow' }, 'Account', name), go);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const n = name.value.trim();
      go.disabled = true;
      try {
        const p = await probe(n);
        outcome(out, p.ok, probeText(n, p));
        refreshDashboard();
      } catch (e) {
        outcome(out, false, e.message);
      } finally {
        go.disabled = false;
      }
    });
    return el('div', { class: 'card', 'data-testid': 'probe-card' },
      el('div', { class: 'card-head' }, el('h2', { text: 'Probe an account' }),
        el('span', { class: 'muted small', text: 'One count_tokens now with its credential (costs no usage).' })), form, out);
  }

  // loginCard runs `account login` in two steps: start (the sign-in link)
  // and finish (the pasted CODE#STATE).
  function loginCard(tierNames) {
    const tier = el('select', { 'data-testid': 'login-tier' });
    tier.replaceChildren(...tierNames.map((t) => el('option', { value: t, text: t })));
    const name = el('input', { 'data-testid': 'login-name', placeholder: 'name (unique across tiers)', required: '', spellcheck: 'false' });
    const start = el('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'login-start', text: 'Sign in…' });
    const out = el('p', { 'data-testid': 'login-result', role: 'status' });
    out.hidden = true;
    const link = el('a', { 'data-testid': 'login-url', target: '_blank', rel: 'noopener noreferrer', text: 'Open the sign-in page' });
    const code = el('input', { 'data-testid': 'login-code', placeholder: 'CODE#STATE', spellcheck: 'false', autocomplete: 'off' });
    const finish = el('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'login-finish', text: 'Add account' });
    const step2 = el('form', { autocomplete: 'off', 'data-testid': 'login-step2' },
      el('p', { class: 'muted small' }, link, ' — sign in with the subscription account, then paste the code the page shows.'),
      el('div', { class: 'form-row' }, el('label', { class: 'grow' }, 'Code', code), finish));
    step2.hidden = true;
    let login = null;
    const step1 = el('form', { class: 'form-row', autocomplete: 'off' },
      el('label', {}, 'Tier', tier), el('label', { class: 'grow' }, 'Name', name), start);
    step1.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      start.disabled = true;
      try {
        const d = await call('POST', '/account-logins', { tier: tier.value, name: name.value.trim() });
        if (!/^https?:\/\//.test(d.authorize_url)) throw new Error('the server sent an unexpected sign-in URL');
        login = d.login;
        link.setAttribute('href', d.authorize_url);
        step2.hidden = false;
        outcome(out, true, `sign-in open for ${d.name} (${d.tier}) until ${new Date(d.expires_at).toLocaleTimeString()}`);
      } catch (e) {
        outcome(out, false, e.message);
      } finally {
        start.disabled = false;
      }
    });
    step2.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const pasted = code.value.trim();
      code.value = ''; // the code leaves the page with the request
      finish.disabled = true;
      try {
        const d = await call('POST', '/account-logins/finish', { login, code: pasted });
        const a = d.account;
        outcome(out, true, `added ${a.name} to ${a.tier}: ${a.kind}, fingerprint ${a.fingerprint}` + (a.expires_at ? `, expires ${a.expires_at}` : ''));
        step2.hidden = true;
        login = null;
        refreshDashboard();
      } catch (e) {
        outcome(out, false, e.message);
      } finally {
        finish.disabled = false;
      }
    });
    return el('div', { class: 'card', 'data-testid': 'login-card' },
      el('div', { class: 'card-head' }, el('h2', { text: 'Add a subscription account by signing in' })), step1, step2, out);
  }

  window.CRAccounts = { probe, probeText };

  let built = false;
  async function build() {
    if (built || !sessionStorage.getItem(TOKEN_KEY)) return;
    const acctView = document.getElementById('view-accounts');
    if (!acctView) return;
    let names = [];
    try {
      const d = await call('GET', '/pool');
      names = (d.tiers || []).map((t) => t.tier);
    } catch (e) {
      return;
    }
    if (!names.length || built) return;
    built = true;
    acctView.append(probeCard(), loginCard(names));
  }
  const timer = setInterval(() => { build().then(() => { if (built) clearInterval(timer); }); }, 500);
  document.addEventListener('DOMContentLoaded', build);
})();
