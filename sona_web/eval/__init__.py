"""Evaluation of online routers on real per-model outcome data (RouteLLM's MMLU by default).

``python -m sona_web.eval routing DATA_DIR`` replays the prompts of
``DATA_DIR/responses/*.csv`` to sona-web's router and the field's baselines
under bandit feedback and writes tables and plots (see docs/benchmarks.md).
The harness needs numpy only; plots need matplotlib and two optional
routers need vowpalwabbit or river.
"""

from .baselines import (
    EpsilonGreedyRouter,
    FixedRouter,
    KMeansThompsonRouter,
    KNNRouter,
    LinUCBRouter,
    RandomRouter,
    Router,
)
from .data import RoutingDataset, load_routing_dataset
from .drift import run_drift
from .metrics import apgr, cpt, mean_interval, pgr, regret
from .routing import replay, run_sweep, summarise

__all__ = [
    "EpsilonGreedyRouter",
    "FixedRouter",
    "KMeansThompsonRouter",
    "KNNRouter",
    "LinUCBRouter",
    "RandomRouter",
    "Router",
    "RoutingDataset",
    "apgr",
    "cpt",
    "load_routing_dataset",
    "mean_interval",
    "pgr",
    "regret",
    "replay",
    "run_drift",
    "run_sweep",
    "summarise",
]
