"""keras.models' names: Sequential and load_model, where code written for Keras looks for them."""
from .model import Sequential, load_model

__all__ = ["Sequential", "load_model"]
