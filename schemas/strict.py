"""Strict configuration models, config files, and config errors a user can act on.

A config key nobody reads is a silent default: ``{"langid": {"languagse": ["de"]}}`` would run
English-only without a word. Every config model therefore derives from ``StrictModel``, which
refuses unknown keys, and ``ConfigError`` turns pydantic's multi-line report into ONE line that
names the bad key, where it is, and the closest valid key (difflib), e.g.::

    config.yaml: unknown key 'langid.languagse'; did you mean 'langid.languages'?

``load_config_file`` reads JSON or YAML (by extension; ``.json`` is JSON, ``.yaml``/``.yml``
YAML, anything else is tried as YAML, which also accepts JSON) so every ``--config`` works the same.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, ValidationError


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ConfigError(ValueError):
    """A bad configuration (unknown key, wrong type, unreadable file): a one-line message."""


M = TypeVar("M", bound=BaseModel)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (``X | None``, ``list[X]``, ``dict[str, X]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The valid field names of the (sub)model at ``loc`` (a pydantic error location)."""
    models = [model]
    for part in loc:
        if isinstance(part, int):
            continue
        nxt: list[type[BaseModel]] = []
        for m in models:
            field = m.model_fields.get(str(part))
            if field is not None:
                nxt += _models_in(field.annotation)
        if not nxt:
            break
        models = nxt
    return sorted({name for m in models for name in m.model_fields})


def _dotted(loc: tuple) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")


def describe_error(exc: ValidationError, model: type[BaseModel], source: str = "config") -> str:
    """One line for a validation error: the first problem, its location, a suggestion."""
    errors = exc.errors()
    first = errors[0]
    loc = tuple(first.get("loc") or ())
    where = _dotted(loc) or "(top level)"
    if first.get("type") == "extra_forbidden":
        valid = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
        hint = (
            f"did you mean '{_dotted((*loc[:-1], close[0]))}'?"
            if close
            else f"valid keys here: {', '.join(valid)}"
        )
        msg = f"{source}: unknown key '{where}'; {hint}"
    else:
        value = first.get("input")
        shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
        msg = f"{source}: '{where}': {first.get('msg', 'invalid')} (got {shown[:80]})"
    if len(errors) > 1:
        msg += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return msg


def validate_config(model: type[M], data: Any, source: str = "config") -> M:
    """``model.model_validate(data)``, with a one-line ``ConfigError`` instead of pydantic's."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_error(exc, model, source)) from exc


def load_config_file(path: str | Path) -> dict:
    """The mapping in a JSON or YAML config file (``ConfigError`` if missing or malformed)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        if kind == "JSON":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError (not a ValueError)
        raise ConfigError(f"{path}: not valid {kind}: {str(exc).splitlines()[0]}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a config file holds a mapping of keys, not {type(data).__name__}"
        )
    return data


def config_from_file(model: type[M], path: str | Path | None, **overrides: Any) -> M:
    """``model`` from an optional JSON/YAML file, then top-level ``overrides`` (None = unset)."""
    data = load_config_file(path) if path is not None else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return validate_config(model, data, str(path) if path is not None else "config")
