"""What tests/test_mpi.py runs under `mpiexec -n P python tests/mpi_prepare.py TABLE TARGET OUT_DIR TEST_SPLIT
SCALING`: every rank prepares TABLE through streaming.prepare_file with its share of the rows and writes the
preprocessing and arrays it got (the held-out test rows' too) to OUT_DIR/rank<r>.npz, to be compared with one
process's."""
import json
import sys

import numpy as np

from nbtrain.distributed import Group
from nbtrain.tabular import streaming, tablefile
from nbtrain.tabular.streaming import prepare_file


def arrays(prep):
    """The Prepared as named arrays (the preprocessing as JSON text)."""
    return {"preprocessing": np.array(json.dumps(prep.preprocessing.to_dict())), "x": prep.x, "y": prep.y,
            "x_val": prep.x_val, "y_val": prep.y_val, "notes": np.array(json.dumps([prep.notes, prep.warnings])),
            **({} if prep.test is None else dict(zip(("x_test", "y_test"), prep.test[:2])))}


if __name__ == "__main__":
    source, target, out, test_split, scaling = sys.argv[1:6]
    tablefile.CHUNK_ROWS = 7  # many chunks per share
    streaming.PIECE = 5  # the whole arrays assembled in many pieces
    group = Group()
    prep = prepare_file(source, target, scaling=scaling, group=group, test_split=float(test_split))[1]
    np.savez(f"{out}/rank{group.rank}.npz", **arrays(prep))
