// Audit (#/audit): who did what to which target, when, newest first, with a
// filter box (the filter stays in the hash query as `q`). Needs the admin scope.

import { get, can, session } from './api.js';
import { h, table, badge, digest, when, field, pageHeader, errorBox, orDash, plural } from './ui.js';

/** The entries whose text contains every word of `filter` (case-insensitive). */
export function filterEntries(entries, filter) {
  const words = (filter || '').toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return entries;
  return entries.filter((e) => {
    const text = [e.actor, e.action, e.target, e.outcome, e.detail, e.digest, e.at].filter(Boolean).join(' ').toLowerCase();
    return words.every((w) => text.includes(w));
  });
}

export async function render(ctx) {
  ctx.title('Audit');
  const { root, signal } = ctx;
  root.append(pageHeader('Audit log'));
  if (!can('admin')) {
    const s = session.current;
    root.append(errorBox(`Refused: token \`${s.name}\` has scope \`${s.scope}\`; the audit log needs \`admin\`.`));
    return;
  }
  const data = await get('/v1/audit?limit=1000', { signal });
  const entries = [...(data.entries || [])].sort((a, b) => b.id - a.id);
  const initial = ctx.query.get('q') || '';
  const box = h('input', { id: 'audit-filter', type: 'search', value: initial, autocomplete: 'off', placeholder: 'e.g. plugin.activate admin hubspot' });
  const count = h('p', { class: 'muted', id: 'audit-count', 'aria-live': 'polite' });
  const holder = h('div');
  const show = () => {
    const shown = filterEntries(entries, box.value);
    count.textContent = box.value.trim() ? `${shown.length} of ${plural(entries.length, 'entry', 'entries')} match.` : `${plural(entries.length, 'entry', 'entries')}, newest first${entries.length >= 1000 ? ' (the newest 1000)' : ''}.`;
    holder.replaceChildren(table([
      { label: 'When', cell: (e) => when(e.at) },
      { label: 'Who', cell: (e) => e.actor },
      { label: 'What', cell: (e) => h('code', null, e.action) },
      { label: 'Target', cell: (e) => orDash(e.target) },
      { label: 'Outcome', cell: (e) => badge(e.outcome) },
      { label: 'Digest', cell: (e) => digest(e.digest) },
      { label: 'Detail', cell: (e) => (e.detail ? h('span', { class: 'clip', title: e.detail }, e.detail) : '—') },
    ], shown, { rowAttrs: (e) => ({ dataset: { audit: e.id, auditAction: e.action } }), empty: entries.length ? 'No entry matches the filter.' : 'The audit log is empty.', id: 'audit' }));
  };
  box.addEventListener('input', () => {
    show();
    const q = box.value.trim();
    ctx.replaceQuery({ q });
  });
  root.append(h('div', { class: 'filters', role: 'search' }, field('Filter (who, what, target, detail)', box)), count, holder);
  show();
}
