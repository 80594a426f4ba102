"""Command-line demo: a router learns a simulated user's favourite response styles.

Real chat queries from CLINC150 (Larson et al., EMNLP 2019) are replayed in a
seeded random order. Each query is embedded with the hashed text embedder and
routed by an :class:`~sona_web.router.AdaptiveRouter` among response styles of
equal cost. A simulated user prefers one style per CLINC150 domain (banking,
travel, small talk, ...) and gives a thumbs up (quality 1) with probability
``P_LIKE_PREFERRED`` when served that style, and ``P_LIKE_OTHER`` otherwise.
The router is never given the domain, so it has to learn the user's taste
from the query text and the thumbs alone.

Usage::

    python -m sona_web.demo [--data ../shared/data] [--seed 0] [--messages 3000]
                            [--styles concise,formal,...] [--ablations]

:func:`run_demo` returns the same figures as a dict.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import SonaConfig
from .embedders import get_embedder
from .router import AdaptiveRouter

__all__ = [
    "ABLATIONS",
    "DEFAULT_STYLES",
    "ROUTER_ABLATIONS",
    "Clinc150",
    "assign_preferences",
    "expected_random_rate",
    "load_clinc150",
    "main",
    "run_ablations",
    "run_demo",
]

DEFAULT_STYLES = ("concise", "step_by_step", "empathetic", "with_examples", "formal")
# Thumbs-up probabilities of the simulated user: liked most of the time when
# served its preferred style, rarely otherwise, so feedback is noisy both ways.
P_LIKE_PREFERRED = 0.9
P_LIKE_OTHER = 0.15
DEFAULT_MESSAGES = 3000
DEFAULT_WINDOW = 250
DEFAULT_DATA_DIR = "../shared/data"
# Folder of the pretrained embedders that build_scripts/build_site.py writes.
DEFAULT_MODELS_DIR = "dist/site/models"
# CLINC150's in-scope splits. The out-of-scope queries belong to no domain.
SPLITS = ("train", "val", "test")
EXIT_DATA_MISSING = 2

# Variants run by --ablations: each switches one component off through the
# config field that disables it, or, for the router's own ridge prior, the
# AdaptiveRouter argument (ROUTER_ABLATIONS).
ABLATIONS: dict[str, dict] = {
    "full engine": {},
    "no ReasoningBank (pattern_clusters=0)": {"pattern_clusters": 0},
    "no ridge prior (linear_prior=False)": {},
    "no MicroLoRA (micro_lora_lr=0)": {"micro_lora_lr": 0.0},
    "no instant head updates (head_lr=0)": {"head_lr": 0.0},
    "no consolidation (base_lora_lr=0)": {"base_lora_lr": 0.0},
    "no EWC++ (ewc_lambda=0)": {"ewc_lambda": 0.0},
}
ROUTER_ABLATIONS: dict[str, dict] = {"no ridge prior (linear_prior=False)": {"linear_prior": False}}


@dataclass(frozen=True)
class Clinc150:
    """CLINC150's in-scope queries with their intents, and the intent-to-domain map."""

    queries: tuple[str, ...]
    intents: tuple[str, ...]
    domain_of_intent: dict[str, str]

    @property
    def domains(self) -> list[str]:
        return sorted(set(self.domain_of_intent.values()))

    def domain(self, index: int) -> str:
        return self.domain_of_intent[self.intents[index]]


def load_clinc150(data_dir) -> Clinc150:
    """Read ``<data_dir>/clinc150/data_full.json`` and ``domains.json``.

    Raises ``FileNotFoundError`` naming the missing file, and ``ValueError``
    when a query's intent has no domain.
    """
    folder = Path(data_dir) / "clinc150"
    data = _read_json(folder / "data_full.json")
    domains = _read_json(folder / "domains.json")
    domain_of_intent = {intent: domain for domain, intents in domains.items() for intent in intents}

    rows = [row for split in SPLITS for row in data[split]]
    unknown = sorted({intent for _, intent in rows} - set(domain_of_intent))
    if unknown:
        raise ValueError(f"intents without a domain in {folder / 'domains.json'}: {unknown[:5]}")
    return Clinc150(
        queries=tuple(query for query, _ in rows),
        intents=tuple(intent for _, intent in rows),
        domain_of_intent=domain_of_intent,
    )


