"""Tables read in two passes straight into the training matrices (tabular/streaming.py, tabular/tablefile.py):
the same preprocessing and arrays as prepare() on the whole DataFrame, in chunks of a few rows, from CSV, Parquet
and standard input, with the reader's one-line errors; exact medians and sums; predict and evaluate in chunks."""
import io
import math
import sys

import numpy as np
import pandas as pd
import pytest

from nbtrain import Sequential, layers
from nbtrain.errors import InputError
from nbtrain.tabular import tablefile
from nbtrain.tabular.apply import evaluation, file_evaluation, file_predictions, predictions
from nbtrain.tabular.holdout import held_out_rows, rest_share
from nbtrain.tabular.preprocessing import prepare
from nbtrain.tabular.reading import TableWarning, read_table
from nbtrain.tabular.streaming import Ranks, _exact_sum, _kth, prepare_file

FLOAT32 = dict(rel=1e-6, abs=1e-6)  # the matrix holds float32 values: statistics of them, not of float64 ones


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Chunks of 7 rows, so that every table here spans many (and a column's type can differ between them)."""
    monkeypatch.setattr(tablefile, "CHUNK_ROWS", 7)


def shop(rows=103):
    """Numbers with gaps, a text column with gaps, booleans, a column of numbers with one word in it, a row ID,
    and text, numeric and boolean targets with gaps."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"id": np.arange(rows), "a": rng.normal(size=rows) * 100,
                          "b": rng.integers(0, 5, rows).astype(object), "c": rng.choice(["red", "green", "blue"], rows),
                          "flag": rng.choice([True, False], rows), "y": rng.choice(["good", "bad", "ok"], rows),
                          "price": rng.uniform(1, 9, rows)})
    frame.loc[rng.choice(rows, 10), "a"] = np.nan
    frame.loc[rng.choice(rows, 6), "c"] = None
    frame.loc[rng.choice(rows, 5), "y"] = None
    frame.loc[rng.choice(rows, 4), "price"] = np.nan
    frame.loc[50, "b"] = "x"  # numbers in most chunks, a word in one: pandas reads the whole column as text
    return frame


def same(old, new):
    """The two Prepared agree: the same categories, labels, counts and kinds, numbers to float32 precision."""
    a, b = old.preprocessing.to_dict(), new.preprocessing.to_dict()
    for fa, fb in zip(a.pop("features"), b.pop("features")):
        for key in ("fill", "center", "scale"):
            value = fa.pop(key)
            assert fb.pop(key) == (pytest.approx(value, **FLOAT32) if isinstance(value, float) else value), key
        assert fa == fb
    ta, tb = a.pop("target"), b.pop("target")
    assert tb.pop("center") == pytest.approx(ta.pop("center")) and tb.pop("scale") == pytest.approx(ta.pop("scale"))
    assert ta == tb and a == b
    for key in ("x", "y", "x_val", "y_val"):
        np.testing.assert_allclose(getattr(new, key), getattr(old, key), rtol=1e-5, atol=1e-5, err_msg=key)
        assert getattr(new, key).dtype == np.float32
    assert new.notes == old.notes and new.warnings == old.warnings


@pytest.mark.parametrize("target, options", [
    ("y", {}), ("price", {"scaling": "minmax"}), ("flag", {"drop": ["id"], "scaling": "none"}),
    ("price", {"scaling": "robust"}), ("y", {"scaling": "robust", "drop": ["id"]}),
    ("c", {"val_split": 0.3, "seed": 4}), ("y", {"task": "multiclass", "drop": ["b", "flag"]}),
])
def test_a_streamed_csv_prepares_as_the_whole_dataframe(tmp_path, target, options):
    path = tmp_path / "shop.csv"
    shop().to_csv(path, index=False)
    shape, new = prepare_file(path, target, **options)
    same(prepare(read_table(path), target, **options), new)
    assert shape == read_table(path).shape


def test_parquet_a_decimal_comma_stdin_and_a_validation_file(tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")
    frame = shop()
    frame["b"] = frame["b"].astype(str)
    frame.to_parquet(tmp_path / "shop.parquet", row_group_size=20)
    same(prepare(read_table(tmp_path / "shop.parquet"), "y"), prepare_file(tmp_path / "shop.parquet", "y")[1])
    text = frame.to_csv(index=False, sep=";", decimal=",")
    (tmp_path / "comma.csv").write_text(text)
    same(prepare(read_table(tmp_path / "comma.csv"), "price"), prepare_file(tmp_path / "comma.csv", "price")[1])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    same(prepare(read_table(tmp_path / "comma.csv"), "price"), prepare_file("-", "price")[1])
    frame[:60].to_csv(tmp_path / "train.csv", index=False)
    frame[60:].to_csv(tmp_path / "val.csv", index=False)
    same(prepare(read_table(tmp_path / "train.csv"), "y", validation=read_table(tmp_path / "val.csv")),
         prepare_file(tmp_path / "train.csv", "y", validation=tmp_path / "val.csv")[1])


@pytest.mark.parametrize("target", ["y", "price"])
def test_a_test_split_is_held_out_before_anything_is_fitted(tmp_path, target):
    path = tmp_path / "shop.csv"
    shop().to_csv(path, index=False)
    _, new = prepare_file(path, target, val_split=0.2, test_split=0.25, seed=2)
    frame = read_table(path)
    labelled = np.flatnonzero(frame[target].notna().to_numpy())
    held = labelled[held_out_rows(len(labelled), 0.25, 2)]
    old = prepare(frame.drop(index=frame.index[held]), target, val_split=rest_share(0.2, 0.25), seed=2)
    same(old, new)
    x, y, actual = new.test
    assert len(x) == round(len(labelled) * 0.25) and x.dtype == y.dtype == np.float32
    np.testing.assert_allclose(x, old.preprocessing.transform(frame.iloc[held]), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y, old.preprocessing.target.encode(frame[target].iloc[held], "the test rows"))
    if target == "price":
        np.testing.assert_array_equal(actual, frame[target].iloc[held].to_numpy())
    else:
        assert actual is None


def test_thousands_separators_and_leading_blanks_read_as_the_whole_table_reads_them(tmp_path):
    frame = shop()
    frame["amount"] = [f"{v:,.1f}" for v in np.random.default_rng(5).uniform(0, 5000, len(frame))]
    frame["mixed"] = frame["amount"].where(np.arange(len(frame)) != 30, "lots")  # text, with a warning
    frame["c"] = " " + frame["c"]  # a label's leading blank is part of it
    frame.to_csv(tmp_path / "grouped.csv", index=False)
    with pytest.warns(TableWarning, match="'mixed' holds numbers with thousands separators but also 'lots'"):
        old = prepare(read_table(tmp_path / "grouped.csv"), "price")
    with pytest.warns(TableWarning, match="'mixed'"):
        new = prepare_file(tmp_path / "grouped.csv", "price")[1]
    same(old, new)
    features = {f.name: f for f in new.preprocessing.features}
    assert features["amount"].kind == "numeric" and features["mixed"].kind == "categorical"
    assert " red" in features["c"].categories


def test_spaces_after_the_delimiters(tmp_path):
    text = shop().to_csv(index=False).replace(",", ", ")
    (tmp_path / "spaced.csv").write_text(text)
    same(prepare(read_table(tmp_path / "spaced.csv"), "price"), prepare_file(tmp_path / "spaced.csv", "price")[1])


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"y,b\n", "has a header but no data rows"),
    (b"1,2\n3,4\n", "has no header row"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
    (b"name,city\nJos\xe9,M\xe1laga\n", "not UTF-8"),
    (b"a,b\n1,2,3,4\n5,6\n", "line 2 has 4 fields but the header has 2"),
    (b"y,b\n1,2\n3,4,5\n", "Expected 2 fields in line 3"),
    (b"y,x\n" + b"1,2\n" * 40 + "1,é\n".encode("latin-1"), "not UTF-8"),  # after the first chunk
    (b"y,x\n1,\n2,\n", "column 'x' has no values"),
    (b"y,x\n,1\n,2\n", "target column 'y' in the data has no values"),
])
def test_unreadable_tables_are_one_line_errors(tmp_path, content, message):
    (tmp_path / "t.csv").write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        prepare_file(tmp_path / "t.csv", "y")
    assert "\n" not in str(info.value)


def test_unknown_columns_name_the_closest(tmp_path):
    shop().to_csv(tmp_path / "shop.csv", index=False)
    with pytest.raises(InputError, match="target column 'Price' not found in the data; did you mean 'price'"):
        prepare_file(tmp_path / "shop.csv", "Price")
    with pytest.raises(InputError, match="column to drop 'ID' not found"):
        prepare_file(tmp_path / "shop.csv", "y", drop=["ID"])


@pytest.mark.parametrize("values", [
    [3.0], [2.0, 1.0], [5.0, -1.5, 2.25, 2.25, 0.0, -0.0], list(np.random.default_rng(0).normal(size=1001)),
    list(np.random.default_rng(1).integers(-3, 3, 500).astype(float)), [1e-30, -1e30, 7.5, np.float32(1e38)],
])
def test_the_exact_selection_gives_numpys_median(values):
    values = np.sort(np.asarray(values, np.float32).astype(np.float64))
    n = len(values)
    median = np.mean([_kth(values, k, Ranks(None)) for k in sorted({(n - 1) // 2, n // 2})])
    assert median == np.median(values)


def test_sums_are_exact_so_any_sharing_gives_the_same():
    values = np.random.default_rng(2).normal(size=10001) * 10.0 ** np.random.default_rng(3).integers(-8, 8, 10001)
    values = np.append(values, [1e300, -1e300, 5e-324, 0.0])
    assert float(_exact_sum(values, Ranks(None))) == math.fsum(values)


def test_predict_and_evaluate_read_in_chunks_as_the_whole(tmp_path):
    path = tmp_path / "shop.csv"
    shop().to_csv(path, index=False)
    frame = read_table(path)
    for target in ("y", "price"):  # fitted without 'blue': its rows are noted as unseen categories
        pre = prepare(frame[frame["c"] != "blue"], target, drop=["id"]).preprocessing
        model = Sequential([layers.Dense(pre.target.outputs, activation="softmax" if target == "y" else None)])
        model.build((None, len(pre.input_names)), seed=0)
        model.compile("adam", "sparse_categorical_crossentropy" if target == "y" else "mae", device="cpu")
        notes, streamed_notes = [], []
        whole = predictions(model, pre, read_table(path), str(path), ("id",), notes)
        pd.testing.assert_frame_equal(pd.concat(list(file_predictions(model, pre, path, ("id", "id"),
                                                                      streamed_notes)), ignore_index=True), whole)
        assert streamed_notes == notes and any("had a 'c' not seen in training ('blue')" in note for note in notes)
        notes, streamed_notes = [], []
        rows, scores = evaluation(model, pre, read_table(path), str(path), notes)
        streamed_rows, streamed = file_evaluation(model, pre, path, streamed_notes)
        assert (streamed_rows, streamed_notes) == (rows, notes) and any("'blue'" in note for note in notes)
        for name, value in scores.metrics.items():
            assert streamed.metrics[name] == pytest.approx(value, rel=1e-6), name
