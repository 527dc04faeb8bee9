// Connections (#/connections, #/connections/{name}): plugin and pinned
// version, hosts, rate limit, webhook scheme, credentials as their kind
// only, the circuit; check, open/close the circuit, create and edit (secrets
// are write-only: never prefilled, left empty to keep them).

import { get, put, post, path, can } from './api.js';
import { h, section, table, badge, code, kv, confirm, errorBox, notice, field, select, busy, orDash, plural, pageHeader, when, scopeNote, duration, lastCheck, DASH } from './ui.js';

const UNCHANGED = 'unchanged — type to replace';
const link = (name) => h('a', { href: `#/connections/${encodeURIComponent(name)}` }, name);

// [key, label, secret, required]
const AUTH_FIELDS = {
  basic: [['username', 'User name or e-mail', false, true], ['password', 'Password or API token', true, true]],
  bearer: [['token', 'Token', true, true]],
  api_key: [['header', 'Header name', false, true], ['value', 'Header value', true, true]],
  oauth2_client_credentials: [['token_url', 'Token URL', false, true], ['client_id', 'Client id', false, true],
    ['client_secret', 'Client secret', true, true], ['scope', 'Scopes (space-separated, optional)', false, false]],
  oauth2_refresh_token: [['token_url', 'Token URL', false, true], ['client_id', 'Client id', false, true],
    ['client_secret', 'Client secret', true, true], ['refresh_token', 'Refresh token', true, true],
    ['scope', 'Scopes (space-separated, optional)', false, false]],
};
const AUTH_KINDS = [['', 'No credentials'], ['basic', 'HTTP Basic'], ['bearer', 'Bearer token'], ['api_key', 'API key header'],
  ['oauth2_client_credentials', 'OAuth 2.0 client credentials'], ['oauth2_refresh_token', 'OAuth 2.0 refresh token']];
const SCHEMES = [['', 'No webhooks (refused)'], ['hubspot_v3', 'HubSpot v3'], ['stripe', 'Stripe'], ['github', 'GitHub'],
  ['slack', 'Slack'], ['generic_hmac', 'Generic HMAC-SHA256']];

/** A webhook scheme as words: "stripe", "generic_hmac (header x-sig, prefix sha256=, hex)". */
export function schemeText(scheme) {
  if (!scheme) return DASH;
  if (typeof scheme === 'string') return scheme;
  if (scheme.generic_hmac) {
    const g = scheme.generic_hmac;
    return `generic_hmac (header ${g.header}${g.prefix ? `, prefix ${g.prefix}` : ''}, ${g.encoding})`;
  }
  return JSON.stringify(scheme);
}

export function rateText(rl) {
  if (!rl) return 'unlimited';
  return `${rl.requests} per ${rl.per_seconds === 1 ? 'second' : `${rl.per_seconds} s`}${rl.burst ? `, bursts of ${rl.burst}` : ''}`;
}

const lines = (text) => (text || '').split(/[\n,]+/).map((l) => l.trim()).filter(Boolean);

function int(text, label, errors) {
  const t = String(text ?? '').trim();
  if (!/^\d+$/.test(t) || Number(t) < 1) {
    errors.push(`${label} must be a whole number of at least 1.`);
    return undefined;
  }
  return Number(t);
}

/**
 * The PUT body from the form's values (all strings). `existing` is the
 * connection as the API shows it, or null when creating. Credentials and the
 * webhook secret left empty are left out when the connection has them (the
 * host keeps what it holds). Returns {spec, errors}.
 */
