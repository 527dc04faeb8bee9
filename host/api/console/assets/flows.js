// Flows (#/flows, #/flows/{name}): the deployed flows, a flow's versions
// and their TOML, the line difference between two versions, deploy, and
// starting a run by hand.

import { get, post, request, path, can } from './api.js';
import { h, section, table, digest, kv, errorBox, notice, field, select, busy, orDash, plural, pageHeader, when, scopeNote } from './ui.js';

const link = (name) => h('a', { href: `#/flows/${encodeURIComponent(name)}` }, name);

/**
 * The line difference of `a` and `b` (longest common subsequence of lines):
 * [{op: 'same'|'del'|'add', text, a, b}] with 1-based line numbers (null on
 * the side a line is not on).
 */
export function diffLines(a, b, limit = 4000000) {
  const A = a.split('\n');
  const B = b.split('\n');
  const out = [];
  let start = 0;
  while (start < A.length && start < B.length && A[start] === B[start]) {
    out.push({ op: 'same', text: A[start], a: start + 1, b: start + 1 });
    start++;
  }
  let endA = A.length;
  let endB = B.length;
  while (endA > start && endB > start && A[endA - 1] === B[endB - 1]) {
    endA--;
    endB--;
  }
  const n = endA - start;
  const m = endB - start;
  const del = (i) => out.push({ op: 'del', text: A[i], a: i + 1, b: null });
  const add = (j) => out.push({ op: 'add', text: B[j], a: null, b: j + 1 });
  if (n * m > limit) {
    for (let i = start; i < endA; i++) del(i);
    for (let j = start; j < endB; j++) add(j);
  } else {
    const w = m + 1;
    const dp = new Uint32Array((n + 1) * w);
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        dp[i * w + j] = A[start + i] === B[start + j] ? dp[(i + 1) * w + j + 1] + 1 : Math.max(dp[(i + 1) * w + j], dp[i * w + j + 1]);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n && j < m) {
      if (A[start + i] === B[start + j]) {
        out.push({ op: 'same', text: A[start + i], a: start + i + 1, b: start + j + 1 });
        i++;
        j++;
      } else if (dp[(i + 1) * w + j] >= dp[i * w + j + 1]) {
        del(start + i++);
      } else {
        add(start + j++);
      }
    }
    while (i < n) del(start + i++);
    while (j < m) add(start + j++);
  }
  for (let k = 0; endA + k < A.length; k++) out.push({ op: 'same', text: A[endA + k], a: endA + k + 1, b: endB + k + 1 });
  return out;
}

function diffView(lines) {
  const added = lines.filter((l) => l.op === 'add').length;
  const removed = lines.filter((l) => l.op === 'del').length;
  const pre = h('pre', { class: 'diff source', id: 'flow-diff' }, lines.map((l) => h('span', {
    class: l.op === 'same' ? 'same' : l.op,
    dataset: { a: l.a ?? undefined, b: l.b ?? undefined },
  }, `${l.op === 'add' ? '+' : l.op === 'del' ? '-' : ' '} ${l.text}\n`)));
  const summary = added || removed ? `${plural(added, 'line')} added, ${plural(removed, 'line')} removed.` : 'The two versions are the same.';
  return [h('p', { class: 'diff-summary', id: 'flow-diff-summary' }, summary), pre];
}

/** The flow name a TOML source declares (`name = "…"` at the top level), or ''. */
export function declaredName(source) {
  for (const line of source.split('\n')) {
    const t = line.trim();
    if (t.startsWith('[')) break;
    const m = /^name\s*=\s*["']([^"']+)["']/.exec(t);
    if (m) return m[1];
  }
  return '';
}

function deployedText(d) {
  if (d.created) return `Deployed the new flow ${d.name}, version ${d.version} (${d.digest}).`;
  if (d.changed) return `Deployed ${d.name} version ${d.version} (${d.digest}). New runs use it; runs in progress keep their version.`;
  return `Unchanged: ${d.name} version ${d.version} has exactly this source. Nothing was deployed.`;
}

