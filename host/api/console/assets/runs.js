// Runs (#/runs, #/runs/{id}): the list filtered by flow, status and time
// (in the hash query), and a run with its steps as a timeline, polled every
// 2 s while it is not terminal; approve or reject a waiting run.

import { get, post, path, query, can, describe } from './api.js';
import { h, section, table, badge, code, kv, jsonDetails, confirm, errorBox, notice, field, select, orDash, plural, pageHeader, when, duration, DASH } from './ui.js';

export const STATUSES = ['pending', 'running', 'compensating', 'completed', 'compensated', 'failed'];
export const TERMINAL = new Set(['completed', 'compensated', 'failed']);
const POLL_MS = 2000;

const runLink = (id, max = 14) => h('a', { href: `#/runs/${encodeURIComponent(id)}` }, code(id, max));
const flowLink = (name) => h('a', { href: `#/flows/${encodeURIComponent(name)}` }, name);

/** A Date as a datetime-local value (local time, minutes): "2026-01-05T09:00". */
export function toLocalInput(date) {
  const p = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}T${p(date.getHours())}:${p(date.getMinutes())}`;
}

/** A filter time (datetime-local or RFC 3339) as ms, null when empty, NaN when not a time. */
export function filterTime(text) {
  if (!text) return null;
  return new Date(text).getTime();
}

/** The runs created in [since, until] (either may be null). */
export function inWindow(runs, since, until) {
  return runs.filter((r) => {
    const t = new Date(r.created_at).getTime();
    return (since === null || t >= since) && (until === null || t <= until);
  });
}

function elapsed(from, to) {
  if (!from) return DASH;
  const a = new Date(from).getTime();
  const b = to ? new Date(to).getTime() : Date.now();
  return Number.isNaN(a) || Number.isNaN(b) ? DASH : duration(Math.max(0, b - a));
}

async function renderList(ctx) {
  ctx.title('Runs');
  const { root, signal, query: q } = ctx;
  const flow = q.get('flow') || '';
  const status = q.get('status') || '';
  const sinceText = q.get('since') || '';
  const untilText = q.get('until') || '';
  const since = filterTime(sinceText);
  const until = filterTime(untilText);
  const timed = since !== null || until !== null;
  const limit = 200;
  const iso = (t) => (t === null || Number.isNaN(t) ? '' : new Date(t).toISOString());
  const [flows, data] = await Promise.all([
    get('/v1/flows', { signal }).catch((err) => {
      if (err.status === 401 || err.name === 'AbortError') throw err;
      return { flows: [] };
    }),
    STATUSES.includes(status) || !status ? get(`/v1/runs${query({ flow, status, since: iso(since), until: iso(until), limit })}`, { signal }) : Promise.resolve(null),
  ]);

  const flowNames = flows.flows.map((f) => f.name);
  if (flow && !flowNames.includes(flow)) flowNames.push(flow);
  const flowSelect = select({ id: 'filter-flow', name: 'flow' }, [['', 'Any flow'], ...flowNames.map((n) => [n, n])], flow);
  const statusSelect = select({ id: 'filter-status', name: 'status' }, [['', 'Any status'], ...STATUSES.map((s) => [s, s])], status);
  const local = (text) => {
    const t = filterTime(text);
    return t === null || Number.isNaN(t) ? '' : toLocalInput(new Date(t));
  };
  const sinceInput = h('input', { id: 'filter-since', name: 'since', type: 'datetime-local', value: local(sinceText) });
  const untilInput = h('input', { id: 'filter-until', name: 'until', type: 'datetime-local', value: local(untilText) });
  const apply = () => ctx.setQuery({ flow: flowSelect.value, status: statusSelect.value, since: sinceInput.value, until: untilInput.value });
  for (const el of [flowSelect, statusSelect, sinceInput, untilInput]) el.addEventListener('change', apply);
  const form = h('form', { id: 'run-filters', class: 'filters', role: 'search' },
    field('Flow', flowSelect), field('Status', statusSelect), field('Created since', sinceInput), field('Created until', untilInput),
    h('div', { class: 'actions' }, h('a', { href: '#/runs', class: 'button secondary', id: 'clear-filters' }, 'Clear filters')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    apply();
  });
  root.append(pageHeader('Runs'), form);

  if (!data) {
    root.append(errorBox(`Status “${status}” is not one of ${STATUSES.join(', ')}.`));
    return;
  }
  const bad = [[sinceText, since, 'since'], [untilText, until, 'until']].filter(([, t]) => t !== null && Number.isNaN(t));
  if (bad.length) {
    root.append(errorBox(bad.map(([text, , name]) => `“${name}=${text}” is not a time`).join('; ')));
    return;
  }
  const runs = inWindow(data.runs || [], since, until);
  const more = (data.runs || []).length >= limit;
  root.append(h('p', { class: 'muted', id: 'run-count' },
    `${plural(runs.length, 'run')}${timed ? ' in this time window' : ''}${more ? `, from the newest ${limit} matching ${flow || status ? 'flow and status' : 'runs'}` : ''}.`));
  root.append(table([
    { label: 'Run', cell: (r) => runLink(r.id) },
    { label: 'Status', cell: (r) => [badge(r.status), r.parked_on ? h('span', { class: 'muted' }, ` parked on ${r.parked_on}`) : null, r.waiting_for ? h('span', { class: 'muted' }, ` waits for ${r.waiting_for.signal}`) : null] },
    { label: 'Flow', cell: (r) => [flowLink(r.flow), h('span', { class: 'muted' }, ` v${r.flow_version}`)] },
    { label: 'Created', cell: (r) => when(r.created_at) },
    { label: 'Finished', cell: (r) => when(r.finished_at) },
    { label: 'Took', cell: (r) => (r.finished_at ? elapsed(r.created_at, r.finished_at) : DASH) },
    { label: 'Error', cell: (r) => (r.error ? h('span', { class: 'clip', title: r.error }, r.failed_step ? `${r.failed_step}: ${r.error}` : r.error) : DASH) },
  ], runs, { rowAttrs: (r) => ({ dataset: { run: r.id, status: r.status } }), empty: 'No run matches these filters.', id: 'runs' }));
}

function stepView(step) {
  const li = h('li', { class: 'step', dataset: { step: step.id, status: step.status } });
  const attempts = [plural(step.attempts, 'attempt')];
  if (step.compensation_attempts) attempts.push(plural(step.compensation_attempts, 'compensation attempt'));
  li.append(h('div', { class: 'step-head' }, h('h3', null, step.id), badge(step.status), h('span', { class: 'muted attempts' }, attempts.join(', '))));
  li.append(kv([
    ['Started', when(step.started_at)],
    ['Finished', when(step.finished_at)],
    ['Took', step.started_at && step.finished_at ? elapsed(step.started_at, step.finished_at) : DASH],
    step.compensated_at ? ['Compensated', when(step.compensated_at)] : [null],
    ['Idempotency key', h('code', { class: 'idempotency-key' }, step.idempotency_key)],
  ]));
  if (step.errors && step.errors.length) {
    li.append(h('ol', { class: 'errors', 'aria-label': `Errors of ${step.id}` }, step.errors.map((e) => h('li', { class: 'step-error', dataset: { kind: e.kind, phase: e.phase } },
      h('span', { class: 'muted' }, `${e.phase} attempt ${e.attempt} · `), code(e.kind), h('span', { class: 'muted' }, ' · '), when(e.at),
      h('div', { class: 'error-text' }, e.message)))));
  }
  li.append(h('div', { class: 'step-io' },
    jsonDetails('Input', step.input, { key: `${step.id}:input` }),
    jsonDetails('Output', step.output, { key: `${step.id}:output` })));
  return li;
}

function signalForm(ctx, run) {
  const comment = h('textarea', { id: 'signal-comment', class: 'write', rows: 2 });
  const send = (decision) => async () => {
    const verb = decision === 'approve' ? 'Approve' : 'Reject';
    const text = `${verb} run ${run.id} of ${run.flow}: the signal “${run.waiting_for.signal}” is recorded with your token’s name (${decision}) and the run goes on${decision === 'reject' ? ' along its reject path, or fails, as the wait step says' : ''}.`;
    if (!(await confirm(text, { title: verb, yes: verb, danger: decision === 'reject' }))) return;
    const body = { decision };
    if (comment.value.trim()) body.comment = comment.value.trim();
    await ctx.mutate(`Sending ${decision}…`, async () => {
      await post(path('/v1/runs', run.id, 'signals', run.waiting_for.signal), body);
      return `${verb}d: the decision is recorded and the run goes on.`;
    });
  };
  const approve = h('button', { type: 'button', class: 'write', dataset: { action: 'signal-approve' } }, 'Approve');
  const reject = h('button', { type: 'button', class: 'write secondary danger-text', dataset: { action: 'signal-reject' } }, 'Reject');
  approve.addEventListener('click', send('approve'));
  reject.addEventListener('click', send('reject'));
  return h('div', { class: 'write stack', id: 'signal-form' }, field('Comment (optional, kept with the decision)', comment), h('div', { class: 'actions' }, approve, reject));
}

function runView(ctx, run) {
  const parts = [];
  parts.push(h('div', { class: 'page-head' },
    h('h1', null, 'Run ', h('code', { class: 'run-id' }, run.id)),
    h('div', { class: 'page-meta' }, badge(run.status), ' ', flowLink(run.flow), ` version ${run.flow_version} · `, h('a', { href: `#/runs?flow=${encodeURIComponent(run.flow)}` }, 'other runs of this flow'))));
  if (run.parked_on) {
    parts.push(notice(`Parked: the circuit of connection ${run.parked_on} is open. The run resumes when it closes.`, 'warn'));
  }
  if (run.error) parts.push(errorBox(run.failed_step ? `Failed at step ${run.failed_step}: ${run.error}` : run.error, 'run-error'));
  parts.push(section(null, kv([
    ['Status', h('span', { id: 'run-status' }, badge(run.status))],
    ['Trace id', h('code', { id: 'trace-id' }, run.trace_id || DASH)],
    ['Created', when(run.created_at)],
    ['Updated', when(run.updated_at)],
    ['Finished', when(run.finished_at)],
    ['Took', elapsed(run.created_at, run.finished_at)],
    ['Failed step', run.failed_step],
    ['Parked on', run.parked_on ? h('a', { href: `#/connections/${encodeURIComponent(run.parked_on)}` }, run.parked_on) : null],
    ['Waiting for', run.waiting_for ? [code(run.waiting_for.signal), run.waiting_for.deadline ? [' until ', when(run.waiting_for.deadline)] : ' (no deadline)'] : null],
  ]), jsonDetails('Trigger event', run.trigger, { key: 'trigger' })));
  if (run.waiting_for && can('invoker')) parts.push(section(`Waiting for “${run.waiting_for.signal}”`, signalForm(ctx, run)));
  const signals = run.signals || [];
  if (signals.length) {
    parts.push(section('Signals', table([
      { label: 'Signal', cell: (x) => code(x.signal) },
      { label: 'Step', cell: (x) => x.step },
      { label: 'Decision', cell: (x) => badge(x.decision) },
      { label: 'Comment', cell: (x) => orDash(x.comment) },
      { label: 'By', cell: (x) => x.by },
      { label: 'When', cell: (x) => when(x.at) },
      { label: 'Data', cell: (x) => (x.data === null || x.data === undefined ? DASH : jsonDetails('data', x.data, { key: `signal:${x.id}` })) },
    ], signals, { rowAttrs: (x) => ({ dataset: { signal: x.id } }), id: 'signals' })));
  }
  const steps = run.steps || [];
  parts.push(section(`Steps (${steps.length})`, steps.length ? h('ol', { class: 'timeline', id: 'steps' }, steps.map(stepView)) : h('p', { class: 'muted' }, 'No step has run yet.')));
  return parts;
}

