// A transform written in JavaScript: the same contact-to-person mapping as
// the Rust transform `junction plugin new --kind transform` writes, built
// into a WebAssembly component by ComponentizeJS (`npm ci && npm run
// build`). The exports are the `transform` world of junction:plugin@0.1.0
// (wit/plugin.wit); an error is thrown as `{ tag, val }`, the WIT `error`
// variant.

export function info() {
  return {
    name: "js-person",
    version: "0.1.0",
    description: "Maps a contact to a person, in JavaScript",
    operations: [],
    triggers: [],
    configSchema: '{"type":"object"}',
  };
}

const invalid = (message) => ({ tag: "invalid-input", val: message });

export function apply(input) {
  let contact;
  try {
    contact = JSON.parse(input);
  } catch (e) {
    throw invalid(`the input is not JSON: ${e}`);
  }
  for (const field of ["first_name", "last_name"]) {
    if (typeof contact[field] !== "string") {
      throw invalid(`missing field \`${field}\``);
    }
  }
  const name = `${contact.first_name.trim()} ${contact.last_name.trim()}`.trim();
  // No output: a contact without a name is not passed on.
  if (name === "") {
    return [];
  }
  const email = typeof contact.email === "string" ? contact.email.trim().toLowerCase() : null;
  return [JSON.stringify({ name, email })];
}
