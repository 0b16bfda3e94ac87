"""The tabular product below the command line: reading files, task inference (regression, binary, multiclass),
imputation, scaling, one-hot encoding, the split, row-ID warnings, "did you mean" for columns, class weights,
classifier scores, and the plain-data record that lets a saved model repeat all of it."""
import io
import json
import sys

import numpy as np
import pandas as pd
import pytest

from nbtrain import InputError, ModelFileError
from nbtrain.tabular.apply import classifier_scores
from nbtrain.tabular.preprocessing import Feature, Preprocessing, Target, looks_like_row_id, prepare, split_rows
from nbtrain.tabular.reading import read_table, sniff_delimiter, unknown_column
from nbtrain.tabular.recipe import class_weights

WINE_LIKE = [("fixed acidity", [7.4, 7.8, 11.2]), ("pH", [3.51, 3.2, 3.16]), ("quality", [5, 5, 6])]


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


# ------------------------------------------------------------------------------------------------ reading
@pytest.mark.parametrize("delimiter, quote", [(",", ""), (";", '"'), ("\t", ""), ("|", "")])
def test_read_table_sniffs_the_delimiter(tmp_path, delimiter, quote):
    header = delimiter.join(f"{quote}{name}{quote}" for name, _ in WINE_LIKE)
    rows = [delimiter.join(str(values[i]) for _, values in WINE_LIKE) for i in range(3)]
    frame = read_table(write(tmp_path, "\n".join([header, *rows]) + "\n"))
    assert list(frame.columns) == [name for name, _ in WINE_LIKE]
    assert frame["pH"].tolist() == [3.51, 3.2, 3.16]


def test_sniffer_prefers_the_delimiter_that_splits_the_header():
    assert sniff_delimiter("a;b;c\n7,4;0,7;1,2\n") == ";"  # decimal commas split the data lines, not the header
    assert sniff_delimiter("a,b\n1,2,3\n") == ","  # no consistent split: the header decides
    assert sniff_delimiter("only\n1\n2\n") == ","


def test_unnamed_first_column_is_the_row_index(tmp_path):
    frame = read_table(write(tmp_path, '"","V1","Class"\n"1",0.5,"good"\n"2",0.25,"bad"\n'))
    assert list(frame.columns) == ["V1", "Class"]
    assert frame.index.tolist() == [1, 2]


def test_semicolon_files_with_decimal_commas_are_read_as_numbers(tmp_path):
    frame = read_table(write(tmp_path, "fixed acidity;density;quality;note\n7,4;0,9978;5;a,b\n-7,8;,99;6;c\n"))
    assert frame["fixed acidity"].tolist() == [7.4, -7.8] and frame["density"].tolist() == [0.9978, 0.99]
    assert frame["quality"].tolist() == [5, 6] and frame["note"].tolist() == ["a,b", "c"]
    points = read_table(write(tmp_path, "a;b\n7.5;1,5\n1.0;2\n"))  # a decimal point anywhere: commas are text
    assert points["a"].tolist() == [7.5, 1.0] and points["b"].tolist() == ["1,5", "2"]


def test_a_repeated_column_name_is_refused(tmp_path):
    with pytest.raises(InputError, match="has more than one column named 'y'; column names must be unique"):
        read_table(write(tmp_path, "y,x, y\n1,2,3\n"))  # pandas would read the second as 'y.1' (or ' y')


def test_read_table_from_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a;b\n1;x\n2;y\n")))
    frame = read_table("-")
    assert frame.to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}


def test_read_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    original = pd.DataFrame({"x": [1.5, 2.5], "color": ["red", "blue"]})
    original.to_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.parquet"), original)


