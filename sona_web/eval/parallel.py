"""Running independent replay cells in order, in this process or in a pool of worker processes.

A cell is one unit of work: one seed and cost weight of the sweep, or one
seed of the drift scenario. No cell's result depends on another cell, so the
results are the same whatever ``jobs`` is, apart from the timings. Workers
receive the shared arrays once, when they start, instead of with every cell.
Pyodide has no processes, so it always takes the ``jobs=1`` path.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

__all__ = ["map_cells"]

_SHARED: dict[str, Any] = {}


def _init_worker(shared: dict[str, Any]) -> None:
    _SHARED.clear()
    _SHARED.update(shared)


def _call(task):
    function, cell = task
    return function(_SHARED, cell, None)


def map_cells(
    function: Callable[[dict, Any, Callable[[int], None] | None], Any],
    cells: Iterable[Any],
    shared: dict[str, Any],
    jobs: int = 1,
    on_done: Callable[[Any, Any], None] | None = None,
    tick: Callable[[int], None] | None = None,
) -> list:
    """Return ``[function(shared, cell, tick) for cell in cells]``, computed by ``jobs`` processes.

    ``function`` must be a module-level function so that workers can import
    it. ``tick(steps)`` reports progress inside a cell and is only passed
    when ``jobs == 1``; ``on_done(cell, result)`` runs in this process as
    each cell finishes, in cell order. Raises ``ValueError`` when ``jobs`` < 1.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    cells = list(cells)
    results = []
    if jobs == 1 or len(cells) <= 1:
        for cell in cells:
            result = function(shared, cell, tick)
            results.append(result)
            if on_done is not None:
                on_done(cell, result)
        return results

    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(min(jobs, len(cells)), _init_worker, (shared,)) as pool:
        for cell, result in zip(cells, pool.imap(_call, [(function, cell) for cell in cells])):
            results.append(result)
            if on_done is not None:
                on_done(cell, result)
    return results
