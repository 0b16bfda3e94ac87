"""Inputs from data and files that once ended in a traceback, reached the terminal as markup or control sequences,
or were taken silently in a way the user did not mean (issue 23): each now prints literally, or ends in a one-line
error or a warning that names the problem. Every table and file is built here."""
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from modelfiles import rewrite
from nbtrain import InputError, ModelFileError, Sequential, layers, load_table_model, sweep
from nbtrain.cli import app
from nbtrain.tabular.preprocessing import prepare, split_rows
from nbtrain.tabular.reading import TableWarning, read_table
from nbtrain.tabular.streaming import prepare_file

TINY = ["--layers", "8", "--epochs", "2", "--batch-size", "64", "-q"]
ESC = "\x1b"
LABELS = ["[/]", "[link=https://example.com]click[/link]", f"bell{ESC}]0;pwned\x07{ESC}[2J"]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(result, message):
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.fixture(scope="module")
def hostile_table(tmp_path_factory):
    """A classification table whose labels and categories are rich markup and terminal escape sequences."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 2))
    path = tmp_path_factory.mktemp("data") / "markup.csv"
    pd.DataFrame({"a": x[:, 0], "kind": rng.choice(["[bold]x", f"{ESC}[31mred", "[/]"], 240),
                  "label": np.array(LABELS)[(x[:, 0] > 0).astype(int) + (x[:, 1] > 1)]}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def hostile_model(hostile_table, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    result = run("fit", hostile_table, "-t", "label", *TINY, "--out", out)
    assert result.exit_code == 0, result.output
    return out / "model.nbt"


def test_markup_and_escape_sequences_from_data_print_literally(hostile_table, hostile_model, tmp_path):
    shown = {"info": run("info", hostile_model), "evaluate": run("evaluate", hostile_model, hostile_table),
             "fit": run("fit", hostile_table, "-t", "label", "--layers", "4", "--epochs", "1", "--out",
                        tmp_path / "again"),
             "predict": run("predict", hostile_model, hostile_table, "-o", tmp_path / "p.csv")}
    for command, result in shown.items():
        assert result.exit_code == 0, (command, result.output)
        assert ESC not in result.output and "\x07" not in result.output, (command, result.output)
    info = shown["info"].output
    assert "[/]" in info and "[bold]x" in info and "\\x1b[31mred" in info
    assert "[link=https://example.com]click[/link]" in info and "bell\\x1b]0;pwned\\x07\\x1b[2J" in info
    assert "[/]" in shown["evaluate"].output and "\\x1b" in shown["evaluate"].output  # the confusion matrix


def test_a_csv_cell_longer_than_the_csv_modules_field_limit_is_read(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("a,note,y\n1," + "x" * 200_000 + ",2\n3,short,4\n")
    frame = read_table(path)
    assert len(frame.loc[0, "note"]) == 200_000 and frame["y"].tolist() == [2, 4]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 2))
    path = tmp_path_factory.mktemp("plain") / "table.csv"
    pd.DataFrame({"id": np.arange(200), "a": x[:, 0], "b": x[:, 1], "y": x @ [1.0, -1.0]}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def fitted(table, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    result = run("fit", table, "-t", "y", "--drop", "id", *TINY, "--out", out)
    assert result.exit_code == 0, result.output
    return out / "model.nbt"


def test_deeply_nested_json_in_a_model_file_is_a_one_line_error_everywhere(fitted, table, tmp_path):
    deep = rewrite(fitted, tmp_path / "deep.nbt", metadata_json="[" * 200_000 + "]" * 200_000)
    one_line_error(run("info", deep), "nests 200,000 levels deep")
    one_line_error(run("predict", deep, table), "nests 200,000 levels deep")
    one_line_error(run("export", deep, "--onnx", tmp_path / "m.onnx"), "nests 200,000 levels deep")
    with pytest.raises(ModelFileError, match="nests 200,000 levels deep"):
        load_table_model(deep)


def test_a_deeply_nested_space_file_is_a_one_line_error(table, tmp_path):
    space = tmp_path / "deep.toml"
    space.write_text("units = " + "[" * 100_000 + "16" + "]" * 100_000 + "\n")
    one_line_error(run("sweep", table, "-t", "y", "--space", space, "--trials", "1", "--out", tmp_path / "s"),
                   "nests 100,000 levels deep, over the limit of 8 for a space file")


def small_model():
    model = Sequential([layers.Dense(3, activation="softmax", input_shape=[2])])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("arguments, message", [
    ({"seed": -1}, "seed must be from 0 to 4294967295, got -1"),
    ({"seed": 2**70}, "seed must be from 0 to 4294967295, got 1180591620717411303424"),
    ({"seed": 1.5}, "seed must be an integer, got 1.5"),
    ({"batch_size": 2.5}, "batch_size must be an integer, got 2.5"),
    ({"class_weight": {5: 2.0}}, "class_weight names class 5, which is not a class of the targets"),
    ({"class_weight": {"a": 2.0}}, "class_weight names class 'a'"),
])
def test_fit_refuses_bad_arguments_in_one_line(arguments, message):
    x, y = np.zeros((6, 2)), np.array([0, 1, 2, 0, 1, 2])
    with pytest.raises(InputError, match=message) as info:
        small_model().fit(x, y, epochs=1, verbose=0, **arguments)
    assert "\n" not in str(info.value)


def test_sweep_refuses_a_seed_out_of_range_before_reading_data():
    for seed in (-1, 2**70):
        with pytest.raises(InputError, match="seed must be from 0 to 4294967295"):
            sweep("no-such-file.csv", "y", seed=seed, verbose=0)


def test_a_class_whose_rows_all_land_in_validation_is_named_in_a_warning(tmp_path):
    rows = 50
    seed = next(s for s in range(100) if 0 in split_rows(rows, 0.2, s)[1])  # row 0 held out
    frame = pd.DataFrame({"a": np.arange(rows, dtype=float), "y": ["rare"] + ["p", "q"] * 24 + ["p"]})
    frame.to_csv(tmp_path / "rare.csv", index=False)
    for prep in (prepare(frame, "y", val_split=0.2, seed=seed),
                 prepare_file(tmp_path / "rare.csv", "y", val_split=0.2, seed=seed)[1]):  # what fit reads through
        assert any("class 'rare' of 'y' has no training rows" in w for w in prep.warnings), prep.warnings


def test_a_thousand_class_confusion_matrix_is_written_to_a_file_not_the_terminal(tmp_path):
    rng = np.random.default_rng(2)
    data = tmp_path / "many.csv"
    pd.DataFrame({"a": rng.normal(size=3000), "y": [f"c{i % 1000}" for i in range(3000)]}).to_csv(data, index=False)
    assert run("fit", data, "-t", "y", "--layers", "4", "--epochs", "1", "-q", "--out", tmp_path / "run").exit_code == 0
    model = tmp_path / "run" / "model.nbt"
    shown = run("evaluate", model, data)
    assert shown.exit_code == 0 and len(shown.output.splitlines()) < 40, shown.output[:2000]
    assert "1000 classes" in shown.output and "--confusion FILE" in shown.output
    written = run("evaluate", model, data, "--confusion", tmp_path / "confusion.csv")
    assert written.exit_code == 0, written.output
    confusion = pd.read_csv(tmp_path / "confusion.csv", index_col=0)
    assert confusion.shape == (1000, 1000) and confusion.to_numpy().sum() == 3000


def test_labels_keep_their_leading_blanks_unless_every_delimiter_is_followed_by_one(tmp_path):
    path = tmp_path / "blanks.csv"
    path.write_text("a,y, b\n1, x,1\n2,x,2\n3,  z,3\n")
    frame = read_table(path)
    assert list(frame.columns) == ["a", "y", "b"] and frame["y"].tolist() == [" x", "x", "  z"]
    path.write_text("a, y\n1, x\n2, z\n")  # the blank is part of the delimiter here, as it always was
    assert read_table(path)["y"].tolist() == ["x", "z"]


def test_a_column_kept_twice_is_written_once(fitted, table, tmp_path):
    result = run("predict", fitted, table, "--keep", "id", "--keep", "id", "-o", tmp_path / "p.csv")
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(tmp_path / "p.csv").columns) == ["id", "prediction"]


@pytest.mark.parametrize("text, expected", [
    ("a;b;y\n1.234,5;7,4;x\n12,5;1;y\n1.234;2;x\n", [1234.5, 12.5, 1234.0]),
    ('a,b,y\n"1,234.5",7.4,x\n12.5,1,y\n"1,234",2,x\n', [1234.5, 12.5, 1234.0]),
])
def test_numbers_with_thousands_separators_are_read_as_numbers(tmp_path, text, expected):
    path = tmp_path / "grouped.csv"
    path.write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_table(path)["a"].tolist() == expected


@pytest.mark.parametrize("text, message", [
    ('a,y\n"1,234.5",x\n12.5,y\nabc,x\n"2,000",x\n', "column 'a' holds numbers with thousands separators but also 'abc'"),
    ("a;b;y\n1,234;7.5;x\n2,500;1;y\n", "column 'a' holds numbers such as '1,234', whose comma may be a thousands"),
])
def test_a_column_of_numbers_that_cannot_be_read_surely_is_named_in_a_warning(tmp_path, text, message):
    path = tmp_path / "mixed.csv"
    path.write_text(text)
    with pytest.warns(TableWarning, match=message):
        assert not pd.api.types.is_numeric_dtype(read_table(path)["a"])


def test_a_table_model_predicts_on_a_dict_of_columns_and_refuses_an_array(fitted, table):
    model = load_table_model(fitted)
    frame = pd.read_csv(table)
    expected = model.predict(frame)
    pd.testing.assert_frame_equal(model.predict({c: frame[c].tolist() for c in frame.columns}), expected)
    with pytest.raises(InputError, match="predict takes a DataFrame .* got ndarray") as info:
        model.predict(frame.to_numpy())
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="the dict of columns does not make a table"):
        model.predict({"a": 1.0, "b": 2.0})



def test_a_table_whose_categories_would_not_fit_a_model_file_is_refused_before_training(tmp_path):
    """The model file's metadata has a limit; a fit whose preprocessing is past it is refused before it trains
    (not at the save, after training), naming the column."""
    rows = 150_000
    frame = pd.DataFrame({"a": np.arange(rows, dtype=float), "code": [f"category-{i:020d}" for i in range(rows)],
                          "y": np.arange(rows) % 3 * 1.0})
    with pytest.raises(InputError, match="metadata.json would be .* column 'code' has 120,000 distinct values"):
        prepare(frame, "y")
    frame.to_csv(tmp_path / "codes.csv", index=False)
    with pytest.raises(InputError, match="metadata.json would be .* column 'code' has 120,000 distinct values"):
        prepare_file(tmp_path / "codes.csv", "y")  # what fit reads through


def test_the_scikit_learn_classifier_refuses_a_class_weight_for_a_label_y_lacks():
    pytest.importorskip("sklearn")
    from nbtrain.sklearn import NBTrainClassifier
    x, y = np.random.default_rng(3).normal(size=(30, 2)), np.array(["cat", "dog", "eel"] * 10)
    with pytest.raises(ValueError, match="class_weight names 'cow', which is not a class of y"):
        NBTrainClassifier(hidden_layer_sizes=(4,), max_iter=1, class_weight={"cat": 2.0, "cow": 3.0}).fit(x, y)