def _read_json(path: Path):
    if not path.is_file():
        raise FileNotFoundError(
            f"CLINC150 file {path} not found; pass --data with the folder that contains clinc150/"
        )
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def assign_preferences(domains: Sequence[str], styles: Sequence[str], seed: int) -> dict[str, str]:
    """Give each domain a preferred style: shuffle the domains with ``seed``, then deal styles in turn.

    Dealing in turn gives every style to about the same number of domains.
    """
    rng = np.random.default_rng([seed, 1])
    order = rng.permutation(len(domains))
    return {domains[i]: styles[rank % len(styles)] for rank, i in enumerate(order)}


def expected_random_rate(n_styles: int) -> float:
    """Return the thumbs-up rate expected from choosing among ``n_styles`` uniformly at random."""
    return (P_LIKE_PREFERRED + (n_styles - 1) * P_LIKE_OTHER) / n_styles


def run_demo(
    data_dir=DEFAULT_DATA_DIR,
    messages: int = DEFAULT_MESSAGES,
    seed: int = 0,
    styles: Sequence[str] = DEFAULT_STYLES,
    *,
    window: int = DEFAULT_WINDOW,
    config_overrides: dict | None = None,
    router_options: dict | None = None,
    explain: int = 3,
    on_window: Callable[[dict], None] | None = None,
    embedder=None,
) -> dict:
    """Replay ``messages`` shuffled CLINC150 queries through a router and return what it learned.

    ``data_dir`` is the folder that contains ``clinc150/``, or an already loaded :class:`Clinc150`.

    Returns a dict with ``window_rates`` (one entry per ``window`` messages:
    ``start``, ``end``, ``rate``), ``first_window_rate``, ``last_window_rate``,
    ``overall_rate``, ``random_rate``, ``oracle_rate``, ``served`` ({style:
    times chosen}), ``decisions_digest``, ``patterns``,
    ``background_cycles``, ``preferences`` ({domain: style}), ``examples``
    (``explain`` "why this answer" records) and ``elapsed_s``.
    ``on_window`` is called with each window's entry as soon as it is complete.
    ``embedder`` is any object with ``embed(texts)``; the hashed embedder when None.
    ``router_options`` are further ``AdaptiveRouter`` keyword arguments.
    """
    styles = _check_styles(styles)
    data = data_dir if isinstance(data_dir, Clinc150) else load_clinc150(data_dir)
    _check_count(messages, "messages", len(data.queries))
    _check_count(window, "window")

    started = time.perf_counter()
    order = np.random.default_rng([seed, 0]).permutation(len(data.queries))[:messages]
    preferences = assign_preferences(data.domains, styles, seed)
    config = SonaConfig.default(**(config_overrides or {}))
    if embedder is None:
        embedder = get_embedder("hashed", dim=config.embedding_dim)
    embeddings = embedder.embed([data.queries[i] for i in order])
    router = AdaptiveRouter([(style, 0.0) for style in styles], config=config, seed=seed, **(router_options or {}))

    liked, chosen = _replay(router, embeddings, [data.domain(i) for i in order], preferences, seed, window, on_window)
    windows = _window_rates(liked, window)
    engine_stats = router.engine.stats()
    return {
        "messages": messages,
        "seed": seed,
        "styles": list(styles),
        "preferences": preferences,
        "config_overrides": dict(config_overrides or {}),
        "router_options": dict(router_options or {}),
        "window": window,
        "window_rates": windows,
        "first_window_rate": windows[0]["rate"],
        "last_window_rate": windows[-1]["rate"],
        "overall_rate": float(np.mean(liked)),
        "random_rate": expected_random_rate(len(styles)),
        "oracle_rate": P_LIKE_PREFERRED,
        "served": {style: int(np.sum(chosen == i)) for i, style in enumerate(styles)},
        # Equal digests mean two runs served exactly the same styles in the same order.
        "decisions_digest": hashlib.sha256(chosen.tobytes()).hexdigest()[:16],
        "patterns": engine_stats["patterns"],
        "background_cycles": engine_stats["background_cycles"],
        "examples": _explain_examples(router, embedder, data, order, preferences, explain),
        "elapsed_s": time.perf_counter() - started,
    }


def _check_styles(styles: Sequence[str]) -> tuple[str, ...]:
    if isinstance(styles, str) or not all(isinstance(s, str) and s for s in styles):
        raise TypeError(f"styles must be a sequence of non-empty str, got {styles!r}")
    styles = tuple(styles)
    if len(styles) < 2 or len(set(styles)) != len(styles):
        raise ValueError(f"styles must name at least 2 distinct styles, got {list(styles)}")
    return styles


