"""A transform written in Python with the SDK in sdk/python: the
contact-to-person mapping of the Rust transform `junction plugin new --kind
transform` writes, built into a WebAssembly component of the `transform`
world of junction:plugin@0.1.0 by componentize-py (`./build.sh`)."""

from junction_sdk import InvalidInput, Transform


class WitWorld(Transform):
    name = "py-person"
    version = "0.1.0"
    description = "Maps a contact to a person, in Python"

    def map(self, contact):
        if not isinstance(contact, dict):
            raise InvalidInput("the input is not an object")
        for field in ("first_name", "last_name"):
            if not isinstance(contact.get(field), str):
                raise InvalidInput(f"missing field `{field}`")
        name = f"{contact['first_name'].strip()} {contact['last_name'].strip()}".strip()
        # No output: a contact without a name is not passed on.
        if not name:
            return None
        email = contact.get("email")
        email = email.strip().lower() if isinstance(email, str) else None
        return {"name": name, "email": email}
