"""Model files taken apart and put together again, for the tests that build bad ones (test_saving,
test_hostile_files)."""
import io
import zipfile

import numpy as np


def rewrite(path, out, compression=zipfile.ZIP_STORED, **members):
    """Copy a model zip, replacing members by name with dots as underscores (config_json=..., weights_npz=...);
    None drops the member, and a member the zip lacks (metadata_json=...) is added."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", compression) as dst:
        names = src.namelist()
        for name in names + [key.replace("_", ".") for key in members if key.replace("_", ".") not in names]:
            data = members.get(name.replace(".", "_")) if name.replace(".", "_") in members else src.read(name)
            if data is not None:
                dst.writestr(name, data)
    return out


def npz_bytes(**arrays):
    """The bytes of an .npz file holding arrays (as weights.npz is written)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()
