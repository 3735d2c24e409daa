"""A transaction file read in chunks of rows: CSV (the csv module, streamed line by line) or Parquet (pyarrow
record batches), holding only the columns the mapping uses; no file is ever read whole."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple

from fraudtune.data.csv_mapping import CsvMapping
from fraudtune.errors import FraudtuneError

PARQUET_MAGIC = b"PAR1"


class RawRow(NamedTuple):
    """One data row: its number among the data rows (1-based), its line (CSV) or row number (Parquet), and the
    cells of the wanted columns in their order, or the problem that made the row unreadable."""

    number: int
    line: int
    cells: tuple[Any, ...] | None
    problem: str | None = None


@dataclass(frozen=True)
class Source:
    path: Path
    kind: str  # csv | parquet
    header: tuple[str, ...]
    delimiter: str = ","

    def where(self, line: int) -> str:
        """`file:line` for a CSV, `file: row N` for Parquet (which has no lines)."""
        return f"{self.path}:{line}" if self.kind == "csv" else f"{self.path}: row {line}"

    def chunks(self, columns: list[str], chunk_rows: int) -> Iterator[list[RawRow]]:
        """The rows in file order, `chunk_rows` at a time, with the cells of `columns` only."""
        reader = _csv_chunks if self.kind == "csv" else _parquet_chunks
        return reader(self, columns, chunk_rows)


def open_source(path: Path, mapping: CsvMapping) -> Source:
    """The file's kind (Parquet by its magic bytes, else CSV) and header, checked against the mapping."""
    path = Path(path)
    if not path.is_file():
        raise FraudtuneError(
            f"{path}: {'is a folder' if path.is_dir() else 'file not found'}; expected a CSV or Parquet file"
        )
    with open(path, "rb") as handle:
        magic = handle.read(4)
    source = _parquet(path) if magic == PARQUET_MAGIC else _csv(path, mapping.delimiter)
    _check_header(source, mapping)
    return source


def _csv(path: Path, delimiter: str) -> Source:
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle, delimiter=delimiter), [])
    except UnicodeDecodeError as exc:
        raise FraudtuneError(f"{path}:1: not UTF-8 (byte {exc.start}); save the file as UTF-8") from exc
    except csv.Error as exc:
        raise FraudtuneError(f"{path}:1: header: unreadable CSV ({exc})") from exc
    if not any(h.strip() for h in header):
        raise FraudtuneError(f"{path}: empty file; expected a header row and one transaction per row")
    return Source(path, "csv", tuple(h.strip() for h in header), delimiter)


def _parquet(path: Path) -> Source:
    import pyarrow.parquet as pq

    try:
        names = pq.ParquetFile(path).schema_arrow.names
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError... for a damaged file
        raise FraudtuneError(f"{path}: unreadable Parquet file ({str(exc)[:120]})") from exc
    return Source(path, "parquet", tuple(names))


def _check_header(source: Source, mapping: CsvMapping) -> None:
    where = f"{source.path}:1: header" if source.kind == "csv" else f"{source.path}: columns"
    doubled = next((h for i, h in enumerate(source.header) if h in source.header[:i]), None)
    if doubled:
        raise FraudtuneError(f"{where}: column {doubled!r} appears twice; rename one of them")
    if source.kind == "csv" and len(source.header) == 1:
        other = next((d for d in (";", "\t", "|", ",") if d != mapping.delimiter and d in source.header[0]), None)
        if other:
            raise FraudtuneError(
                f"{where}: read as one column {source.header[0][:50]!r}; the file looks {other!r}-separated: set "
                f"delimiter: {other!r} in the mapping"
            )
    missing = [f"{col!r} ({key})" for col, key in mapping.source_columns.items() if col not in source.header]
    if missing:
        shown = ", ".join(source.header)[:200]
        shown = shown if shown.isprintable() else repr(shown)[1:-1]
        raise FraudtuneError(f"{where}: missing column(s) {', '.join(missing)}; the file has {shown}")


def _csv_chunks(source: Source, columns: list[str], chunk_rows: int) -> Iterator[list[RawRow]]:
    index = [source.header.index(c) for c in columns]
    width = len(source.header)
    number, chunk = 0, []
    with open(source.path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=source.delimiter)
        try:
            next(reader)
            for cells in reader:
                if not any(cell.strip() for cell in cells):
                    continue
                number += 1
                if len(cells) != width:
                    chunk.append(RawRow(number, reader.line_num, None, f"{len(cells)} fields, the header has {width}"))
                else:
                    chunk.append(RawRow(number, reader.line_num, tuple(cells[i] for i in index)))
                if len(chunk) >= chunk_rows:
                    yield chunk
                    chunk = []
        except UnicodeDecodeError as exc:
            raise FraudtuneError(f"{source.path}:{reader.line_num + 1}: not UTF-8; save the file as UTF-8") from exc
        except csv.Error as exc:
            raise FraudtuneError(f"{source.path}:{reader.line_num}: row: unreadable CSV ({exc})") from exc
    if chunk:
        yield chunk


def _parquet_chunks(source: Source, columns: list[str], chunk_rows: int) -> Iterator[list[RawRow]]:
    import pyarrow.parquet as pq

    wanted = list(dict.fromkeys(columns))  # pyarrow reads each column once
    number = 0
    try:
        for batch in pq.ParquetFile(source.path).iter_batches(batch_size=chunk_rows, columns=wanted):
            values = {name: batch.column(name).to_pylist() for name in wanted}
            cells = zip(*([_cell(v) for v in values[c]] for c in columns), strict=True)
            chunk = [RawRow(number + k, number + k, row) for k, row in enumerate(cells, 1)]
            number += len(chunk)
            yield chunk
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
        raise FraudtuneError(f"{source.path}: row {number + 1}: unreadable Parquet data ({str(exc)[:120]})") from exc


def _cell(value: Any) -> Any:
    """A Parquet value as the CSV would hold it: text, except date-times, which stay date-times."""
    if value is None:
        return ""
    if isinstance(value, str | datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
