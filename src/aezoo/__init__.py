"""aezoo: the autoencoder family in PyTorch, with one API.

    data = aezoo.data.load("fashion-mnist")
    model = aezoo.create("vae", input_shape=data.input_shape, latent_dim=16)
    aezoo.train(model, data, epochs=10, out="runs/vae")
    z = aezoo.load("runs/vae").encode(x)
    run = aezoo.open_run("runs/vae")               # the run: .model, .config, .dataset(), .prepare(files)
    items = run.prepare(["new/*.png"])            # resized, converted, scaled as trained; items.sources

    index = aezoo.index("runs/vae", data)         # FAISS index of the codes (extra "search")
    hits = index.search(x, k=10)                  # ids, distances, labels of the nearest items
    blob = aezoo.compress(vq_model, x)            # entropy-coded codes of a VQ run (extra "compress")
    x_hat = aezoo.decompress(vq_model, blob)
    s = aezoo.score("runs/vae", "new.csv")        # anomaly scores (neg. ELBO, ...) of new rows, the run's scaling
"""
from . import data
from .errors import AezooError, CheckpointError, ConfigError, DataError, NotSupportedError, TrainingError
from .evaluate import evaluate
from .compress import compress, decompress
from .registry import create, list_models, register
from .run import score, train
from .runs import Run, open_run
from .runs import load_model as load
from .search import index, load_index

__version__ = "0.1.0"

__all__ = [
    "AezooError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "NotSupportedError",
    "Run",
    "TrainingError",
    "compress",
    "create",
    "data",
    "decompress",
    "evaluate",
    "index",
    "list_models",
    "load",
    "load_index",
    "open_run",
    "register",
    "score",
    "train",
    "__version__",
]
