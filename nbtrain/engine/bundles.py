"""The engine's argument bundles: named tuples of arrays and numbers that the API builds once per fit (or
evaluate/predict call) and the kernels of both targets take. Numba compiles a named tuple as one typed argument
and caches functions that take them; building one from constants also unliterals them, so a call with fixed
values (an inference pass) does not compile a second specialization.

Dtypes are fixed: float32 for weights, buffers and data; int64 for the op table and codes; float64 only for the
hyperparameter vectors and the float64 accumulators (logs). On CUDA the float32 arrays are device arrays.
"""
from collections import namedtuple

# The model's structure: the op table (int64, (ops, N_COLUMNS)) and the ops' float parameters (float64).
Net = namedtuple("Net", "table fparams")
# Trainable parameters (theta) and non-trainable state (batchnorm moving statistics), flat float32.
Weights = namedtuple("Weights", "theta state")
# The optimizer: its code, hyperparameters (float64 [lr, weight_decay, its own in Keras order]), two slot vectors the
# size of theta, and its learning-rate schedule (float64 [code, parameters...]; [0]: the constant hp[0]).
Optimizer = namedtuple("Optimizer", "code hp slot1 slot2 schedule")
# The loss (code, parameter) and the metrics (int64 codes, float64 parameters) reported beside it; metric j's log
# slots start at metric_slots[j] (int64, m + 1 entries: slot 0 is the loss's, the last is the total width).
Objective = namedtuple("Objective", "loss_code loss_param metric_codes metric_params metric_slots")
# Buffers for batches of up to `capacity` rows: gathered inputs, targets and row weights, op outputs and their gradients,
# dropout masks / batchnorm x-hat, per-feature scratch, and the gradient of theta.
Workspace = namedtuple("Workspace", "capacity xin yin win acts dacts aux feat grad")
# Training rows (X, Y) with their weights W (rows,) and validation rows (Xv, Yv, Wv; zero rows when there are
# none), float32. A weight scales its row's loss, gradient and metrics (sample_weight, class_weight; ones by default).
Data = namedtuple("Data", "X Y W Xv Yv Wv")
# How an epoch walks the training rows: rows per step, whether to shuffle, the seed of shuffles and dropout, and
# control, int64 [stop, steps done]: a nonzero stop (set from outside, e.g. by a signal handler) ends the epoch at
# the end of the current step; the epoch writes the steps it has done, for progress displays to read.
Loop = namedtuple("Loop", "batch_size shuffle seed control")
STOP, DONE = 0, 1  # the slots of Loop.control
# One forward (and backward) pass: training or inference; the dropout draw's seed and step; the batch's first row
# within the global batch, the global batch's rows, and the MPI group sharing them (None, or int64 [rank, size]).
Pass = namedtuple("Pass", "train seed step row0 total comm")

WORKSPACE_ARRAYS = Workspace._fields[1:]
