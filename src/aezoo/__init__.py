"""aezoo: the autoencoder family in PyTorch, with one API.

    data = aezoo.data.load("fashion-mnist")
    model = aezoo.create("vae", input_shape=data.input_shape, latent_dim=16)
    aezoo.train(model, data, epochs=10, out="runs/vae")
    z = aezoo.load("runs/vae").encode(x)
"""
from . import data
from .errors import AezooError, CheckpointError, ConfigError, DataError, NotSupportedError, TrainingError
from .evaluate import evaluate
from .registry import create, list_models, register
from .run import train
from .train.checkpoint import load_model as load

__version__ = "0.1.0"

__all__ = [
    "AezooError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "NotSupportedError",
    "TrainingError",
    "create",
    "data",
    "evaluate",
    "list_models",
    "load",
    "register",
    "train",
    "__version__",
]
