"""Set-based statement helpers shared by the store's modules: one executemany INSERT whose bind
conversions run once per distinct value, and an id condition written as a few ranges."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

# Bound on bind parameters per statement (SQLite >= 3.32 and asyncpg allow 32,766).
ID_CHUNK = 5000
MAX_RANGES = 32


async def insert_many(conn: AsyncConnection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT `rows` (dicts with the same keys) as one executemany. The statement is compiled once
    and each column's bind conversion runs once per distinct value (a fan-out page repeats its
    timestamps and ids thousands of times), so a row costs a tuple, not a pass through the
    per-row parameter machinery. Same SQL, same stored values as `conn.execute(table.insert(), rows)`."""
    if not rows:
        return
    dialect = conn.dialect
    keys = list(rows[0])
    compiled = table.insert().compile(dialect=dialect, column_keys=keys)
    order = compiled.positiontup
    if not compiled.positional or order is None or sorted(order) != sorted(keys):
        await conn.execute(table.insert(), list(rows))
        return
    converters: list[Any] = []
    for key in order:
        # The dialect's own implementation of the type (SQLite's DATETIME writes microseconds
        # always; the generic type would not), as `conn.execute` uses.
        process = table.c[key].type.dialect_impl(dialect).bind_processor(dialect)
        if process is None:
            converters.append(None)
        else:
            memo: dict[Any, Any] = {}

            def convert(value: Any, process: Any = process, memo: dict[Any, Any] = memo) -> Any:
                try:
                    return memo[value]
                except KeyError:
                    out = memo[value] = process(value)
                    return out
                except TypeError:  # unhashable
                    return process(value)

            converters.append(convert)
    plain = [k for k, c in zip(order, converters, strict=True) if c is None]
    if len(plain) == len(order):
        params = [tuple(row[k] for k in order) for row in rows]
    else:
        pairs = list(zip(order, converters, strict=True))
        params = [tuple(row[k] if c is None else c(row[k]) for k, c in pairs) for row in rows]
    await conn.exec_driver_sql(compiled.string, params)


def ids_condition(column: Any, ids: Sequence[int]) -> Any:
    """`column IN ids`, written as a few `BETWEEN`s when the ids form few runs (a fan-out's batch
    is one run of consecutive ids): two bind parameters instead of thousands to process."""
    ordered = sorted(ids)
    runs: list[list[int]] = []
    for i in ordered:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
            if len(runs) > MAX_RANGES:
                return column.in_(ordered)
    return sa.or_(*(column == a if a == b else column.between(a, b) for a, b in runs))
