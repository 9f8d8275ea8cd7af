"""The training loop (``fit``), its checkpoints, the run folder's lock and resume rules, and torchrun
glue. It knows no figures or evaluation: ``aezoo.run`` adds those."""
from .trainer import TrainConfig, fit

__all__ = ["TrainConfig", "fit"]
