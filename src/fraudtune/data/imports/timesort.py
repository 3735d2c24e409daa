"""Rows in time order with bounded memory: a scan of the time column says whether the file is sorted already; if
not, an external merge sort orders it (sorted runs of at most `chunk_rows` rows on disk, then a k-way merge that
holds one row per run).

Ties in time keep the file order: the sort key is (time, row number). A row whose time cannot be read sorts first
and is rejected by the importer, as in a sorted file.
"""

from __future__ import annotations

import base64
import heapq
import json
import math
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from fraudtune.data.imports.sources import RawRow
from fraudtune.files import progress

Keyed = tuple[float, RawRow]  # (seconds since 1970, the row)


def epoch_seconds(when: datetime) -> float:
    """A date-time as seconds since 1970; a time without a zone counts as UTC (only differences matter)."""
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def keyed(rows: Iterable[RawRow], time_of: Callable[[RawRow], datetime | None]) -> Iterator[Keyed]:
    """Each row with its sort time (-inf when unreadable)."""
    for row in rows:
        when = time_of(row)
        yield (epoch_seconds(when) if when is not None else -math.inf), row


def is_sorted(chunks: Iterable[list[RawRow]], time_of: Callable[[RawRow], datetime | None]) -> tuple[bool, int]:
    """(whether the readable times never go back, number of rows): one pass over the time column."""
    last, ordered, count = -math.inf, True, 0
    bar = progress(desc="checking time order", unit="row")
    for chunk in chunks:
        count += len(chunk)
        bar.update(len(chunk))
        for seconds, _ in keyed(chunk, time_of):
            if seconds < last and seconds != -math.inf:
                ordered = False
            last = max(last, seconds)
    bar.close()
    return ordered, count


def external_sort(
    chunks: Iterable[list[RawRow]], time_of: Callable[[RawRow], datetime | None], tmp_dir: Path
) -> Iterator[Keyed]:
    """All rows by (time, row number): each chunk sorted and written as a run, then the runs merged."""
    runs: list[Path] = []
    for chunk in chunks:
        run = sorted(keyed(chunk, time_of), key=_sort_key)
        path = tmp_dir / f"run-{len(runs):05d}.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            for seconds, row in run:
                cells = None if row.cells is None else [_encode(c) for c in row.cells]
                handle.write(json.dumps([seconds, row.number, row.line, cells, row.problem]) + "\n")
        runs.append(path)
    try:
        yield from heapq.merge(*(_read_run(path) for path in runs), key=_sort_key)
    finally:
        for path in runs:
            path.unlink(missing_ok=True)


def _sort_key(item: Keyed) -> tuple[float, int]:
    return item[0], item[1].number


def _read_run(path: Path) -> Iterator[Keyed]:
    """A run written by external_sort: JSON lines, cells tagged by type where JSON has none (no pickle)."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            seconds, number, lineno, cells, problem = json.loads(line)
            yield seconds, RawRow(number, lineno, None if cells is None else tuple(_decode(c) for c in cells), problem)


def _encode(cell: object) -> object:
    """A cell as JSON: datetimes, dates, decimals and bytes (Parquet cells) tagged so they come back as they were."""
    if isinstance(cell, datetime):
        return {"$datetime": cell.isoformat()}
    if isinstance(cell, date):
        return {"$date": cell.isoformat()}
    if isinstance(cell, Decimal):
        return {"$decimal": str(cell)}
    if isinstance(cell, bytes):
        return {"$bytes": base64.b64encode(cell).decode("ascii")}
    return cell


def _decode(cell: object) -> object:
    if isinstance(cell, dict) and len(cell) == 1:
        ((tag, text),) = cell.items()
        if tag == "$datetime":
            return datetime.fromisoformat(text)
        if tag == "$date":
            return date.fromisoformat(text)
        if tag == "$decimal":
            return Decimal(text)
        if tag == "$bytes":
            return base64.b64decode(text)
    return cell
