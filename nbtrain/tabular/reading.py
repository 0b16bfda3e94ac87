"""Reading tables: CSV (delimiter sniffed), standard input and Parquet files as pandas DataFrames with a header
row, with a one-line InputError for anything unreadable (tablefile.py reads them in chunks with the same rules). pandas is imported inside the functions so that `import nbtrain`
(and the command line's --help) stay fast."""
import csv
import difflib
import io
import itertools
import re
import sys

from ..errors import InputError

DELIMITERS = ",;\t|"
SNIFF_CHARS = 64 * 1024
SNIFF_LINES = 20


def read_table(source):
    """A DataFrame with a header row from a CSV file (delimiter sniffed), '-' for standard input, or a Parquet
    file (needs pyarrow). A first column with an empty header, as R and pandas write a row index, becomes the
    index rather than a feature. (tablefile.TableFile reads a table in chunks, or one process's share.)"""
    name = "standard input" if str(source) == "-" else str(source)
    raw = _read_bytes(source, name)
    return check_table(_parse_parquet(raw, name) if raw[:4] == b"PAR1" else _parse_csv(raw, name), name)


def check_table(frame, name):
    """Column names as text, an unnamed first column as the index, and a header and data rows required."""
    frame.columns = [str(c).strip() if isinstance(c, str) else str(c) for c in frame.columns]
    if len(frame.columns) and frame.columns[0] == "Unnamed: 0":
        frame = frame.set_index("Unnamed: 0").rename_axis(None)
    if all(_looks_numeric(c) for c in frame.columns):
        raise InputError(f"{name} has no header row (its first line looks like data: "
                         f"{', '.join(list(frame.columns)[:4])}); add a line with the column names")
    if frame.empty:
        raise InputError(f"{name} has a header but no data rows")
    return frame