export function buildSpec(v, existing) {
  const errors = [];
  const spec = { plugin: (v.plugin || '').trim() };
  if (!spec.plugin) errors.push('Choose a plugin.');
  if (v.version) spec.version = v.version;
  spec.config = {};
  (v.config || '').split('\n').forEach((line, i) => {
    const l = line.trim();
    if (!l || l.startsWith('#')) return;
    const eq = l.indexOf('=');
    if (eq < 1) {
      errors.push(`Settings line ${i + 1} is not key = value: “${l}”.`);
      return;
    }
    spec.config[l.slice(0, eq).trim()] = l.slice(eq + 1).trim();
  });
  spec.allowed_hosts = lines(v.allowed_hosts);
  spec.private_hosts = lines(v.private_hosts);
  spec.credential_hosts = lines(v.credential_hosts);
  if (String(v.rl_requests || '').trim()) {
    spec.rate_limit = { requests: int(v.rl_requests, 'Rate limit: requests', errors), per_seconds: String(v.rl_per_seconds || '').trim() ? int(v.rl_per_seconds, 'Rate limit: per seconds', errors) : 1 };
    if (String(v.rl_burst || '').trim()) spec.rate_limit.burst = int(v.rl_burst, 'Rate limit: burst', errors);
  }
  const cb = [v.cb_failures, v.cb_window_ms, v.cb_cool_down_ms].map((x) => String(x ?? '').trim());
  if (cb.some(Boolean)) {
    spec.circuit = { failures: int(cb[0], 'Circuit: failures', errors), window_ms: int(cb[1], 'Circuit: window (ms)', errors), cool_down_ms: int(cb[2], 'Circuit: cool-down (ms)', errors) };
  }
  if (v.auth_type) {
    const keep = !!(existing && existing.auth && existing.auth.type === v.auth_type);
    spec.auth = { type: v.auth_type };
    for (const [key, label, secret, required] of AUTH_FIELDS[v.auth_type] || []) {
      const value = (v.auth && v.auth[key]) || '';
      if (value) spec.auth[key] = value;
      // The host keeps a stored secret left empty, but not the other fields.
      else if (required && keep && !secret) errors.push(`Credentials: ${label} is required: the host keeps only the secret fields left empty, so type it again.`);
      else if (required && !keep) errors.push(`Credentials: ${label} is required.`);
    }
  }
  if (v.webhook_scheme) {
    let scheme = v.webhook_scheme;
    if (scheme === 'generic_hmac') {
      const header = (v.wh_header || '').trim();
      if (!header) errors.push('Webhook: the signature header is required for generic HMAC.');
      scheme = { generic_hmac: { header, encoding: v.wh_encoding || 'hex' } };
      if ((v.wh_prefix || '').trim()) scheme.generic_hmac.prefix = v.wh_prefix.trim();
    }
    spec.webhook = { scheme };
    if (v.wh_secret) spec.webhook.secret = v.wh_secret;
    else if (!(existing && existing.webhook)) errors.push('Webhook: the signing secret is required.');
  }
  return { spec, errors };
}

function textarea(id, value, rows = 3, attrs = {}) {
  const t = h('textarea', { id, rows, spellcheck: 'false', class: 'write', ...attrs });
  t.value = value || '';
  return t;
}

function input(id, value, attrs = {}) {
  return h('input', { id, type: 'text', class: 'write', value: value ?? '', ...attrs });
}

