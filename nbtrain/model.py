"""Sequential: the Keras-shaped model. It builds a Plan from its layers, owns the flat weight vectors,
and drives the engine one compiled epoch at a time, running callbacks in between."""
import hashlib
import os
import signal
import threading
import time
import warnings

import numpy as np

from . import callbacks as callbacks_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from . import utils
from .arrays import SEED_MAX, as_matrix, as_pair, as_weights, class_weights, whole_number
from .engine import Device, resolve
from .engine.bundles import DONE, STOP, Loop, Objective
from .engine.config import configure
from .engine.plan import LOSS_BCE, OPT_SGD, SCHEDULE_CONSTANT, SPARSE_CODES, compile_plan, slots
from .errors import DistributedError, InputError, ModelFileError
from .initializers import INITIALIZERS
from .interrupts import StopRequests
from .layers import InputLayer, Layer, deserialize
from .saving import SavedModel, read_model, write_model
from .threads import BlasThreads

EVAL_ROWS = 1024  # rows per compiled chunk for predict/evaluate/validation when no batch size is given
# An epoch of at least this many rows x parameters (tens of milliseconds and up) runs in a thread beside the caller,
# so that signals act within a step and progress shows; a shorter one runs inline, where a thread's start would cost.
BESIDE_WORK = 50_000_000
PROGRESS_SECONDS = 0.5  # how often a running epoch reports its steps


