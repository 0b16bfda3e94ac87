"""Model files written by earlier releases keep loading and predicting the same (fixtures/, each written by the
release in its name with `nbtrain fit data/houses.csv --target price_k --drop house_id --layers 8,8 --dropout 0.1
--batchnorm --epochs 5`, beside the raw outputs that release predicted for data/houses.csv)."""
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nbtrain import load_model
from nbtrain.cli import app
from nbtrain.model import PreprocessingWarning
from nbtrain.tabular.preprocessing import Preprocessing
from nbtrain.tabular.reading import read_table
from promises import FLOAT32_ROUNDING

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HOUSES = Path(__file__).resolve().parent.parent / "data" / "houses.csv"


def test_a_v0_1_0_model_file_loads_and_predicts_the_same():
    with pytest.warns(PreprocessingWarning):  # the bare network of a CLI model, as load_model warns
        model = load_model(FIXTURES / "houses-v0.1.0.nbt")
    pre = Preprocessing.from_dict(model.metadata["preprocessing"])
    outputs = model.predict(pre.transform(read_table(HOUSES)))
    np.testing.assert_allclose(outputs, np.load(FIXTURES / "houses-v0.1.0-outputs.npy"), **FLOAT32_ROUNDING)
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Dropout", "BatchNormalization", "Dense",
                                                                "Dropout", "BatchNormalization", "Dense"]
    assert model.metadata["training"]["nbtrain_version"] == "0.1.0" and len(model.history.history["loss"]) == 5
    result = CliRunner().invoke(app, ["predict", str(FIXTURES / "houses-v0.1.0.nbt"), str(HOUSES)])
    assert result.exit_code == 0, result.output
    predicted = pd.read_csv(io.StringIO(result.stdout))["prediction"].to_numpy()
    np.testing.assert_allclose(predicted, pre.target.decode(outputs)["prediction"], rtol=1e-5)