/** The create (existing null) or edit form; `onSaved(name, created)`. */
function connectionForm(existing, plugins, onSaved) {
  const connectors = plugins.filter((p) => p.world === 'connector');
  const names = [...new Set(connectors.map((p) => p.name))].sort();
  const nameInput = existing ? null : input('conn-name', '', { required: true, pattern: '[a-z0-9_\\-]{1,64}', autocomplete: 'off' });
  const plugin = select({ id: 'conn-plugin', class: 'write', required: true }, [['', 'Choose a connector…'], ...names.map((n) => [n, n])], existing ? existing.plugin : '');
  const version = h('select', { id: 'conn-version', class: 'write' });
  const fillVersions = () => {
    const vs = connectors.filter((p) => p.name === plugin.value).map((p) => [p.version, `${p.version}${p.active ? ' (active)' : ''}`]);
    const pinned = existing && existing.plugin === plugin.value ? existing.version : null;
    if (pinned && !vs.some(([x]) => x === pinned)) vs.push([pinned, `${pinned} (not loaded)`]);
    version.replaceChildren(...[['', 'Follow the active version'], ...vs].map(([val, text]) => h('option', { value: val, selected: val === (pinned || '') }, text)));
  };
  plugin.addEventListener('change', fillVersions);
  fillVersions();
  const cfg = existing ? Object.entries(existing.config || {}).map(([k, val]) => `${k} = ${val}`).join('\n') : '';
  const rl = (existing && existing.rate_limit) || {};
  const cb = (existing && existing.circuit) || {};
  const authType = select({ id: 'conn-auth-type', class: 'write' }, AUTH_KINDS, existing && existing.auth ? existing.auth.type : '');
  const authInputs = {};
  const authGroups = Object.entries(AUTH_FIELDS).map(([kind, fields]) => {
    authInputs[kind] = {};
    return h('div', { class: 'field-group', dataset: { auth: kind } }, fields.map(([key, label, secret, required]) => {
      const el = h('input', { id: `conn-auth-${kind}-${key}`, type: secret ? 'password' : 'text', class: 'write', autocomplete: secret ? 'new-password' : 'off', spellcheck: 'false', dataset: { secret: secret ? 'true' : undefined, required: required ? 'true' : undefined } });
      // Non-secret settings of the credentials, when the API shows them; secrets never.
      const shown = existing && existing.auth && existing.auth.type === kind ? existing.auth[key] : undefined;
      if (!secret && typeof shown === 'string') el.value = shown;
      authInputs[kind][key] = el;
      return field(label, el);
    }));
  });
  const syncAuth = () => {
    const keep = existing && existing.auth && existing.auth.type === authType.value;
    authGroups.forEach((g) => {
      g.hidden = g.dataset.auth !== authType.value;
    });
    for (const [kind, els] of Object.entries(authInputs)) {
      for (const el of Object.values(els)) {
        el.placeholder = keep && kind === authType.value && el.dataset.secret ? UNCHANGED : (el.dataset.required ? 'required' : '');
      }
    }
  };
  authType.addEventListener('change', syncAuth);
  syncAuth();
  const scheme = existing && existing.webhook ? existing.webhook.scheme : null;
  const schemeName = scheme ? (typeof scheme === 'string' ? scheme : Object.keys(scheme)[0]) : '';
  const g = (scheme && scheme.generic_hmac) || {};
  const whScheme = select({ id: 'conn-webhook-scheme', class: 'write' }, SCHEMES, schemeName);
  const whHeader = input('conn-webhook-header', g.header);
  const whPrefix = input('conn-webhook-prefix', g.prefix);
  const whEncoding = select({ id: 'conn-webhook-encoding', class: 'write' }, [['hex', 'hex'], ['base64', 'base64']], g.encoding || 'hex');
  const whSecret = h('input', { id: 'conn-webhook-secret', type: 'password', class: 'write', autocomplete: 'new-password', placeholder: existing && existing.webhook ? UNCHANGED : 'required' });
  const generic = h('div', { class: 'field-group' }, field('Signature header', whHeader), field('Prefix (optional)', whPrefix), field('Encoding', whEncoding));
  const syncScheme = () => {
    generic.hidden = whScheme.value !== 'generic_hmac';
    const secretField = whSecret.closest('.field');
    if (secretField) secretField.hidden = !whScheme.value;
  };
  whScheme.addEventListener('change', syncScheme);

  const f = {
    config: textarea('conn-config', cfg, 4),
    allowed: textarea('conn-allowed-hosts', existing ? existing.allowed_hosts.join('\n') : '', 3),
    privateHosts: textarea('conn-private-hosts', existing ? existing.private_hosts.join('\n') : '', 2),
    credHosts: textarea('conn-credential-hosts', existing ? existing.credential_hosts.join('\n') : '', 2),
    rlRequests: input('conn-rl-requests', rl.requests, { inputmode: 'numeric' }),
    rlPer: input('conn-rl-per-seconds', rl.per_seconds, { inputmode: 'numeric' }),
    rlBurst: input('conn-rl-burst', rl.burst, { inputmode: 'numeric' }),
    cbFailures: input('conn-cb-failures', cb.failures, { inputmode: 'numeric' }),
    cbWindow: input('conn-cb-window', cb.window_ms, { inputmode: 'numeric' }),
    cbCool: input('conn-cb-cool-down', cb.cool_down_ms, { inputmode: 'numeric' }),
  };
  const errorsBox = h('div', { id: 'conn-form-error', role: 'alert' });
  const save = h('button', { type: 'submit', class: 'write', dataset: { action: 'save' } }, existing ? 'Save changes' : 'Create connection');
  const form = h('form', { id: existing ? 'connection-edit' : 'connection-create', class: 'write stack', novalidate: true },
    nameInput ? field('Name', nameInput, '1–64 of a–z, 0–9, - and _; used in API paths and webhook URLs.') : null,
    h('div', { class: 'grid2' }, field('Plugin', plugin), field('Version', version, 'Pin a version, or follow the one the plugin activates.')),
    field('Settings (key = value, one a line; not secret)', f.config),
    h('div', { class: 'grid3' },
      field('Allowed hosts (one a line)', f.allowed, 'host or host:port; *.example.com for subdomains'),
      field('Private hosts', f.privateHosts, 'allowed hosts that may resolve to private addresses'),
      field('Credential hosts', f.credHosts, 'exact allowed hosts that receive the credentials; empty: the base_url host')),
    h('fieldset', null, h('legend', null, 'Rate limit (empty: unlimited)'),
      h('div', { class: 'grid3' }, field('Requests', f.rlRequests), field('Per seconds', f.rlPer), field('Burst', f.rlBurst))),
    h('fieldset', null, h('legend', null, 'Circuit breaker (empty: 5 failures in 60 000 ms, 30 000 ms open)'),
      h('div', { class: 'grid3' }, field('Failures', f.cbFailures), field('Window (ms)', f.cbWindow), field('Cool-down (ms)', f.cbCool))),
    h('fieldset', null, h('legend', null, 'Credentials (write-only: never shown)'), field('Kind', authType), ...authGroups),
    h('fieldset', null, h('legend', null, 'Webhook verification'), field('Scheme', whScheme), generic, field('Signing secret (write-only)', whSecret)),
    errorsBox,
    h('div', { class: 'actions' }, save));
  syncScheme();
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = existing ? existing.name : nameInput.value.trim();
    const values = {
      plugin: plugin.value, version: version.value, config: f.config.value,
      allowed_hosts: f.allowed.value, private_hosts: f.privateHosts.value, credential_hosts: f.credHosts.value,
      rl_requests: f.rlRequests.value, rl_per_seconds: f.rlPer.value, rl_burst: f.rlBurst.value,
      cb_failures: f.cbFailures.value, cb_window_ms: f.cbWindow.value, cb_cool_down_ms: f.cbCool.value,
      auth_type: authType.value, auth: Object.fromEntries(Object.entries(authInputs[authType.value] || {}).map(([k, el]) => [k, el.value])),
      webhook_scheme: whScheme.value, wh_header: whHeader.value, wh_prefix: whPrefix.value, wh_encoding: whEncoding.value, wh_secret: whSecret.value,
    };
    const { spec, errors } = buildSpec(values, existing);
    if (!existing && !/^[a-z0-9_-]{1,64}$/.test(name)) errors.unshift('Name: 1–64 characters of a–z, 0–9, - and _.');
    if (errors.length) {
      errorsBox.replaceChildren(h('div', { class: 'error' }, h('p', null, 'Not saved:'), h('ul', null, errors.map((e) => h('li', null, e)))));
      return;
    }
    errorsBox.replaceChildren();
    await busy(save, async () => {
      try {
        const saved = await put(path('/v1/connections', name), spec);
        for (const el of form.querySelectorAll('input[type=password]')) el.value = '';
        onSaved(saved.name, !existing);
      } catch (err) {
        if (err.name !== 'AbortError') errorsBox.replaceChildren(errorBox(err));
      }
    });
  });
  return form;
}

