// Plugins (#/plugins, #/plugins/{name}): the loaded versions, which
// connections pin which, activate, roll back, unload; package upload.

import { get, post, del, path, can, upload } from './api.js';
import { h, section, table, badge, code, digest, kv, confirm, errorBox, notice, field, busy, orDash, plural, pageHeader, scopeNote, DASH } from './ui.js';

const link = (name) => h('a', { href: `#/plugins/${encodeURIComponent(name)}` }, name);
const connLink = (name) => h('a', { href: `#/connections/${encodeURIComponent(name)}` }, name);
const joinNodes = (nodes) => nodes.flatMap((n, i) => (i ? [', ', n] : [n]));

/** Loaded versions grouped by plugin: [{name, world, active, versions: [summary…], description}]. */
export function groupPlugins(list) {
  const byName = new Map();
  for (const p of list) {
    if (!byName.has(p.name)) byName.set(p.name, { name: p.name, world: p.world, active: null, versions: [], description: '' });
    const g = byName.get(p.name);
    g.versions.push(p);
    if (p.active) {
      g.active = p;
      g.world = p.world;
      g.description = p.description;
    }
  }
  for (const g of byName.values()) if (!g.description && g.versions.length) g.description = g.versions[0].description;
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

function pluginTable(groups) {
  return table([
    { label: 'Plugin', cell: (g) => link(g.name) },
    { label: 'World', cell: (g) => g.world },
    { label: 'Active', cell: (g) => (g.active ? g.active.version : h('span', { class: 'muted' }, 'none')) },
    { label: 'Loaded versions', cell: (g) => g.versions.map((v) => v.version).join(', ') },
    { label: 'Signer', cell: (g) => orDash(g.active && g.active.signer) },
    { label: 'Digest', cell: (g) => (g.active ? digest(g.active.digest) : DASH) },
    { label: 'Description', cell: (g) => orDash(g.description) },
  ], groups, { rowAttrs: (g) => ({ dataset: { plugin: g.name } }), empty: 'No plugin is loaded.', id: 'plugins' });
}

function uploadedText(up, status) {
  if (status === 200 || up.created === false) return `Exactly this package was already loaded: ${up.name} ${up.version} (${up.digest}). Nothing changed.`;
  const signer = up.signer ? `signed by key ${up.signer}` : 'unsigned';
  const active = up.active
    ? 'It is the plugin’s first version, so it is active now.'
    : 'It is loaded beside the other versions; calls use it once you activate it.';
  return `Loaded ${up.name} ${up.version} (${up.digest}), ${signer}. ${active}`;
}

function uploadForm(ctx) {
  const file = h('input', { type: 'file', id: 'upload-file', name: 'package', accept: '.jpkg,application/octet-stream', required: true, class: 'write' });
  const button = h('button', { type: 'submit', id: 'upload-button', class: 'write', dataset: { action: 'upload' } }, 'Upload');
  const progress = h('progress', { id: 'upload-progress', max: 100, value: 0, hidden: true });
  const progressText = h('span', { class: 'hint', id: 'upload-progress-text' });
  const result = h('div', { id: 'upload-result', role: 'status', 'aria-live': 'polite' });
  const form = h('form', { id: 'upload-form', class: 'write stack' },
    field('Plugin package (.jpkg)', file, 'A package written by `junction plugin pack` (and `sign`). It is inspected, compiled and loaded without a restart; it does not become active unless it is the plugin’s first version.'),
    h('div', { class: 'actions' }, button, progress, progressText),
    result);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const chosen = file.files && file.files[0];
    if (!chosen) {
      result.replaceChildren(errorBox('Choose a package file first.'));
      return;
    }
    result.replaceChildren();
    progress.hidden = false;
    progress.value = 0;
    progressText.textContent = `uploading ${chosen.name}…`;
    await busy(button, async () => {
      try {
        const { status, data } = await upload('POST', '/v1/plugins', chosen, 'application/octet-stream', (loaded, total) => {
          const pct = total ? Math.round((loaded / total) * 100) : 0;
          progress.value = pct;
          progressText.textContent = pct >= 100 ? 'inspecting and compiling…' : `uploading ${chosen.name}… ${pct} %`;
        });
        form.reset();
        ctx.reload(uploadedText(data, status));
      } catch (err) {
        result.replaceChildren(errorBox(err));
      } finally {
        progress.hidden = true;
        progressText.textContent = '';
      }
    });
  });
  return form;
}

