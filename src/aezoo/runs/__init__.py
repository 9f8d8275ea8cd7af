"""Trained runs, opened: ``Run`` (the folder, its model, its data and ``prepare``), ``open_run``.

The run folder's file functions are re-exported here for the layers that use runs (search, explore,
viz, compress commands), so that only ``runs/``, ``run.py`` and the CLI import ``train/``."""
from ..train.checkpoint import atomic_write, read_json, write_json
from ..data.preprocessing import Preprocessing
from .prepare import Prepared
from .run import Run, as_run, data_of_run, open_run


def load_model(path, device="cpu", raw: bool = False):
    """The model of a run folder (what ``aezoo.load`` returns)."""
    from ..train.checkpoint import load_model as _load

    return _load(path, device, raw=raw)


__all__ = ["Prepared", "Preprocessing", "Run", "as_run", "atomic_write", "data_of_run", "load_model", "open_run", "read_json", "write_json"]
