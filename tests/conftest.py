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
