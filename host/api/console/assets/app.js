// The console's entry: the session (sign-in, sign-out), the header, and the
// hash router that renders one page module into <main id="main">.
//
// A page module exports `render(ctx)`; ctx has `root` (append to it), `id`
// (the path segment after the page, decoded), `query` (URLSearchParams of the
// hash), `signal` (aborted when the page is left), `onLeave(fn)`,
// `reload(flash)`, `go(hash, flash)`, `setQuery(params)`, `replaceQuery(params)`
// (no re-render), `title(text)` and `mutate(busyText, work, target)`: a change
// made from a button (the page is cleared while it runs, so no control of the
// old page outlives the change; then the page, or `target`, is shown again
// with the outcome in words).
// The router sets `data-loaded="true"` on main and `data-page` on body when
// render resolves, and shows a rejected render's error in words. Setting
// `data-loaded` to "false" from outside while the hash stays the same (a
// test's "open this page again") renders the page again.

import { session, request, onSessionEnd, describe, aborted, ApiError } from './api.js';
import { h, errorBox, notice, closeConfirm } from './ui.js';
import * as overview from './overview.js';
import * as plugins from './plugins.js';
import * as connections from './connections.js';
import * as flows from './flows.js';
import * as runs from './runs.js';
import * as deadLetters from './dead-letters.js';
import * as audit from './audit.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const sessionBox = document.getElementById('session');
const whoami = document.getElementById('whoami');
const signOutButton = document.getElementById('sign-out');

// By the first path segment: [module, page name of the list, page name of one item].
const ROUTES = {
  '': [overview, 'overview', null],
  plugins: [plugins, 'plugins', 'plugin'],
  connections: [connections, 'connections', 'connection'],
  flows: [flows, 'flows', 'flow'],
  runs: [runs, 'runs', 'run'],
  'dead-letters': [deadLetters, 'dead-letters', 'dead-letter'],
  audit: [audit, 'audit', null],
};

let current = null;
let flash = null;
let lastPath = null;
let renderedHash = null;
let mutating = false;
let signingIn = false;

/** `#/runs/abc?flow=x` → {first: 'runs', id: 'abc', rest: [], query}. */
export function parseHash(hash) {
  const text = (hash || '').replace(/^#\/?/, '');
  const q = text.indexOf('?');
  const pathPart = q >= 0 ? text.slice(0, q) : text;
  const query = new URLSearchParams(q >= 0 ? text.slice(q + 1) : '');
  const segments = pathPart.split('/').filter((p) => p !== '').map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  return { first: segments[0] || '', id: segments[1], rest: segments.slice(2), query, path: pathPart };
}

function leave() {
  closeConfirm();
  if (!current) return;
  current.controller.abort();
  for (const fn of current.leaves) {
    try {
      fn();
    } catch {
      // a page's clean-up must not stop the next page
    }
  }
  current = null;
}

function markNav(first) {
  for (const a of nav.querySelectorAll('a')) {
    const target = parseHash(a.getAttribute('href')).first;
    if (target === first) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function finish(controller, page) {
  if (!current || current.controller !== controller) return;
  current.done = true;
  document.body.dataset.page = page;
  main.dataset.loaded = 'true';
}

function queryHash(base, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  return q.toString() ? `${base}?${q}` : base;
}

async function route() {
  if (!session.current) return;
  const hash = location.hash || '#/';
  leave();
  renderedHash = location.hash;
  const parsed = parseHash(hash);
  const entry = ROUTES[parsed.first];
  markNav(entry ? parsed.first : null);
  main.dataset.loaded = 'false';
  const controller = new AbortController();
  current = { controller, leaves: [], done: false };
  const root = h('div', { class: 'page' });
  main.replaceChildren(root);
  if (parsed.path !== lastPath) window.scrollTo(0, 0);
  lastPath = parsed.path;
  const shown = flash;
  flash = null;
  if (shown) root.append(shown.kind === 'error' ? errorBox(shown.text, 'flash') : notice(shown.text, shown.kind, 'flash'));

  if (!entry || (parsed.id !== undefined && !entry[2]) || parsed.rest.length) {
    document.title = 'Not found · Junction';
    root.append(h('h1', null, 'No such page'),
      h('p', null, 'The console has no page at ', h('code', null, hash), '. ', h('a', { href: '#/' }, 'Go to the overview'), '.'));
    finish(controller, 'not-found');
    return;
  }
  const [module, listPage, itemPage] = entry;
  const page = parsed.id !== undefined ? itemPage : listPage;
  document.title = 'Junction console';
  const ctx = {
    root,
    id: parsed.id,
    query: parsed.query,
    signal: controller.signal,
    onLeave: (fn) => current && current.controller === controller && current.leaves.push(fn),
    reload: (text, kind = 'ok') => {
      if (text) flash = { text, kind };
      route();
    },
    go: (target, text, kind = 'ok') => {
      if (text) flash = { text, kind };
      if (location.hash === target) route();
      else location.hash = target;
    },
    setQuery: (params) => {
      const target = queryHash(`#/${parsed.path}`, params);
      if (location.hash !== target) location.hash = target;
    },
    replaceQuery: (params) => {
      history.replaceState(null, '', queryHash(`#/${parsed.path}`, params));
      renderedHash = location.hash;
    },
    mutate: async (busyText, work, target) => {
      if (!current || current.controller !== controller) return;
      mutating = true;
      main.dataset.loaded = 'false';
      root.replaceChildren(notice(busyText, 'info', 'working'));
      let next;
      try {
        next = { text: await work(), kind: 'ok' };
      } catch (err) {
        if (!(err instanceof ApiError) && !aborted(err)) console.error(err);
        next = aborted(err) || (err && err.status === 401) ? null : { text: describe(err), kind: 'error' };
      }
      mutating = false;
      if (!next || !current || current.controller !== controller) return;
      flash = next;
      if (target && next.kind === 'ok' && location.hash !== target) location.hash = target;
      else route();
    },
    title: (text) => {
      document.title = `${text} · Junction`;
    },
  };
  try {
    await module.render(ctx);
  } catch (err) {
    if (controller.signal.aborted || aborted(err)) return;
    if (err && err.status === 401) return; // the sign-in form is showing
    // A fault of the page itself (not an answer of the API) is logged too.
    if (!(err instanceof ApiError)) console.error(err);
    root.append(errorBox(err));
  }
  finish(controller, page);
}

// ---- session ----

function showApp(data) {
  session.current = { name: data.name, scope: data.scope, csrf: data.csrf };
  whoami.textContent = `${data.name} · ${data.scope}`;
  const until = data.expires_at ? new Date(data.expires_at) : null;
  whoami.title = `Signed in as token “${data.name}”, scope ${data.scope}${until && !Number.isNaN(until.getTime()) ? `, until ${until.toLocaleString()}` : ''}`;
  nav.hidden = false;
  sessionBox.hidden = false;
}

function showSignIn(message, kind = 'info') {
  leave();
  mutating = false;
  signingIn = false;
  session.current = null;
  nav.hidden = true;
  sessionBox.hidden = true;
  whoami.textContent = '';
  document.title = 'Sign in · Junction';
  main.dataset.loaded = 'false';
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'current-password', required: true, spellcheck: 'false' });
  const button = h('button', { type: 'submit', id: 'sign-in-button' }, 'Sign in');
  const error = h('p', { id: 'sign-in-error', role: 'alert', class: 'error-text' });
  const form = h('form', { id: 'sign-in', class: 'sign-in panel', novalidate: false },
    h('h1', null, 'Sign in'),
    h('p', { class: 'muted' }, 'Use one of the host’s API tokens (its ', h('code', null, '[tokens]'), ' in junction.toml). The console keeps the session in an HttpOnly cookie, never the token.'),
    message ? notice(message, kind) : null,
    h('div', { class: 'field' }, h('label', { for: 'token' }, 'API token'), input),
    h('div', { class: 'actions' }, button),
    error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!input.value) {
      error.textContent = 'Type an API token first.';
      input.focus();
      return;
    }
    error.textContent = '';
    button.disabled = true;
    button.textContent = 'Signing in…';
    signingIn = true;
    main.dataset.loaded = 'false';
    try {
      const data = await request('POST', '/console/session', { body: { token: input.value }, quiet401: true });
      input.value = '';
      signingIn = false;
      showApp(data);
      if (new URLSearchParams(location.search).has('link')) history.replaceState(null, '', `${location.pathname}${location.hash}`);
      route();
    } catch (err) {
      signingIn = false;
      error.textContent = err && err.status === 401 ? `Sign-in refused (401): ${err.message}` : describe(err);
      button.disabled = false;
      button.textContent = 'Sign in';
      main.dataset.loaded = 'true';
      input.select();
    }
  });
  main.replaceChildren(form);
  document.body.dataset.page = 'sign-in';
  main.dataset.loaded = 'true';
  input.focus();
}

