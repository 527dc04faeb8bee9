// Junction plugin SDK for JavaScript (ComponentizeJS), junction:plugin@0.1.0.
//
// One file, copied beside a plugin's `app.js` by `junction plugin new --lang js`.
// It turns plain JavaScript (objects in, objects out, errors thrown as
// classes) into the exports of the `connector` or `transform` world:
//
//   import { connector, InvalidInput } from "./junction.js";
//   export const { info, check, invoke, read, handleWebhook } = connector({
//     name: "acme-crm", version: "0.1.0", description: "Acme CRM",
//     operations: {
//       "get-contact": {
//         description: "Reads one contact",
//         input: { type: "object", properties: { id: { type: "string" } }, required: ["id"] },
//         run: (input, ctx) => ({ id: input.id }),
//       },
//     },
//   });
//
// The host validates every input against the operation's schema before the
// call; what reaches `run` is parsed JSON. A connector's HTTP helper is in
// `junction-http.js` (a transform cannot import it: it has no network).

import { log as hostLog } from "junction:plugin/log@0.1.0";
import { get as configGet, getAll as configGetAll } from "junction:plugin/config@0.1.0";

/// Why a call failed: one class per case of the WIT `error` variant. The host
/// acts on the class (retry, dead letter, idempotent success), never on the text.
export class JunctionError extends Error {
  constructor(tag, val, message) {
    super(message ?? String(val));
    this.name = new.target.name;
    // The shape ComponentizeJS lowers into the WIT variant.
    this.tag = tag;
    this.val = val;
  }
}
/// The input is wrong; retrying it fails again. Never retried.
export class InvalidInput extends JunctionError {
  constructor(message) {
    super("invalid-input", String(message));
  }
}
/// The remote system refused the credentials. Not retried.
export class Unauthorized extends JunctionError {
  constructor(message) {
    super("unauthorized", String(message));
  }
}
/// The remote object does not exist.
export class NotFound extends JunctionError {
  constructor(message) {
    super("not-found", String(message));
  }
}
/// The object already exists; an idempotent create may treat this as success.
export class Conflict extends JunctionError {
  constructor(message) {
    super("conflict", String(message));
  }
}
/// The remote system asked to slow down: retried after `retryAfterMs`.
export class RateLimited extends JunctionError {
  constructor(retryAfterMs = 1000) {
    const ms = Number.isFinite(retryAfterMs) ? Math.max(0, Math.round(retryAfterMs)) : 1000;
    super("rate-limited", BigInt(ms), `rate limited: retry after ${ms} ms`);
  }
}
/// The remote system is unreachable or failing: retried with backoff.
export class Unavailable extends JunctionError {
  constructor(message) {
    super("unavailable", String(message));
  }
}
/// Anything else.
export class Internal extends JunctionError {
  constructor(message) {
    super("internal", String(message));
  }
}

/// Writes one log line at `level` (trace, debug, info, warn, error).
export function log(level, message) {
  hostLog(level, String(message));
}

/// The connection's non-secret setting `key`, or `undefined`.
export function setting(key) {
  return configGet(key);
}

/// Every non-secret setting of the connection, as an object.
export function settings() {
  return Object.fromEntries(configGetAll());
}

/// `fn()`; whatever it throws that is not a JunctionError becomes `Internal`,
/// so a bug in a plugin is reported, not turned into a trap.
function guard(fn) {
  try {
    return fn();
  } catch (e) {
    if (e instanceof JunctionError) {
      throw e;
    }
    throw new Internal(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
  }
}

/// `text` parsed as JSON, or `InvalidInput` that says why not.
export function parseJson(text, what = "the input") {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InvalidInput(`${what} is not JSON: ${e.message}`);
  }
}

const schemaText = (schema, fallback) => JSON.stringify(schema ?? fallback);

function pluginInfo({ name, version, description = "", config }, operations, triggers) {
  if (typeof name !== "string" || typeof version !== "string") {
    throw new Error("a plugin needs a `name` and a `version` (the ones in plugin.toml)");
  }
  return {
    name,
    version,
    description,
    operations,
    triggers,
    configSchema: schemaText(config, { type: "object" }),
  };
}

/// The exports of the `connector` world, from a plain description:
/// `operations` (name -> { description, input, output, idempotent, undo,
/// run(input, ctx) }), `streams` (name -> (cursor, ctx) => { records,
/// next }), `triggers` (event type -> { description, schema }),
/// `check(ctx)` and `webhook(request, ctx)` (-> events).
export function connector(plugin) {
  const operations = plugin.operations ?? {};
  const streams = plugin.streams ?? {};
  const triggers = plugin.triggers ?? {};
  const operationNames = Object.keys(operations);
  const streamNames = Object.keys(streams);
  const info = pluginInfo(
    plugin,
    operationNames.map((name) => {
      const op = operations[name];
      return {
        name,
        description: op.description ?? "",
        inputSchema: schemaText(op.input, {}),
        outputSchema: schemaText(op.output, {}),
        idempotent: op.idempotent ?? false,
        undo: op.undo,
      };
    }),
    Object.keys(triggers).map((eventType) => ({
      eventType,
      description: triggers[eventType].description ?? "",
      schema: schemaText(triggers[eventType].schema, {}),
    })),
  );
  const offers = (names) => (names.length === 0 ? "none" : names.join(", "));
  return {
    info: () => info,
    check: (ctx) => guard(() => void plugin.check?.(ctx)),
    invoke: (ctx, operation, input) =>
      guard(() => {
        const op = Object.hasOwn(operations, operation) ? operations[operation] : undefined;
        if (op === undefined) {
          throw new InvalidInput(
            `unknown operation \`${operation}\`; this connector offers: ${offers(operationNames)}`,
          );
        }
        const output = op.run(parseJson(input), ctx);
        return JSON.stringify(output ?? null);
      }),
    read: (ctx, stream, cursor) =>
      guard(() => {
        const next = Object.hasOwn(streams, stream) ? streams[stream] : undefined;
        if (next === undefined) {
          throw new InvalidInput(
            `unknown stream \`${stream}\`; this connector offers: ${offers(streamNames)}`,
          );
        }
        const page = next(cursor, ctx) ?? {};
        const records = (page.records ?? []).map((record) => JSON.stringify(record));
        const nextCursor = page.next ?? undefined;
        return { records, nextCursor, done: nextCursor === undefined };
      }),
    handleWebhook: (ctx, request) =>
      guard(() => {
        if (plugin.webhook === undefined) {
          return [];
        }
        const body = request.body;
        const incoming = {
          method: request.method,
          path: request.path,
          headers: request.headers,
          body,
          text: () => new TextDecoder().decode(body),
          json: () => parseJson(new TextDecoder().decode(body), "the webhook body"),
        };
        return (plugin.webhook(incoming, ctx) ?? []).map((event) => ({
          id: String(event.id),
          eventType: event.type,
          source: event.source,
          subject: event.subject ?? undefined,
          time: event.time ?? new Date().toISOString(),
          data: JSON.stringify(event.data ?? null),
        }));
      }),
  };
}

/// The exports of the `transform` world: `apply(record)` returns the
/// records to pass on (an array; empty drops the record, a single object is
/// one record).
export function transform(plugin) {
  const info = pluginInfo(plugin, [], []);
  return {
    info: () => info,
    apply: (input) =>
      guard(() => {
        const out = plugin.apply(parseJson(input));
        const records = out === undefined || out === null ? [] : Array.isArray(out) ? out : [out];
        return records.map((record) => JSON.stringify(record));
      }),
  };
}
