"""Secret redaction: pure string and mapping scrubbing shared by the logs and the MQTT events.

Values under secret-looking keys are masked; every known secret value is scrubbed from every
string, however deeply nested. The instance is also a structlog processor (``__call__``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping
from typing import Any

MASK = "**********"
_SECRET_KEY = re.compile(r"secret|password|passwd|authorization|cookie|csrf|ticket", re.IGNORECASE)


class Redactor:
    """A processor that masks secret fields and scrubs known secret values from every string."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(s for s in secrets if s)

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                value = value.replace(secret, MASK)
            return value
        if isinstance(value, MutableMapping):
            return {k: self._field(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub(v) for v in value]
        if isinstance(value, BaseException):
            return self._scrub(f"{type(value).__name__}: {value}")
        return value

    def _field(self, key: str, value: Any) -> Any:
        if _SECRET_KEY.search(key) and value is not None:
            return MASK
        return self._scrub(value)

    def __call__(
        self, _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
    ) -> dict[str, Any]:
        return {k: self._field(k, v) for k, v in event_dict.items()}
