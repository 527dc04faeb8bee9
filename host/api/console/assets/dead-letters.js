// Dead letters (#/dead-letters, #/dead-letters/{id}): the open ones, replay
// a flow's at once, and one dead letter's errors with its failed input in a
// JSON editor checked as you type (syntax, then the operation's input
// schema) before a replay; discard.

import { get, post, del, path, query, can } from './api.js';
import { h, section, table, code, kv, jsonView, confirm, errorBox, notice, busy, plural, pageHeader, when, relative, scopeNote, orDash, DASH } from './ui.js';
import { Validator } from './json-schema.js';

const link = (id) => h('a', { href: `#/dead-letters/${encodeURIComponent(id)}` }, code(id, 14));
const runLink = (id) => h('a', { href: `#/runs/${encodeURIComponent(id)}` }, code(id, 14));
const flowLink = (name) => h('a', { href: `#/flows/${encodeURIComponent(name)}` }, name);

const APPLICATORS = new Set(['properties', 'patternProperties', 'additionalProperties', 'unevaluatedProperties', 'items', 'prefixItems',
  'additionalItems', 'unevaluatedItems', 'contains', '$ref', '$recursiveRef', '$dynamicRef', 'allOf', 'anyOf', 'oneOf', 'not', 'if', 'then',
  'else', 'dependentSchemas', 'dependencies', 'propertyNames']);

/** The validator's draft for a schema's `$schema` (default 2020-12). */
export function draftOf(schema) {
  const s = schema && typeof schema === 'object' && typeof schema.$schema === 'string' ? schema.$schema : '';
  if (/draft-04/.test(s)) return '4';
  if (/draft-0[67]/.test(s)) return '7';
  if (/2019-09/.test(s)) return '2019-09';
  return '2020-12';
}

