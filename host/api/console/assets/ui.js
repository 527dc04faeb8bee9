// DOM helpers: elements built from data with textContent only (never
// innerHTML), times, status badges, tables, a JSON viewer, the confirm
// dialog, errors in words, and SVG bar charts.

import { describe, session } from './api.js';

export const DASH = '—';
const SVG_NS = 'http://www.w3.org/2000/svg';

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false || child === true) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

function setAttrs(el, attrs, isSvg) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'class') {
      el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    } else if (key === 'dataset') {
      for (const [k, v] of Object.entries(value)) if (v !== undefined && v !== null) el.dataset[k] = String(v);
    } else if (!isSvg && (key === 'value' || key === 'checked' || key === 'selected')) {
      el[key] = value;
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
}

/** An HTML element: h('a', {href, class, onclick}, 'text', child, [more]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs, false);
  append(el, children);
  return el;
}

/** An SVG element, as h. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs, true);
  append(el, children);
  return el;
}

/** `value` as text, or "—" when absent or empty. */
export function orDash(value) {
  if (value === undefined || value === null || value === '') return DASH;
  if (Array.isArray(value)) return value.length ? value.join(', ') : DASH;
  return String(value);
}

/** "1 run", "2 runs". */
export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

// ---- times ----

/** Local date and time of an RFC 3339 text, or "—". */
export function localTime(iso) {
  if (!iso) return DASH;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** "3 min ago", "in 20 s", "just now". */
export function relative(iso, now = Date.now()) {
  const t = typeof iso === 'number' ? iso : new Date(iso).getTime();
  if (Number.isNaN(t)) return '';
  const diff = now - t;
  const future = diff < 0;
  const abs = Math.abs(diff) / 1000;
  if (abs < 5) return 'just now';
  const span = duration(abs * 1000, true);
  return future ? `in ${span}` : `${span} ago`;
}

/** A span of milliseconds in words: "850 ms", "42 s", "3 min", "2 h 5 min", "3 d". */
export function duration(ms, coarse = false) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return DASH;
  if (ms < 1000) return coarse ? `${Math.round(ms / 1000)} s` : `${Math.round(ms)} ms`;
  const sec = ms / 1000;
  if (sec < 60) return `${coarse ? Math.round(sec) : Math.round(sec * 10) / 10} s`;
  const min = Math.floor(sec / 60);
  const restSec = Math.round(sec % 60);
  if (min < 60) return coarse || min >= 10 || restSec === 0 || restSec === 60 ? `${min} min` : `${min} min ${restSec} s`;
  const hours = Math.floor(min / 60);
  if (hours < 48) return min % 60 && hours < 10 ? `${hours} h ${min % 60} min` : `${hours} h`;
  return `${Math.floor(hours / 24)} d`;
}

/** A <time> with the local time and the age: "Jan 5, 09:00:12 (3 min ago)". */
export function when(iso) {
  if (!iso) return DASH;
  const rel = relative(iso);
  return h('time', { datetime: iso, title: iso }, localTime(iso), rel ? h('span', { class: 'age' }, ` (${rel})`) : null);
}

/** A connection's last check (from its circuit's answer): when, and whether it passed. */
export function lastCheck(health) {
  if (!health || !health.last_check_at) return DASH;
  const passed = health.last_check_ok === true;
  return h('span', { class: 'last-check', title: health.last_check_error || '' },
    badge(passed ? 'passed' : 'failed'), ' ', when(health.last_check_at),
    passed || !health.last_check_error ? null : h('span', { class: 'error-text' }, ` ${health.last_check_error}`));
}

// ---- small pieces ----

/** A status badge: class `status status-<name>`. */
export function badge(status) {
  const name = String(status || 'unknown');
  return h('span', { class: `status status-${name.replace(/[^a-z0-9_-]/gi, '_')}` }, name.replace(/_/g, ' '));
}