async function circuitsOf(list, signal) {
  const results = await Promise.allSettled(list.map((c) => get(path('/v1/connections', c.name, 'circuit'), { signal })));
  const map = new Map();
  results.forEach((r, i) => {
    if (r.status === 'rejected' && (r.reason.status === 401 || r.reason.name === 'AbortError')) throw r.reason;
    map.set(list[i].name, r.status === 'fulfilled' ? r.value : null);
  });
  return map;
}

async function renderList(ctx) {
  ctx.title('Connections');
  const { root, signal } = ctx;
  const data = await get('/v1/connections', { signal });
  const list = data.connections || [];
  const circuits = await circuitsOf(list, signal);
  root.append(pageHeader('Connections', plural(list.length, 'connection')));
  root.append(section(null, table([
    { label: 'Name', cell: (c) => link(c.name) },
    { label: 'Plugin', cell: (c) => h('a', { href: `#/plugins/${encodeURIComponent(c.plugin)}` }, c.plugin) },
    { label: 'Version', cell: (c) => c.version || h('span', { class: 'muted' }, 'active') },
    { label: 'Credentials', cell: (c) => (c.auth ? code(c.auth.type) : 'none') },
    { label: 'Allowed hosts', cell: (c) => orDash(c.allowed_hosts) },
    { label: 'Rate limit', cell: (c) => rateText(c.rate_limit) },
    { label: 'Webhooks', cell: (c) => schemeText(c.webhook && c.webhook.scheme) },
    { label: 'Circuit', cell: (c) => (circuits.get(c.name) ? badge(circuits.get(c.name).state) : DASH) },
  ], list, { rowAttrs: (c) => ({ dataset: { connection: c.name } }), empty: 'No connections yet.', id: 'connections' })));
  if (can('operator')) {
    const plugins = await get('/v1/plugins', { signal });
    const box = h('details', { class: 'panel write', id: 'create-connection' }, h('summary', null, h('h2', { class: 'inline' }, 'Create a connection')),
      connectionForm(null, plugins.plugins, (name) => ctx.go(`#/connections/${encodeURIComponent(name)}`, `Created connection ${name}.`)));
    root.append(box);
  }
}