function deployForm(ctx, name, source) {
  const nameInput = name ? null : h('input', { id: 'flow-name', type: 'text', class: 'write', required: true, autocomplete: 'off', spellcheck: 'false' });
  const text = h('textarea', { id: 'flow-source', class: 'write source-input', rows: 18, spellcheck: 'false', required: true });
  text.value = source || '';
  const out = h('div', { id: 'deploy-result', 'aria-live': 'polite' });
  const button = h('button', { type: 'submit', class: 'write', dataset: { action: 'deploy' } }, name ? `Deploy a new version of ${name}` : 'Deploy');
  let nameTouched = false;
  if (nameInput) {
    nameInput.addEventListener('input', () => {
      nameTouched = nameInput.value !== '';
    });
    text.addEventListener('input', () => {
      if (!nameTouched) nameInput.value = declaredName(text.value);
    });
  }
  const form = h('form', { id: 'deploy-form', class: 'write stack', novalidate: true },
    nameInput ? field('Flow name (the file’s name)', nameInput) : null,
    field('Flow file (TOML)', text, 'Validated against the loaded plugins; stored as a new version when the source changed, audited.'),
    h('div', { class: 'actions' }, button), out);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const target = name || nameInput.value.trim();
    if (!target) {
      out.replaceChildren(errorBox('Name the flow first (it must match the file’s name).'));
      return;
    }
    if (!text.value.trim()) {
      out.replaceChildren(errorBox('The flow file is empty.'));
      return;
    }
    await busy(button, async () => {
      out.replaceChildren(h('p', { class: 'muted' }, 'deploying…'));
      try {
        const d = await request('PUT', path('/v1/flows', target), { raw: text.value, contentType: 'application/toml', signal: ctx.signal });
        if (name && !d.changed) out.replaceChildren(notice(deployedText(d), 'info'));
        else ctx.go(`#/flows/${encodeURIComponent(d.name)}`, deployedText(d));
      } catch (err) {
        if (err.name !== 'AbortError') out.replaceChildren(errorBox(err));
      }
    });
  });
  return form;
}

function startRunForm(ctx, name) {
  const text = h('textarea', { id: 'run-trigger', class: 'write source-input', rows: 5, spellcheck: 'false' });
  text.value = '{}';
  const out = h('div', { id: 'start-run-result', 'aria-live': 'polite' });
  const button = h('button', { type: 'submit', class: 'write', dataset: { action: 'start-run' } }, 'Start a run');
  const form = h('form', { id: 'start-run-form', class: 'write stack' },
    field('Trigger event (JSON)', text, 'The run starts with this as its trigger; the flow may refuse a trigger it cannot start from.'),
    h('div', { class: 'actions' }, button), out);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    let trigger;
    try {
      trigger = text.value.trim() ? JSON.parse(text.value) : {};
    } catch (err) {
      out.replaceChildren(errorBox(`The trigger is not JSON: ${err.message}`));
      return;
    }
    await busy(button, async () => {
      try {
        const r = await post(path('/v1/flows', name, 'runs'), trigger, { signal: ctx.signal });
        ctx.go(`#/runs/${encodeURIComponent(r.run)}`, `Started run ${r.run} of ${name}.`);
      } catch (err) {
        if (err.name !== 'AbortError') out.replaceChildren(errorBox(err));
      }
    });
  });
  return form;
}

async function renderList(ctx) {
  ctx.title('Flows');
  const { root, signal } = ctx;
  const data = await get('/v1/flows', { signal });
  const flows = data.flows || [];
  root.append(pageHeader('Flows', plural(flows.length, 'flow')));
  root.append(section(null, table([
    { label: 'Flow', cell: (f) => link(f.name) },
    { label: 'Version', cell: (f) => String(f.version) },
    { label: 'Trigger', cell: (f) => f.trigger },
    { label: 'Description', cell: (f) => orDash(f.description) },
    { label: 'Changed', cell: (f) => when(f.updated_at) },
    { label: 'Runs', cell: (f) => h('a', { href: `#/runs?flow=${encodeURIComponent(f.name)}` }, 'runs') },
  ], flows, { rowAttrs: (f) => ({ dataset: { flow: f.name } }), empty: 'No flow is deployed.', id: 'flows' })));
  if (can('operator')) root.append(section('Deploy a flow', deployForm(ctx, null, '')));
}