/** <code> with the text, the full text as the title, shortened when long. */
export function code(text, max = 0) {
  if (text === undefined || text === null || text === '') return DASH;
  const str = String(text);
  const shown = max && str.length > max ? `${str.slice(0, max)}…` : str;
  return h('code', { title: str }, shown);
}

/** A short digest: "sha256:0123456789ab…". */
export function digest(text) {
  return code(text, 19);
}

/** A definition list from [[term, value], …]; values may be nodes. Absent values show "—". */
export function kv(pairs) {
  const dl = h('dl', { class: 'kv' });
  for (const [term, value, attrs] of pairs) {
    if (term === null) continue;
    const shown = value === undefined || value === null || value === '' || (Array.isArray(value) && !value.length) ? DASH : value;
    dl.append(h('dt', null, term), h('dd', attrs || null, shown));
  }
  return dl;
}

/** A section with a heading. */
export function section(title, ...children) {
  return h('section', { class: 'panel' }, title ? h('h2', null, title) : null, ...children);
}

/** A page heading with an optional line of context below it. */
export function pageHeader(title, ...extra) {
  return h('div', { class: 'page-head' }, h('h1', null, title), extra.length ? h('div', { class: 'page-meta' }, ...extra) : null);
}

/** An error in words, as an alert. */
export function errorBox(err, id) {
  return h('p', { class: 'error', role: 'alert', id }, typeof err === 'string' ? err : describe(err));
}

/** A notice (`kind`: ok, info, warn). */
export function notice(text, kind = 'info', id) {
  return h('p', { class: `notice notice-${kind}`, role: 'status', id }, text);
}

/** Why write controls are absent: "Token “viewer” has scope read: deploying needs operator." */
export function scopeNote(needed, what) {
  const cur = session.current;
  const who = cur ? `Token “${cur.name}” has scope ${cur.scope}` : 'This session cannot change anything';
  return h('p', { class: 'hint scope-note' }, `${who}: ${what} ${/ and |, /.test(what) ? 'need' : 'needs'} the ${needed} scope.`);
}

/** A label around a control, with an optional hint below it. The control gets an id if it has none. */
let idCounter = 0;
export function field(label, control, hint) {
  if (!control.id) control.id = `f${++idCounter}`;
  const hintEl = hint ? h('span', { class: 'hint', id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hintEl);
}

/** A <select> of [value, text] options with `selected` preselected. */
export function select(attrs, options, selected) {
  const el = h('select', attrs);
  for (const [value, text] of options) {
    const opt = h('option', { value }, text);
    if (String(value) === String(selected ?? '')) opt.selected = true;
    el.append(opt);
  }
  return el;
}

/** Runs `work` with `button` disabled and marked busy; returns its promise. */
export async function busy(button, work) {
  const was = button.disabled;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    button.disabled = was;
    button.removeAttribute('aria-busy');
  }
}

// ---- tables ----

/**
 * A table in a horizontally scrolling wrapper. `columns`: [{label, cell(row),
 * class}]; `rowAttrs(row)`: attributes of each <tr>; `empty`: text when no rows.
 */
export function table(columns, rows, { rowAttrs, empty = 'Nothing here yet.', caption, id } = {}) {
  if (!rows.length) return h('p', { class: 'empty muted', id }, empty);
  const thead = h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.label))));
  const tbody = h('tbody', null, rows.map((row) => h('tr', rowAttrs ? rowAttrs(row) : null,
    columns.map((c) => {
      const v = c.cell(row);
      return h('td', { class: c.class }, v === undefined || v === null || v === '' ? DASH : v);
    }))));
  return h('div', { class: 'table-wrap', id }, h('table', null, caption ? h('caption', null, caption) : null, thead, tbody));
}

// ---- JSON ----

const TOKEN = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;

