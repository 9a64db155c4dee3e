"""Bulk inserts: many rows of one table in one executemany whose statement is compiled once.

Used wherever a transaction writes rows by the hundred or thousand (a request's audit rows, a fan-out
page's delivery rows): the per-row parameter machinery of `conn.execute(table.insert(), rows)` cost
more than the database's own work there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection


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
        process = table.c[key].type.bind_processor(dialect)
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
