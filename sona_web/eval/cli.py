"""Command line of the evaluation: ``python -m sona_web.eval routing DATA_DIR [options]``.

Exit codes: 0 on success, 2 when the data folder is missing or an option is
invalid (the message names the path or the option).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from . import costs as cost_module
from .data import load_routing_dataset
from .drift import DEFAULT_DRIFT_PATTERN, run_drift
from .embed import embed_dataset
from .registry import DEFAULT_OPTIONAL_ROUTERS, DEFAULT_ROUTERS, missing_dependency
from .report import drift_table, per_weight_table, results_json, summary_table
from .routing import run_sweep, summarise

__all__ = ["main"]

DEFAULT_COST_WEIGHTS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)
QUICK_COST_WEIGHTS = (0.0, 0.1, 0.3)
QUICK_PROMPTS = 1500
QUICK_SEEDS = 2
QUICK_DRIFT_WINDOW = 25


class ProgressBar:
    """A one-line progress bar on a text stream; on a non-terminal it prints a line per 2%."""

    def __init__(self, stream=sys.stderr, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self._interactive = hasattr(stream, "isatty") and stream.isatty()
        self._last_time = 0.0
        self._last_step = -1
        self._start = time.monotonic()

    def __call__(self, done: int, total: int, label: str) -> None:
        fraction = done / total if total else 1.0
        now = time.monotonic()
        if self._interactive:
            if now - self._last_time < 0.2 and done < total:
                return
            self._last_time = now
            filled = int(self.width * fraction)
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(f"\r[{bar}] {100 * fraction:5.1f}% {now - self._start:6.0f}s {label[:50]:<50}")
            if done >= total:
                self.stream.write("\n")
        else:
            step = int(50 * fraction)
            if step == self._last_step:
                return
            self._last_step = step
            self.stream.write(f"{100 * fraction:5.1f}% after {now - self._start:.0f}s: {label}\n")
        self.stream.flush()


def _float_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(item) for item in text.split(",") if item.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(not np.isfinite(v) or v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers >= 0, got {text!r}")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sona_web.eval", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    routing = commands.add_parser("routing", help="online routing evaluation on per-model outcome data")
    routing.add_argument("data_dir", help="folder with responses/*.csv (e.g. ../shared/data/routellm_mmlu)")
    routing.add_argument("--out", default="dist/eval", help="output folder for tables, JSON and plots (default dist/eval)")
    routing.add_argument("--embedder", default="hashed", help="text embedder name (hashed, wordllama, minilm)")
    routing.add_argument("--dim", type=_positive_int, default=256, help="dimension of the hashed embedder (default 256)")
    routing.add_argument("--model-dir", help="model folder for the wordllama and minilm embedders")
    routing.add_argument("--routers", help="comma-separated router names (default: all but river_linucb that can run here)")
    routing.add_argument("--lambdas", type=_float_list, help="comma-separated cost weights (default 0,0.05,0.1,0.15,0.2,0.3,0.5)")
    routing.add_argument("--seeds", type=_positive_int, help="number of seeds, 0..N-1 (default 5)")
    routing.add_argument("--costs", help="per-model costs: numbers in column order, or name=cost pairs; normalised to [0, 1]")
    routing.add_argument("--match", default="sona", help="router whose call shares the random router copies (default sona)")
    routing.add_argument("--limit", type=_positive_int, help="evaluate on this many prompts drawn at random (seed 0)")
    routing.add_argument("--quick", action="store_true",
                         help=f"{QUICK_PROMPTS} prompts, {QUICK_SEEDS} seeds, cost weights {list(QUICK_COST_WEIGHTS)}")
    routing.add_argument("--keep-contaminated", action="store_true", help="keep the prompts listed in contaminated_prompts.jsonl")
    routing.add_argument("--no-drift", action="store_true", help="skip the drift scenario")
    routing.add_argument("--drift-pattern", default=DEFAULT_DRIFT_PATTERN, help="regular expression selecting the drifted subjects")
    routing.add_argument("--drift-lambda", type=float, default=0.2, help="cost weight of the drift scenario (default 0.2)")
    routing.add_argument("--drift-window", type=_positive_int, help="window in group interactions for drift recovery (default 100)")
    routing.add_argument("--jobs", type=_positive_int, default=1,
                         help="worker processes; cells of one seed and cost weight run in parallel (default 1)")
    routing.add_argument("--no-cache", action="store_true", help="embed again instead of reading the embedding cache")
    routing.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    return parser


def _select_routers(requested: str | None, stderr) -> tuple[list[str], dict[str, str]]:
    if requested:
        names = [name.strip() for name in requested.split(",") if name.strip()]
    else:
        names = [*DEFAULT_ROUTERS, *DEFAULT_OPTIONAL_ROUTERS]
    selected, skipped = [], {}
    for name in names:
        reason = missing_dependency(name)
        if reason is None:
            selected.append(name)
        else:
            skipped[name] = reason
            stderr.write(reason + "\n")
    return selected, skipped


def _make_embedder(args):
    from sona_web.embedders import get_embedder

    if args.embedder == "hashed":
        return get_embedder("hashed", dim=args.dim)
    if args.model_dir is None:
        raise ValueError(f"--embedder {args.embedder} needs --model-dir (a folder built by build_scripts/build_models.py)")
    return get_embedder(args.embedder, model_dir=args.model_dir)


def run_routing(args, stdout=sys.stdout, stderr=sys.stderr) -> int:
    dataset = load_routing_dataset(args.data_dir, drop_contaminated=not args.keep_contaminated)
    limit = QUICK_PROMPTS if args.quick and args.limit is None else args.limit
    if limit is not None and limit < dataset.n_prompts:
        dataset = dataset.subset(np.sort(np.random.default_rng(0).permutation(dataset.n_prompts)[:limit]))
    stderr.write(
        f"{dataset.n_prompts} prompts, {dataset.n_models} models {list(dataset.model_names)}, "
        f"{dataset.dropped_contaminated} contaminated prompts dropped\n"
    )

    raw_costs = cost_module.default_costs(dataset.outcomes) if args.costs is None else cost_module.parse_costs(args.costs, dataset.model_names)
    costs = cost_module.normalise_costs(raw_costs)
    weights = args.lambdas or (QUICK_COST_WEIGHTS if args.quick else DEFAULT_COST_WEIGHTS)
    seeds = tuple(range(args.seeds or (QUICK_SEEDS if args.quick else 5)))
    routers, skipped = _select_routers(args.routers, stderr)
    if not routers:
        raise ValueError("no router can run: every requested router is missing a dependency")
    curve_weight = 0.1 if 0.1 in weights else weights[len(weights) // 2]

    embedder = _make_embedder(args)
    vectors = embed_dataset(dataset, embedder, use_cache=not args.no_cache)
    progress = ProgressBar(stderr)
    sweep = run_sweep(vectors, dataset.outcomes, dataset.subjects, dataset.model_names, costs, routers,
                      weights, seeds, match=args.match, curve_weight=curve_weight, progress=progress,
                      jobs=args.jobs)
    sweep.skipped = skipped
    summaries = summarise(sweep)

    drift = None
    if not args.no_drift:
        window = args.drift_window or (QUICK_DRIFT_WINDOW if args.quick else 100)
        drift = run_drift(vectors, dataset.outcomes, dataset.subjects, dataset.model_names, costs, routers,
                          args.drift_lambda, seeds, pattern=args.drift_pattern, window=window,
                          match=args.match, progress=ProgressBar(stderr), jobs=args.jobs)

    settings = {
        "data_dir": str(args.data_dir), "embedder": embedder.name, "dim": int(vectors.shape[1]),
        "routers": routers, "cost_weights": list(weights), "seeds": list(seeds), "match": args.match,
        "raw_costs": raw_costs, "contaminated_dropped": dataset.dropped_contaminated,
        "curve_weight": curve_weight, "drift_lambda": args.drift_lambda, "drift_pattern": args.drift_pattern,
    }
    _write_outputs(Path(args.out), sweep, summaries, drift, settings, args.no_plots, stdout, stderr)
    return 0


def _write_outputs(out: Path, sweep, summaries, drift, settings, no_plots: bool, stdout, stderr) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sections = ["## Summary", summary_table(summaries, sweep), "", "## Per cost weight", per_weight_table(summaries, sweep)]
    if drift is not None:
        sections += ["", "## Drift", drift_table(drift)]
    text = "\n".join(sections) + "\n"
    (out / "summary.md").write_text(text, encoding="utf-8")
    (out / "results.json").write_text(json.dumps(results_json(sweep, summaries, drift, settings), indent=1), encoding="utf-8")
    stdout.write(text)

    if no_plots:
        return
    from .plots import matplotlib_missing

    reason = matplotlib_missing()
    if reason is not None:
        stderr.write(reason + "\n")
        return
    from .plots import plot_drift, plot_learning_curves, plot_quality_cost

    written = [plot_quality_cost(summaries, sweep, out / "quality_cost.png"),
               plot_learning_curves(sweep, out / "learning_curve.png", window=max(20, sweep.n_prompts // 28))]
    if drift is not None:
        written.append(plot_drift(drift, out / "drift.png"))
    stderr.write("wrote " + ", ".join(str(path) for path in written) + f", {out / 'summary.md'}, {out / 'results.json'}\n")


def main(argv=None, stdout=sys.stdout, stderr=sys.stderr) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run_routing(args, stdout, stderr)
    except FileNotFoundError as error:
        stderr.write(f"error: {error}\n")
        return 2
    except (ValueError, KeyError) as error:
        stderr.write(f"error: {error}\n")
        return 2