class Sequential:
    """A linear stack of layers: Sequential([layers.Dense(512, activation="relu", input_shape=[11]), ...])."""

    def __init__(self, layers=None, name=None):
        self.name = name or "sequential"
        self.layers = []
        self.plan = None
        self.theta = self.state = None
        self.optimizer = self.loss = None
        self.metrics = []
        self.history = None
        self.stop_training = False
        self.stop_reason = None
        self.stop_cause = None  # why the last fit ended early: "nonfinite", "interrupted", "terminated" or None
        self.metadata = None
        self.device = "cpu"
        self._target = None  # the resolved device's engine, made on first use (imports Numba)
        self._live = None  # the engine session while a fit keeps the weights on a device
        self._configured = None  # (plan, engine configuration) of the last fit or evaluate
        self._drawn = None  # (seed or None for the global generator, fingerprint) of weights still as drawn
        self._read = False  # whether the weights were read (weights, predict, evaluate, save, export) since drawn
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------------ structure
    def add(self, layer):
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential takes nbtrain layers, got {type(layer).__name__}")
        if self.built:
            raise ValueError("cannot add layers to a model that is already built; create a new Sequential")
        if isinstance(layer, InputLayer) and self.layers:
            raise ValueError("an Input layer can only be the first layer")
        self.layers.append(layer)

    @property
    def built(self):
        return self.plan is not None

    @property
    def input_shape(self):
        if self.built:
            return (None, self.plan.n_in)
        declared = self.layers[0].input_shape if self.layers else None
        return (None, *declared) if declared else None

    @property
    def output_shape(self):
        return (None, self.plan.n_out) if self.built else None

    def build(self, input_shape=None, seed=None):
        """Lay out the weights for inputs of width input_shape[-1] and initialize them as Keras does
        (Glorot-uniform kernels, zero biases; weights drawn from `seed` or the global generator)."""
        self._refuse_call()
        if input_shape is None:
            if self.input_shape is None:
                raise ValueError("the model's input width is unknown: give the first layer input_shape=[n] "
                                 "or call build(input_shape=(None, n))")
            input_shape = self.input_shape
        n_in = int(np.atleast_1d(input_shape)[-1])
        declared = self.input_shape
        if declared is not None and declared[-1] != n_in:
            raise InputError(f"the model expects {declared[-1]} input features but got {n_in}")
        if not self.layers:
            raise ValueError("the model has no layers")
        plan = compile_plan(self.layers, n_in)
        self.theta = np.zeros(plan.n_params, np.float32)
        self.state = np.zeros(plan.n_state, np.float32)
        views = {i: [] for i in range(len(self.layers))}
        for var in plan.variables:
            buffer = self.theta if var.trainable else self.state
            views[var.layer].append(buffer[var.offset:var.offset + var.size].reshape(var.shape))
        for index, layer in enumerate(self.layers):
            layer.weights = views[index]
        self.plan = plan
        self._initialize(seed)

    def _initialize(self, seed, trainable_only=False):
        """Draw the weights from their initializers, with `seed` or the global generator (trainable_only: redraw
        the trainable ones, keeping the non-trainable statistics, which no generator draws). Remembers how the
        weights were drawn, so that fit(seed=...) can tell whether they are still as drawn."""
        rng = utils.generator() if seed is None else np.random.default_rng(seed)
        for var in self.plan.variables:
            initialize = var.initializer if callable(var.initializer) else INITIALIZERS[var.initializer]
            values = initialize(var.shape, rng)
            if var.trainable or not trainable_only:
                buffer = self.theta if var.trainable else self.state
                buffer[var.offset:var.offset + var.size] = np.asarray(values).reshape(-1)
        self._drawn, self._read = (seed, self._fingerprint()), False

    def _fingerprint(self):
        """A digest of the trainable weights: whether they were changed (trained, set, edited in place) since."""
        return hashlib.blake2b(self.theta.tobytes(), digest_size=16).digest()

    def _seed_weights(self, X, seed):
        """fit(seed=s) seeds the initial weights, as if the model were built by this fit, whenever it can: an
        unbuilt model is built from s, and weights that the global generator drew (summary() builds a model whose
        input width is declared) and that nothing read or changed since are redrawn from s. Weights drawn by
        build(seed=...) stay. Weights read since they were drawn (what the user saw is what training starts from),
        or trained or set, stay with a SeedWarning."""
        if not self.built:
            self._ensure_built(X, seed)
            return
        self._ensure_built(X)
        drawn = self._drawn
        if drawn is not None and drawn[1] == self._fingerprint():
            if drawn[0] is not None:
                return
            if not self._read:
                self._initialize(seed, trainable_only=True)
                return
            why = ("they were drawn from the global generator before fit and read since (weights, get_weights, "
                   "predict, evaluate, save or export), so they stay as drawn")
        else:
            why = "they were trained or set since they were drawn"
        warnings.warn(f"fit(seed={seed}) cannot seed this model's weights: {why}; the seed applies to the shuffles "
                      "and dropout masks only (call utils.set_random_seed before building, or build(seed=...), for "
                      "seeded weights)", SeedWarning, stacklevel=3)

    def _refuse_call(self):
        """A subclass that defines call() (Keras's model subclassing) would silently train the layer stack instead."""
        if callable(getattr(type(self), "call", None)):
            raise TypeError(f"{type(self).__name__} defines call(): nbtrain has no model subclassing and would "
                            "train the stack of its layers, not call(); list the layers in Sequential([...])")

    def _ensure_built(self, X, seed=None):
        if not self.built:
            self.build((None, X.shape[1]), seed=seed)
        elif X.shape[1] != self.plan.n_in:
            raise InputError(f"the model expects {self.plan.n_in} input features but the data has {X.shape[1]}")
        for layer in self.layers:
            layer.check_input(X)

    def _build_if_declared(self):
        """Build now (weights from the global generator, as Keras does at construction) when the input width is
        declared (input_shape on the first layer, or layers.Input) and the model is not built yet."""
        if not self.built and self.input_shape is not None:
            self.build()

    @property
    def weights(self):
        """Live views of every weight array, in Keras order."""
        self._build_if_declared()
        self._read = True
        return [w for layer in self.layers for w in layer.weights]

    def get_weights(self):
        self._pull()
        return [w.copy() for w in self.weights]

    def _pull(self):
        """Bring the weights of a fit running on a device back into the host arrays."""
        if self._live:
            self._live.pull()

    def set_weights(self, weights):
        self._build_if_declared()
        if not self.built:
            raise ValueError("the model's input width is unknown: give the first layer input_shape=[n], start with "
                             "layers.Input, or build/fit/predict once before set_weights")
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise ValueError(f"the model has {len(self.weights)} weight arrays, got {len(weights)}")
        for layer in self.layers:
            n = len(layer.weights)
            layer.set_weights(weights[:n])
            weights = weights[n:]
        self._drawn = None
        if self._live:
            self._live.push()

    def count_params(self):
        self._build_if_declared()
        if not self.built:
            raise ValueError("the model is not built yet: its input width is unknown")
        return int(self.theta.size + self.state.size)

    def pop(self):
        """Remove the last layer (Keras's Sequential.pop); a built model keeps the other layers' weights."""
        if not self.layers:
            raise TypeError("there are no layers in the model")
        kept = [layer.get_weights() for layer in self.layers[:-1]] if self.built else None
        width = self.plan.n_in if self.built else None
        self.layers.pop()
        self.plan = None
        if kept is not None and any(not isinstance(layer, InputLayer) for layer in self.layers):
            self.build((None, width))
            for layer, values in zip(self.layers, kept):
                layer.set_weights(values)

    # ------------------------------------------------------------------ training configuration
    def compile(self, optimizer="adam", loss=None, metrics=None, device="auto"):
        """Choose the optimizer, the loss and the metrics to report (Keras names or objects), and the
        device: "cpu", "cuda", or "auto" (CUDA when a usable GPU and the gpu extra are present)."""
        self._refuse_call()
        self._target = Device(resolve(device))
        self.device = self._target.name
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss) if loss is not None else None
        self.metrics = [metrics_module.get(m) for m in (metrics or [])]
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names) or "loss" in names:
            raise ValueError(f"metric names must be distinct and not 'loss', got {names}")

    def _check_compiled(self):
        if self.loss is None:
            raise RuntimeError("compile the model with a loss before fit/evaluate: model.compile(loss='mae')")

    def _check_targets(self, Y, what):
        """Targets the loss and every metric can read: one column of class indices 0..k-1 for the sparse ones,
        the model's output width for the others; 0..1 for binary cross-entropy."""
        n_out = self.plan.n_out
        for objective in [self.loss, *self._resolved_metrics(Y.shape[1])]:
            kind = "loss" if objective is self.loss else "metric"
            if objective.code in SPARSE_CODES:
                if Y.shape[1] != 1:
                    raise InputError(f"{kind} {objective.name!r} needs {what} as one column of class indices, "
                                     f"got {Y.shape[1]} columns")
                if Y.min() < 0 or Y.max() >= n_out or not np.array_equal(Y, np.round(Y)):
                    raise InputError(f"{kind} {objective.name!r} needs {what} to hold class indices 0 to "
                                     f"{n_out - 1} (the model has {n_out} outputs), got values from {Y.min():g} "
                                     f"to {Y.max():g}")
            elif Y.shape[1] != n_out:
                raise InputError(f"{what} has {Y.shape[1]} target columns but the model outputs {n_out}"
                                 + (f" ({kind} {objective.name!r} compares them column by column)"
                                    if kind == "metric" else ""))
        if self.loss.code == LOSS_BCE and (Y.min() < 0 or Y.max() > 1):
            raise InputError(f"binary_crossentropy needs {what} in [0, 1], got values from {Y.min()} to {Y.max()}")

    def _engine_target(self):
        if self._target is None:
            self._target = Device(self.device)
        return self._target

    def _resolved_metrics(self, k):
        """The compiled metrics as the engine computes them for targets of k columns ("accuracy" resolved)."""
        return [m.resolved(self.plan.n_out, k) for m in self.metrics]

    def _objective(self, k):
        """The loss and metrics as the kernels take them, for targets of k columns."""
        metrics = self._resolved_metrics(k)
        widths = [slots(m.code, m.param) for m in metrics]
        return Objective(self.loss.code, self.loss.param, np.array([m.code for m in metrics], np.int64),
                         np.array([m.param for m in metrics], np.float64), np.cumsum([1] + widths, dtype=np.int64))

    def _figures(self, sums, objective, k, W):
        """Keras's figures [loss, *metrics] from the engine's sums over the rows of W: the loss per row (Keras's sum
        over the batch size), each metric from its slots (a weighted mean, or its counts)."""
        bounds = objective.metric_slots
        figures = [self.loss.value(sums[:1], W.size, k)]
        weight = float(W.sum(dtype=np.float64))
        for j, metric in enumerate(self._resolved_metrics(k)):
            figures.append(metric.value(sums[bounds[j]:bounds[j + 1]], weight, k))
        return figures

    def _log_names(self):
        return ["loss"] + [m.name for m in self.metrics]

    def _session(self, capacity, n_targets, objective=None, optimizer=None):
        return self._engine_target().session(self.plan, self._configuration(objective), self.theta, self.state,
                                             capacity, n_targets, optimizer)

    def _configuration(self, objective):
        """The engine configuration of this plan with the objective's loss and metrics and the optimizer's kinds, so
        fit, evaluate and predict of a model share one compiled engine; predict (objective None) reuses the last
        fit's or evaluate's while the plan is the same."""
        if objective is None and self._configured is not None and self._configured[0] is self.plan:
            return self._configured[1]
        opt = self.optimizer
        kinds = (opt.code, int(opt.schedule()[0])) if opt is not None else (OPT_SGD, SCHEDULE_CONSTANT)
        config = configure(self.plan, None if objective is None else objective.loss_code,
                           () if objective is None else objective.metric_codes, *kinds)
        if objective is not None:
            self._configured = (self.plan, config)
        return config

    # ------------------------------------------------------------------ fit / evaluate / predict
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0, seed=None,
            distribute=None, threads=None):
        """Train for `epochs` epochs; returns a History whose .history maps 'loss', metric names and their
        'val_' versions to per-epoch lists. Stops cleanly on a non-finite loss (keeping the weights from
        before the bad batch) and on Ctrl-C; in both cases the history so far is returned.

        sample_weight (one weight per row) or class_weight ({class index: weight}, for the training rows only)
        weights each row's loss, gradient and metrics, as Keras does; validation_data may be (x, y, weights).

        distribute="mpi" (under mpiexec, every rank calling fit with the same data): each rank computes its
        share of every batch and the gradients are summed over the ranks; the result is the one-process fit.
        Rank 0's seed and starting weights are used everywhere, and only rank 0 prints.

        threads: the BLAS threads of the matrix products (None: NBTRAIN_THREADS, else the cores other work leaves
        free, followed between epochs; see nbtrain.threads). Bit-identical reruns need the same count."""
        self._check_compiled()
        X, Y, W, Xv, Yv, Wv = self._training_data(x, y, sample_weight, class_weight, validation_split,
                                                   validation_data)
        batch_size = 32 if batch_size is None else whole_number(batch_size, "batch_size", 1)
        group = self._process_group(distribute)
        if seed is None:  # built (from the global generator) before the seed is drawn, as when built before fit
            self._ensure_built(X)
            seed = utils.draw_seed()
        else:
            seed = whole_number(seed, "seed", 0, SEED_MAX)
            self._seed_weights(X, seed)
        if group:
            seed = group.broadcast(seed)
        self._check_targets(Y, "y")
        if Xv is not None:
            self._ensure_built(Xv)
            self._check_targets(Yv, "validation targets")
        opt = self.optimizer
        opt.build(self.plan.n_params)
        if group:
            self._agree_with_rank_0(group, X, Y, W, Xv, Yv, Wv)
            verbose = 0 if group.rank else verbose
        train_rows = min(batch_size, X.shape[0])
        capacity = max(train_rows, min(0 if Xv is None else Xv.shape[0], EVAL_ROWS))
        verbose = 1 if verbose == "auto" else int(verbose)
        steps = -(-X.shape[0] // train_rows)
        cbs = callbacks_module.CallbackList(callbacks, self, {"verbose": verbose, "epochs": epochs, "steps": steps})
        self.stop_training = False
        self.stop_reason = self.stop_cause = None
        objective = self._objective(Y.shape[1])
        with BlasThreads(threads, capacity * self.plan.n_params) as blas, \
                self._session(capacity, Y.shape[1], objective, opt.engine_state()) as session:
            self._live = None if session.device.on_host else session
            try:
                loop = Loop(train_rows, bool(shuffle), seed, np.zeros(2, np.int64))
                logs = self._epochs(session, session.data(X, Y, W, Xv, Yv, Wv), objective, loop, cbs, initial_epoch,
                                    epochs, steps, group, blas)
            finally:
                self._live = None
        cbs.on_train_end(logs)
        self.history = cbs.history
        if group and self.stop_cause not in ("interrupted", "terminated") and not group.identical(self.theta,
                                                                                                  self.state):
            raise DistributedError("the ranks' weights differ after a distributed fit; please report this")
        return cbs.history

    def _epochs(self, session, data, objective, loop, cbs, initial_epoch, epochs, steps, group, blas):
        """The training loop: one compiled epoch at a time, callbacks in between; returns the last epoch's logs.
        A non-finite loss, Ctrl-C or SIGTERM ends it cleanly (stop_cause says which); a signal takes effect at the
        end of the current step, and an epoch it cuts short is not recorded."""
        names = self._log_names()
        keys = names + (["val_" + k for k in names] if data.Xv.shape[0] else [])
        k = data.Y.shape[1]
        opt, comm = self.optimizer, group.handle if group else None
        width = int(objective.metric_slots[-1])
        buffer = np.zeros(2 * width, np.float64)
        control = loop.control
        beside = data.X.shape[0] * max(self.plan.n_params, 1) >= BESIDE_WORK
        logs = {}
        cbs.on_train_begin()
        with StopRequests(loop.control) as requests:
            try:
                for epoch in range(initial_epoch, epochs):
                    if control[STOP] and comm is None:  # a signal between epochs (under MPI the ranks agree in the
                        break                           # epoch's first step)
                    cbs.on_epoch_begin(epoch)
                    blas.adapt()
                    session.set_hyperparameters(opt.hyperparameters())  # a callback may have changed them
                    args = (session.net, session.weights, session.opt, session.ws, objective, data, loop,
                            opt.iterations, buffer, comm)
                    done = self._run_epoch(session.kernels.train_epoch, args, loop.control, beside, cbs, epoch)
                    opt.iterations += done
                    if control[STOP] and done < steps:
                        break
                    figures = self._figures(buffer[:width], objective, k, data.W)
                    if data.Xv.shape[0]:
                        figures += self._figures(buffer[width:], objective, k, data.Wv)
                    logs = {key: float(v) for key, v in zip(keys, figures)}
                    if done < steps:
                        self._stop("nonfinite", f"the loss became non-finite at epoch {epoch + 1}, batch {done + 1}; "
                                                "training stopped before that batch's update (try a lower learning "
                                                "rate)")
                        warnings.warn(self.stop_reason, RuntimeWarning, stacklevel=3)
                    cbs.on_epoch_end(epoch, logs)
                    if self.stop_training or control[STOP]:
                        break
            except KeyboardInterrupt:
                loop.control[STOP] = signal.SIGINT
            if requests.cause:
                ended = len(cbs.history.epoch)
                self._stop(requests.cause, f"{requests.cause} after {ended} epochs" if ended else
                           f"{requests.cause} before the first epoch ended")
                if cbs.params.get("verbose"):  # verbose=0 is silent, as in Keras; nbtrain fit says what it keeps
                    print(f"\nTraining {self.stop_reason}; keeping the history and weights so far." if ended else
                          f"\nTraining {self.stop_reason}: no epoch's history or weights to keep.")
        return logs

    @staticmethod
    def _run_epoch(train_epoch, args, control, beside, cbs, epoch):
        """One compiled epoch: inline, or (for a long epoch, whose kernels release the GIL) in a thread beside this
        one, which then reports the steps done (Loop.control) to the callbacks and runs signal handlers at once.
        Returns the steps taken."""
        if not beside:
            return train_epoch(*args)
        outcome = {}

        def run():
            try:
                outcome["done"] = train_epoch(*args)
            except BaseException as exc:  # re-raised in the caller's thread
                outcome["error"] = exc
        worker = threading.Thread(target=run, name="nbtrain-epoch", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(PROGRESS_SECONDS)
                if worker.is_alive():
                    cbs.on_epoch_progress(epoch, int(control[DONE]))
        except BaseException:  # a second Ctrl-C: the epoch still ends at its step's end before this goes on
            control[STOP] = control[STOP] or signal.SIGINT
            worker.join()
            raise
        if "error" in outcome:
            raise outcome["error"]
        return outcome["done"]

    def _stop(self, cause, reason):
        self.stop_training, self.stop_cause, self.stop_reason = True, cause, reason

    def _training_data(self, x, y, sample_weight, class_weight, validation_split, validation_data):
        """(X, Y, W, Xv, Yv, Wv) as float32 arrays (W: one weight per row, ones by default): validation_data, or
        the last validation_split of the rows as Keras takes it, or no validation (Xv, Yv, Wv None)."""
        X, Y = as_pair(x, y)
        if sample_weight is not None and class_weight is not None:
            raise InputError("pass class_weight or sample_weight, not both (as Keras)")
        W = as_weights(sample_weight, X.shape[0])
        if validation_data is not None:
            if len(validation_data) not in (2, 3):
                raise InputError("validation_data must be (x_val, y_val) or (x_val, y_val, val_sample_weight)")
            Xv, Yv = as_pair(*validation_data[:2], what="validation_data")
            Wv = as_weights(validation_data[2] if len(validation_data) == 3 else None, Xv.shape[0],
                            "validation sample weights")
        elif validation_split:
            if not 0 < validation_split < 1:
                raise InputError(f"validation_split must be in (0, 1), got {validation_split}")
            cut = int(X.shape[0] * (1.0 - validation_split))
            if cut < 1 or cut >= X.shape[0]:
                raise InputError(f"validation_split={validation_split} leaves no rows for training or validation")
            X, Y, W, Xv, Yv, Wv = X[:cut], Y[:cut], W[:cut], X[cut:], Y[cut:], W[cut:]
        else:
            Xv = Yv = Wv = None
        if class_weight is not None:
            W = class_weights(class_weight, Y)
        return X, Y, W, Xv, Yv, Wv

    def _process_group(self, distribute):
        """The MPI group for distribute="mpi" (None for one process)."""
        if distribute is None:
            return None
        if distribute != "mpi":
            raise ValueError(f"distribute must be None or 'mpi', got {distribute!r}")
        if self._engine_target().name != "cpu":
            raise DistributedError("distributed training runs on the CPU: compile the model with device='cpu'")
        from .distributed import Group
        return Group()

    def _agree_with_rank_0(self, group, *data):
        """Start every rank from rank 0's weights and optimizer state; refuse to go on with different data."""
        if not group.identical(*(a for a in data if a is not None)):
            raise DistributedError("distribute='mpi' needs the same training and validation data on every rank")
        for array in (self.theta, self.state, *self.optimizer.slots):
            group.broadcast_array(array)
        self.optimizer.iterations = group.broadcast(self.optimizer.iterations)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, return_dict=False,
                 threads=None):
        """Inference-mode loss, or [loss, *metrics] when metrics were compiled (a dict with return_dict);
        sample_weight weights the rows as in fit; threads as in fit."""
        self._check_compiled()
        X, Y = as_pair(x, y)
        W = as_weights(sample_weight, X.shape[0])
        self._ensure_built(X)
        self._read = True
        self._check_targets(Y, "y")
        objective = self._objective(Y.shape[1])
        logs = np.zeros(int(objective.metric_slots[-1]), np.float64)
        started = time.perf_counter()
        rows = min(int(batch_size or EVAL_ROWS), X.shape[0])
        with BlasThreads(threads, rows * self.plan.n_params), self._session(rows, Y.shape[1], objective) as session:
            session.kernels.evaluate(session.net, session.weights, session.ws, objective, session.put(X),
                                           session.put(Y), session.put(W), logs, None)
        result = {k: float(v) for k, v in zip(self._log_names(), self._figures(logs, objective, Y.shape[1], W))}
        if verbose == "auto" or int(verbose):
            steps = -(-X.shape[0] // session.capacity)
            duration = callbacks_module.format_duration(time.perf_counter() - started)
            print(f"{steps}/{steps} - {duration}" + callbacks_module.format_logs(result))
        if return_dict:
            return result
        return result["loss"] if not self.metrics else list(result.values())

    def predict(self, x, batch_size=None, verbose=0, threads=None):
        """Inference-mode outputs, shape (rows, units of the last layer), float32 (in a callback during a fit on a
        device, of the weights so far); threads as in fit."""
        self._pull()
        X = as_matrix(x)
        self._ensure_built(X)
        self._read = True
        out = np.empty((X.shape[0], self.plan.n_out), np.float32)
        rows = min(int(batch_size or EVAL_ROWS), X.shape[0])
        with BlasThreads(threads, rows * self.plan.n_params), self._session(rows, 1) as session:
            result = session.put(out)
            session.kernels.predict(session.net, session.weights, session.ws, session.put(X), result)
            session.device.fetch(result, out)
        return out

    def predict_on_batch(self, x):
        """predict on x as one batch (Keras's name; the result is predict's)."""
        return self.predict(x, batch_size=len(x))

    def __call__(self, x):
        return self.predict(x)

    # ------------------------------------------------------------------ description and persistence
    def summary(self, print_fn=print):
        """Print each layer's output shape and parameter count, then the totals (built first when the input width
        is declared, as Keras builds at construction)."""
        self._build_if_declared()
        rows = [("Layer (type)", "Output Shape", "Param #")]
        width = self.input_shape[-1] if self.input_shape else None
        for layer in self.layers:
            if width is not None:
                width = layer.output_width(width)
            rows.append((f"{layer.name} ({type(layer).__name__})", f"(None, {width if width else '?'})",
                         f"{layer.count_params():,}" if self.built else "0 (unbuilt)"))
        widths = [max(len(r[i]) for r in rows) + 2 for i in range(3)]
        rule = "-" * sum(widths)
        lines = [f'Model: "{self.name}"', rule]
        for i, row in enumerate(rows):
            lines.append(row[0].ljust(widths[0]) + row[1].ljust(widths[1]) + row[2].rjust(widths[2]))
            if i == 0:
                lines.append(rule)
        trainable = self.theta.size if self.built else 0
        state = self.state.size if self.built else 0
        lines += [rule, f"Total params: {trainable + state:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {state:,}"]
        print_fn("\n".join(lines))

    def get_config(self):
        return {"name": self.name,
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in self.layers]}

    @classmethod
    def from_config(cls, config):
        return cls([deserialize(entry) for entry in config["layers"]], name=config.get("name"))

    def compile_config(self):
        """The compile() arguments as plain data, or None when the model was not compiled."""
        if self.optimizer is None:
            return None
        return {"optimizer": self.optimizer.get_config(),
                "loss": self.loss.get_config() if self.loss else None,
                "metrics": [m.get_config() for m in self.metrics]}

    def save(self, path, metadata=None):
        """Write the model (architecture, weights, optimizer state, history, optional metadata) to one file, by
        convention `name.nbt` (a Keras `.keras` or `.h5` name is refused: the file is not in Keras's format)."""
        _own_format(path)
        self._build_if_declared()
        if not self.built:
            raise ValueError("build or fit the model before saving it")
        opt = self.optimizer
        state = {"slots": opt.slots, "iterations": opt.iterations} if opt is not None and opt.slots is not None else None
        _make_parent(path)
        write_model(path, SavedModel(self.get_config(), self.plan.n_in, self.compile_config(), self.get_weights(),
                                     state, self.history.history if self.history is not None else {}, metadata))

    def export(self, filepath, format="onnx"):
        """Write the model for other runtimes, as Keras 3's export: format="onnx" gives an ONNX graph (float32 input
        "input" (N, n_in) -> "output" (N, n_out); inference form: batch normalization with its moving statistics,
        no dropout), written atomically. Needs the onnx package (the onnx extra)."""
        from . import exporting
        if format != "onnx":
            raise ValueError(f"nbtrain exports format='onnx', not {format!r}")
        self._build_if_declared()
        if not self.built:
            raise ValueError("build or fit the model before exporting it")
        self._pull()
        self._read = True
        _make_parent(filepath)
        exporting.write(exporting.sequential_proto(self), filepath)

    def save_weights(self, filepath):
        """Write the weights alone (Keras's save_weights; by convention `name.weights.nbt`), atomically."""
        _own_format(filepath)
        self._build_if_declared()
        if not self.built:
            raise ValueError("build or fit the model before saving its weights")
        _make_parent(filepath)
        write_model(filepath, SavedModel(self.get_config(), self.plan.n_in, None, self.get_weights(), None, {}))

    def load_weights(self, filepath):
        """Set the weights from a file written by save_weights or save, whose arrays must have this model's
        shapes (an unbuilt model is built for the file's input width); the file's array headers are checked
        against them before any array is read."""
        def layout(architecture, width):
            if not self.built:
                self._build_if_declared()
            if not self.built:
                self.build((None, width))
            return [w.shape for w in self.weights], self.plan.n_params
        self.set_weights(read_model(filepath, layout).weights)


def _own_format(path):
    """Refuse a folder (model.save("folder/")) and the names of Keras's formats, which another program would try to
    read as such."""
    path = os.fspath(path)
    if os.path.isdir(path) or path.endswith(("/", os.sep)):
        raise ValueError(f"{path} is a folder: name the model file in it, such as "
                         f"{os.path.join(path, 'model.nbt')}")
    name = os.path.basename(path)
    for suffix in (".weights.h5", ".keras", ".h5", ".hdf5"):
        if name.lower().endswith(suffix):
            stem = name[:-len(suffix)] + (".weights" if suffix == ".weights.h5" else "")
            raise ValueError(f"nbtrain writes its own format, not Keras's {suffix}: name the file {stem}.nbt")


def _make_parent(path):
    """Make a file's missing parent folders, as Keras's save and ModelCheckpoint do (a file in the way is left for
    the writer's error, which names the user's path)."""
    parent = os.path.dirname(os.fspath(path))
    if parent and not os.path.exists(parent):
        os.makedirs(parent, exist_ok=True)


def missing_attribute(module, name):
    """The AttributeError of a module's __getattr__ (nbtrain, nbtrain.models): keras.Model, the functional API and
    model subclassing, named as such with what nbtrain has instead."""
    if name in ("Model", "Functional"):
        return AttributeError(f"nbtrain has no keras.{name} (the functional API or model subclassing): build the "
                              "network as Sequential([layers.Input(shape=(n,)), layers.Dense(...), ...])")
    return AttributeError(f"module {module!r} has no attribute {name!r}")


class SeedWarning(UserWarning):
    """fit(seed=...) on a model whose weights were trained or set: the seed cannot apply to them."""


class PreprocessingWarning(UserWarning):
    """load_model on a file from `nbtrain fit`: the network alone takes preprocessed inputs."""


def load_model(path, device="auto"):
    """Rebuild a saved model with its weights, compile settings (on `device`), optimizer state and history.
    The file's metadata (or None) is available as model.metadata. A file from `nbtrain fit` also holds its
    preprocessing, which this network does not apply: a PreprocessingWarning names nbtrain.load_table_model, which
    predicts on raw tables as `nbtrain predict` does."""
    model = load_network(path, device)
    if isinstance(model.metadata, dict) and "preprocessing" in model.metadata:
        warnings.warn(f"{path} is a model from nbtrain fit: this network takes preprocessed inputs and predicts on "
                      "the standardized scale; nbtrain.load_table_model(path).predict(frame) applies the "
                      "preprocessing as nbtrain predict does", PreprocessingWarning, stacklevel=2)
    return model


def _layout(architecture, width):
    """(weight shapes, optimizer slot length) of a saved architecture, which read_model checks the file's array
    headers against before it reads them (nothing is allocated here)."""
    plan = compile_plan(Sequential.from_config(architecture).layers, width)
    return [v.shape for v in plan.variables], plan.n_params


def load_network(path, device="auto"):
    """load_model without the warning: the network alone, for callers that apply a table model's preprocessing
    themselves (the command line, the sweep's best model)."""
    saved = read_model(path, _layout)
    try:
        model = Sequential.from_config(saved.model)
        model.build((None, saved.input_width))
        model.set_weights(saved.weights)
        if saved.compile:
            compiled = saved.compile
            model.compile(compiled["optimizer"], compiled["loss"], compiled["metrics"], device=device)
            if saved.optimizer is not None:
                slots = [slot.astype(np.float32) for slot in saved.optimizer["slots"]]
                if any(slot.shape != (model.plan.n_params,) for slot in slots):
                    raise ValueError("optimizer state does not match the weights")
                model.optimizer.slots = slots
                model.optimizer.iterations = saved.optimizer["iterations"]
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ModelFileError(f"{path} holds an inconsistent nbtrain model ({type(exc).__name__}: {exc})") from None
    model.history = callbacks_module.History()
    model.history.history = {k: list(v) for k, v in saved.history.items()}
    model.history.epoch = list(range(len(next(iter(saved.history.values()), []))))
    model.metadata = saved.metadata
    return model
