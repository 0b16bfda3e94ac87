"""A model's configuration as compile-time constants: which op kinds, activations, loss, metrics, optimizer and
schedule it uses. Each target compiles its walkers once per configuration, with these constants as globals, so
Numba prunes every branch a model cannot take before typing (only the kernels it uses are compiled) and the
kernels that take a code see it as a constant. Widths, depth, rates and every float hyperparameter stay run-time values:
a sweep over them reuses one compilation.

Two configurations compile apart because each compiled copy carries the configuration's key in its qualified
name, which Numba's cache puts in the file name of its index; the key also hashes the engine's sources, so a
changed kernel is never served from an old cache entry.
"""
import hashlib
from pathlib import Path

from . import plan
from .plan import (
    ACT_SIGMOID, ACT_SOFTMAX, LOSS_BCE, LOSS_BCE_LOGITS, LOSS_CCE, LOSS_CCE_LOGITS, LOSS_SCE, LOSS_SCE_LOGITS,
    OP_ACTIVATION, OPT_SGD, SCHEDULE_CONSTANT, T_ACT, T_KIND, T_R,
)

# A softmax or sigmoid output scored by its cross-entropy is scored on the logits, with the fused gradient p - y.
FUSED = {(ACT_SIGMOID, LOSS_BCE): LOSS_BCE_LOGITS, (ACT_SOFTMAX, LOSS_CCE): LOSS_CCE_LOGITS,
         (ACT_SOFTMAX, LOSS_SCE): LOSS_SCE_LOGITS}


def _codes(prefixes):
    """The plan's named codes whose names start with one of `prefixes`: {name: code}."""
    return {name: value for name, value in vars(plan).items() if name.startswith(prefixes) and isinstance(value, int)}


OPS = _codes(("OP_",))
ACTIVATIONS = _codes(("ACT_",))
OBJECTIVES = _codes(("LOSS_", "METRIC_"))


def _engine_hash():
    """A hash of the engine's sources: compiled copies are keyed by it, so an edited kernel compiles again."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


ENGINE = _engine_hash()


class Config:
    """The constants a target's walkers read as globals (`USE_<code name>` flags, HEAD, HEAD_FUSED, OPTIMIZER,
    SCHEDULE, PENALTIES, MEMBERS, STACKED, PLAIN_HEAD), and `key`, a short hash naming the compiled copies of this
    configuration."""

    def __init__(self, constants):
        self.constants = dict(sorted(constants.items()))
        text = repr(sorted(self.constants.items())) + ENGINE
        self.key = hashlib.sha256(text.encode()).hexdigest()[:16]

    def __eq__(self, other):
        return isinstance(other, Config) and self.constants == other.constants

    def __hash__(self):
        return hash(self.key)

    def __repr__(self):
        used = [name[4:] for name, value in self.constants.items() if name.startswith("USE_") and value]
        return (f"Config({', '.join(used)}; head {self.constants['HEAD']}, optimizer {self.constants['OPTIMIZER']}, "
                f"schedule {self.constants['SCHEDULE']})")


def head(table, loss_code):
    """(the code the loss is computed with, whether it reads the input of the last op): a sigmoid or softmax output
    under its cross-entropy is scored on the logits."""
    last = table[-1]
    if last[T_KIND] == OP_ACTIVATION and (int(last[T_ACT]), loss_code) in FUSED:
        return FUSED[int(last[T_ACT]), loss_code], True
    return loss_code, False


def configure(model_plan, loss_code=None, metric_codes=(), optimizer=OPT_SGD, schedule=SCHEDULE_CONSTANT):
    """The Config of a plan trained or scored with these codes (loss None: predict only)."""
    table = model_plan.table
    kinds = {int(k) for k in table[:, T_KIND]}
    acts = {int(a) for a, k in zip(table[:, T_ACT], table[:, T_KIND]) if k == OP_ACTIVATION}
    head_code, fused = head(table, loss_code) if loss_code is not None else (-1, False)
    objectives = {int(c) for c in metric_codes} | ({head_code} if loss_code is not None else set())
    for codes, used in ((OPS, kinds), (ACTIVATIONS, acts), (OBJECTIVES, objectives)):
        unknown = used - set(codes.values())
        if unknown:
            raise ValueError(f"the engine has no kernel for code(s) {sorted(unknown)}")
    constants = {f"USE_{name}": code in used for codes, used in ((OPS, kinds), (ACTIVATIONS, acts),
                                                                 (OBJECTIVES, objectives))
                 for name, code in codes.items()}
    constants.update(HEAD=int(head_code), HEAD_FUSED=bool(fused), OPTIMIZER=int(optimizer), SCHEDULE=int(schedule),
                     PENALTIES=bool((table[:, T_R] >= 0).any()))
    # Shared-weight members: batches stacked MEMBERS times; inference scores the members' mean output with the loss
    # in output space (PLAIN_HEAD: the loss as given, never the fused form on the logits).
    constants.update(MEMBERS=int(model_plan.members), STACKED=model_plan.members > 1,
                     PLAIN_HEAD=int(loss_code) if loss_code is not None else -1)
    return Config(constants)
