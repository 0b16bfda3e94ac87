"""Ensemble: k same-shape models (members) trained, scored and run in one compiled call per epoch (issue 29).

Each member has its own initial weights, batch order and dropout stream (its own seed), and optionally its own
learning rate and weight decay; member j is bit for bit the Sequential fitted alone with member j's seed
(`member_seeds`). The ensemble predicts the average of its members' outputs (probabilities, for a classifier), is
evaluated and early-stopped on that average, and saves, loads and exports as one model. `shared=True` gives the
TabM-style members that share their weights (shared_members.SharedMembers), with the same methods.
"""
import copy
import signal
import time
import warnings

import numpy as np

from . import callbacks as callbacks_module
from . import utils
from .arrays import SEED_MAX, as_matrix, as_pair, as_weights, whole_number
from .engine.bundles import STOP, Loop
from .engine.plan import SCHEDULE_CONSTANT
from .errors import DistributedError, InputError, ModelFileError
from .interrupts import StopRequests
from .model import EVAL_ROWS, BESIDE_WORK, Sequential, _layout, _make_parent, _own_format
from .model import load_model as load_sequential
from .model import load_network as load_sequential_network
from .monitor import Monitor
from .saving import SavedModel, read_model, write_model
from .shared_members import SharedMembers
from .threads import BlasThreads

MAX_MEMBERS = 4096  # members a model file may declare (the weights' size limit bounds them too)


def member_seeds(seed, members):
    """The seeds of an ensemble's members when fit(seed=seed): member j's is the first 32-bit word of NumPy's
    SeedSequence([seed, j]), so member j equals Sequential.fit(seed=member_seeds(seed, k)[j]) of the same model."""
    return [int(np.random.SeedSequence([seed, j]).generate_state(1)[0]) for j in range(members)]