async function renderDetail(ctx) {
  const name = ctx.id;
  ctx.title(`Flow ${name}`);
  const { root, signal } = ctx;
  const flow = await get(path('/v1/flows', name), { signal });
  const versions = flow.versions || [];
  const sources = new Map([[flow.version, Promise.resolve(flow.source)]]);
  const sourceOf = (v) => {
    if (!sources.has(v)) {
      const p = get(path('/v1/flows', name, 'versions', v), { signal }).then((d) => {
        if (d && typeof d.source === 'string') return d.source;
        throw new Error(`the answer for version ${v} has no source`);
      });
      p.catch(() => sources.delete(v));
      sources.set(v, p);
    }
    return sources.get(v);
  };

  root.append(pageHeader(`Flow ${flow.name}`, h('a', { href: '#/flows' }, '← All flows'), ' · ',
    h('a', { href: `#/runs?flow=${encodeURIComponent(flow.name)}` }, 'its runs'), ' · ',
    h('a', { href: '#/dead-letters' }, 'dead letters')));
  root.append(section(null, kv([
    ['Version', String(flow.version)],
    ['Trigger', flow.trigger],
    ['Description', flow.description],
    ['First deployed', when(flow.created_at)],
    ['Changed', when(flow.updated_at)],
  ])));
  root.append(section(`Source of version ${flow.version} (current)`, h('pre', { class: 'source', id: 'flow-current-source' }, flow.source)));

  const versionRows = table([
    { label: 'Version', cell: (v) => h('strong', null, String(v.version)) },
    { label: 'Digest', cell: (v) => digest(v.digest) },
    { label: 'Deployed', cell: (v) => when(v.deployed_at) },
    { label: 'By', cell: (v) => orDash(v.deployed_by) },
  ], versions, { rowAttrs: (v) => ({ dataset: { version: v.version } }), empty: 'No versions.', id: 'flow-versions' });
  const sourcesList = h('div', { class: 'version-sources' }, versions.map((v) => {
    const body = h('div', null, h('p', { class: 'muted' }, 'loading…'));
    const d = h('details', { class: 'version-source json-details', dataset: { version: v.version } },
      h('summary', null, `TOML of version ${v.version}${v.version === flow.version ? ' (current)' : ''}`), body);
    d.addEventListener('toggle', () => {
      if (!d.open || d.dataset.filled) return;
      d.dataset.filled = 'true';
      sourceOf(v.version).then((src) => body.replaceChildren(h('pre', { class: 'source' }, src)))
        .catch((err) => {
          delete d.dataset.filled;
          if (err.name !== 'AbortError') body.replaceChildren(errorBox(err));
        });
    });
    return d;
  }));
  root.append(section('Versions', versionRows, sourcesList));

  const diffBox = h('div', { id: 'flow-diff-box', 'aria-live': 'polite' });
  const diff = section('Compare versions');
  if (versions.length < 2) {
    diff.append(h('p', { class: 'muted' }, 'Only one version: nothing to compare yet.'));
  } else {
    const options = versions.map((v) => [v.version, `version ${v.version}`]);
    const from = select({ id: 'diff-from' }, options, versions[1].version);
    const to = select({ id: 'diff-to' }, options, versions[0].version);
    let seq = 0;
    const show = async () => {
      const mine = ++seq;
      diffBox.replaceChildren(h('p', { class: 'muted' }, 'comparing…'));
      try {
        const [a, b] = await Promise.all([sourceOf(Number(from.value)), sourceOf(Number(to.value))]);
        if (mine === seq) diffBox.replaceChildren(...diffView(diffLines(a, b)));
      } catch (err) {
        if (mine === seq && err.name !== 'AbortError') diffBox.replaceChildren(errorBox(err));
      }
    };
    from.addEventListener('change', show);
    to.addEventListener('change', show);
    diff.append(h('div', { class: 'grid2 narrow' }, field('From version', from), field('To version', to)), diffBox);
    await show();
  }
  root.append(diff);

  if (can('operator')) root.append(section('Deploy', deployForm(ctx, flow.name, flow.source)));
  if (can('invoker')) root.append(section('Start a run', startRunForm(ctx, flow.name)));
  if (!can('operator')) root.append(scopeNote('operator', 'deploying a version'));
}

export async function render(ctx) {
  if (ctx.id === undefined) return renderList(ctx);
  return renderDetail(ctx);
}