async function renderDetail(ctx) {
  const id = ctx.id;
  ctx.title(`Run ${id}`);
  const { root, signal } = ctx;
  let run = await get(path('/v1/runs', id), { signal });
  const body = h('div', { id: 'run', class: 'page-body' });
  const pollState = h('p', { class: 'hint', id: 'poll-state', 'aria-live': 'polite' });
  root.append(body, pollState);
  let shown = '';
  const paint = () => {
    const text = JSON.stringify(run);
    if (text === shown) return;
    shown = text;
    const open = new Set([...body.querySelectorAll('details[open][data-key]')].map((d) => d.dataset.key));
    const comment = body.querySelector('#signal-comment');
    const typed = comment ? comment.value : '';
    body.replaceChildren(...runView(ctx, run));
    for (const d of body.querySelectorAll('details[data-key]')) if (open.has(d.dataset.key)) d.open = true;
    const again = body.querySelector('#signal-comment');
    if (again && typed) again.value = typed;
    body.dataset.status = run.status;
  };
  paint();
  let timer = null;
  ctx.onLeave(() => clearTimeout(timer));
  const tick = async () => {
    if (signal.aborted) return;
    try {
      run = await get(path('/v1/runs', id), { signal });
      paint();
      pollState.textContent = TERMINAL.has(run.status) ? `The run is ${run.status}: no more updates.` : `In progress: updated every 2 s (last ${new Date().toLocaleTimeString()}).`;
    } catch (err) {
      if (signal.aborted || err.name === 'AbortError' || err.status === 401) return;
      if (err.status === 404) {
        pollState.replaceChildren(errorBox(`The run is gone: ${describe(err)}`));
        return;
      }
      pollState.replaceChildren(errorBox(`Could not update the run: ${describe(err)}. Trying again in 2 s.`));
    }
    if (!TERMINAL.has(run.status) && !signal.aborted) timer = setTimeout(tick, POLL_MS);
  };
  if (!TERMINAL.has(run.status)) {
    pollState.textContent = 'In progress: updated every 2 s.';
    timer = setTimeout(tick, POLL_MS);
  }
}

export async function render(ctx) {
  if (ctx.id === undefined) return renderList(ctx);
  return renderDetail(ctx);
}