class Ensemble:
    """Ensemble(model, members=8): `members` copies of `model`'s architecture (a built or unbuilt Sequential; its
    compile() settings too, when compiled) trained together. learning_rates / weight_decays: one per member (a sweep
    over them in one call), else the optimizer's own. shared=True: TabM-style members sharing their weights
    (shared_members.SharedMembers, with adapters "first" or "all"), one learning rate for all."""

    def __new__(cls, model=None, members=8, shared=False, learning_rates=None, weight_decays=None, adapters="first"):
        if shared:
            if learning_rates is not None or weight_decays is not None:
                raise ValueError("members that share their weights share one learning rate and weight decay: "
                                 "learning_rates and weight_decays need shared=False")
            return SharedMembers(model, members, adapters=adapters)
        return super().__new__(cls)

    def __init__(self, model, members=8, shared=False, learning_rates=None, weight_decays=None, adapters="first"):
        if not isinstance(model, Sequential):
            raise TypeError(f"Ensemble takes a Sequential giving the members' architecture, got {type(model).__name__}")
        self.members = whole_number(members, "members", 1, MAX_MEMBERS)
        self.learning_rates = self._per_member(learning_rates, "learning_rates")
        self.weight_decays = self._per_member(weight_decays, "weight_decays", low=0.0)
        # the template: architecture (layers copied with what they learnt before fit, e.g. adapt), compile settings
        self.model = Sequential(copy.deepcopy(model.layers), name=model.name)
        self.name = model.name
        if model.built:
            self.model.build((None, model.plan.n_in))
        if model.optimizer is not None:
            settings = model.compile_config()
            self.compile(settings["optimizer"], settings["loss"], settings["metrics"], device=model.device)
        self.theta = self.state = None  # (k, P), (k, S) once drawn
        self.history = None
        self.best_epochs = None  # each member's best epoch by the monitored quantity, after fit
        self.stop_training = False
        self.stop_reason = self.stop_cause = None
        self.metadata = None

    def _per_member(self, values, what, low=None):
        """One number per member (positive, or at least `low`), or None."""
        if values is None:
            return None
        values = np.asarray(values, np.float64).reshape(-1)
        if not (values.size == self.members and np.isfinite(values).all()
                and (values > 0 if low is None else values >= low).all()):
            raise InputError(f"{what} needs {self.members} finite {'positive' if low is None else 'non-negative'} "
                             f"numbers, one per member, got {values.tolist()}")
        return values

    # ------------------------------------------------------------------ what Keras code reads
    @property
    def built(self):
        return self.theta is not None

    @property
    def plan(self):
        return self.model.plan

    @property
    def optimizer(self):
        return self.model.optimizer

    @property
    def loss(self):
        return self.model.loss

    @property
    def metrics(self):
        return self.model.metrics

    @property
    def device(self):
        return self.model.device

    @property
    def layers(self):
        """The members' layers (of the template: an ensemble's weights are its members')."""
        return self.model.layers

    @property
    def input_shape(self):
        return self.model.input_shape

    @property
    def output_shape(self):
        return self.model.output_shape

    def compile(self, optimizer="adam", loss=None, metrics=None, device="auto"):
        """Sequential.compile for every member (one optimizer kind; rates and decays per member as constructed)."""
        self.model.compile(optimizer, loss, metrics, device)
        if self.learning_rates is not None and self.optimizer.schedule()[0] != SCHEDULE_CONSTANT:
            raise ValueError("learning_rates per member need a constant learning rate, not a schedule")

    # ------------------------------------------------------------------ weights
    def build(self, input_shape=None, seed=None):
        """Draw every member's weights: member j's as Sequential.build(seed=member_seeds(seed, k)[j]) draws them."""
        template = self.model
        seed = utils.draw_seed() % (SEED_MAX + 1) if seed is None else seed
        template.build(input_shape)
        self.theta = np.zeros((self.members, template.plan.n_params), np.float32)
        self.state = np.zeros((self.members, template.plan.n_state), np.float32)
        for j, member_seed in enumerate(member_seeds(seed, self.members)):
            template._initialize(member_seed)
            self.theta[j], self.state[j] = template.theta, template.state

    def _ensure_built(self, X, seed=None):
        if not self.built:
            self.build((None, X.shape[1]), seed)
        elif X.shape[1] != self.plan.n_in:
            raise InputError(f"the model expects {self.plan.n_in} input features but the data has {X.shape[1]}")

    def member(self, j):
        """Member j as a Sequential of its own (a copy of its weights, the ensemble's compile settings)."""
        self._check_built()
        model = Sequential.from_config(self.model.get_config())
        model.build((None, self.plan.n_in))
        model.theta[:], model.state[:] = self.theta[j], self.state[j]
        if self.optimizer is not None:
            settings = self.model.compile_config()
            model.compile(settings["optimizer"], settings["loss"], settings["metrics"], device=self.device)
        return model

    def each_member(self):
        """Every member as a Sequential (member(j) for each j): what ONNX export averages."""
        return [self.member(j) for j in range(self.members)]

    def get_weights(self):
        """Every member's weights in Keras order, member after member."""
        self._check_built()
        return [w.copy() for j in range(self.members) for w in self._views(j)]

    def set_weights(self, weights):
        self._check_built()
        weights = list(weights)
        per = len(self.plan.variables)
        if len(weights) != per * self.members:
            raise ValueError(f"the ensemble has {per * self.members} weight arrays, got {len(weights)}")
        for j in range(self.members):
            for view, value in zip(self._views(j), weights[j * per:(j + 1) * per]):
                if np.shape(value) != view.shape:
                    raise ValueError(f"a weight of shape {np.shape(value)} where the model has {view.shape}")
                view[...] = value

    def _views(self, j):
        """Member j's weight arrays as views of theta[j] and state[j], in Keras order."""
        return [(self.theta if var.trainable else self.state)[j, var.offset:var.offset + var.size].reshape(var.shape)
                for var in self.plan.variables]

    def _check_built(self):
        if not self.built:
            raise ValueError("build or fit the ensemble first")

    def count_params(self):
        """Every member's parameters (the template's count times the members)."""
        return self.members * self.model.count_params()

    # ------------------------------------------------------------------ fit / evaluate / predict
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0, seed=None,
            distribute=None, threads=None):
        """Sequential.fit for every member in one compiled call per epoch. seed s gives member j the seed
        member_seeds(s, k)[j] (its weights, when this fit draws them, its shuffles and dropout masks). The History's
        logs are the ensemble's: loss (and metrics) the members' mean on the training rows; val_ ones those of the
        members' averaged prediction; history.members[j] holds member j's own logs. Callbacks see the ensemble's
        logs; best_epochs[j] is member j's best epoch by the monitored quantity (EarlyStopping's, else val_loss or
        loss), and EarlyStopping(restore_best_weights=True) restores each member's own best weights."""
        template = self.model
        template._check_compiled()
        X, Y, W, Xv, Yv, Wv = template._training_data(x, y, sample_weight, class_weight, validation_split,
                                                       validation_data)
        batch_size = 32 if batch_size is None else whole_number(batch_size, "batch_size", 1)
        group = template._process_group(distribute)
        seed = utils.draw_seed() % (SEED_MAX + 1) if seed is None else whole_number(seed, "seed", 0, SEED_MAX)
        if group:
            seed = group.broadcast(seed)
        self._ensure_built(X, seed)
        template._check_targets(Y, "y")
        if Xv is not None:
            self._ensure_built(Xv)
            template._check_targets(Yv, "validation targets")
        k, opt = self.members, self.optimizer
        opt.build(k * self.plan.n_params)
        if group:
            if not group.identical(*(a for a in (X, Y, W, Xv, Yv, Wv) if a is not None)):
                raise DistributedError("distribute='mpi' needs the same training and validation data on every rank")
            for array in (self.theta, self.state, *opt.slots):
                group.broadcast_array(array)
            opt.iterations = group.broadcast(opt.iterations)
            verbose = 0 if group.rank else verbose
        train_rows = min(batch_size, X.shape[0])
        capacity = max(train_rows, min(0 if Xv is None else Xv.shape[0], EVAL_ROWS))
        verbose = 1 if verbose == "auto" else int(verbose)
        steps = -(-X.shape[0] // train_rows)
        cbs = callbacks_module.CallbackList(callbacks, self, {"verbose": verbose, "epochs": epochs, "steps": steps})
        self.stop_training = False
        self.stop_reason = self.stop_cause = None
        objective = template._objective(Y.shape[1])
        hp = np.tile(opt.hyperparameters(), (k, 1))
        slots = [slot.reshape(k, -1) for slot in opt.slots]
        with BlasThreads(threads, capacity * self.plan.n_params) as blas, \
                template._session(capacity, Y.shape[1], objective, (opt.code, hp, slots, opt.schedule()),
                                  (self.theta, self.state)) as session:
            loop = Loop(train_rows, bool(shuffle), np.array(member_seeds(seed, k), np.int64), np.zeros(2, np.int64))
            run = _Run(self, session, session.data(X, Y, W, Xv, Yv, Wv), objective, loop, cbs, steps,
                       group.handle if group else None)
            logs = run.epochs(initial_epoch, epochs, blas)
        cbs.on_train_end(logs)
        run.restore_best(cbs.callbacks)
        self.history = cbs.history
        self.history.members = run.member_history
        self.best_epochs = run.best_epochs
        return self.history

    def _hyperparameters(self, base_rate):
        """(k, H): the optimizer's hyperparameters for every member, with each member's learning rate (scaled as a
        callback scaled the optimizer's since fit began) and weight decay."""
        opt = self.optimizer
        hp = np.tile(opt.hyperparameters(), (self.members, 1))
        if self.learning_rates is not None:
            hp[:, 0] = self.learning_rates * (opt.learning_rate / base_rate)
        if self.weight_decays is not None:
            hp[:, 1] = self.weight_decays
        return hp

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, return_dict=False,
                 threads=None, members=False):
        """Sequential.evaluate of the members' averaged prediction; members=True: a list of each member's result
        instead."""
        template = self.model
        template._check_compiled()
        X, Y = as_pair(x, y)
        W = as_weights(sample_weight, X.shape[0])
        self._check_built()
        self._ensure_built(X)
        template._check_targets(Y, "y")
        objective = template._objective(Y.shape[1])
        width = int(objective.metric_slots[-1])
        logs = np.zeros((self.members + 1, width), np.float64)
        started = time.perf_counter()
        rows = min(int(batch_size or EVAL_ROWS), X.shape[0])
        with BlasThreads(threads, rows * self.plan.n_params), \
                template._session(rows, Y.shape[1], objective, weights=(self.theta, self.state)) as session:
            session.kernels.evaluate_members(session.net, session.weights, session.ws, objective, session.put(X),
                                             session.put(Y), session.put(W), session.put(_mean_buffer(session)),
                                             logs, None)
        names = template._log_names()
        results = [{n: float(v) for n, v in zip(names, template._figures(row, objective, Y.shape[1], W))}
                   for row in logs]
        if verbose == "auto" or int(verbose):
            duration = callbacks_module.format_duration(time.perf_counter() - started)
            print(f"{self.members} members - {duration}" + callbacks_module.format_logs(results[-1]))
        chosen = results[:-1] if members else [results[-1]]
        shaped = [r if return_dict else (r["loss"] if not self.metrics else list(r.values())) for r in chosen]
        return shaped if members else shaped[0]

    def predict(self, x, batch_size=None, verbose=0, threads=None, members=False):
        """The members' averaged inference outputs (n, n_out), float32; members=True: each member's, (k, n, n_out)."""
        self._check_built()
        X = as_matrix(x)
        self._ensure_built(X)
        out = np.empty((self.members, X.shape[0], self.plan.n_out), np.float32)
        rows = min(int(batch_size or EVAL_ROWS), X.shape[0])
        with BlasThreads(threads, rows * self.plan.n_params), \
                self.model._session(rows, 1, weights=(self.theta, self.state)) as session:
            result = session.put(out)
            session.kernels.predict_members(session.net, session.weights, session.ws, session.put(X), result)
            session.device.fetch(result, out)
        return out if members else out.mean(axis=0, dtype=np.float32)

    def __call__(self, x):
        return self.predict(x)

    # ------------------------------------------------------------------ description and persistence
    def summary(self, print_fn=print):
        """The members' architecture (Sequential.summary), then the ensemble's size."""
        self.model.summary(print_fn=print_fn)
        each = self.model.count_params() if self.model.built else 0
        print_fn(f"Ensemble of {self.members} independent members: {self.members * each:,} params in all")

    def get_config(self):
        config = self.model.get_config()
        config["members"] = self.members
        for name in ("learning_rates", "weight_decays"):
            values = getattr(self, name)
            config[name] = None if values is None else values.tolist()
        return config

    def save(self, path, metadata=None):
        """Write the ensemble to one file (Sequential.save's format: the members' weights in order, the
        architecture with the member count); nbtrain.load_model reads it back as an Ensemble."""
        _own_format(path)
        self._check_built()
        opt = self.optimizer
        state = {"slots": opt.slots, "iterations": opt.iterations} if opt is not None and opt.slots is not None else None
        _make_parent(path)
        write_model(path, SavedModel(self.get_config(), self.plan.n_in, self.model.compile_config(),
                                     self.get_weights(), state, self.history.history if self.history else {},
                                     metadata))

    def save_weights(self, filepath):
        """Write every member's weights alone (Sequential.save_weights' format, with the member count)."""
        _own_format(filepath)
        self._check_built()
        _make_parent(filepath)
        write_model(filepath, SavedModel(self.get_config(), self.plan.n_in, None, self.get_weights(), None, {}))

    def export(self, filepath, format="onnx"):
        """An ONNX graph of the whole ensemble: "input" (N, n_in) -> "output" (N, n_out), the members' average."""
        from . import exporting
        if format != "onnx":
            raise ValueError(f"nbtrain exports format='onnx', not {format!r}")
        self._check_built()
        _make_parent(filepath)
        exporting.write(exporting.sequential_proto(self), filepath)