def test_damaged_parquet_is_an_input_error(tmp_path):
    # without pyarrow the message says to install it; with it, that the file is not readable
    with pytest.raises(InputError, match="Parquet"):
        read_table(write(tmp_path, b"PAR1 not really parquet", "t.parquet"))


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"  \n\n", "is empty"),
    (b"a,b\n", "has a header but no data rows"),
    (b"1,2\n3,4\n", "has no header row"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
    (b"name,city\nJos\xe9,M\xe1laga\n", "not UTF-8"),
    (b"a,b\n1,2,3,4\n5,6\n", "line 2 has 4 fields but the header has 2"),
    (b"a,b\n1,2\n3,4,5\n", "Expected 2 fields in line 3"),
])
def test_unreadable_tables_are_one_line_input_errors(tmp_path, content, message):
    with pytest.raises(InputError, match=message) as info:
        read_table(write(tmp_path, content))
    assert "\n" not in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="is a directory"):
        read_table(tmp_path)


# ------------------------------------------------------------------------------------------------ the target
@pytest.mark.parametrize("values, labels", [
    ([0, 1, 1, 0], [0, 1]),
    (["yes", "no", "yes"], ["no", "yes"]),
    (["good", "bad", None, "good"], ["bad", "good"]),
    ([True, False, True], [False, True]),
    ([3.5, 8.0, 8.0], [3.5, 8.0]),
])
def test_two_distinct_values_make_a_binary_task_with_sorted_labels(values, labels):
    target = Target.infer(pd.Series(values), "y")
    assert (target.task, target.labels) == ("binary", labels)
    assert json.loads(json.dumps(target.labels)) == labels  # plain JSON values


def test_numeric_targets_with_more_values_are_regression():
    assert Target.infer(pd.Series([3, 4, 5, 5]), "q").task == "regression"
    assert Target.infer(pd.Series([0, 1, 1]), "q", task="regression").task == "regression"


def test_text_targets_with_more_values_are_multiclass_with_sorted_labels():
    target = Target.infer(pd.Series(["b", "c", "a", None, "b", "a", "c", "b"]), "y")
    assert (target.task, target.labels, target.outputs) == ("multiclass", ["a", "b", "c"], 3)


def test_an_integer_score_is_multiclass_only_when_asked():
    quality = pd.Series([5, 6, 5, 7, 3, 6, 5, 6])
    assert Target.infer(quality, "quality").task == "regression"
    target = Target.infer(quality, "quality", task="multiclass")
    assert (target.task, target.labels) == ("multiclass", [3, 5, 6, 7])
    assert json.loads(json.dumps(target.labels)) == [3, 5, 6, 7]


def test_multiclass_encoding_counts_and_decoding():
    target = Target("grade", "multiclass", ["a", "b", "c"])
    target.fit(pd.Series(["c", "a", "c", "c"]))
    assert target.counts == [1, 0, 3]  # training rows per class, in label order
    np.testing.assert_array_equal(target.encode(pd.Series(["b", "c", "a"]), "data")[:, 0], [1, 2, 0])
    decoded = target.decode(np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], np.float32))
    assert list(decoded.columns) == ["prediction", "probability_a", "probability_b", "probability_c"]
    assert decoded["prediction"].tolist() == ["b", "a"]
    np.testing.assert_allclose(decoded["probability_b"], [0.7, 0.2], rtol=1e-6)
    assert target.mapping(counts=True) == "'a' -> 0 (1 training rows), 'b' -> 1 (0), 'c' -> 2 (3)"
    with pytest.raises(InputError, match="values the model was not trained on: 'd'"):
        target.encode(pd.Series(["a", "d"]), "data")


def test_numeric_class_labels_name_their_probability_columns_without_a_decimal_point():
    decoded = Target("q", "multiclass", [5.0, 6.0, 7.5]).decode(np.eye(3))
    assert list(decoded.columns) == ["prediction", "probability_5", "probability_6", "probability_7.5"]


@pytest.mark.parametrize("values, task, message", [
    (["a", "a", None], "auto", "only one distinct value"),
    ([None, None], "auto", "no values"),
    (["u", "v", "w"], "regression", "not numeric"),
    (["u", "v"], "regression", "not numeric"),
    ([1, 2, 3], "binary", "two distinct values; 'y' has 3 .*use --task multiclass"),
    (["u", "v", "w", "u"], "auto", "has 3 distinct values in 4 rows .*too few rows per class"),
])
def test_unusable_targets(values, task, message):
    with pytest.raises(InputError, match=message):
        Target.infer(pd.Series(values, dtype=object if isinstance(values[0], str) or values[0] is None else None),
                     "y", task)


