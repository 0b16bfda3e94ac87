"""Hyperparameter sweeps: `sweep()` (api), the search space (space), one trial (trial), the board and leaderboard
(board), the local process pool (pool), Ray Tune (ray_tune) and what a sweep shows and writes (report)."""
from .api import sweep

__all__ = ["sweep"]