def _mean_buffer(session):
    """Where the members' average of a batch is summed (engine.members.score_average): capacity x n_out."""
    return np.zeros(session.ws.capacity * session.plan.n_out, np.float32)


class _Run:
    """One Ensemble.fit's epochs: the compiled member epochs, callbacks in between, each member's logs and best
    epoch (and, for EarlyStopping's restore_best_weights, best weights)."""

    def __init__(self, ensemble, session, data, objective, loop, cbs, steps, comm):
        self.ensemble, self.session, self.data, self.objective = ensemble, session, data, objective
        self.loop, self.cbs, self.steps, self.comm = loop, cbs, steps, comm
        self.member_history = [{} for _ in range(ensemble.members)]
        stopper = next((cb for cb in cbs.callbacks if isinstance(cb, callbacks_module.EarlyStopping)), None)
        monitor = stopper.monitor if stopper else ("val_loss" if data.Xv.shape[0] else "loss")
        self.rule = Monitor(monitor, stopper.mode if stopper else "auto", 0.0, ensemble.metrics)
        self.best = [self.rule.worst] * ensemble.members
        self.best_epochs = [None] * ensemble.members
        self.keep = stopper is not None and stopper.restore_best_weights
        self.kept = (ensemble.theta.copy(), ensemble.state.copy()) if self.keep else None

    def epochs(self, initial_epoch, epochs, blas):
        """The training loop (Sequential._epochs' rules: a non-finite loss, Ctrl-C or SIGTERM ends it cleanly, an
        epoch a signal cuts short is not recorded); returns the last epoch's ensemble logs."""
        ensemble, session, loop, cbs = self.ensemble, self.session, self.loop, self.cbs
        template, opt, control = ensemble.model, ensemble.optimizer, loop.control
        names = template._log_names()
        validated = self.data.Xv.shape[0] > 0
        keys = names + (["val_" + n for n in names] if validated else [])
        width = int(self.objective.metric_slots[-1])
        buffer = np.zeros((ensemble.members + 1, 2 * width), np.float64)
        mean = session.put(_mean_buffer(session))
        beside = self.data.X.shape[0] * ensemble.members * max(ensemble.plan.n_params, 1) >= BESIDE_WORK
        base_rate = opt.learning_rate
        logs = {}
        cbs.on_train_begin()
        with StopRequests(control) as requests:
            try:
                for epoch in range(initial_epoch, epochs):
                    if control[STOP] and self.comm is None:
                        break
                    cbs.on_epoch_begin(epoch)
                    blas.adapt()
                    session.set_hyperparameters(ensemble._hyperparameters(base_rate))
                    args = (session.net, session.weights, session.opt, session.ws, self.objective, self.data, loop,
                            opt.iterations, mean, buffer, self.comm)
                    done = Sequential._run_epoch(session.kernels.train_members, args, control, beside, cbs, epoch)
                    opt.iterations += done
                    if control[STOP] and done < self.steps:
                        break
                    rows = [dict(zip(keys, self._figures(row, width, validated))) for row in buffer]
                    logs = rows[-1]
                    self._record(epoch, rows[:-1])
                    if done < self.steps:
                        ensemble.stop_training, ensemble.stop_cause = True, "nonfinite"
                        ensemble.stop_reason = (f"a member's loss became non-finite at epoch {epoch + 1}; training "
                                                "stopped (try a lower learning rate)")
                        warnings.warn(ensemble.stop_reason, RuntimeWarning, stacklevel=4)
                    cbs.on_epoch_end(epoch, logs)
                    if ensemble.stop_training or control[STOP]:
                        break
            except KeyboardInterrupt:
                control[STOP] = signal.SIGINT
            if requests.cause:
                ended = len(cbs.history.epoch)
                ensemble.stop_training, ensemble.stop_cause = True, requests.cause
                ensemble.stop_reason = f"{requests.cause} after {ended} epochs"
        return logs

    def _figures(self, row, width, validated):
        template, data, k = self.ensemble.model, self.data, self.data.Y.shape[1]
        figures = template._figures(row[:width], self.objective, k, data.W)
        if validated:
            figures += template._figures(row[width:], self.objective, k, data.Wv)
        return [float(v) for v in figures]

    def _record(self, epoch, rows):
        """Each member's logs, and its best epoch (and weights, when kept) by the monitored quantity."""
        ensemble = self.ensemble
        if self.keep:
            self.session.pull()
        for j, row in enumerate(rows):
            for key, value in row.items():
                self.member_history[j].setdefault(key, []).append(value)
            value = row.get(self.rule.name)
            if value is not None and np.isfinite(value) and self.rule.is_improvement(value, self.best[j]):
                self.best[j], self.best_epochs[j] = value, epoch
                if self.keep:
                    self.kept[0][j], self.kept[1][j] = ensemble.theta[j], ensemble.state[j]

    def restore_best(self, callbacks):
        """EarlyStopping(restore_best_weights=True) restored the ensemble's best epoch: each member gets its own."""
        stopper = next(cb for cb in callbacks if isinstance(cb, callbacks_module.EarlyStopping)) if self.keep else None
        if stopper is not None and stopper.best_weights is not None:
            ensemble = self.ensemble
            for j, epoch in enumerate(self.best_epochs):
                if epoch is not None:
                    ensemble.theta[j], ensemble.state[j] = self.kept[0][j], self.kept[1][j]