/** Pretty-printed JSON in a <pre>, coloured by token classes. */
export function jsonView(value, attrs) {
  const text = value === undefined ? 'undefined' : JSON.stringify(value, null, 2);
  const pre = h('pre', { class: 'json', ...attrs });
  let last = 0;
  for (const m of text.matchAll(TOKEN)) {
    if (m.index > last) pre.append(text.slice(last, m.index));
    let cls = 'j-num';
    if (m[1]) cls = m[2] ? 'j-key' : 'j-str';
    else if (m[3]) cls = m[3] === 'null' ? 'j-null' : 'j-bool';
    pre.append(h('span', { class: cls }, m[1] || m[0]));
    if (m[2]) pre.append(m[2]);
    last = m.index + m[0].length;
  }
  if (last < text.length) pre.append(text.slice(last));
  return pre;
}

/** Collapsible JSON: <details><summary>label</summary><pre>…</pre></details>. */
export function jsonDetails(label, value, { open = false, key } = {}) {
  const absent = value === undefined || value === null;
  return h('details', { class: 'json-details', open: open && !absent, dataset: key ? { key } : undefined },
    h('summary', null, label, absent ? h('span', { class: 'muted' }, ' (none)') : null),
    absent ? h('p', { class: 'muted' }, DASH) : jsonView(value));
}

// ---- the confirm dialog ----

let pending = null;

function dialog() {
  let d = document.getElementById('confirm');
  if (d) return d;
  d = h('dialog', { id: 'confirm', 'aria-labelledby': 'confirm-title' },
    h('form', { method: 'dialog', class: 'confirm-form' },
      h('h2', { id: 'confirm-title' }, 'Confirm'),
      h('p', { id: 'confirm-text' }),
      h('div', { class: 'actions' },
        h('button', { type: 'submit', id: 'confirm-yes', value: 'yes' }, 'Yes'),
        h('button', { type: 'submit', id: 'confirm-no', value: 'no', class: 'secondary' }, 'Cancel'))));
  // Tab and Shift+Tab stay among the dialog's buttons (a modal <dialog>
  // would otherwise let focus out to the browser's own controls).
  d.addEventListener('keydown', (event) => {
    if (event.key !== 'Tab') return;
    const items = [...d.querySelectorAll('button:not([disabled])')];
    if (!items.length) return;
    const i = items.indexOf(document.activeElement);
    const next = event.shiftKey ? (i <= 0 ? items.length - 1 : i - 1) : (i === items.length - 1 ? 0 : i + 1);
    event.preventDefault();
    items[next].focus();
  });
  d.addEventListener('close', () => {
    const settle = pending;
    pending = null;
    if (settle) settle(d.returnValue === 'yes');
  });
  document.body.append(d);
  return d;
}

/** Asks first: resolves true when the operator confirms. `yes`: the confirm button's text. */
export function confirm(text, { title = 'Confirm', yes = 'Yes', danger = false } = {}) {
  const d = dialog();
  if (d.open) d.close('no');
  d.querySelector('#confirm-title').textContent = title;
  d.querySelector('#confirm-text').textContent = text;
  const yesButton = d.querySelector('#confirm-yes');
  yesButton.textContent = yes;
  yesButton.classList.toggle('danger', danger);
  d.returnValue = '';
  return new Promise((resolve) => {
    pending = resolve;
    if (typeof d.showModal === 'function') {
      d.showModal();
      d.querySelector('#confirm-no').focus();
    } else {
      pending = null;
      resolve(window.confirm(text));
    }
  });
}

/** Closes the confirm dialog if open (as a "no"): on navigation. */
export function closeConfirm() {
  const d = document.getElementById('confirm');
  if (d && d.open) d.close('no');
}

// ---- SVG bar charts ----

/** The step of four ticks covering `max`: 1, 2, 2.5 or 5 × 10ⁿ (whole numbers when `integer`). */
export function niceStep(max, integer = false) {
  const raw = max / 4;
  if (raw <= 0) return integer ? 1 : 0.25;
  const exp = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 3, 5, 10]) {
    const step = m * exp;
    if (integer && !Number.isInteger(step)) continue;
    if (step >= raw) return step;
  }
  return 10 * exp;
}

