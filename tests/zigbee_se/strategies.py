"""Hypothesis strategies drawn from the codec's own declarative definitions."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from zigbee_se import CommandDef, Field, NibblePair, SEVersion
from zigbee_se.schema import REQUIRED
from zigbee_se.types import CharString, FixedOctets


def value_of(field: Field) -> st.SearchStrategy[Any]:
    t = field.type
    if isinstance(t, CharString):
        return st.text(max_size=t.max_length).filter(lambda s: len(s.encode("utf-8")) <= t.max_length)
    if isinstance(t, FixedOctets):
        return st.binary(min_size=t.size, max_size=t.size)
    lo, hi = field.bounds()
    if field.choices is not None:
        values: st.SearchStrategy[int] = st.sampled_from(sorted(field.choices))
    else:
        values = st.integers(lo, hi)
        if field.mask is not None:
            mask = field.mask
            values = values.map(lambda v: v & mask).filter(lambda v: lo <= v <= hi)
    if field.sentinel is not None:
        values = st.one_of(values, st.just(field.sentinel))
    return values


def leaves(items: tuple[Field | NibblePair, ...]) -> list[Field]:
    out: list[Field] = []
    for item in items:
        out += [item.high, item.low] if isinstance(item, NibblePair) else [item]
    return out


def fields_for(cmd: CommandDef, version: SEVersion) -> st.SearchStrategy[dict[str, Any]]:
    """Every field of the version: required ones always, the others sometimes left out."""
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field in leaves(cmd.fields_for(version)):
        (required if field.omitted_value is REQUIRED else optional)[field.name] = value_of(field)
    return st.fixed_dictionaries(required, optional=optional)


def expected_decoded(cmd: CommandDef, version: SEVersion, given: dict[str, Any]) -> dict[str, Any]:
    return {f.name: given.get(f.name, f.omitted_value) for f in leaves(cmd.fields_for(version))}


def typical_fields(cmd: CommandDef, version: SEVersion) -> dict[str, Any]:
    """A valid, deterministic value for every field of the version (mid-range, strings with text)."""
    out: dict[str, Any] = {}
    for field in leaves(cmd.fields_for(version)):
        t = field.type
        if isinstance(t, CharString):
            out[field.name] = "Grid alert: save"[: t.max_length]
        elif isinstance(t, FixedOctets):
            out[field.name] = bytes(range(t.size))
        elif field.choices is not None:
            out[field.name] = min(field.choices)
        else:
            lo, hi = field.bounds()
            value = (lo + hi) // 2
            if field.mask is not None:
                value &= field.mask
            out[field.name] = max(value, lo)
    return out
