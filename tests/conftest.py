import os

import pytest
import torch

os.environ.setdefault("AEZOO_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def tiny_batch(model, n: int = 6):
    """Synthetic inputs in [0, 1] (and labels when the model needs them) for ``model``'s tiny config."""
    x = torch.rand(n, *model.config.input_shape)
    y = None
    if model.needs_labels:
        y = torch.arange(n) % model.num_classes
    return x, y


def one_line_error(capsys, code, pattern) -> str:
    """The CLI's answer to bad input: exit 2 and one line on stderr matching ``pattern`` (no traceback); returns the line."""
    import re

    err = capsys.readouterr().err
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.startswith("aezoo: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]
