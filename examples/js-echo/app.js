// A connector written in JavaScript with the SDK in sdk/js: the `ping` and
// `echo` of the Rust connector `junction plugin new` writes, plus `get-thing`,
// one GET through the SDK's HTTP helper (the host adds credentials and
// enforces the connection's allowed hosts), and a `things` stream. Built into
// a WebAssembly component of the `connector` world of junction:plugin@0.1.0
// by ComponentizeJS (`npm ci && npm run build`).

import { connector, InvalidInput, setting } from "./junction.js";
import { request } from "./junction-http.js";

export const { info, check, invoke, read, handleWebhook } = connector({
  name: "js-echo",
  version: "0.1.0",
  description: "Echo connector in JavaScript: ping, echo and a read over HTTP",
  config: { type: "object", properties: { base_url: { type: "string" } } },
  operations: {
    ping: {
      description: "Answers pong",
      input: { type: "object", properties: {}, additionalProperties: false },
      output: { type: "object" },
      idempotent: true,
      run: () => ({ pong: true }),
    },
    echo: {
      description: "Returns its message, repeated",
      input: {
        type: "object",
        properties: { message: { type: "string" }, times: { type: "integer", minimum: 1, maximum: 10 } },
        required: ["message"],
        additionalProperties: false,
      },
      output: { type: "object" },
      idempotent: true,
      run: ({ message, times = 1 }) => {
        if (!Number.isInteger(times) || times < 1 || times > 10) {
          throw new InvalidInput(`\`times\` must be 1 to 10, not ${times}`);
        }
        return { message: Array(times).fill(message).join(" ") };
      },
    },
    "get-thing": {
      description: "Reads one thing: GET {base_url}/things/{id}",
      input: {
        type: "object",
        properties: { id: { type: "string", minLength: 1 } },
        required: ["id"],
        additionalProperties: false,
      },
      output: { type: "object" },
      idempotent: true,
      run: ({ id }) => request("GET", `${baseUrl()}/things/${encodeURIComponent(id)}`).ok().json(),
    },
  },
  streams: {
    // GET {base_url}/things?after=CURSOR: `{ things: [...], next: "..." }`.
    things: (cursor) => {
      const query = cursor === undefined ? "" : `?after=${encodeURIComponent(cursor)}`;
      const page = request("GET", `${baseUrl()}/things${query}`).ok().json();
      return { records: page.things ?? [], next: page.next ?? undefined };
    },
  },
});

function baseUrl() {
  const url = setting("base_url");
  if (url === undefined) {
    throw new InvalidInput("the connection has no `base_url` setting");
  }
  return url.replace(/\/+$/, "");
}