def _check_count(value, name: str, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if maximum is None and value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    if maximum is not None and not 1 <= value <= maximum:
        raise ValueError(f"{name} must be in [1, {maximum}], got {value}")


def _replay(router, embeddings, domains, preferences, seed, window, on_window):
    """Route each query, draw the user's thumbs and teach the router.

    Returns the 0/1 feedback and the index of the chosen style, one per query.
    """
    user_rng = np.random.default_rng([seed, 2])
    liked = np.zeros(len(embeddings))
    chosen = np.zeros(len(embeddings), dtype=np.int64)
    for index, (x, domain) in enumerate(zip(embeddings, domains)):
        decision = router.route(x)
        chosen[index] = decision.model_index
        like_probability = P_LIKE_PREFERRED if decision.model == preferences[domain] else P_LIKE_OTHER
        liked[index] = float(user_rng.random() < like_probability)
        router.record_outcome(x, decision.model_index, liked[index])

        done = index + 1
        if on_window is not None and (done % window == 0 or done == len(embeddings)):
            start = (done - 1) // window * window
            on_window({"start": start + 1, "end": done, "rate": float(liked[start:done].mean())})
    return liked, chosen


def _window_rates(liked: np.ndarray, window: int) -> list[dict]:
    return [
        {"start": start + 1, "end": min(start + window, len(liked)), "rate": float(liked[start : start + window].mean())}
        for start in range(0, len(liked), window)
    ]


def _explain_examples(router, embedder, data, order, preferences, count) -> list[dict]:
    """Route one recent query from each of ``count`` domains and report the nearest pattern behind the choice."""
    examples = []
    seen_domains = set()
    for index in order[::-1]:
        if len(examples) >= count:
            break
        domain = data.domain(index)
        if domain in seen_domains:
            continue
        seen_domains.add(domain)
        query = data.queries[index]
        decision = router.route(embedder.embed_one(query))
        nearest = decision.patterns[0] if decision.patterns else None
        examples.append(
            {
                "query": query,
                "domain": domain,
                "preferred": preferences[domain],
                "chosen": decision.model,
                "explored": decision.explored,
                "estimates": dict(zip(router.models, decision.estimates)),
                "patterns_consulted": len(decision.patterns),
                "pattern": None if nearest is None else _pattern_summary(nearest),
            }
        )
    return examples


def _pattern_summary(pattern: dict) -> dict:
    return {
        "id": pattern["id"],
        "similarity": pattern["similarity"],
        "cluster_size": pattern["cluster_size"],
        "route_stats": pattern["route_stats"],
    }


def run_ablations(data_dir=DEFAULT_DATA_DIR, messages: int = DEFAULT_MESSAGES, seed: int = 0,
                  styles: Sequence[str] = DEFAULT_STYLES, *, window: int = DEFAULT_WINDOW,
                  embedder=None) -> dict[str, dict]:
    """Run :func:`run_demo` once per entry of :data:`ABLATIONS` with the same queries, user and seed."""
    data = data_dir if isinstance(data_dir, Clinc150) else load_clinc150(data_dir)
    return {
        name: run_demo(
            data,
            messages,
            seed,
            styles,
            window=window,
            config_overrides=overrides,
            router_options=ROUTER_ABLATIONS.get(name),
            explain=0,
            embedder=embedder,
        )
        for name, overrides in ABLATIONS.items()
    }


# Command line ------------------------------------------------------------


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m sona_web.demo",
        description="Replay real CLINC150 queries through an AdaptiveRouter that learns a simulated "
        "user's preferred response style per domain from thumbs up and down.",
    )
    parser.add_argument("--data", default=DEFAULT_DATA_DIR,
                        help="folder that contains clinc150/ (default: %(default)s, relative to the current directory)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the query order, the user and the router")
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES, help="number of queries to replay")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="messages per row of the progress table")
    parser.add_argument("--styles", default=",".join(DEFAULT_STYLES), help="comma-separated response styles")
    parser.add_argument("--ablations", action="store_true",
                        help="also rerun with each component switched off and compare")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    parser.add_argument("--embedder", default="auto", choices=["auto", "hashed", "wordllama", "minilm"],
                        help="text embedder; auto takes wordllama when --model-dir has it, else hashed")
    parser.add_argument("--model-dir", default=DEFAULT_MODELS_DIR,
                        help="folder with the built models, one subfolder each (default: %(default)s)")
    return parser.parse_args(argv)


