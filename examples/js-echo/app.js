// A connector written in JavaScript: the same `ping` and `echo` as the Rust
// connector `junction plugin new` writes, built into a WebAssembly component
// by ComponentizeJS (`npm ci && npm run build`). The exports are the
// `connector` world of junction:plugin@0.1.0 (wit/plugin.wit); an error is
// thrown as `{ tag, val }`, the WIT `error` variant.

const schema = (properties, required) =>
  JSON.stringify({ type: "object", properties, required, additionalProperties: false });

const operation = (name, description, input) => ({
  name,
  description,
  inputSchema: input,
  outputSchema: '{"type":"object"}',
  idempotent: true,
  undo: undefined,
});

export function info() {
  return {
    name: "js-echo",
    version: "0.1.0",
    description: "Echo connector in JavaScript: ping and echo",
    operations: [
      operation("ping", "Answers pong", schema({}, [])),
      operation(
        "echo",
        "Returns its message, repeated",
        schema({ message: { type: "string" }, times: { type: "integer", minimum: 1, maximum: 10 } }, ["message"]),
      ),
    ],
    triggers: [],
    configSchema: '{"type":"object"}',
  };
}

const invalid = (message) => ({ tag: "invalid-input", val: message });

export function check(_ctx) {}

export function invoke(_ctx, operation, input) {
  let parsed;
  try {
    parsed = JSON.parse(input);
  } catch (e) {
    throw invalid(`the input is not JSON: ${e}`);
  }
  switch (operation) {
    case "ping":
      return JSON.stringify({ pong: true });
    case "echo": {
      if (typeof parsed.message !== "string") {
        throw invalid("missing field `message`");
      }
      const times = parsed.times ?? 1;
      if (!Number.isInteger(times) || times < 1 || times > 10) {
        throw invalid(`\`times\` must be 1 to 10, not ${times}`);
      }
      return JSON.stringify({ message: Array(times).fill(parsed.message).join(" ") });
    }
    default:
      throw invalid(`unknown operation \`${operation}\`; this connector offers: ping, echo`);
  }
}

export function read(_ctx, stream, _cursor) {
  throw invalid(`unknown stream \`${stream}\`; this connector has none`);
}

export function handleWebhook(_ctx, _request) {
  return [];
}
