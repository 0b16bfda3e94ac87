"""Shared fixtures: the course data sets (from NBTRAIN_DATA_DIR), split and scaled as the Keras course does."""
import os
from pathlib import Path

import numpy as np
import pytest

from bench import workloads  # the course workloads, shared with the benchmarks


@pytest.fixture(scope="session")
def data_dir():
    folder = os.environ.get("NBTRAIN_DATA_DIR")
    if not folder:
        pytest.skip("NBTRAIN_DATA_DIR is not set")
    return Path(folder)


@pytest.fixture(scope="session")
def red_wine(data_dir):
    return workloads.red_wine(data_dir)


@pytest.fixture(scope="session")
def ionosphere(data_dir):
    return workloads.ionosphere(data_dir)


@pytest.fixture
def regression_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0, 1.5]) + np.sin(X[:, 0])).astype(np.float32)
    return X, y
