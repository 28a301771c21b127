"""Bounds for the numbers clients put in paths and query strings, shared by every router.

A database integer holds at most 2**63 - 1: past it SQLite's driver raises OverflowError and the caller would
get a 500, so an id or offset outside what any row can have is refused up front with a 400 naming the parameter.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

SQL_INT_MAX = 2**63 - 1

RowId = Annotated[int, Path(ge=1, le=SQL_INT_MAX)]  # a row's id in a path: /backends/{backend_id}
Offset = Annotated[int, Query(ge=0, le=SQL_INT_MAX)]  # how many rows a page skips