function circuitSection(ctx, conn, circuit) {
  const box = section('Circuit breaker');
  if (!circuit) {
    box.append(notice('The circuit could not be read.', 'warn'));
    return box;
  }
  const st = circuit.settings || conn.circuit || {};
  box.append(kv([
    ['State', badge(circuit.state)],
    ['Failures counted', `${circuit.failures} of ${st.failures} within ${duration(st.window_ms)}`],
    ['Opened', when(circuit.opened_at)],
    ['Next probe', circuit.manual ? 'none: opened by hand, stays open until closed by hand' : when(circuit.next_probe_at)],
    ['Parked runs', String(circuit.parked_runs)],
    ['Why it last changed', circuit.reason],
    ['Open for', `${duration(st.cool_down_ms)} before a probe`],
    ['Last check', lastCheck(circuit)],
    ['Rate-limit pause until', when(circuit.rate_limited_until)],
  ]));
  if (can('operator')) {
    const open = circuit.state === 'closed';
    const b = h('button', { type: 'button', class: `write secondary${open ? ' danger-text' : ''}`, dataset: { action: open ? 'circuit-open' : 'circuit-close' } }, open ? 'Open the circuit' : 'Close the circuit');
    b.addEventListener('click', async () => {
      const text = open
        ? `Open the circuit of ${conn.name} by hand: steps on ${conn.name} are parked, not attempted, until someone closes it (no probe closes it).`
        : `Close the circuit of ${conn.name}: ${plural(circuit.parked_runs, 'parked run')} resume in the order they arrived.`;
      if (!(await confirm(text, { title: open ? 'Open the circuit' : 'Close the circuit', yes: open ? 'Open it' : 'Close it', danger: open }))) return;
      await ctx.mutate(open ? `Opening the circuit of ${conn.name}…` : `Closing the circuit of ${conn.name}…`, async () => {
        const after = await put(path('/v1/connections', conn.name, 'circuit'), { state: open ? 'open' : 'closed' });
        return `The circuit of ${conn.name} is ${after.state.replace('_', ' ')}.`;
      });
    });
    box.append(h('div', { class: 'actions' }, b));
  }
  return box;
}