/** `#/a/b~1c` (the validator's instance location) → the JSON pointer `/a/b~1c`. */
export function pointerOf(location) {
  const raw = String(location || '#').replace(/^#/, '');
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** Line and column (1-based) of offset `pos` in `text`. */
function lineColumn(text, pos) {
  const before = text.slice(0, pos).split('\n');
  return { line: before.length, column: before[before.length - 1].length + 1 };
}

/** The syntax error of `text` as JSON in words, or null. */
export function syntaxProblem(text) {
  try {
    JSON.parse(text);
    return null;
  } catch (err) {
    const msg = String(err.message || err);
    let where = null;
    const lc = /line (\d+) column (\d+)/.exec(msg);
    const pos = /position (\d+)/.exec(msg);
    if (lc) where = { line: Number(lc[1]), column: Number(lc[2]) };
    else if (pos) where = lineColumn(text, Number(pos[1]));
    if (!text.trim()) return { message: 'The input is empty: type a JSON value (such as {}).', where: null };
    const clean = msg.replace(/^JSON\.parse: /, '').replace(/ ?\(line \d+ column \d+\)/, '').replace(/ at line \d+ column \d+ of the JSON data/, '')
      .replace(/ in JSON at position \d+/, '').replace(/ at position \d+/, '');
    return { message: where ? `Not JSON (line ${where.line}, column ${where.column}): ${clean}` : `Not JSON: ${clean}`, where };
  }
}

/** A few of the validator's messages in plainer words. */
export function plainer(message) {
  let m = /^Instance does not have required property "(.+)"\.$/.exec(message);
  if (m) return `the required property "${m[1]}" is missing.`;
  m = /^Instance type "(\w+)" is invalid\. Expected "(.+)"\.$/.exec(message);
  if (m) return `is ${/^[aeiou]/.test(m[1]) ? 'an' : 'a'} ${m[1]}; the schema wants ${m[2].replace(/", "/g, ' or ')}.`;
  return message;
}

/** The validator's errors reduced to the places that fail: [{pointer, message}]. */
export function schemaProblems(errors) {
  const kept = errors.filter((e) => !(APPLICATORS.has(e.keyword)
    && errors.some((f) => f !== e && f.keywordLocation.startsWith(`${e.keywordLocation}/`))));
  const falseAt = new Set(kept.filter((e) => e.keyword === 'false').map((e) => e.instanceLocation));
  const out = [];
  const seen = new Set();
  for (const e of kept) {
    if ((e.keyword === 'additionalProperties' || e.keyword === 'unevaluatedProperties')
      && [...falseAt].some((loc) => loc.startsWith(`${e.instanceLocation}/`))) continue;
    if (APPLICATORS.has(e.keyword) && kept.some((f) => f !== e && !APPLICATORS.has(f.keyword) && f.instanceLocation.startsWith(`${e.instanceLocation}/`))) continue;
    const pointer = pointerOf(e.instanceLocation);
    const message = e.keyword === 'false' ? 'is not allowed here (the schema has no such property or item).' : plainer(e.error);
    const key = `${pointer}\n${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    // Alternatives (anyOf, oneOf) refused by type at one place: one line.
    const t = /^(is an? \w+); the schema wants (.+)\.$/.exec(message);
    const same = t && out.find((o) => o.pointer === pointer && o.wants && o.is === t[1]);
    if (same) {
      same.wants.push(t[2]);
      same.message = `${same.is}; the schema wants ${same.wants.join(' or ')}.`;
      continue;
    }
    out.push(t ? { pointer, message, is: t[1], wants: [t[2]] } : { pointer, message });
  }
  return out.map(({ pointer, message }) => ({ pointer, message }));
}

/** A validator for `schema` (null: syntax only), or {error} when the schema cannot be used. */
export function makeValidator(schema) {
  if (schema === null || schema === undefined) return { validator: null };
  if (typeof schema !== 'object' && typeof schema !== 'boolean') return { error: 'the schema is not a JSON Schema object' };
  try {
    return { validator: new Validator(schema, draftOf(schema), false) };
  } catch (err) {
    return { error: String(err.message || err) };
  }
}

/** Checks `text`: {ok, value, syntax, problems}. */
export function check(text, validator) {
  const syntax = syntaxProblem(text);
  if (syntax) return { ok: false, syntax, problems: [] };
  const value = JSON.parse(text);
  if (!validator) return { ok: true, value, problems: [] };
  let result;
  try {
    result = validator.validate(value);
  } catch (err) {
    return { ok: false, value, problems: [{ pointer: '', message: `the schema could not be applied: ${String(err.message || err).split('\n')[0]}` }] };
  }
  return result.valid ? { ok: true, value, problems: [] } : { ok: false, value, problems: schemaProblems(result.errors) };
}

function sameJson(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

function lastError(dl) {
  const e = dl.errors && dl.errors.length ? dl.errors[dl.errors.length - 1] : null;
  return e ? h('span', { class: 'clip', title: e.message }, code(e.kind), ' ', e.message) : DASH;
}

async function renderList(ctx) {
  ctx.title('Dead letters');
  const { root, signal } = ctx;
  const data = await get('/v1/dead-letters', { signal });
  const letters = data.dead_letters || [];
  const byFlow = new Map();
  for (const dl of letters) byFlow.set(dl.flow, (byFlow.get(dl.flow) || 0) + 1);
  root.append(pageHeader('Dead letters', `${plural(letters.length, 'open dead letter')} in ${plural(byFlow.size, 'flow')}`));
  if (can('operator') && byFlow.size) {
    const bar = h('div', { class: 'actions', id: 'replay-flows' });
    for (const [flow, n] of byFlow) {
      const b = h('button', { type: 'button', class: 'write secondary', dataset: { action: 'replay-flow', flow } }, `Replay all of ${flow} (${n})`);
      b.addEventListener('click', async () => {
        const text = `Replay all ${plural(n, 'dead letter')} of flow ${flow}: each run resumes from its failed step with the input that failed, oldest first.`;
        if (!(await confirm(text, { title: `Replay all of ${flow}`, yes: 'Replay all' }))) return;
        await ctx.mutate(`Replaying the dead letters of ${flow}…`, async () => {
          const r = await post(`/v1/dead-letters/replay${query({ flow })}`);
          return `Resumed ${plural(r.runs.length, 'run')} of ${flow}${r.runs.length ? `: ${r.runs.join(', ')}` : ''}.`;
        });
      });
      bar.append(b);
    }
    root.append(section('Replay by flow', bar));
  }
  root.append(section(null, table([
    { label: 'Dead letter', cell: (d) => link(d.id) },
    { label: 'Flow', cell: (d) => flowLink(d.flow) },
    { label: 'Step', cell: (d) => d.step },
    { label: 'Attempts', cell: (d) => String(d.attempts) },
    { label: 'Last error', cell: lastError },
    { label: 'Age', cell: (d) => h('time', { datetime: d.created_at, title: new Date(d.created_at).toLocaleString() }, relative(d.created_at).replace(/ ago$/, '')) },
    { label: 'Run', cell: (d) => runLink(d.run_id) },
  ], letters, { rowAttrs: (d) => ({ dataset: { deadLetter: d.id, flow: d.flow } }), empty: 'No open dead letters.', id: 'dead-letters' })));
}

function problemsView(result) {
  if (result.syntax) return [h('p', null, result.syntax.message)];
  return [h('p', null, `The input does not match the operation’s input schema (${plural(result.problems.length, 'problem')}):`),
    h('ul', { class: 'problems' }, result.problems.map((p) => h('li', { dataset: { pointer: p.pointer } },
      h('code', { class: 'pointer' }, p.pointer === '' ? '""' : p.pointer), p.pointer === '' ? ' (the whole input)' : null, `: ${p.message}`)))];
}

function editor(ctx, dl, schemaAnswer, validator) {
  const original = dl.input === undefined ? null : dl.input;
  const text = h('textarea', { id: 'dl-input', class: 'write source-input', rows: 16, spellcheck: 'false', 'aria-describedby': 'dl-error dl-valid' });
  text.value = JSON.stringify(original, null, 2);
  const errorEl = h('div', { id: 'dl-error', role: 'alert', class: 'editor-errors' });
  const valid = h('p', { id: 'dl-valid', class: 'hint' });
  const replay = h('button', { type: 'submit', id: 'replay', class: 'write', dataset: { action: 'replay' } }, 'Replay');
  const reset = h('button', { type: 'button', class: 'write secondary', dataset: { action: 'reset' } }, 'Reset to the failed input');
  const discard = h('button', { type: 'button', class: 'write secondary danger-text', dataset: { action: 'discard' } }, 'Discard');
  const out = h('div', { id: 'dl-result', 'aria-live': 'polite' });
  let last = null;
  const run = () => {
    last = check(text.value, validator);
    text.setAttribute('aria-invalid', last.ok ? 'false' : 'true');
    replay.disabled = !last.ok;
    if (last.ok) {
      errorEl.replaceChildren();
      errorEl.classList.remove('error');
      const changed = !sameJson(last.value, original);
      valid.textContent = `${validator ? 'Valid JSON that matches the operation’s input schema' : 'Valid JSON (no schema to check it against)'}. ${changed ? 'Replay sends this corrected input.' : 'Unchanged: replay retries the input that failed.'}`;
    } else {
      errorEl.replaceChildren(...problemsView(last));
      errorEl.classList.add('error');
      valid.textContent = 'Fix the input to replay.';
    }
    return last;
  };
  text.addEventListener('input', run);
  reset.addEventListener('click', () => {
    text.value = JSON.stringify(original, null, 2);
    run();
    text.focus();
  });
  const form = h('form', { id: 'dl-form', class: 'write stack', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'dl-input' }, `Input of step ${dl.step} (JSON)`), text),
    errorEl, valid,
    h('div', { class: 'actions' }, replay, reset, discard), out);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const result = run();
    if (!result.ok) {
      text.focus();
      return;
    }
    const body = sameJson(result.value, original) ? {} : { input: result.value };
    await busy(replay, async () => {
      try {
        const r = await post(path('/v1/dead-letters', dl.id, 'replay'), body, { signal: ctx.signal });
        ctx.go(`#/runs/${encodeURIComponent(r.run)}`, `Replayed dead letter ${dl.id}: run ${r.run} resumed from step ${dl.step}${body.input !== undefined ? ' with the corrected input' : ''}.`);
      } catch (err) {
        if (err.name !== 'AbortError') out.replaceChildren(errorBox(err));
      }
    });
    replay.disabled = !(last && last.ok);
  });
  discard.addEventListener('click', async () => {
    const msg = `Discard dead letter ${dl.id} of flow ${dl.flow} (step ${dl.step}): its run ${dl.run_id} stays failed and nothing is retried. The discard is audited.`;
    if (!(await confirm(msg, { title: 'Discard', yes: 'Discard', danger: true }))) return;
    await ctx.mutate(`Discarding dead letter ${dl.id}…`, async () => {
      await del(path('/v1/dead-letters', dl.id));
      return `Discarded dead letter ${dl.id}; run ${dl.run_id} stays failed.`;
    }, '#/dead-letters');
  });
  run();
  return form;
}

