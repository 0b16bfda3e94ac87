"""Checking plain data read from a file (JSON from a model file) by type and range before it is used: a schema is
built from the checkers below, and check() raises a ValueError naming the field and what was wrong with it. Before
a file is parsed at all, its text is measured (`measure`): how deep its brackets nest and how many items it holds,
since Python's JSON and TOML parsers recurse once per level and hold every item as an object."""
import math
import re

import numpy as np


class SchemaError(ValueError):
    """A field of the wrong type or out of range; the message names the field."""


def check(value, schema, where):
    """`value` checked against `schema` (a checker); a SchemaError naming the field `where` otherwise."""
    schema(value, where)
    return value


def _fail(where, wanted, value):
    shown = repr(value)
    raise SchemaError(f"{where} must be {wanted}, got {shown[:60] + '...' if len(shown) > 60 else shown}")


def number(low=-math.inf, high=math.inf, integer=False, finite=True, above=None):
    """A number (never a bool) in [low, high] (and > `above`), an integer when asked, finite unless told."""
    wanted = "an integer" if integer else "a finite number" if finite else "a number"

    def checker(value, where):
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or (finite and not math.isfinite(value)):
            _fail(where, wanted, value)
        if math.isfinite(value) and not (low <= value <= high and (above is None or value > above)):
            bounds = [f"> {above}" if above is not None else "", f">= {low}" if low > -math.inf else "",
                      f"<= {high}" if high < math.inf else ""]
            _fail(where, f"{wanted} {' and '.join(b for b in bounds if b)}", value)
    return checker


def text(choices=None):
    """A string, one of `choices` when given."""
    def checker(value, where):
        if not isinstance(value, str):
            _fail(where, "a string", value)
        if choices is not None and value not in choices:
            _fail(where, f"one of {', '.join(map(repr, choices))}", value)
    return checker


def boolean():
    """true or false."""
    def checker(value, where):
        if not isinstance(value, bool):
            _fail(where, "true or false", value)
    return checker


def anything():
    """Any JSON value (kept as it is, shown to people only as text)."""
    return lambda value, where: None


def optional(schema):
    """None or what `schema` takes."""
    def checker(value, where):
        if value is not None:
            schema(value, where)
    return checker


def either(*schemas, wanted):
    """What any of `schemas` takes (`wanted` says what in the error)."""
    def checker(value, where):
        for schema in schemas:
            try:
                schema(value, where)
                return
            except SchemaError:
                pass
        _fail(where, wanted, value)
    return checker


def list_of(schema, least=0):
    """A list of at least `least` items, each what `schema` takes."""
    def checker(value, where):
        if not isinstance(value, list) or len(value) < least:
            _fail(where, f"a list{f' of at least {least} items' if least else ''}", value)
        for i, item in enumerate(value):
            schema(item, f"{where}[{i}]")
    return checker


def mapping(values):
    """A dict of string keys, each value what `values` takes."""
    def checker(value, where):
        if not isinstance(value, dict):
            _fail(where, "an object", value)
        for key, item in value.items():
            values(item, f"{where}.{key}")
    return checker


def record(fields, required=None):
    """A dict whose keys are among `fields` (name -> checker), with the `required` ones (default: all) present."""
    required = set(fields) if required is None else set(required)

    def checker(value, where):
        if not isinstance(value, dict):
            _fail(where, "an object", value)
        missing = sorted(required - set(value))
        if missing:
            raise SchemaError(f"{where} lacks {', '.join(missing)}")
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise SchemaError(f"{where} has unknown fields {', '.join(unknown)}")
        for key, item in value.items():
            fields[key](item, f"{where}.{key}")
    return checker


# Strings (and TOML's comments) are left out when brackets and items are counted: what they hold is not structure.
JSON_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
TOML_STRINGS = re.compile(rb'"""(?:[^\\]|\\.)*?"""|\'\'\'.*?\'\'\'|"[^"\\\n]*(?:\\.[^"\\\n]*)*"|\'[^\'\n]*\'|#[^\n]*',
                          re.S)


def measure(data, strings=JSON_STRINGS):
    """(depth, items) of the JSON or TOML text `data` (bytes) without parsing it: the deepest nesting of [ and {,
    and the number of commas plus one (an upper bound on the values a parser would make), both outside strings.
    A deeper or larger text can then be refused before a recursive parser runs out of stack or memory."""
    bare = strings.sub(b"", data)
    steps = np.frombuffer(bare.translate(STEPS, NOT_BRACKETS), np.int8)  # +1 for [ and {, -1 for ] and }
    depth = level = 0
    for start in range(0, len(steps), 1 << 20):  # a running sum a block at a time: little memory at any length
        levels = np.cumsum(steps[start:start + (1 << 20)], dtype=np.int64) + level
        depth, level = max(depth, int(levels.max())), int(levels[-1])
    return depth, bare.count(b",") + 1


NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