async function signOut() {
  signOutButton.disabled = true;
  try {
    await request('DELETE', '/console/session', { quiet401: true });
    showSignIn('Signed out.', 'ok');
  } catch (err) {
    if (err && err.status === 401) showSignIn('Signed out.', 'ok');
    else {
      const root = main.firstElementChild || main;
      root.prepend(errorBox(`Could not sign out: ${describe(err)}`));
    }
  } finally {
    signOutButton.disabled = false;
  }
}

async function checkSession() {
  try {
    const data = await request('GET', '/console/session', { quiet401: true });
    showApp(data);
    route();
  } catch (err) {
    if (err && err.status === 401) {
      const refused = new URLSearchParams(location.search).get('link') === 'refused';
      showSignIn(refused ? 'That sign-in link was already used, has expired or is not known: sign in with an API token, or ask for a new link.' : undefined, refused ? 'warn' : 'info');
      return;
    }
    const retry = h('button', { type: 'button', id: 'retry' }, 'Try again');
    retry.addEventListener('click', () => {
      main.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
      main.dataset.loaded = 'false';
      checkSession();
    });
    main.replaceChildren(h('h1', null, 'The host did not answer'), errorBox(err), retry);
    document.body.dataset.page = 'unavailable';
    main.dataset.loaded = 'true';
  }
}

function boot() {
  // A deep link /console/runs/abc (served the same page) becomes #/runs/abc.
  const pathRest = location.pathname.replace(/^\/console\/?/, '');
  if (!location.hash && pathRest && !pathRest.startsWith('assets')) {
    history.replaceState(null, '', `/console#/${pathRest}${location.search}`);
  }
  onSessionEnd(() => {
    if (session.current) showSignIn('Your session ended: sign in again.', 'warn');
  });
  signOutButton.addEventListener('click', signOut);
  window.addEventListener('hashchange', route);
  // "Open this page again": data-loaded set to false from outside, same hash.
  new MutationObserver(() => {
    if (main.dataset.loaded !== 'false' || !session.current) return;
    if ((current && !current.done) || mutating || signingIn) return;
    if (location.hash !== renderedHash) return; // a hashchange is on its way
    route();
  }).observe(main, { attributes: true, attributeFilter: ['data-loaded'] });
  const skip = document.getElementById('skip-link');
  if (skip) {
    skip.addEventListener('click', (event) => {
      event.preventDefault();
      main.focus();
    });
  }
  checkSession();
}

boot();