def test_regression_target_is_standardized_with_training_statistics_and_decoded_back():
    target = Target("price", "regression")
    target.fit(pd.Series([10.0, 20.0, 30.0]))
    assert (target.center, target.scale) == pytest.approx((20.0, np.std([10, 20, 30])))
    y = target.encode(pd.Series([10.0, 25.0, 40.0]), "data")
    assert y.dtype == np.float32 and y.shape == (3, 1)
    np.testing.assert_allclose(target.decode(y)["prediction"], [10.0, 25.0, 30.0], rtol=1e-6)  # the training range


def test_binary_target_encoding_and_decoding():
    target = Target("Class", "binary", ["bad", "good"])
    np.testing.assert_array_equal(target.encode(pd.Series(["good", "bad", "good"]), "data")[:, 0], [1, 0, 1])
    decoded = target.decode(np.array([[0.9], [0.5], [0.1]], np.float32))
    assert decoded["prediction"].tolist() == ["good", "bad", "bad"]  # probability > 0.5 means labels[1]
    np.testing.assert_allclose(decoded["probability"], [0.9, 0.5, 0.1])
    with pytest.raises(InputError, match="values the model was not trained on: 'maybe'"):
        target.encode(pd.Series(["good", "maybe"]), "data")


def test_numeric_labels_match_across_integer_and_float_columns():
    target = Target.infer(pd.Series([0, 1, 1]), "y")
    np.testing.assert_array_equal(target.encode(pd.Series([1.0, 0.0]), "data")[:, 0], [1, 0])


# ------------------------------------------------------------------------------------------------ features
def test_numeric_feature_imputes_the_training_median_then_scales():
    train = pd.Series([1.0, np.nan, 3.0, 10.0, np.inf])
    for scaling, expected in [("standard", ((1 + 3 + 10) / 3, np.std([1, 3, 10]))), ("minmax", (1.0, 9.0)),
                              ("none", (0.0, 1.0))]:
        feature = Feature.fit(train, "x", scaling)
        assert feature.fill == 3.0  # median of the finite training values
        assert (feature.center, feature.scale) == pytest.approx(expected)
        out = feature.transform(pd.Series([np.nan, 10.0]), "data")[:, 0]
        np.testing.assert_allclose(out, (np.array([3.0, 10.0]) - expected[0]) / expected[1])


def test_constant_numeric_column_becomes_zeros():
    feature = Feature.fit(pd.Series([0, 0, 0]), "V2", "standard")
    np.testing.assert_array_equal(feature.transform(pd.Series([0, 0]), "data"), [[0.0], [0.0]])


def test_categorical_feature_one_hot_with_mode_imputation_and_unseen_as_zeros():
    feature = Feature.fit(pd.Series(["red", "blue", None, "red", "green"]), "color", "standard")
    assert (feature.kind, feature.fill, feature.categories) == ("categorical", "red", ["blue", "green", "red"])
    assert feature.outputs == ["color=blue", "color=green", "color=red"]
    block = feature.transform(pd.Series(["green", None, "purple"]), "data")
    np.testing.assert_array_equal(block, [[0, 1, 0], [0, 0, 1], [0, 0, 0]])


def test_numeric_category_codes_match_when_a_gap_makes_the_column_float():
    feature = Feature.fit(pd.Series(["a1", "7", "12"]), "zone", "standard")
    assert feature.categories == ["12", "7", "a1"]
    np.testing.assert_array_equal(feature.transform(pd.Series([7.0, np.nan, 12.0]), "data")[[0, 2]],
                                  [[0, 1, 0], [1, 0, 0]])


def test_text_in_a_numeric_column_is_an_input_error():
    feature = Feature.fit(pd.Series([1.0, 2.0]), "x", "standard")
    with pytest.raises(InputError, match="column 'x' in new.csv must be numeric but holds '\\?'"):
        feature.transform(pd.Series(["1.5", "?"]), "new.csv")