async function renderDetail(ctx) {
  const id = ctx.id;
  ctx.title(`Dead letter ${id}`);
  const { root, signal } = ctx;
  const writer = can('operator');
  const [list, schemaAnswer] = await Promise.all([
    get('/v1/dead-letters', { signal }),
    get(path('/v1/dead-letters', id, 'input-schema'), { signal }).catch((err) => {
      if (err.status === 401 || err.name === 'AbortError') throw err;
      return { failed: err };
    }),
  ]);
  const dl = (list.dead_letters || []).find((d) => d.id === id);
  root.append(pageHeader(`Dead letter ${id}`, h('a', { href: '#/dead-letters' }, '← All dead letters')));
  if (!dl) {
    root.append(notice(`No open dead letter has the id ${id}: it may have been replayed or discarded.`, 'warn'));
    return;
  }
  root.append(section(null, kv([
    ['Flow', flowLink(dl.flow)],
    ['Run', h('a', { href: `#/runs/${encodeURIComponent(dl.run_id)}` }, code(dl.run_id))],
    ['Step', dl.step],
    ['Attempts', String(dl.attempts)],
    ['Dead-lettered', when(dl.created_at)],
    ['Operation', schemaAnswer.failed ? null : [schemaAnswer.connection ? h('a', { href: `#/connections/${encodeURIComponent(schemaAnswer.connection)}` }, schemaAnswer.connection) : null,
      schemaAnswer.operation ? [' · ', code(schemaAnswer.operation)] : null,
      schemaAnswer.plugin ? h('span', { class: 'muted' }, ` (${schemaAnswer.plugin}${schemaAnswer.version ? ` ${schemaAnswer.version}` : ''})`) : null]],
  ])));
  // A list, not a table: the message is what matters, and on a narrow
  // screen a table's last column is out of sight.
  const errors = dl.errors || [];
  root.append(section(`Errors (${errors.length})`, errors.length
    ? h('ol', { class: 'error-list', id: 'dl-errors' }, errors.map((e) => h('li', null,
      h('div', { class: 'error-meta' }, `${orDash(e.phase)} · attempt ${orDash(e.attempt)} · `, when(e.at), ' · ', code(e.kind)),
      h('p', { class: 'error-text' }, orDash(e.message)))))
    : h('p', { class: 'empty muted', id: 'dl-errors' }, 'No errors were recorded.')));

  const inputSection = section('Failed input');
  root.append(inputSection);
  if (!writer) {
    inputSection.append(jsonView(dl.input === undefined ? null : dl.input, { id: 'dl-input-view' }), scopeNote('operator', 'replaying and discarding'));
    return;
  }
  let validator = null;
  if (schemaAnswer.failed) {
    inputSection.append(notice(`The operation’s input schema could not be read (${schemaAnswer.failed.message}): the editor checks JSON syntax only.`, 'warn'));
  } else if (schemaAnswer.schema === null || schemaAnswer.schema === undefined) {
    inputSection.append(h('p', { class: 'hint' }, 'The operation declares no input schema: the editor checks JSON syntax only.'));
  } else {
    const made = makeValidator(schemaAnswer.schema);
    if (made.error) inputSection.append(notice(`The operation’s input schema cannot be used (${made.error}): the editor checks JSON syntax only.`, 'warn'));
    else {
      validator = made.validator;
      inputSection.append(h('details', { class: 'json-details' }, h('summary', null, `Input schema of ${schemaAnswer.operation || 'the operation'}`), jsonView(schemaAnswer.schema)));
    }
  }
  inputSection.append(editor(ctx, dl, schemaAnswer, validator));
}

export async function render(ctx) {
  if (ctx.id === undefined) return renderList(ctx);
  return renderDetail(ctx);
}
