"""SharedMembers: a TabM-style ensemble (Gorishniy et al. 2024) of k members that share every weight of a model
except BatchEnsemble adapters, a per-member elementwise scale of a Dense layer's input and a per-member scale and
bias of its output. Training stacks the members' batches (each member's from its own shuffle) as the rows of one
batch, so the shared layers run as ordinary ops and the objective is the mean of the members' losses; prediction
averages the members' outputs (probabilities, after the final activation)."""
import copy

from . import model as model_module
from .layers import Activation, Adapter, Dense, deserialize
from .model import Sequential

ADAPTERS = ("first", "all")
FIELD = "shared_members"  # the config field that marks a saved SharedMembers (model.MODEL_CLASSES)


class SharedMembers(Sequential):
    """SharedMembers(model, members=32, adapters="first"): `model`'s layers (fresh weights) as `members` members.
    adapters="first": TabM's adapters around the first Dense layer (its input scale starts as random signs, so the
    members differ from the first step); "all": around every Dense layer (input scales after the first start at
    ones). A Dense layer with adapters loses its shared bias to the per-member bias of its output adapter, which
    comes before its activation. Keras-shaped: compile, fit(..., seed=) -> History, evaluate (the loss and metrics of
    the members' mean output), predict(x, members=False) (their mean, or with members=True each member's output,
    shape (members, rows, units)), save (nbtrain.load_model reads it back as SharedMembers), summary."""

    def __init__(self, model, members=32, adapters="first", name=None):
        if not isinstance(model, Sequential) or isinstance(model, SharedMembers):
            raise TypeError(f"SharedMembers takes a Sequential model, got {type(model).__name__}")
        if int(members) != members or members < 1:
            raise ValueError(f"members must be a positive integer, got {members!r}")
        if adapters not in ADAPTERS:
            raise ValueError(f"adapters must be one of {', '.join(ADAPTERS)}, got {adapters!r}")
        if not any(isinstance(layer, Dense) for layer in model.layers):
            raise ValueError("SharedMembers needs a model with a Dense layer to put the adapters around")
        super().__init__(_with_adapters(model.layers, int(members), adapters), name=name or f"shared_{model.name}")
        self.members, self.adapters = int(members), adapters

    def predict(self, x, batch_size=None, verbose=0, threads=None, members=False):
        """The members' mean output (rows, units); members=True: each member's, (members, rows, units)."""
        if not members:
            return super().predict(x, batch_size, verbose, threads)
        out = self._predict(x, batch_size, threads, each=True)
        return out.reshape(self.members, -1, out.shape[1])

    def get_config(self):
        return {**super().get_config(), FIELD: {"members": self.members, "adapters": self.adapters}}

    @classmethod
    def from_config(cls, config):
        """The saved model: its layers (adapters included) as they are."""
        field = config[FIELD]
        model = cls.__new__(cls)
        Sequential.__init__(model, [deserialize(entry) for entry in config["layers"]], name=config.get("name"))
        model.members, model.adapters = int(field["members"]), field["adapters"]
        if model.members < 1 or model.adapters not in ADAPTERS:
            raise ValueError(f"{FIELD} holds {field!r}")
        return model


def _with_adapters(model_layers, members, adapters):
    """Copies of a model's layers (unbuilt; a Normalization keeps its statistics) with adapters around its first (or
    every) Dense layer: Adapter (scale), Dense without bias or activation, Adapter (scale and bias), the activation."""
    layers, first = [], True
    for layer in model_layers:
        if not isinstance(layer, Dense) or not (first or adapters == "all"):
            layers.append(copy.copy(layer))
            layers[-1].weights = []
            continue
        settings = {key: value for key, value in layer.get_config().items() if key != "name"}
        activation, use_bias = settings.pop("activation"), settings.pop("use_bias")
        settings.pop("bias_regularizer", None)
        shape = settings.pop("input_shape", None)
        layers.append(Adapter(members, "random_signs" if first else "ones", input_shape=shape))
        layers.append(Dense(activation="linear", use_bias=False, **settings))
        layers.append(Adapter(members, "ones", use_bias=use_bias))
        if activation != "linear":
            layers.append(Activation(activation))
        first = False
    return layers


model_module.MODEL_CLASSES[FIELD] = SharedMembers