def _make_embedder(name: str, models_dir: str):
    """Return the embedder called ``name``; ``auto`` prefers WordLlama when its files were built."""
    if name == "auto":
        name = "wordllama" if (Path(models_dir) / "wordllama" / "manifest.json").is_file() else "hashed"
    if name == "hashed":
        return name, get_embedder("hashed", dim=256)
    return name, get_embedder(name, model_dir=str(Path(models_dir) / name))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    styles = [style.strip() for style in args.styles.split(",") if style.strip()]
    try:
        data = load_clinc150(args.data)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_DATA_MISSING

    try:
        embedder_name, embedder = _make_embedder(args.embedder, args.model_dir)
    except (ValueError, OSError) as error:
        print(f"error: cannot load the {args.embedder} embedder: {error}", file=sys.stderr)
        return 2
    if not args.json:
        print(f"Replaying {args.messages} CLINC150 queries (seed {args.seed}) over styles: {', '.join(styles)}")
        print(f"Embedder: {embedder_name}")
        print(f"{'messages':>13}  {'thumbs up':>9}")
    on_window = None if args.json else _print_window
    try:
        result = run_demo(
            data, args.messages, args.seed, styles, window=args.window, on_window=on_window, embedder=embedder
        )
        ablations = None
        if args.ablations:
            ablations = run_ablations(data, args.messages, args.seed, styles, window=args.window, embedder=embedder)
    except (TypeError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    if args.json:
        print(json.dumps({"demo": result, "ablations": ablations}, indent=2))
    else:
        _print_summary(result)
        if ablations is not None:
            _print_ablations(ablations)
    return 0


def _print_window(entry: dict) -> None:
    bar = "#" * round(entry["rate"] * 40)
    print(f"{entry['start']:>6}-{entry['end']:<6}  {entry['rate']:>9.3f}  {bar}", flush=True)


def _print_summary(result: dict) -> None:
    print()
    print(f"Thumbs-up rate, first window:  {result['first_window_rate']:.3f}")
    print(f"Thumbs-up rate, last window:   {result['last_window_rate']:.3f}")
    print(f"Random choice (expected):      {result['random_rate']:.3f}")
    print(f"Oracle (always preferred):     {result['oracle_rate']:.3f}")
    print(f"Patterns learned: {result['patterns']}, background cycles: {result['background_cycles']}, "
          f"time: {result['elapsed_s']:.1f} s")
    print("Preferred style per domain (hidden from the router): "
          + ", ".join(f"{domain}={style}" for domain, style in sorted(result["preferences"].items())))
    for example in result["examples"]:
        _print_example(example)


def _print_example(example: dict) -> None:
    print()
    print(f"Why this answer? {example['query']!r}")
    reason = "an exploration draw" if example["explored"] else "the best estimate"
    print(f"  domain {example['domain']}, the user prefers {example['preferred']}, "
          f"the router chose {example['chosen']} ({reason})")
    ranked_estimates = sorted(example["estimates"].items(), key=lambda item: -item[1])
    print("  estimated thumbs-up rate: " + ", ".join(f"{style} {value:.2f}" for style, value in ranked_estimates))
    pattern = example["pattern"]
    if pattern is None:
        print("  no pattern learned yet, so the estimates come from the ridge prior alone")
        return
    print(f"  the estimates blend the ridge prior with {example['patterns_consulted']} nearby patterns; "
          f"the nearest, #{pattern['id']} (similarity {pattern['similarity']:.2f}, "
          f"{_count(pattern['cluster_size'], 'good trajectory', 'good trajectories')}), saw:")
    ranked = sorted(pattern["route_stats"].items(), key=lambda item: -item[1]["mean_quality"])
    for style, stats in ranked:
        print(f"    {style:<16} {stats['mean_quality']:.2f} thumbs-up rate over "
              f"{_count(stats['count'], 'answer', 'answers')}")


def _count(value: float, singular: str, plural: str) -> str:
    return f"{value:.0f} {singular if value == 1 else plural}"


def _print_ablations(ablations: dict[str, dict]) -> None:
    full = ablations["full engine"]
    print()
    print("Ablations (same queries, user and seed; change = overall rate minus the full engine's):")
    print(f"  {'variant':<40} {'first':>6} {'last':>6} {'overall':>8} {'change':>7} {'patterns':>9}")
    for name, result in ablations.items():
        change = result["overall_rate"] - full["overall_rate"]
        same = name != "full engine" and result["decisions_digest"] == full["decisions_digest"]
        print(f"  {name:<40} {result['first_window_rate']:>6.3f} {result['last_window_rate']:>6.3f} "
              f"{result['overall_rate']:>8.3f} {change:>+7.3f} {result['patterns']:>9}"
              + ("  (same decisions)" if same else ""))
    print("  'same decisions': switching the component off changed no choice in this replay.")

if __name__ == "__main__":
    sys.exit(main())