async function renderList(ctx) {
  ctx.title('Plugins');
  const { root, signal } = ctx;
  const data = await get('/v1/plugins', { signal });
  const groups = groupPlugins(data.plugins);
  root.append(pageHeader('Plugins', `${plural(groups.length, 'plugin')} loaded`));
  root.append(section('Loaded plugins', pluginTable(groups)));
  if (can('operator')) root.append(section('Upload a package', uploadForm(ctx)));
  else root.append(scopeNote('operator', 'uploading a package'));
}

/** Which connections use which version: {pinned: Map(version → [names]), following: [names]}. */
export function usage(name, connections, detail) {
  const pinned = new Map();
  const following = [];
  if (connections) {
    for (const c of connections) {
      if (c.plugin !== name) continue;
      if (c.version) {
        if (!pinned.has(c.version)) pinned.set(c.version, []);
        pinned.get(c.version).push(c.name);
      } else following.push(c.name);
    }
  } else {
    for (const v of detail.versions) if (v.pinned_by.length) pinned.set(v.version, [...v.pinned_by]);
    following.push(...(detail.following_active || []));
  }
  return { pinned, following };
}

/** The confirm text of activating `version` of `detail`. */
export function activateText(detail, version, use) {
  const head = detail.active ? `Activate ${detail.name} ${version} in place of ${detail.active}` : `Activate ${detail.name} ${version}`;
  const follow = use.following.length
    ? `connections that do not pin a version (${use.following.join(', ')}) will call ${version}`
    : `no connection follows the active version, so no connection’s calls change now`;
  const pins = [...use.pinned.entries()].map(([v, names]) => `${names.join(', ')} on ${v}`);
  const keep = pins.length ? `; connections pinned to a version keep it (${pins.join('; ')})` : '';
  return `${head}: ${follow}${keep}. Calls in flight finish on the version they started on.`;
}

export function rollbackText(detail, use) {
  const to = detail.rollback_to || 'the version that was active before it';
  const follow = use.following.length
    ? `connections that do not pin a version (${use.following.join(', ')}) will call ${detail.rollback_to || 'that version'}`
    : 'no connection follows the active version, so no connection’s calls change now';
  return `Roll back ${detail.name} from ${detail.active} to ${to}: ${follow}.`;
}

async function act(ctx, text, yes, busyText, work, done) {
  if (!(await confirm(text, { title: yes, yes }))) return;
  await ctx.mutate(busyText, async () => done(await work()));
}

