"""A network config (a frozen dataclass) to JSON and back: the one codec of the bundle
manifest's ``config``, a training checkpoint's ``model_config`` and the torch runner.

JSON has lists where the dataclass has tuples; reading turns them back, and refuses a
field the dataclass does not have (a config written by another version).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any


class ConfigMismatch(ValueError):
    """A stored config that does not fit the config class of this version."""


def config_to_json(config: Any) -> dict[str, Any]:
    """``config`` as JSON-ready data (tuples become lists, as they come back from a file)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_json(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a ``cls`` config from :func:`config_to_json` data."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigMismatch(f"config has unknown fields {unknown} for {cls.__name__}; it was written by "
                             f"another version of sdk")
    values = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
              for k, v in data.items()}
    return cls(**values)