# ------------------------------------------------------------------------------------------------ the whole table
def shop(n=60, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"id": np.arange(n), "x": rng.normal(size=n), "color": rng.choice(["a", "b", "c"], n),
                          "y": rng.normal(10, 2, n)})
    frame.loc[[1, 5], "x"] = np.nan
    frame.loc[[2], "color"] = None
    frame.loc[[4], "y"] = np.nan
    frame.loc[[9], "y"] = np.inf  # counts as missing
    return frame


def test_prepare_fits_on_the_training_rows_only():
    frame = shop()
    prep = prepare(frame, "y", drop=["id"], val_split=0.25, seed=3)
    labelled = frame[np.isfinite(frame["y"])]
    train_rows, _ = split_rows(len(labelled), 0.25, 3)
    train = labelled.iloc[train_rows]
    x_feature = prep.preprocessing.features[0]
    assert x_feature.name == "x" and x_feature.center == pytest.approx(train["x"].mean())
    assert prep.preprocessing.target.center == pytest.approx(train["y"].mean())
    assert prep.preprocessing.input_names == ["x", "color=a", "color=b", "color=c"]
    assert (prep.x.shape, prep.x_val.shape) == ((44, 4), (14, 4))
    assert prep.x.dtype == np.float32 and prep.y.shape == (44, 1)
    np.testing.assert_allclose(prep.y[:, 0] * prep.preprocessing.target.scale + prep.preprocessing.target.center,
                               train["y"], rtol=1e-5)
    assert prep.notes == ["2 rows of the data have no 'y' value and were left out"]


def test_split_rows_is_a_seeded_partition():
    train, val = split_rows(10, 0.2, seed=1)
    assert (len(train), len(val)) == (8, 2)
    assert sorted([*train, *val]) == list(range(10))
    np.testing.assert_array_equal(split_rows(10, 0.2, seed=1)[1], val)
    assert not np.array_equal(split_rows(10, 0.2, seed=2)[1], val)
    assert len(split_rows(10, 0.0, seed=1)[1]) == 0
    with pytest.raises(InputError, match="too few"):
        split_rows(1, 0.5, seed=0)


def test_prepare_with_a_validation_table():
    frame, other = shop(seed=0), shop(n=30, seed=1)
    prep = prepare(frame, "y", validation=other)
    assert (len(prep.x), len(prep.x_val)) == (58, 28)
    assert prep.notes[-1] == "2 rows of the validation data have no 'y' value and were left out"


@pytest.mark.parametrize("change, kwargs, message", [
    (lambda f: f, {"target": "price"}, r"target column 'price' not found in the data \(its columns are 'id', 'x'"),
    (lambda f: f, {"target": "Y"}, r"target column 'Y' not found in the data; did you mean 'y'\? \(its columns"),
    (lambda f: f, {"target": "y", "drop": ["zzz"]}, "column to drop 'zzz' not found"),
    (lambda f: f, {"target": "y", "drop": ["y"]}, "cannot also be dropped"),
    (lambda f: f.assign(x=np.nan), {"target": "y"}, "column 'x' has no values"),
    (lambda f: f[["y"]], {"target": "y"}, "no feature columns"),
])
def test_prepare_rejects_unusable_tables(change, kwargs, message):
    with pytest.raises(InputError, match=message):
        prepare(change(shop()), **kwargs)


def test_text_columns_with_very_many_values_get_a_note():
    frame = shop(n=120).assign(name=[f"n{i % 100}" for i in range(120)])
    prep = prepare(frame, "y")
    assert any("'name' has" in note and "identifier" in note for note in prep.notes) and prep.warnings == [
        "column 'id' looks like a row ID (a different value in each of the 118 rows) and is trained on as a feature; "
        "leave it out with --drop id"]  # 'name' repeats values: many, but not a row ID