def _parquet(name, read):
    """read(pyarrow.parquet), with the one-line errors of a Parquet file: pyarrow missing, or a damaged file."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{name} is a Parquet file; reading Parquet needs pyarrow "
                         "(pip install 'nbtrain[parquet]')") from None
    try:
        return read(pq)
    except Exception as exc:  # pyarrow raises its own error types for damaged files
        raise InputError(f"{name} is not a readable Parquet file ({type(exc).__name__}: {_first_line(exc)})") from None


def parquet_module(name):
    """pyarrow.parquet, or the one-line error of a Parquet file without pyarrow."""
    return _parquet(name, lambda pq: pq)


def _read_bytes(source, name, start=0, stop=None):
    """The file's bytes (from start to stop), or standard input's; one-line errors for unreadable sources."""
    if str(source) == "-":
        stream = sys.stdin
        return stream.buffer.read() if hasattr(stream, "buffer") else stream.read().encode()
    try:
        with open(source, "rb") as handle:
            handle.seek(start)
            return handle.read() if stop is None else handle.read(stop - start)
    except FileNotFoundError:
        raise InputError(f"file not found: {name}") from None
    except IsADirectoryError:
        raise InputError(f"{name} is a directory, not a data file") from None
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or exc}") from None


def _parse_parquet(raw, name):
    import pandas as pd
    return _parquet(name, lambda pq: pd.read_parquet(io.BytesIO(raw)))


def _parse_csv(raw, name, delimiter=None):
    import pandas as pd
    text, options = csv_format(raw, name, delimiter)
    try:
        frame = pd.read_csv(io.StringIO(text), **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise csv_error(exc, name) from None
    grouped_numbers(frame, options, name)
    return frame


def csv_format(raw, name, delimiter=None):
    """(text, pandas.read_csv's options) for CSV bytes `raw` (the whole table, or its first lines): the UTF-8
    text, the delimiter (sniffed unless given) and the decimal mark; one-line errors for an empty, binary or
    non-UTF-8 file, a second line wider than the header and repeated column names."""
    if not raw.strip():
        raise InputError(f"{name} is empty")
    if b"\x00" in raw[:SNIFF_CHARS]:
        raise InputError(f"{name} is a binary file, not a CSV table")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise not_utf8(name, f"at offset {exc.start}") from None
    _allow_fields(len(text))
    try:
        delimiter = delimiter or sniff_delimiter(text[:SNIFF_CHARS])
        header, *rows = itertools.islice(csv.reader(io.StringIO(text), delimiter=delimiter), SNIFF_LINES)
    except csv.Error as exc:
        raise csv_error(exc, name) from None
    if rows and len(rows[0]) > len(header):
        raise InputError(f"{name}: line 2 has {len(rows[0])} fields but the header has {len(header)}")
    check_unique([cell.strip() for cell in header], name)
    decimal = "," if delimiter == ";" and has_decimal_commas(rows) else "."
    return text, dict(sep=delimiter, skipinitialspace=_spaced(header), decimal=decimal)


def not_utf8(name, where):
    return InputError(f"{name} is not UTF-8 text (undecodable byte {where}); save it as a UTF-8 CSV file")


def csv_error(exc, name):
    return InputError(f"{name} is not a readable CSV table: {_first_line(exc)}")


def _spaced(header):
    """Whether the header writes a blank after every delimiter ("a, b, c"): then the blank belongs to the
    delimiter, in every line; otherwise a cell keeps its leading blanks (a label " x" is not "x")."""
    return len(header) > 1 and all(cell[:1].isspace() for cell in header[1:])


def _allow_fields(size):
    """Let the csv module (the sniffer, the header) read a field as long as the text: pandas reads any length, so
    the csv module's 131,072-character default protects nothing here."""
    if csv.field_size_limit() < size:
        csv.field_size_limit(min(size, 2**31 - 1))


def sniff_delimiter(sample):
    """The delimiter among , ; tab | that splits the first lines into the same number of fields, the most
    fields winning; failing that, the one that splits the header line most. A decimal comma splits data lines
    but not the header, so '7,4;0,7' files are read as ';'-separated."""
    lines = sample.splitlines()
    if len(sample) >= SNIFF_CHARS and len(lines) > 1:
        lines = lines[:-1]  # the sample may end inside a line
    lines = [line for line in lines[:SNIFF_LINES] if line.strip()]

    def score(delimiter):
        widths = [len(row) for row in csv.reader(lines, delimiter=delimiter)]
        return len(set(widths)) == 1 and widths[0] > 1, widths[0]
    return max(DELIMITERS, key=score)


DECIMAL_COMMA, DECIMAL_POINT = re.compile(r"^[-+]?\d*(?:\.\d{3})*,\d+$"), re.compile(r"^[-+]?\d*\.\d+$")
POINT_GROUPS = re.compile(r"^[-+]?\d{1,3}(?:\.\d{3})+$")  # 1.234: thousands in a decimal-comma table
# a number with thousands separators, by decimal mark: 1,234.5 (or 1,234) and 1.234,5 (or 1.234)
GROUPED = {".": re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$|^[-+]?\d*\.?\d+$"),
           ",": re.compile(r"^[-+]?\d{1,3}(?:\.\d{3})+(?:,\d+)?$|^[-+]?\d*,?\d+$")}


def has_decimal_commas(rows):
    """Whether the first data rows of a ';'-separated table write numbers with a decimal comma (7,4 or 1.234,5)
    and none with a point that cannot be a thousands separator (7.4), as European spreadsheets save them."""
    cells = [cell.strip() for row in rows for cell in row]
    return (any(DECIMAL_COMMA.match(c) for c in cells)
            and not any(DECIMAL_POINT.match(c) and not POINT_GROUPS.match(c) for c in cells))


def grouped_numbers(frame, options, name):
    """The names of the text columns of `frame` (read with csv_format's `options`) whose every value is a number
    written with thousands separators (1,234.5; 1.234,5 in a decimal-comma table), converted in place to numbers.
    Left as text, with a warning naming the column (it would otherwise become a categorical feature unnoticed): a
    column where most values are such numbers but some are not, and one of 1,234 alone in a ';' table, where the
    comma may as well be a decimal mark. (A streamed table applies this to each chunk.)"""
    import warnings
    import pandas as pd
    decimal, delimiter = options["decimal"], options["sep"]
    pattern, groups = GROUPED[decimal], "," if decimal == "." else "."
    converted = []
    for column in frame.columns:
        values = frame[column].dropna()
        if values.empty or pd.api.types.is_numeric_dtype(values) or not all(isinstance(v, str) for v in values):
            continue
        values = values.str.strip()
        numeric = values.str.fullmatch(pattern.pattern)
        grouped = numeric & values.str.contains(groups, regex=False)
        if not grouped.any():
            continue
        sure = delimiter != ";" or decimal == "," or (grouped & values.str.contains(".", regex=False)).any()
        if numeric.all() and sure:
            plain = frame[column].str.strip().str.replace(groups, "", regex=False)
            frame[column] = pd.to_numeric(plain.str.replace(decimal, ".", regex=False))
            converted.append(column)
        elif numeric.all():
            warnings.warn(f"{name}: column {column!r} holds numbers such as {values[grouped].iloc[0]!r}, whose comma "
                          "may be a thousands separator or a decimal mark: read as text (categories)", TableWarning,
                          stacklevel=3)
        elif numeric.mean() >= 0.5:
            warnings.warn(f"{name}: column {column!r} holds numbers with thousands separators but also "
                          f"{values[~numeric].iloc[0]!r}: read as text (categories)", TableWarning, stacklevel=3)
    return converted


class TableWarning(UserWarning):
    """A table read as asked but perhaps not as meant (a column of numbers read as text)."""


def check_unique(names, source):
    """An InputError naming the column names that occur more than once (pandas would rename the second copy
    silently, and a repeated target would become a feature)."""
    seen, repeated = set(), []
    for column in names:
        if column in seen and column not in repeated:
            repeated.append(column)
        seen.add(column)
    if repeated:
        raise InputError(f"{source} has more than one column named {', '.join(map(repr, repeated))}; column names "
                         "must be unique: rename or remove the copies")


def _looks_numeric(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _first_line(exc):
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def column_list(frame):
    names = [repr(c) for c in frame.columns]
    return ", ".join(names[:30]) + (f" ... ({len(names)} in all)" if len(names) > 30 else "")


def unknown_column(what, name, frame, where):
    """The InputError for a column name that `frame` lacks: the closest names (difflib's, ignoring case, so
    `Quality` points at `quality`; or names with it as a word, so `id` points at `house_id`), then every column."""
    columns = [str(c) for c in frame.columns]
    lowered = {c.lower(): c for c in reversed(columns)}
    key = str(name).lower()
    close = [lowered[c] for c in difflib.get_close_matches(key, list(lowered), n=3, cutoff=0.6)]
    close += [c for c in columns if key in re.split(r"[^a-z0-9]+", c.lower()) and c not in close][:3 - len(close)]
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    return InputError(f"{what} {name!r} not found in {where}{hint} (its columns are {column_list(frame)})")
