// A transform written in JavaScript with the SDK in sdk/js: the
// contact-to-person mapping of the Rust transform `junction plugin new
// --kind transform` writes, built into a WebAssembly component of the
// `transform` world of junction:plugin@0.1.0 by ComponentizeJS (`npm ci &&
// npm run build`).

import { InvalidInput, transform } from "./junction.js";

export const { info, apply } = transform({
  name: "js-person",
  version: "0.1.0",
  description: "Maps a contact to a person, in JavaScript",
  apply: (contact) => {
    for (const field of ["first_name", "last_name"]) {
      if (typeof contact?.[field] !== "string") {
        throw new InvalidInput(`missing field \`${field}\``);
      }
    }
    const name = `${contact.first_name.trim()} ${contact.last_name.trim()}`.trim();
    // No output: a contact without a name is not passed on.
    if (name === "") {
      return [];
    }
    const email = typeof contact.email === "string" ? contact.email.trim().toLowerCase() : null;
    return { name, email };
  },
});
