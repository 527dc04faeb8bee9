// Outbound HTTP for JavaScript connectors (junction:plugin@0.1.0), over
// wasi:http's outgoing handler: the host adds the connection's credentials,
// refuses hosts the connection does not allow, and times the request out.
// Copied beside `app.js` by `junction plugin new --lang js --kind connector`.
//
//   import { request } from "./junction-http.js";
//   const deal = request("GET", `${setting("base_url")}/deals/${id}`).ok().json();
//
// `request` blocks until the whole response is read (the connector world's
// exports are synchronous). `.ok()` maps a non-2xx status to the error class
// the host acts on, as the Rust SDK's `Response::ok` does.

import { handle } from "wasi:http/outgoing-handler@0.2.12";
import { Fields, OutgoingBody, OutgoingRequest } from "wasi:http/types@0.2.12";
import {
  Conflict,
  Internal,
  InvalidInput,
  JunctionError,
  NotFound,
  RateLimited,
  Unauthorized,
  Unavailable,
} from "./junction.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
// wasi:io output streams take at most 4096 bytes per blocking write.
const CHUNK = 4096;
const READ = 65536n;

const METHODS = { GET: "get", HEAD: "head", POST: "post", PUT: "put", DELETE: "delete", PATCH: "patch", OPTIONS: "options" };

/// One HTTP response, read to the end.
export class Response {
  constructor(status, headers, body) {
    this.status = status;
    this.headers = headers;
    this.body = body;
  }
  /// The first value of header `name` (any case), or `undefined`.
  header(name) {
    const wanted = name.toLowerCase();
    const found = this.headers.find(([key]) => key.toLowerCase() === wanted);
    return found === undefined ? undefined : found[1];
  }
  text() {
    return decoder.decode(this.body);
  }
  json() {
    try {
      return JSON.parse(this.text());
    } catch (e) {
      throw new Internal(`response body (status ${this.status}) is not JSON: ${e.message}`);
    }
  }
  /// This response for a 2xx status; otherwise the error the status means:
  /// 400/422 invalid input, 401/403 unauthorized, 404 not found, 409
  /// conflict, 429 rate limited (after Retry-After, 1 s when absent), 5xx
  /// unavailable, anything else internal.
  ok() {
    if (this.status >= 200 && this.status < 300) {
      return this;
    }
    let text = this.text();
    if (text.length > 500) {
      text = `${text.slice(0, 500)}…`;
    }
    const message = `status ${this.status}: ${text}`;
    switch (this.status) {
      case 400:
      case 422:
        throw new InvalidInput(message);
      case 401:
      case 403:
        throw new Unauthorized(message);
      case 404:
        throw new NotFound(message);
      case 409:
        throw new Conflict(message);
      case 429: {
        const seconds = Number(this.header("retry-after"));
        throw new RateLimited(Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 1000);
      }
      default:
        throw this.status >= 500 && this.status < 600 ? new Unavailable(message) : new Internal(message);
    }
  }
}

/// Sends `method url` with `options.headers` (an object) and a body:
/// `options.json` (sent as JSON) or `options.body` (a string or bytes).
export function request(method, url, options = {}) {
  let target;
  try {
    target = new URL(url);
  } catch (e) {
    throw new InvalidInput(`${url} is not a URL: ${e.message}`);
  }
  if (target.protocol !== "https:" && target.protocol !== "http:") {
    throw new InvalidInput(`${url} is not an http or https URL`);
  }
  const headers = Object.entries(options.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]);
  let body = options.body;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    if (!headers.some(([k]) => k === "content-type")) {
      headers.push(["content-type", "application/json"]);
    }
  }
  const bytes = body === undefined ? undefined : typeof body === "string" ? encoder.encode(body) : body;
  const fields = Fields.fromList(headers.map(([k, v]) => [k, encoder.encode(v)]));
  const outgoing = new OutgoingRequest(fields);
  const upper = String(method).toUpperCase();
  outgoing.setMethod(METHODS[upper] ? { tag: METHODS[upper] } : { tag: "other", val: upper });
  outgoing.setScheme(target.protocol === "https:" ? { tag: "HTTPS" } : { tag: "HTTP" });
  outgoing.setAuthority(target.host);
  outgoing.setPathWithQuery(`${target.pathname}${target.search}`);
  const outgoingBody = outgoing.body();
  if (bytes !== undefined && bytes.length > 0) {
    const stream = outgoingBody.write();
    for (let at = 0; at < bytes.length; at += CHUNK) {
      stream.blockingWriteAndFlush(bytes.subarray(at, at + CHUNK));
    }
    stream[Symbol.dispose]?.();
  }
  let future;
  try {
    future = handle(outgoing, undefined);
    OutgoingBody.finish(outgoingBody, undefined);
  } catch (e) {
    throw transportError(e.payload ?? e, target.host);
  }
  future.subscribe().block();
  const got = future.get();
  if (got === undefined || got.tag === "err") {
    throw new Internal(`request to ${target.host}: the response was already taken`);
  }
  if (got.val.tag === "err") {
    throw transportError(got.val.val, target.host);
  }
  const response = got.val.val;
  const responseHeaders = response.headers().entries().map(([k, v]) => [k, decoder.decode(v)]);
  const incoming = response.consume();
  const stream = incoming.stream();
  const chunks = [];
  let length = 0;
  for (;;) {
    let chunk;
    try {
      chunk = stream.blockingRead(READ);
    } catch (e) {
      const payload = e.payload ?? e;
      if (payload?.tag === "closed") {
        break;
      }
      throw new Unavailable(`reading the response from ${target.host} failed: ${describe(payload)}`);
    }
    chunks.push(chunk);
    length += chunk.length;
  }
  stream[Symbol.dispose]?.();
  const all = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return new Response(response.status(), responseHeaders, all);
}

function describe(value) {
  if (value instanceof Error) {
    return value.message;
  }
  return typeof value === "object" && value !== null && "tag" in value ? value.tag : String(value);
}

/// A wasi:http error code as the error the host acts on.
function transportError(code, host) {
  if (code instanceof JunctionError) {
    return code;
  }
  const tag = code?.tag;
  switch (tag) {
    case "HTTP-request-denied":
      return new Internal(
        `outbound request to ${host} denied by the host: the host is not on this plugin's allowlist or not granted to the connection`,
      );
    case "destination-IP-prohibited":
      return new Internal(`outbound request to ${host} denied by the host: its address is not allowed`);
    case "HTTP-response-body-size":
      return new Internal(`response from ${host} is larger than the host allows`);
    case "HTTP-request-method-invalid":
    case "HTTP-request-URI-invalid":
    case "HTTP-request-URI-too-long":
      return new InvalidInput(`request to ${host} is malformed: ${tag}`);
    default:
      return new Unavailable(`request to ${host} failed: ${describe(code)}`);
  }
}
