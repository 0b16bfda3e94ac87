"""The Keras course's workloads on the real data sets (NBTRAIN_DATA_DIR), written as the course writes them."""
import numpy as np
import pandas as pd
import pytest

from nbtrain import Sequential, callbacks, layers


def test_red_wine_three_by_512_with_early_stopping(red_wine):
    """Lesson 4: the course reports a minimum validation MAE of 0.0915 on min-max scaled quality."""
    (X_train, y_train), (X_valid, y_valid) = red_wine
    model = Sequential([
        layers.Dense(512, activation="relu", input_shape=[11]),
        layers.Dense(512, activation="relu"),
        layers.Dense(512, activation="relu"),
        layers.Dense(1),
    ])
    model.compile(optimizer="adam", loss="mae")
    early_stopping = callbacks.EarlyStopping(min_delta=0.001, patience=20, restore_best_weights=True)
    history = model.fit(X_train, y_train, validation_data=(X_valid, y_valid), batch_size=256, epochs=500,
                        callbacks=[early_stopping], verbose=0, seed=0)
    history_df = pd.DataFrame(history.history)
    assert len(history_df) < 500
    assert history_df["val_loss"].min() <= 0.10
    # restored: the weights of the epoch EarlyStopping counted as best (an improvement of at least min_delta)
    assert model.evaluate(X_valid, y_valid, verbose=0) == pytest.approx(early_stopping.best, rel=1e-5)


def test_red_wine_with_dropout_and_batchnorm(red_wine):
    """Lesson 5's architecture at 128 units instead of 1024 (to keep the suite fast): dropout and batchnorm
    layers train end to end."""
    (X_train, y_train), (X_valid, y_valid) = red_wine
    model = Sequential([
        layers.Dense(128, activation="relu", input_shape=[11]), layers.Dropout(0.3), layers.BatchNormalization(),
        layers.Dense(128, activation="relu"), layers.Dropout(0.3), layers.BatchNormalization(),
        layers.Dense(128, activation="relu"), layers.Dropout(0.3), layers.BatchNormalization(),
        layers.Dense(1),
    ])
    model.compile(optimizer="adam", loss="mae")
    history = model.fit(X_train, y_train, validation_data=(X_valid, y_valid), batch_size=256, epochs=100,
                        verbose=0, seed=0)
    assert min(history.history["val_loss"]) < 0.12


def test_ionosphere_binary_classification(ionosphere):
    """Lesson 6's 4-4-1 sigmoid model. Its outcome depends on the initial weights (with some draws the
    validation loss rises from the start and early stopping ends the fit), so the course's recipe runs over
    ten seeds: the best must reach 0.85 validation accuracy, and at least four of the ten must."""
    (X_train, y_train), (X_valid, y_valid) = ionosphere
    best = []
    for seed in range(10):
        model = Sequential([
            layers.Dense(4, activation="relu", input_shape=[33]),
            layers.Dense(4, activation="relu"),
            layers.Dense(1, activation="sigmoid"),
        ])
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["binary_accuracy"])
        early_stopping = callbacks.EarlyStopping(patience=10, min_delta=0.001, restore_best_weights=True)
        history = model.fit(X_train, y_train, validation_data=(X_valid, y_valid), batch_size=512, epochs=1000,
                            callbacks=[early_stopping], verbose=0, seed=seed)
        best.append(max(history.history["val_binary_accuracy"]))
    best = np.array(best)
    assert best.max() >= 0.85 and (best >= 0.85).sum() >= 4