async function renderDetail(ctx) {
  const name = ctx.id;
  ctx.title(`Plugin ${name}`);
  const { root, signal } = ctx;
  const [detail, conns, list] = await Promise.all([
    get(path('/v1/plugins', name), { signal }),
    get('/v1/connections', { signal }).catch((err) => {
      if (err.status === 401 || err.name === 'AbortError') throw err;
      return null;
    }),
    get('/v1/plugins', { signal }).catch((err) => {
      if (err.status === 401 || err.name === 'AbortError') throw err;
      return null;
    }),
  ]);
  const use = usage(name, conns && conns.connections, detail);
  const summary = list && list.plugins.find((p) => p.name === name && p.active);
  const writer = can('operator');

  root.append(pageHeader(`Plugin ${detail.name}`, h('a', { href: '#/plugins' }, '← All plugins')));
  root.append(section(null, kv([
    ['World', detail.world],
    ['Active version', detail.active || 'none'],
    ['Description', summary && summary.description],
    ['Follow the active version', use.following.length ? joinNodes(use.following.map(connLink)) : 'no connection'],
    ['Pinned', use.pinned.size ? joinNodes([...use.pinned.entries()].map(([v, names]) => h('span', null, joinNodes(names.map(connLink)), ` → ${v}`))) : 'no connection'],
  ])));
  if (!conns) root.append(notice('The connections could not be read: the pins below are the plugin’s own view.', 'warn'));

  const versions = [...detail.versions].reverse();
  const actions = (v) => {
    if (!writer) return DASH;
    const cell = h('div', { class: 'actions' });
    if (!v.active) {
      const b = h('button', { type: 'button', class: 'write', dataset: { action: 'activate', version: v.version } }, `Activate ${v.version}`);
      b.addEventListener('click', () => act(ctx, activateText(detail, v.version, use), 'Activate', `Activating ${name} ${v.version}…`,
        () => post(path('/v1/plugins', name, 'versions', v.version, 'activate')),
        (a) => `Activated ${a.name} ${a.active} (${a.digest}).`));
      cell.append(b);
    }
    const pins = use.pinned.get(v.version) || v.pinned_by;
    if (!v.active && !pins.length) {
      const b = h('button', { type: 'button', class: 'write secondary danger-text', dataset: { action: 'delete', version: v.version } }, 'Unload');
      b.addEventListener('click', () => act(ctx, `Unload ${name} ${v.version}: it is neither active nor pinned by a connection. To use it again, upload its package again.`, 'Unload', `Unloading ${name} ${v.version}…`,
        () => del(path('/v1/plugins', name, 'versions', v.version)),
        () => `Unloaded ${name} ${v.version}.`));
      cell.append(b);
    }
    return cell.childNodes.length ? cell : DASH;
  };
  const body = section('Versions',
    table([
      { label: 'Version', cell: (v) => h('strong', null, v.version) },
      { label: 'State', cell: (v) => (v.active ? badge('active') : h('span', { class: 'muted' }, 'loaded')) },
      { label: 'Digest', cell: (v) => digest(v.digest) },
      { label: 'Package', cell: (v) => digest(v.package_digest) },
      { label: 'Signer', cell: (v) => orDash(v.signer) },
      { label: 'Uploaded by', cell: (v) => orDash(v.uploaded_by) },
      { label: 'Operations', cell: (v) => (v.operations.length ? h('details', null, h('summary', null, plural(v.operations.length, 'operation')), h('ul', { class: 'plain' }, v.operations.map((o) => h('li', null, code(o))))) : DASH) },
      { label: 'Pinned by', cell: (v) => { const p = use.pinned.get(v.version) || v.pinned_by; return p.length ? joinNodes(p.map(connLink)) : DASH; } },
      writer ? { label: 'Actions', cell: actions } : null,
    ].filter(Boolean), versions, { rowAttrs: (v) => ({ dataset: { version: v.version }, class: v.active ? 'is-active' : null }), empty: 'No version is loaded.', id: 'versions' }));
  root.append(body);

  if (writer && detail.active && detail.rollback_to) {
    const rb = h('button', { type: 'button', class: 'write secondary', dataset: { action: 'rollback' } }, `Roll back to ${detail.rollback_to}`);
    rb.addEventListener('click', () => act(ctx, rollbackText(detail, use), 'Roll back', `Rolling back ${name}…`,
      () => post(path('/v1/plugins', name, 'rollback')),
      (a) => `Rolled back ${a.name}: ${a.active} (${a.digest}) is active.`));
    body.append(h('div', { class: 'actions' }, rb,
      h('span', { class: 'hint' }, 'Activates the version that was active before the current one.')));
  }
  if (writer) root.append(section('Upload a package', uploadForm(ctx)));
  else body.append(scopeNote('operator', 'activating, rolling back, unloading and uploading'));
}

export async function render(ctx) {
  if (ctx.id === undefined) return renderList(ctx);
  return renderDetail(ctx);
}
