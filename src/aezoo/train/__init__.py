from .trainer import TrainConfig, train

__all__ = ["TrainConfig", "train"]
