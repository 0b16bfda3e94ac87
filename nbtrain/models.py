"""keras.models' names: Sequential and load_model, where code written for Keras looks for them."""
from .ensemble import load_model
from .model import Sequential, missing_attribute

__all__ = ["Sequential", "load_model"]


def __getattr__(name):
    """keras.Model and the like: one line saying what nbtrain has instead."""
    raise missing_attribute(__name__, name)
