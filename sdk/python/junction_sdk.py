"""Junction plugin SDK for Python (componentize-py), junction:plugin@0.1.0.

One file, copied beside a plugin's ``app.py`` by
``junction plugin new --lang python``. It turns plain Python (dicts in,
dicts out, errors raised as classes) into the exports of the ``transform``
world::

    from junction_sdk import InvalidInput, Transform

    class WitWorld(Transform):
        name = "acme-person"
        version = "0.1.0"
        description = "Maps an Acme contact to a person"

        def map(self, record):
            if "name" not in record:
                raise InvalidInput("missing field `name`")
            return {"name": record["name"]}

``map`` returns the records to pass on: a list, one dict, or ``None`` to
drop the record. Anything it raises that is not a ``JunctionError`` is
reported as ``internal`` with its type and message, never as a trap.

A Python connector is not offered: componentize-py 0.25.1 cannot link the
connector world (its export ``read`` collides with libc's ``read``, and its
``--stub-wasi`` stubs collide with the world's ``wasi:http`` import).
"""

import json
from typing import Any, Optional

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, log as host_log, types


class JunctionError(Exception):
    """Why a call failed: one class per case of the WIT ``error`` variant.
    The host acts on the class (retry, dead letter), never on the text."""

    def to_wit(self) -> Any:
        raise NotImplementedError


class InvalidInput(JunctionError):
    """The input is wrong; retrying it fails again. Never retried."""

    def to_wit(self) -> Any:
        return types.Error_InvalidInput(str(self))


class Unauthorized(JunctionError):
    """The remote system refused the credentials. Not retried."""

    def to_wit(self) -> Any:
        return types.Error_Unauthorized(str(self))


class NotFound(JunctionError):
    """The remote object does not exist."""

    def to_wit(self) -> Any:
        return types.Error_NotFound(str(self))


class Conflict(JunctionError):
    """The object already exists."""

    def to_wit(self) -> Any:
        return types.Error_Conflict(str(self))


class RateLimited(JunctionError):
    """The remote system asked to slow down: retried after ``retry_after_ms``."""

    def __init__(self, retry_after_ms: int = 1000):
        super().__init__(f"rate limited: retry after {retry_after_ms} ms")
        self.retry_after_ms = max(0, int(retry_after_ms))

    def to_wit(self) -> Any:
        return types.Error_RateLimited(self.retry_after_ms)


class Unavailable(JunctionError):
    """The remote system is unreachable or failing: retried with backoff."""

    def to_wit(self) -> Any:
        return types.Error_Unavailable(str(self))


class Internal(JunctionError):
    """Anything else."""

    def to_wit(self) -> Any:
        return types.Error_Internal(str(self))


_LEVELS = {
    "trace": host_log.Level.TRACE,
    "debug": host_log.Level.DEBUG,
    "info": host_log.Level.INFO,
    "warn": host_log.Level.WARN,
    "error": host_log.Level.ERROR,
}


def log(level: str, message: str) -> None:
    """Writes one log line at ``level`` (trace, debug, info, warn, error)."""
    host_log.log(_LEVELS[level], str(message))


def setting(key: str) -> Optional[str]:
    """The connection's non-secret setting ``key``, or ``None``."""
    return config.get(key)


def settings() -> dict:
    """Every non-secret setting of the connection."""
    return dict(config.get_all())


def parse_json(text: str, what: str = "the input") -> Any:
    """``text`` parsed as JSON, or ``InvalidInput`` that says why not."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidInput(f"{what} is not JSON: {e}") from None


def _to_wit(error: BaseException) -> Any:
    if isinstance(error, JunctionError):
        return error.to_wit()
    return types.Error_Internal(f"{type(error).__name__}: {error}")


class Transform(wit_world.WitWorld):
    """The ``transform`` world: set ``name``, ``version`` (as in plugin.toml)
    and ``description``, optionally ``config_schema`` (a dict), and define
    ``map(record)``."""

    name: str = ""
    version: str = ""
    description: str = ""
    config_schema: dict = {"type": "object"}

    def map(self, record: Any) -> Any:
        raise NotImplementedError("define map(self, record) in your WitWorld")

    def info(self) -> types.PluginInfo:
        return types.PluginInfo(
            name=self.name,
            version=self.version,
            description=self.description,
            operations=[],
            triggers=[],
            config_schema=json.dumps(self.config_schema),
        )

    def apply(self, input: str) -> list[str]:
        try:
            out = self.map(parse_json(input))
            if out is None:
                records = []
            elif isinstance(out, list):
                records = out
            else:
                records = [out]
            return [json.dumps(record) for record in records]
        except Err:
            raise
        except Exception as e:
            raise Err(_to_wit(e)) from None