def _members_layout(architecture, width):
    """read_model's layout of an ensemble's file: each member's weight shapes, member after member."""
    members = architecture.get("members")
    if not isinstance(members, int) or isinstance(members, bool) or not 1 <= members <= MAX_MEMBERS:
        raise ValueError(f"the member count {members!r} is not a whole number from 1 to {MAX_MEMBERS}")
    shapes, slots = _layout(architecture, width)
    return shapes * members, slots * members


def _read(path):
    """The SavedModel of any model file, an Ensemble's weights laid out member after member."""
    return read_model(path, lambda a, w: _members_layout(a, w) if "members" in a else _layout(a, w))


def load_model(path, device="auto"):
    """nbtrain.load_model: an Ensemble's file as an Ensemble (weights, compile settings on `device`, optimizer
    state, history), any other file as Sequential's load_model reads it."""
    saved = _read(path)
    return _ensemble(saved, path, device) if "members" in saved.model else load_sequential(path, device, saved)


def load_network(path, device="auto"):
    """model.load_network for any model file (the command line's run folders): an Ensemble's as an Ensemble."""
    saved = _read(path)
    return _ensemble(saved, path, device) if "members" in saved.model else load_sequential_network(path, device,
                                                                                                 saved)


def _ensemble(saved, path, device):
    """The Ensemble a SavedModel with a member count holds."""
    config = saved.model
    try:
        ensemble = Ensemble(Sequential.from_config(config), config["members"],
                            learning_rates=config.get("learning_rates"), weight_decays=config.get("weight_decays"))
        ensemble.build((None, saved.input_width), seed=0)
        ensemble.set_weights(saved.weights)
        if saved.compile:
            compiled = saved.compile
            ensemble.compile(compiled["optimizer"], compiled["loss"], compiled["metrics"], device=device)
            if saved.optimizer is not None:
                ensemble.optimizer.slots = [slot.astype(np.float32) for slot in saved.optimizer["slots"]]
                ensemble.optimizer.iterations = saved.optimizer["iterations"]
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, InputError) as exc:
        raise ModelFileError(f"{path} holds an inconsistent nbtrain ensemble ({type(exc).__name__}: {exc})") from None
    ensemble.history = callbacks_module.History()
    ensemble.history.history = {key: list(values) for key, values in saved.history.items()}
    ensemble.metadata = saved.metadata
    return ensemble