async function renderDetail(ctx) {
  const name = ctx.id;
  ctx.title(`Connection ${name}`);
  const { root, signal } = ctx;
  const [conn, circuit] = await Promise.all([
    get(path('/v1/connections', name), { signal }),
    get(path('/v1/connections', name, 'circuit'), { signal }).catch((err) => {
      if (err.status === 401 || err.name === 'AbortError') throw err;
      return null;
    }),
  ]);
  root.append(pageHeader(`Connection ${conn.name}`, h('a', { href: '#/connections' }, '← All connections')));
  const summary = section(null, kv([
    ['Plugin', h('a', { href: `#/plugins/${encodeURIComponent(conn.plugin)}` }, conn.plugin)],
    ['Version', conn.version ? `${conn.version} (pinned)` : 'follows the active version'],
    ['Credentials', conn.auth ? [code(conn.auth.type), h('span', { class: 'muted' }, ' (kind only: secrets are never shown)')] : 'none'],
    ['Credential hosts', orDash(conn.credential_hosts)],
    ['Allowed hosts', orDash(conn.allowed_hosts)],
    ['Private hosts', orDash(conn.private_hosts)],
    ['Rate limit', rateText(conn.rate_limit)],
    ['Webhook scheme', conn.webhook ? schemeText(conn.webhook.scheme) : 'none: webhooks are refused'],
    ['Circuit', circuit ? badge(circuit.state) : DASH],
    ['Created', when(conn.created_at)],
    ['Changed', when(conn.updated_at)],
  ]));
  root.append(summary);
  if (can('invoker')) {
    const b = h('button', { type: 'button', class: 'write', dataset: { action: 'check' } }, 'Check the connection');
    // The page is shown again afterwards, so the circuit's last check is the new one.
    b.addEventListener('click', () => ctx.mutate(`Checking ${conn.name}…`, async () => {
      const r = await post(path('/v1/connections', conn.name, 'check'));
      return `Check passed: ${r.plugin} ${r.version} reached the remote system with the connection’s credentials.`;
    }));
    summary.append(h('div', { class: 'actions' }, b, h('span', { class: 'hint' }, 'Runs the connector’s check against the remote system.')));
  }
  const settings = Object.entries(conn.config || {});
  root.append(section('Settings', table([
    { label: 'Key', cell: ([k]) => code(k) },
    { label: 'Value', cell: ([, val]) => val },
  ], settings, { empty: 'No settings.' })));
  root.append(circuitSection(ctx, conn, circuit));
  if (can('operator')) {
    const plugins = await get('/v1/plugins', { signal });
    root.append(h('details', { class: 'panel write', id: 'edit-connection' }, h('summary', null, h('h2', { class: 'inline' }, 'Edit this connection')),
      h('p', { class: 'hint' }, 'Saving replaces the connection. Credentials and the webhook secret are write-only: leave them empty to keep what the host holds, or type to replace.'),
      connectionForm(conn, plugins.plugins, (n) => ctx.reload(`Saved connection ${n}.`))));
  } else {
    root.append(scopeNote('operator', 'editing a connection'));
  }
}

export async function render(ctx) {
  if (ctx.id === undefined) return renderList(ctx);
  return renderDetail(ctx);
}
