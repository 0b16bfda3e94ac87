"""A table file read in chunks of rows, never whole: CSV through pandas' chunked reader (delimiter and decimal mark
sniffed as reading.read_table does), Parquet by record batches of its row groups, standard input ('-') from the bytes
it sent; the whole table or one MPI rank's share (CSV: a byte range cut at line starts; Parquet: a run of row
groups). Every chunk is a DataFrame with the table's columns (or those asked for)."""
import io
import os

import numpy as np

from ..errors import InputError
from .reading import (SNIFF_CHARS, _parquet, _read_bytes, check_table, csv_error, csv_format, grouped_numbers,
                      not_utf8, parquet_module)

CHUNK_ROWS = 1 << 16  # rows parsed at a time: a chunk of 20 float columns is 5 MiB as float32
INDEX_COLUMN = "Unnamed: 0"  # an unnamed first column, as R and pandas write a row index: not a feature


class TableFile:
    """The table at `source` ('-': standard input), whole or, with share=(rank, size), that rank's share of rows.
    Opening checks what can be checked from the first bytes (readable, not empty, not binary, UTF-8, a header
    with unique names); `columns` are the header's names (an unnamed first index column left out)."""

    def __init__(self, source, share=None):
        self.source, self.name = source, "standard input" if str(source) == "-" else str(source)
        if str(source) == "-":
            if share is not None:
                raise InputError("standard input cannot be split between processes: give a file to a distributed fit")
            self.raw = _read_bytes(source, self.name)
            head = self.raw[:SNIFF_CHARS]
        else:
            self.raw = None
            head = _read_bytes(source, self.name, 0, SNIFF_CHARS)
        self.parquet = head[:4] == b"PAR1"
        self.grouped = set()  # a CSV's columns read as numbers written with thousands separators in some chunk
        if self.parquet:
            self._open_parquet(share)
        else:
            self._open_csv(head, share)

    def _open_csv(self, head, share):
        import pandas as pd
        whole = len(head) < SNIFF_CHARS
        text, self.options = csv_format(head if whole else head[:head.rfind(b"\n") + 1] or head, self.name)
        self.header_end = head.find(b"\n") + 1 or len(head)
        try:
            names = pd.read_csv(io.StringIO(text), nrows=0, **self.options).columns
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
            raise csv_error(exc, self.name) from None
        self.all_columns = [str(c).strip() for c in names]
        self.raw_names = dict(zip(self.all_columns, map(str, names)))  # the header's names, blanks kept
        self.range = None
        if share is not None:
            total = os.path.getsize(self.source)
            rank, size = share
            self.range = [_line_start(self.source, self.header_end + k * (total - self.header_end) // size,
                                      self.header_end, total) for k in (rank, rank + 1)]
            self.head = head[:self.header_end]

    def _open_parquet(self, share):
        parquet_module(self.name)
        self.file = _parquet(self.name, lambda pq: pq.ParquetFile(io.BytesIO(self.raw) if self.raw else self.source))
        groups = self.file.num_row_groups
        rank, size = share or (0, 1)
        self.groups = list(range(rank * groups // size, (rank + 1) * groups // size))
        index = (self.file.schema_arrow.pandas_metadata or {}).get("index_columns", [])
        self.all_columns = [str(c) for c in self.file.schema_arrow.names]
        self.index = [name for name in index if isinstance(name, str)]  # a DataFrame's index that pandas stored

    @property
    def columns(self):
        """The table's columns, an index left out (a CSV's unnamed first column, a DataFrame's stored index)."""
        if self.all_columns[:1] == [INDEX_COLUMN]:
            return self.all_columns[1:]
        return [c for c in self.all_columns if c not in getattr(self, "index", ())]

    def check_header(self, rows):
        """reading.check_table's errors for this table with `rows` data rows (all shares together): a header row
        that looks like data, or a header without rows."""
        import pandas as pd
        check_table(pd.DataFrame([[0] * len(self.all_columns)] if rows else [], columns=self.all_columns), self.name)

    def chunks(self, columns=None, dtype=None):
        """DataFrames of up to CHUNK_ROWS consecutive rows, in order, with `columns` (default all); `dtype` as
        pandas.read_csv takes it (a CSV's columns are typed per chunk from their values unless it says)."""
        if self.parquet:
            yield from self._parquet_chunks(columns)
            return  # a Parquet file's columns are typed
        import pandas as pd
        raw = self.raw_names
        stream = self._stream()
        try:
            reader = pd.read_csv(stream, chunksize=CHUNK_ROWS, encoding="utf-8-sig", **self.options,
                                 usecols=None if columns is None else [raw[c] for c in columns],
                                 dtype=None if dtype is None else {raw[c]: t for c, t in dtype.items()})
            for chunk in reader:
                chunk.columns = [str(c).strip() for c in chunk.columns]
                yield self._grouped(chunk, [c for c in chunk.columns if c not in (dtype or {})])
        except UnicodeDecodeError:
            raise not_utf8(self.name, "after its first lines") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
            raise csv_error(exc, self.name) from None
        finally:
            stream.close()

    def _grouped(self, chunk, columns):
        """`chunk` with its text `columns` of numbers written with thousands separators read as numbers
        (reading.grouped_numbers), remembered in self.grouped."""
        part = chunk[columns]
        for name in grouped_numbers(part, self.options, self.name):
            chunk[name] = part[name]
            self.grouped.add(name)
        return chunk

    def numbers(self, columns, parsed):
        """(first row, float32 block) of numeric `columns`, chunk by chunk, missing values NaN; `parsed` lists those
        pandas parses as float32 (the others hold booleans, or numbers with thousands separators). (pyarrow's
        streaming CSV reader with float32 column types and 1 MiB blocks was slower and peaked higher here:
        bench/RESULTS.md, issue 28.)"""
        first = 0
        for chunk in self.chunks(columns, {c: "float32" for c in parsed if c not in self.grouped}):
            yield first, np.column_stack([chunk[c].to_numpy(np.float32, na_value=np.nan) for c in columns])
            first += len(chunk)

    def _stream(self):
        if self.raw is not None:
            return io.BytesIO(self.raw)
        if self.range is None:
            return open(self.source, "rb")
        return io.BufferedReader(_ByteRange(self.source, self.head, *self.range), 1 << 20)

    def _parquet_chunks(self, columns):
        batches = _parquet(self.name, lambda pq: self.file.iter_batches(CHUNK_ROWS, row_groups=self.groups,
                                                                       columns=columns, use_pandas_metadata=False))
        while True:
            batch = _parquet(self.name, lambda pq: next(batches, None))
            if batch is None:
                return
            yield batch.to_pandas()


class _ByteRange(io.RawIOBase):
    """The header line, then bytes [start, stop) of a file: one rank's share of a CSV table."""

    def __init__(self, path, head, start, stop):
        self.handle, self.head, self.left = open(path, "rb"), head, stop - start
        self.handle.seek(start)

    def readable(self):
        return True

    def readinto(self, buffer):
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n], self.head = self.head[:n], self.head[n:]
            return n
        data = self.handle.read(min(len(buffer), self.left))
        self.left -= len(data)
        buffer[:len(data)] = data
        return len(data)

    def close(self):
        self.handle.close()
        super().close()


def _line_start(source, position, first, total):
    """The first line start at or after `position` (between the first data line and the end of the file)."""
    if position <= first or position >= total:
        return min(max(position, first), total)
    with open(source, "rb") as handle:
        handle.seek(position - 1)
        while block := handle.read(SNIFF_CHARS):
            newline = block.find(b"\n")
            if newline >= 0:
                return handle.tell() - len(block) + newline + 1
    return total
