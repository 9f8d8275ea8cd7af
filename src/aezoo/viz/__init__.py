"""Figures (PNG) and the HTML run report. Figures register with ``@figure`` and decide for
themselves whether they apply to a model (by capability, never by name)."""
from .figures import FIGURES, figure, image_grid, save_grid, save_labelled_grid
from .latent import draw_interpolation, draw_latent_scatter, interpolate, project_2d
from .report import build_report, compare_runs

__all__ = ["FIGURES", "build_report", "compare_runs", "draw_interpolation", "draw_latent_scatter", "figure", "image_grid",
           "interpolate", "project_2d", "save_grid", "save_labelled_grid"]
