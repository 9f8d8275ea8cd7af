"""Figures (PNG) and the HTML run report. Figures register with ``@figure`` and decide for
themselves whether they apply to a model (by capability, never by name)."""
from .figures import FIGURES, figure, image_grid, save_grid

__all__ = ["FIGURES", "figure", "image_grid", "save_grid"]
