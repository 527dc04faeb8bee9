// Overview (#/): the KPIs of the last 24 hours, charts (runs per hour by
// outcome, duration KPIs such as project setup cycle time, failed-sync
// rates, open dead letters by age), the latest runs, connection health.

import { get, path, describe } from './api.js';
import { h, section, table, barChart, when, badge, code, duration, errorBox, orDash, plural, lastCheck, DASH } from './ui.js';

const HOUR = 3600 * 1000;
const IN_PROGRESS = new Set(['pending', 'running', 'compensating']);

/** "project_setup" → "Project setup"; the names the shipped flows use get their business label. */
export function kpiLabel(name) {
  const known = {
    project_setup: 'Project setup cycle time',
    failed_sync: 'Failed syncs',
    manual_touch: 'Manual touches',
    dead_letters: 'Open dead letters',
    time_to_reconcile: 'Time to reconcile',
  };
  if (known[name]) return known[name];
  const words = name.replace(/[_-]+/g, ' ').trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function percent(ratio) {
  if (ratio === null || ratio === undefined || Number.isNaN(ratio)) return DASH;
  const p = ratio * 100;
  return `${p >= 10 || p === 0 ? Math.round(p) : Math.round(p * 10) / 10} %`;
}

function seconds(v) {
  return v === null || v === undefined ? DASH : duration(v * 1000);
}

/** Runs of the 24 hours before `now`, by hour (local) and outcome. */
export function runsPerHour(runs, now = Date.now()) {
  const start = Math.floor((now - 23 * HOUR) / HOUR) * HOUR;
  const labels = [];
  const series = {
    completed: new Array(24).fill(0),
    failed: new Array(24).fill(0),
    compensated: new Array(24).fill(0),
    running: new Array(24).fill(0),
  };
  for (let i = 0; i < 24; i++) {
    const d = new Date(start + i * HOUR);
    labels.push(`${String(d.getHours()).padStart(2, '0')}:00`);
  }
  for (const run of runs) {
    const t = new Date(run.created_at).getTime();
    if (Number.isNaN(t) || t < start || t > now) continue;
    const i = Math.min(23, Math.floor((t - start) / HOUR));
    const key = IN_PROGRESS.has(run.status) ? 'running' : run.status;
    if (series[key]) series[key][i] += 1;
  }
  return { labels, series, start };
}

/** Open dead letters by age bucket (<1 h, 1–24 h, 1–7 d, >7 d), one series per flow. */
export function deadLettersByAge(letters, now = Date.now()) {
  const labels = ['< 1 h', '1–24 h', '1–7 d', '> 7 d'];
  const bounds = [HOUR, 24 * HOUR, 7 * 24 * HOUR, Infinity];
  const flows = new Map();
  for (const dl of letters) {
    const age = now - new Date(dl.created_at).getTime();
    const i = Number.isNaN(age) ? 3 : bounds.findIndex((b) => age < b);
    if (!flows.has(dl.flow)) flows.set(dl.flow, [0, 0, 0, 0]);
    flows.get(dl.flow)[i] += 1;
  }
  return { labels, flows };
}

function kpiCard(name, value, sub, title) {
  return h('div', { class: 'kpi', dataset: { kpi: name }, title },
    h('h3', null, kpiLabel(name)),
    h('p', { class: 'kpi-value' }, value),
    sub ? h('p', { class: 'kpi-sub' }, sub) : null);
}

function kpiCards(report) {
  const cards = [];
  for (const [name, kpi] of Object.entries(report.kpis || {})) {
    if (kpi.measure === 'duration') {
      const all = kpi.all || {};
      cards.push(kpiCard(name, all.count ? seconds(all.p50_seconds) : DASH,
        all.count ? `median (p50); p90 ${seconds(all.p90_seconds)} · ${plural(all.count, 'duration')} ended` : 'no duration ended in this window'));
    } else if (kpi.measure === 'blocked') {
      cards.push(kpiCard(name, plural(kpi.runs || 0, 'run'), `blocked in this window · ${plural(kpi.open || 0, 'dead letter')} open now`));
    } else {
      cards.push(kpiCard(name, DASH, `measure ${orDash(kpi.measure)}`));
    }
  }
  const fs = report.failed_sync || { flows: [], connections: [] };
  const ended = fs.flows.reduce((n, f) => n + (f.runs || 0), 0);
  const failed = fs.flows.reduce((n, f) => n + (f.failed || 0), 0);
  const calls = fs.connections.reduce((n, c) => n + (c.calls || 0), 0);
  const failedCalls = fs.connections.reduce((n, c) => n + (c.failed || 0), 0);
  cards.push(kpiCard('failed_sync', ended ? percent(failed / ended) : DASH,
    `${failed} of ${plural(ended, 'ended run')} failed or compensated · ${failedCalls} of ${plural(calls, 'call')} failed`));
  const mt = report.manual_touch || {};
  cards.push(kpiCard('manual_touch', mt.runs ? percent(mt.ratio) : DASH,
    `${mt.touched || 0} of ${plural(mt.runs || 0, 'run')} touched${Object.keys(mt.by_kind || {}).length ? ` (${Object.entries(mt.by_kind).map(([k, v]) => `${k.replace(/_/g, ' ')} ${v}`).join(', ')})` : ''}`));
  const dls = report.dead_letters || [];
  const open = dls.reduce((n, d) => n + (d.open || 0), 0);
  const oldest = dls.reduce((m, d) => Math.max(m, d.oldest_age_seconds || 0), 0);
  cards.push(kpiCard('dead_letters', String(open), open ? `oldest ${seconds(oldest)} old, in ${plural(dls.filter((d) => d.open).length, 'flow')}` : 'none open'));
  const ttr = report.time_to_reconcile;
  if (ttr) cards.push(kpiCard('time_to_reconcile', ttr.measured ? seconds(ttr.value) : 'not measured', null, ttr.reason || undefined));
  return h('div', { class: 'kpis' }, cards);
}

/** The unit a chart of durations up to `maxSeconds` reads best in: [name, seconds per unit]. */
export function durationUnit(maxSeconds) {
  if (maxSeconds >= 2 * 86400) return ['d', 86400];
  if (maxSeconds >= 2 * 3600) return ['h', 3600];
  if (maxSeconds >= 120) return ['min', 60];
  if (maxSeconds > 0 && maxSeconds < 2) return ['ms', 0.001];
  return ['s', 1];
}

function durationCharts(report) {
  const charts = [];
  for (const [name, kpi] of Object.entries(report.kpis || {})) {
    if (kpi.measure !== 'duration') continue;
    const flows = kpi.flows || [];
    const maxSeconds = Math.max(0, ...flows.map((f) => Math.max(f.p50_seconds || 0, f.p90_seconds || 0)));
    const [unit, per] = durationUnit(maxSeconds);
    const inUnit = (v) => (v === null || v === undefined ? null : v / per);
    charts.push(barChart({
      title: `${kpiLabel(name)} by flow (p50, p90, in ${{ ms: 'milliseconds', min: 'minutes', h: 'hours', d: 'days' }[unit] || 'seconds'})`,
      id: `chart-kpi-${name}`,
      labels: flows.map((f) => f.flow),
      series: [
        { name: 'p50', cls: 'p50', values: flows.map((f) => inUnit(f.p50_seconds)) },
        { name: 'p90', cls: 'p90', values: flows.map((f) => inUnit(f.p90_seconds)) },
      ],
      // Two decimals at most, so ticks 0.25 apart stay apart ("0.25 s", not "0.3 s").
      format: (v) => `${Math.round(v * 100) / 100} ${unit}`,
      empty: 'No duration ended in this window.',
    }));
  }
  if (!charts.length) charts.push(h('p', { class: 'muted' }, 'No flow declares a duration KPI (a [kpi] table with measure = "duration"), such as project setup cycle time.'));
  return charts;
}

function failedSyncCharts(report) {
  const fs = report.failed_sync || { flows: [], connections: [] };
  const out = [barChart({
    title: 'Failed-sync rate by flow (failed or compensated of ended runs)',
    id: 'chart-failed-sync',
    labels: fs.flows.map((f) => f.flow),
    series: [{ name: 'failed', cls: 'failed', values: fs.flows.map((f) => f.ratio ?? 0) }],
    max: 1,
    format: percent,
    empty: 'No run ended in this window.',
  })];
  if (fs.connections.length) {
    out.push(barChart({
      title: 'Failed calls by connection',
      id: 'chart-failed-calls',
      labels: fs.connections.map((c) => c.connection),
      series: [{ name: 'failed', cls: 'failed', values: fs.connections.map((c) => c.ratio ?? 0) }],
      max: 1,
      format: percent,
    }));
  }
  return out;
}

function circuitCell(result) {
  if (!result) return DASH;
  if (result.error) return h('span', { class: 'error-text', title: describe(result.error) }, 'unknown');
  return badge(result.value.state);
}

function healthTable(conns, circuits) {
  const c = (row) => circuits.get(row.name);
  const v = (row) => (c(row) && c(row).value) || {};
  return table([
    { label: 'Connection', cell: (r) => h('a', { href: `#/connections/${encodeURIComponent(r.name)}` }, r.name) },
    { label: 'Plugin', cell: (r) => `${r.plugin}${r.version ? ` @ ${r.version} (pinned)` : ' (active version)'}` },
    { label: 'Circuit', cell: (r) => circuitCell(c(r)) },
    { label: 'Failures', cell: (r) => (v(r).failures === undefined ? DASH : `${v(r).failures} of ${v(r).settings ? v(r).settings.failures : '?'}`) },
    { label: 'Opened', cell: (r) => when(v(r).opened_at) },
    { label: 'Next probe', cell: (r) => (v(r).manual ? 'opened by hand' : when(v(r).next_probe_at)) },
    { label: 'Parked runs', cell: (r) => orDash(v(r).parked_runs) },
    { label: 'Last check', cell: (r) => lastCheck(v(r)) },
    { label: 'Rate-limit pause until', cell: (r) => when(v(r).rate_limited_until) },
    { label: 'Why', cell: (r) => orDash(v(r).reason) },
  ], conns, { rowAttrs: (r) => ({ dataset: { connection: r.name } }), empty: 'No connections yet.', id: 'connection-health' });
}

function latestRuns(runs) {
  return table([
    { label: 'Run', cell: (r) => h('a', { href: `#/runs/${encodeURIComponent(r.id)}` }, code(r.id, 14)) },
    { label: 'Status', cell: (r) => badge(r.status) },
    { label: 'Flow', cell: (r) => h('a', { href: `#/flows/${encodeURIComponent(r.flow)}` }, r.flow) },
    { label: 'Started', cell: (r) => when(r.created_at) },
    { label: 'Finished', cell: (r) => when(r.finished_at) },
    { label: 'Error', cell: (r) => (r.error ? h('span', { class: 'clip', title: r.error }, r.error) : DASH) },
  ], runs.slice(0, 10), { rowAttrs: (r) => ({ dataset: { run: r.id } }), empty: 'No runs yet.', id: 'latest-runs' });
}

function settled(result) {
  return result.status === 'fulfilled' ? { value: result.value } : { error: result.reason };
}

export async function render(ctx) {
  ctx.title('Overview');
  const { root, signal } = ctx;
  const [kpis, runs, letters, conns] = (await Promise.allSettled([
    get('/v1/kpis', { signal }),
    get('/v1/runs?limit=1000', { signal }),
    get('/v1/dead-letters', { signal }),
    get('/v1/connections', { signal }),
  ])).map(settled);
  for (const r of [kpis, runs, letters, conns]) if (r.error && (r.error.status === 401 || r.error.name === 'AbortError')) throw r.error;

  root.append(h('div', { class: 'page-head' }, h('h1', null, 'Overview'),
    h('p', { class: 'page-meta' }, kpis.value ? ['KPIs of ', when(kpis.value.since), ' to ', when(kpis.value.until)] : 'The last 24 hours')));

  root.append(section('KPIs', kpis.error ? errorBox(kpis.error) : kpiCards(kpis.value)));

  const charts = h('div', { class: 'charts' });
  if (runs.error) charts.append(errorBox(runs.error));
  else {
    const list = runs.value.runs || [];
    const { labels, series, start } = runsPerHour(list);
    charts.append(barChart({
      title: 'Runs per hour by outcome, last 24 hours',
      id: 'chart-runs-per-hour',
      labels,
      stacked: true,
      series: [
        { name: 'completed', cls: 'completed', values: series.completed },
        { name: 'failed', cls: 'failed', values: series.failed },
        { name: 'compensated', cls: 'compensated', values: series.compensated },
        { name: 'in progress', cls: 'running', values: series.running },
      ],
      integer: true,
      empty: 'No runs in the last 24 hours.',
    }));
    if (list.length >= 1000 && new Date(list[list.length - 1].created_at).getTime() > start) {
      charts.append(h('p', { class: 'hint' }, 'Counted from the newest 1000 runs only: earlier hours may show fewer than ran.'));
    }
  }
  if (kpis.value) charts.append(...durationCharts(kpis.value), ...failedSyncCharts(kpis.value));
  if (letters.error) charts.append(errorBox(letters.error));
  else {
    const { labels, flows } = deadLettersByAge(letters.value.dead_letters || []);
    charts.append(barChart({
      title: 'Open dead letters by age',
      id: 'chart-dead-letters',
      labels,
      stacked: true,
      series: [...flows.entries()].map(([flow, values], i) => ({ name: flow, cls: `c${i % 6}`, values })),
      integer: true,
      empty: 'No open dead letters.',
    }));
  }
  root.append(section('Charts', charts));

  root.append(section('Latest runs', runs.error ? errorBox(runs.error) : latestRuns(runs.value.runs || []),
    h('p', null, h('a', { href: '#/runs' }, 'All runs →'))));

  const health = section('Connection health');
  root.append(health);
  if (conns.error) {
    health.append(errorBox(conns.error));
    return;
  }
  const list = conns.value.connections || [];
  const circuits = new Map();
  const results = await Promise.allSettled(list.map((c) => get(path('/v1/connections', c.name, 'circuit'), { signal })));
  list.forEach((c, i) => circuits.set(c.name, settled(results[i])));
  for (const r of circuits.values()) if (r.error && (r.error.status === 401 || r.error.name === 'AbortError')) throw r.error;
  health.append(healthTable(list, circuits));
}