/**
 * A bar chart as inline SVG in a <figure>, with a legend. `labels`: the
 * categories; `series`: [{name, cls, values}] (one value per label);
 * `stacked`: stack the series (else grouped); `format(v)`: axis and tooltip
 * text; `max`: a fixed top of the scale (e.g. 1 for ratios); `integer`: counts
 * (whole-number ticks).
 */
export function barChart({ title, labels, series, stacked = false, format = (v) => String(v), max, integer = false, empty = 'No data in this window.', id }) {
  // Drawn for the width it will be seen at (narrow screens get a narrower
  // drawing, so its text stays readable when the SVG scales to fit).
  const W = typeof window !== 'undefined' && window.innerWidth < 560 ? 380 : 640;
  const H = W < 640 ? 240 : 220;
  const m = { left: 58, right: 8, top: 12, bottom: 34 };
  const iw = W - m.left - m.right;
  const ih = H - m.top - m.bottom;
  const n = labels.length;
  const totals = labels.map((_, i) => (stacked
    ? series.reduce((sum, sr) => sum + (sr.values[i] || 0), 0)
    : Math.max(0, ...series.map((sr) => sr.values[i] || 0))));
  const dataMax = Math.max(0, ...totals);
  const top = max ?? niceStep(dataMax, integer) * 4;
  const y = (v) => m.top + ih - (Math.min(v, top) / top) * ih;
  const titleId = `chart-${++idCounter}`;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-labelledby': titleId, preserveAspectRatio: 'xMidYMid meet' },
    s('title', { id: titleId }, title));
  for (let t = 0; t <= 4; t++) {
    const v = (top * t) / 4;
    svg.append(s('line', { x1: m.left, x2: W - m.right, y1: y(v), y2: y(v), class: 'grid' }),
      s('text', { x: m.left - 6, y: y(v) + 4, class: 'tick', 'text-anchor': 'end' }, format(v)));
  }
  const band = n ? iw / n : iw;
  const barW = Math.max(2, band * 0.72);
  const every = Math.max(1, Math.ceil(n / Math.floor(W / 52)));
  const maxChars = Math.max(4, Math.floor((band * every) / 6.5));
  labels.forEach((label, i) => {
    const x0 = m.left + i * band + (band - barW) / 2;
    if (stacked) {
      let acc = 0;
      for (const sr of series) {
        const v = sr.values[i] || 0;
        if (v > 0) {
          svg.append(s('rect', { x: x0, y: y(acc + v), width: barW, height: Math.max(0, y(acc) - y(acc + v)), class: `bar s-${sr.cls}` },
            s('title', null, `${label}: ${sr.name} ${format(v)}`)));
        }
        acc += v;
      }
    } else {
      const w = barW / Math.max(1, series.length);
      series.forEach((sr, k) => {
        const v = sr.values[i];
        if (v === null || v === undefined) return;
        svg.append(s('rect', { x: x0 + k * w, y: y(v), width: Math.max(1, w - 1), height: Math.max(0, y(0) - y(v)), class: `bar s-${sr.cls}` },
          s('title', null, `${label}: ${sr.name} ${format(v)}`)));
      });
    }
    if (i % every === 0) {
      const text = String(label);
      svg.append(s('text', { x: x0 + barW / 2, y: H - m.bottom + 16, class: 'tick', 'text-anchor': 'middle' },
        text.length > maxChars ? `${text.slice(0, maxChars - 1)}…` : text));
    }
  });
  svg.append(s('line', { x1: m.left, x2: W - m.right, y1: y(0), y2: y(0), class: 'axis' }));
  if (dataMax === 0) {
    svg.append(s('text', { x: m.left + iw / 2, y: m.top + ih / 2, class: 'chart-empty', 'text-anchor': 'middle' }, empty));
  }
  const legend = h('ul', { class: 'legend' }, series.map((sr) => h('li', null, h('span', { class: `swatch s-${sr.cls}`, 'aria-hidden': 'true' }), sr.name)));
  return h('figure', { class: 'chart-figure', id }, h('figcaption', null, title), svg, series.length > 1 || stacked ? legend : null);
}
