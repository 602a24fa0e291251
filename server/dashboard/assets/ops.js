// claude-route dashboard: the lifecycle verbs (key extend, renew, move,
// rebind, note; account add). Each account row carries its own actions
// (disable, enable, probe, replace, delete: app.js).
// Same rules as app.js: values reach the DOM through textContent only, no
// inline handlers or styles, the token stays in sessionStorage. Pasted
// credentials go to the server and are cleared from the form at once; the
// server answers with kind, expiry and a fingerprint, never the secret.
'use strict';

(() => {
  const { TOKEN_KEY, call, el, outcome, refreshDashboard } = window.CRUI;

  function options(select, values) {
    select.replaceChildren(...values.map(([v, label]) => el('option', { value: v, text: label })));
  }

  async function tiers() {
    try {
      const d = await call('GET', '/pool');
      return (d.tiers || []).map((t) => t.tier);
    } catch (e) {
      return [];
    }
  }

  // ---------- keys ----------
  function keyCard() {
    const ref = el('input', { 'data-testid': 'ops-key-ref', placeholder: 'k_… or the key', required: '', spellcheck: 'false' });
    const action = el('select', { 'data-testid': 'ops-key-action' });
    options(action, [['extend', 'extend by days'], ['until', 'set expiry date'], ['renew', 'renew from now'],
      ['move', 'move to tier'], ['rebind', 'rebind to account'], ['note', 'set note']]);
    const arg = el('input', { 'data-testid': 'ops-key-arg', placeholder: 'days, YYYY-MM-DD, tier, account or note' });
    const go = el('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'ops-key-submit', text: 'Apply' });
    const out = el('p', { 'data-testid': 'ops-key-result', role: 'status' });
    out.hidden = true;
    const form = el('form', { class: 'form-row', autocomplete: 'off' },
      el('label', {}, 'Key', ref), el('label', {}, 'Action', action), el('label', { class: 'grow' }, 'Value', arg), go);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const id = encodeURIComponent(ref.value.trim());
      const v = arg.value.trim();
      const verbs = {
        extend: ['extend', { days: Number(v) }], until: ['extend', { until: v }], renew: ['renew', undefined],
        move: ['move', { tier: v }], rebind: ['rebind', { account: v }], note: ['note', { note: arg.value }],
      };
      const [verb, body] = verbs[action.value];
      go.disabled = true;
      try {
        const d = await call('POST', `/keys/${id}/${verb}`, body);
        const k = d.key;
        outcome(out, true, `${k.id}: tier ${k.tier}, ${k.status}, expires ${k.expires_at || 'never'}, account ${k.account || '—'}, note ${k.note || '—'}`);
        refreshDashboard();
      } catch (e) {
        outcome(out, false, e.message);
      } finally {
        go.disabled = false;
      }
    });
    return el('div', { class: 'card', 'data-testid': 'ops-key-card' },
      el('div', { class: 'card-head' }, el('h2', { text: 'Change a key' }),
        el('span', { class: 'muted small', text: 'Every change is kept in the ledger.' })), form, out);
  }

  // ---------- accounts ----------
  function accountCards(tierNames) {
    const tier = el('select', { 'data-testid': 'ops-acct-tier' });
    options(tier, tierNames.map((t) => [t, t]));
    const name = el('input', { 'data-testid': 'ops-acct-name', placeholder: 'name (unique across tiers)', required: '', spellcheck: 'false' });
    const creds = el('textarea', { 'data-testid': 'ops-acct-json', rows: '4', spellcheck: 'false', autocomplete: 'off',
      placeholder: '{"claudeAiOauth":{…}}  or  {"apiKey":"sk-ant-api03-…"}' });
    const add = el('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'ops-acct-add', text: 'Add account' });
    const addOut = el('p', { 'data-testid': 'ops-acct-add-result', role: 'status' });
    addOut.hidden = true;
    const addForm = el('form', { autocomplete: 'off' },
      el('div', { class: 'form-row' }, el('label', {}, 'Tier', tier), el('label', { class: 'grow' }, 'Name', name)),
      el('label', { class: 'block' }, 'Credentials (paste the file; it is not shown back)', creds),
      el('div', { class: 'form-row' }, add));
    addForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const body = creds.value;
      creds.value = ''; // the secret leaves the page with the request
      add.disabled = true;
      try {
        const q = `?tier=${encodeURIComponent(tier.value)}&name=${encodeURIComponent(name.value.trim())}`;
        const d = await call('POST', '/accounts' + q, body);
        const a = d.account;
        outcome(addOut, true, `added ${a.name} to ${a.tier}: ${a.kind}, fingerprint ${a.fingerprint}` + (a.expires_at ? `, expires ${a.expires_at}` : ''));
        refreshDashboard();
      } catch (e) {
        outcome(addOut, false, e.message);
      } finally {
        add.disabled = false;
      }
    });

    return [
      el('div', { class: 'card', 'data-testid': 'ops-acct-add-card' }, el('div', { class: 'card-head' }, el('h2', { text: 'Add an account' })), addForm, addOut),
    ];
  }

  // The cards are built once the operator is signed in (the tier list
  // needs the token), and only once.
  let built = false;
  async function build() {
    if (built || !sessionStorage.getItem(TOKEN_KEY)) return;
    const keysView = document.getElementById('view-keys');
    const acctView = document.getElementById('view-accounts');
    if (!keysView || !acctView) return;
    const names = await tiers();
    if (!names.length || built) return;
    built = true;
    keysView.append(keyCard());
    acctView.append(...accountCards(names));
  }
  const timer = setInterval(() => { build().then(() => { if (built) clearInterval(timer); }); }, 500);
  document.addEventListener('DOMContentLoaded', build);
})();