def test_a_column_that_looks_like_a_row_id_gets_a_warning_naming_the_drop_to_use():
    frame = shop(n=60).assign(**{"order no": [f"A-{i}" for i in range(60)]})
    prep = prepare(frame, "y")
    assert prep.warnings == [
        "column 'id' looks like a row ID (a different value in each of the 58 rows) and is trained on as a feature; "
        "leave it out with --drop id",
        "column 'order no' looks like a row ID (a different value in each of the 58 rows) and is trained on as a "
        "feature; leave it out with --drop 'order no'"]
    assert "id" in prep.preprocessing.input_names  # still trained on
    assert prepare(frame, "y", drop=["id", "order no"]).warnings == []


@pytest.mark.parametrize("values, row_id", [
    (np.arange(30), True),
    ([f"u{i}" for i in range(30)], True),
    (np.linspace(0, 1, 30), False),  # unique measurements, not IDs
    (np.arange(30) % 29, False),  # one value twice
    (np.arange(10), False),  # too few rows to tell
    ([None] + [f"u{i}" for i in range(29)], False),  # a row without one
])
def test_what_looks_like_a_row_id(values, row_id):
    assert looks_like_row_id(pd.Series(values)) is row_id


def test_unknown_column_names_the_closest_columns():
    frame = pd.DataFrame(columns=["fixed acidity", "quality", "pH", "house_id"])
    assert str(unknown_column("target column", "Quality", frame, "wine.csv")) == (
        "target column 'Quality' not found in wine.csv; did you mean 'quality'? (its columns are 'fixed acidity', "
        "'quality', 'pH', 'house_id')")
    assert "did you mean 'house_id'?" in str(unknown_column("column to drop", "id", frame, "x"))
    assert "did you mean" not in str(unknown_column("column to drop", "zzz", frame, "x"))


def test_balanced_class_weights_are_scikit_learns():
    y = np.array([[0], [0], [0], [1], [2], [2]], np.float32)
    assert class_weights("balanced", y) == pytest.approx({0: 6 / (3 * 3), 1: 6 / (3 * 1), 2: 6 / (3 * 2)})
    assert class_weights(None, y) is None


def test_classifier_scores():
    codes = np.array([0, 0, 1, 2, 2])
    chances = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.0, 0.0, 1.0], [0.5, 0.2, 0.3]])
    scores = classifier_scores(codes, chances)
    np.testing.assert_array_equal(scores.confusion, [[1, 1, 0], [0, 1, 0], [1, 0, 1]])
    f1 = [2 * 1 / (2 + 2), 2 * 1 / (1 + 2), 2 * 1 / (2 + 1)]
    assert scores.metrics == pytest.approx({"accuracy": 3 / 5, "macro_f1": np.mean(f1), "log_loss": -np.mean(
        np.log([0.8, 0.2, 0.8, 1.0, 0.3]))})
    assert list(scores.metrics) == ["accuracy", "log_loss", "macro_f1"]


@pytest.mark.parametrize("target", ["y", "color"])
def test_preprocessing_round_trips_through_json(target):
    frame = shop()
    pre = prepare(frame, target, scaling="minmax", drop=["id"]).preprocessing
    again = Preprocessing.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert again == pre
    np.testing.assert_array_equal(again.transform(frame), pre.transform(frame))


def test_a_first_format_preprocessing_record_is_still_read():
    record = prepare(shop(), "y", drop=["id"]).preprocessing.to_dict()
    del record["target"]["counts"]
    assert Preprocessing.from_dict({**record, "format": 1}).target.counts is None


def test_transform_finds_columns_by_name_and_reports_missing_ones():
    frame = shop()
    pre = prepare(frame, "y", drop=["id"]).preprocessing
    shuffled = frame[["color", "y", "x"]].assign(extra=1)  # other order, the target and an extra column
    np.testing.assert_array_equal(pre.transform(shuffled), pre.transform(frame))
    with pytest.raises(InputError, match="new.csv lacks the feature column 'x'"):
        pre.transform(frame.drop(columns="x"), "new.csv")


def test_unreadable_preprocessing_record_is_a_model_file_error():
    with pytest.raises(ModelFileError, match="preprocessing is unreadable"):
        Preprocessing.from_dict({"format": 1, "target": {"name": "y"}})
    with pytest.raises(ModelFileError, match="preprocessing format 99"):
        Preprocessing.from_dict({"format": 99})
