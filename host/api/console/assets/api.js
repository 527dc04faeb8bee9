// The JSON API as the console calls it: the session (name, scope, CSRF
// token), one fetch wrapper whose errors are ApiError in words, and the
// upload with progress. A 401 anywhere means the session ended.

const SCOPES = ['read', 'invoker', 'operator', 'admin'];

/** The signed-in session: `{name, scope, csrf}`, or null. */
export const session = { current: null };

let sessionEnded = () => {};

/** Calls `fn(error)` when an API call answers 401. */
export function onSessionEnd(fn) {
  sessionEnded = fn;
}

/** Whether the session's scope covers `needed` (read < invoker < operator < admin). */
export function can(needed) {
  const s = session.current;
  if (!s) return false;
  return SCOPES.indexOf(s.scope) >= SCOPES.indexOf(needed) && SCOPES.includes(needed);
}

/** An error of the API (or of reaching it), with the status and the API's code. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

const LABELS = {
  0: 'No answer',
  400: 'Bad request',
  401: 'Signed out',
  403: 'Refused',
  404: 'Not found',
  405: 'Not allowed',
  409: 'Conflict',
  413: 'Too large',
  415: 'Wrong content type',
  422: 'Refused',
  429: 'Rate limited',
  500: 'Host error',
  502: 'Upstream error',
  503: 'Unavailable',
  504: 'Timed out',
};

/** An error in words: "Refused (403): token `viewer` has scope `read`; …". */
export function describe(err) {
  if (err instanceof ApiError) {
    if (err.status === 0) return `${LABELS[0]}: ${err.message}`;
    const label = LABELS[err.status] || (err.status >= 500 ? 'Host error' : 'Failed');
    return `${label} (${err.status}): ${err.message}`;
  }
  if (err && err.message) return `Something went wrong in the console: ${err.message}`;
  return 'Something went wrong in the console.';
}

function errorOf(status, data, text, statusText) {
  const e = data && typeof data === 'object' && data.error;
  if (e && typeof e === 'object' && typeof e.message === 'string') {
    return new ApiError(status, e.code || 'unknown', e.message);
  }
  const snippet = (text || '').trim().slice(0, 200);
  const message = snippet && !snippet.startsWith('<') ? snippet : statusText || 'the host answered with an error';
  return new ApiError(status, 'unknown', message);
}

function headersFor(contentType) {
  const headers = { Accept: 'application/json' };
  const s = session.current;
  if (s && s.csrf) headers['X-CSRF-Token'] = s.csrf;
  if (contentType) headers['Content-Type'] = contentType;
  return headers;
}

/**
 * One call. `options`: `body` (sent as JSON), or `raw` with `contentType`;
 * `signal` (an AbortSignal); `quiet401` (a 401 does not end the session:
 * for the session endpoint itself). Resolves to the parsed JSON (null for
 * an empty answer); rejects with ApiError, or with the AbortError.
 */
export async function request(method, path, options = {}) {
  let body;
  let contentType;
  if (options.raw !== undefined) {
    body = options.raw;
    contentType = options.contentType || 'application/octet-stream';
  } else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    contentType = 'application/json';
  }
  let res;
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: headersFor(contentType),
      body,
      signal: options.signal,
      cache: 'no-store',
    });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', `the host did not answer ${method} ${path} (${err && err.message ? err.message : 'network error'}).`);
  }
  let text = '';
  try {
    text = await res.text();
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', `the answer to ${method} ${path} broke off.`);
  }
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = errorOf(res.status, data, text, res.statusText);
    if (res.status === 401 && !options.quiet401) sessionEnded(err);
    throw err;
  }
  if (text && data === null) {
    throw new ApiError(res.status, 'not_json', `the answer to ${method} ${path} is not JSON.`);
  }
  return data;
}

export const get = (path, options) => request('GET', path, options);
export const post = (path, body, options = {}) => request('POST', path, { ...options, body });
export const put = (path, body, options = {}) => request('PUT', path, { ...options, body });
export const del = (path, options) => request('DELETE', path, options);

/** A path from segments, each percent-encoded: path('/v1/plugins', name). */
export function path(base, ...segments) {
  return [base, ...segments.map((s) => encodeURIComponent(String(s)))].join('/');
}

/** A query string from an object, leaving out empty values ("" or "?a=1&b=2"). */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * Sends `bytes` (a Blob or File) with XHR, so the upload reports progress:
 * `onProgress(loaded, total)`. Resolves to `{status, data}`; rejects with ApiError.
 */
export function upload(method, url, bytes, contentType, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [k, v] of Object.entries(headersFor(contentType))) xhr.setRequestHeader(k, v);
    xhr.upload.addEventListener('progress', (e) => {
      if (onProgress) onProgress(e.loaded, e.lengthComputable ? e.total : bytes.size);
    });
    xhr.addEventListener('load', () => {
      let data = null;
      try {
        data = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve({ status: xhr.status, data });
        return;
      }
      const err = errorOf(xhr.status, data, xhr.responseText, xhr.statusText);
      if (xhr.status === 401) sessionEnded(err);
      reject(err);
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, 'network', `the host did not answer ${method} ${url}.`)));
    xhr.addEventListener('abort', () => reject(new ApiError(0, 'aborted', 'the upload was cancelled.')));
    xhr.send(bytes);
  });
}

/** Whether `err` is the abort of a navigation (not worth showing). */
export function aborted(err) {
  return !!err && err.name === 'AbortError';
}
