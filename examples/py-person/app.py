"""A transform written in Python: the same contact-to-person mapping as the
Rust transform `junction plugin new --kind transform` writes, built into a
WebAssembly component by componentize-py (`./build.sh`). The exports are the
`transform` world of junction:plugin@0.1.0 (wit/plugin.wit); an error is
raised as `Err(...)` of the WIT `error` variant."""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import types


class WitWorld(wit_world.WitWorld):
    def info(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="py-person",
            version="0.1.0",
            description="Maps a contact to a person, in Python",
            operations=[],
            triggers=[],
            config_schema='{"type":"object"}',
        )

    def apply(self, input: str) -> list[str]:
        try:
            contact = json.loads(input)
        except json.JSONDecodeError as e:
            raise Err(types.Error_InvalidInput(f"the input is not JSON: {e}"))
        for field in ("first_name", "last_name"):
            if not isinstance(contact.get(field), str):
                raise Err(types.Error_InvalidInput(f"missing field `{field}`"))
        name = f"{contact['first_name'].strip()} {contact['last_name'].strip()}".strip()
        # No output: a contact without a name is not passed on.
        if not name:
            return []
        email = contact.get("email")
        email = email.strip().lower() if isinstance(email, str) else None
        return [json.dumps({"name": name, "email": email})]
