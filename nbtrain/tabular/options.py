"""Every option of `nbtrain fit` and `nbtrain sweep`, each default written once: the command line's option
definitions, `nbtrain.sweep()` and the run folder's record all take them from here."""
from dataclasses import dataclass, field, replace

from ..arrays import SEED_MAX  # noqa: F401 (seeds run from 0 to this; the command line's --seed takes it from here)

TASKS = ("auto", "regression", "binary", "multiclass")
SCALINGS = ("robust", "standard", "minmax", "none")  # robust: median and IQR, then smooth clipping (RealMLP's)
# before the hidden layers, of every input: layers.PeriodicEmbedding, or layers.PiecewiseLinearEncoding
EMBEDDINGS = ("none", "periodic", "piecewise")
PIECEWISE_BINS = 48  # rtdl's default; better than 16 on California housing (bench/RESULTS.md)
OPTIMIZERS = ("adam", "sgd")
REGRESSION_LOSSES = ("mae", "mse", "huber")
REGRESSION_LOSS = "mae"  # the course's, when a regression names none
CLASS_WEIGHTS = ("balanced",)  # scikit-learn's: n_rows / (n_classes * the class's rows), on the training rows
DEVICES = ("auto", "cpu", "cuda")
BACKENDS = ("local", "ray")
SEARCHES = ("random", "tpe")
# the options a model file's training record keeps (its "options"), in this order
RECORDED = ("task", "loss", "class_weight", "recipe", "scale", "embeddings", "layers", "dropout", "batchnorm", "epochs",
            "batch_size", "optimizer", "lr", "patience", "min_delta", "val_split", "test_split", "seed")


@dataclass(frozen=True)
class Recipe:
    """What a recipe of `nbtrain fit` sets where the options leave it open: the scaling of numeric columns, the
    ReLU hidden layers, the epochs (a fixed budget when patience is 0, the best epoch kept), rows per batch, the
    learning rate (None: the optimizer's), the patience of early stopping, label smoothing (multiclass targets;
    the engine's binary accuracy needs hard targets), Adam's beta_2, the learning-rate schedule ("cosine": from
    lr down to 0 over all epochs; "constant") and the embeddings of the inputs (EMBEDDINGS)."""
    scale: str
    layers: tuple
    epochs: int
    batch_size: int
    lr: float
    patience: int
    label_smoothing: float = 0.0
    beta_2: float = 0.999
    schedule: str = "constant"
    embeddings: str = "none"


# the command line's default, chosen by measurement (bench/quality.py, bench/RESULTS.md), and the Keras course's
# 3x512 network with early stopping, as `nbtrain fit` trained before (the sweep's trials train this way too)
RECIPES = {"default": Recipe(scale="robust", layers=(256, 256, 256), epochs=30, batch_size=256,
                             lr=0.002, patience=0, label_smoothing=0.1, beta_2=0.95, schedule="cosine",
                             embeddings="piecewise"),
           "course": Recipe(scale="standard", layers=(512, 512, 512), epochs=500, batch_size=256, lr=None,
                            patience=20)}
COURSE = RECIPES["course"]
FROM_RECIPE = ("scale", "embeddings", "layers", "epochs", "batch_size", "lr", "patience")  # what a recipe fills in


@dataclass(frozen=True)
class FitOptions:
    """One fit of a table: where the data is and how it becomes arrays, the network, and how it trains.
    recipe names the Recipe (RECIPES) whose values the options left None take (`resolved`); loss None means the
    task's default (mae for regression; classification has its own); class_weight None weighs every row alike; lr
    None the recipe's, or the optimizer's (0.001 adam, 0.01 sgd); layers are the widths of the ReLU hidden layers;
    threads None leaves the BLAS threads to NBTRAIN_THREADS or the automatic count (nbtrain.threads; one in a
    sweep trial)."""
    data: str = None
    target: str = None
    task: str = "auto"
    loss: str = None
    class_weight: str = None
    recipe: str = "default"
    scale: str = None
    embeddings: str = None
    drop: tuple = ()
    val: str = None
    val_split: float = 0.2
    test_split: float = 0.0  # README's "Holding out a test split" says why none by default
    layers: tuple = None
    dropout: float = 0.0
    batchnorm: bool = False
    epochs: int = None
    batch_size: int = None
    optimizer: str = "adam"
    lr: float = None
    patience: int = None
    min_delta: float = 0.001
    seed: int = 0
    device: str = "auto"
    distributed: str = "none"
    threads: int = None
    ensemble: int = 1  # members of an nbtrain.Ensemble (1: one Sequential); README's --ensemble says why 1

    @property
    def settings(self):
        """The Recipe these options train with."""
        return RECIPES[self.recipe]

    def resolved(self):
        """These options with what they leave None (of FROM_RECIPE) taken from the recipe."""
        return replace(self, **{key: getattr(self.settings, key) for key in FROM_RECIPE if getattr(self, key) is None})

    def with_loss(self, loss):
        """These options with the loss the task resolved to."""
        return replace(self, loss=loss)

    def record(self):
        """The options as a model file's training record keeps them (layers as "512,512,512")."""
        values = {key: getattr(self, key) for key in RECORDED}
        values["layers"] = ",".join(map(str, self.layers))
        return values


@dataclass(frozen=True)
class SweepOptions:
    """A sweep: the fit options every trial shares (data, split, epochs, early stopping; the network and its
    training come from the space), and how the trials are drawn, run and ranked. space None means the default
    space of the task; workers None one per core (local) or Ray's choice."""
    fit: FitOptions = field(default_factory=FitOptions)
    trials: int = 20
    space: object = None
    backend: str = "local"
    address: str = None
    workers: int = None
    metric: str = "val_loss"
    search: str = "random"
    grace_epochs: int = 10  # Ray's ASHA stops no trial before this many epochs
