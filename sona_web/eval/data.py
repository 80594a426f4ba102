"""Loading of routing outcome data: prompts, per-model correctness and subjects.

A dataset folder contains ``responses/*.csv``. Every CSV has a ``prompt`` column
followed by one column per model, each cell the outcome that model earned on
that prompt: ``True``/``False`` or a number in ``[0, 1]``. All files must name
the same models in the same order. The subject of a row is the stem of its
file with the prefix shared by every stem removed when that prefix ends in
``_`` (``mmlu_anatomy.csv`` gives ``anatomy``). An optional
``contaminated_prompts.jsonl`` lists, one JSON object a line, prompts whose
``eval_prompt`` must be dropped before evaluation, as RouteLLM does for MMLU.

This is the layout of RouteLLM's ``routellm/evals/mmlu`` folder, so that data
loads as it is, and any other set of models loads the same way.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["RoutingDataset", "load_routing_dataset"]

_TRUE = {"true", "1", "1.0"}
_FALSE = {"false", "0", "0.0"}


@dataclass(frozen=True)
class RoutingDataset:
    """Prompts with the outcome every model earned on each of them.

    Attributes
    ----------
    prompts:
        The ``n`` prompt texts, in file order (files sorted by name).
    outcomes:
        float64 array of shape ``(n, m)``: outcome of model ``j`` on prompt
        ``i``, in ``[0, 1]`` (1.0 is a correct answer).
    model_names:
        The ``m`` model names, from the CSV header.
    subjects:
        The ``n`` subject names, one per prompt.
    dropped_contaminated:
        Number of rows removed because their prompt is listed as contaminated.
    """

    prompts: tuple[str, ...]
    outcomes: np.ndarray
    model_names: tuple[str, ...]
    subjects: tuple[str, ...]
    dropped_contaminated: int = 0

    @property
    def n_prompts(self) -> int:
        return len(self.prompts)

    @property
    def n_models(self) -> int:
        return len(self.model_names)

    def content_hash(self) -> str:
        """Return a hex SHA-256 of the prompts in order, the key of cached embeddings."""
        digest = hashlib.sha256()
        for prompt in self.prompts:
            encoded = prompt.encode("utf-8")
            digest.update(len(encoded).to_bytes(8, "little"))
            digest.update(encoded)
        return digest.hexdigest()

    def subset(self, rows) -> "RoutingDataset":
        """Return the dataset restricted to the integer row indices ``rows``, in that order."""
        index = np.asarray(rows, dtype=np.intp)
        return RoutingDataset(
            prompts=tuple(self.prompts[i] for i in index),
            outcomes=self.outcomes[index].copy(),
            model_names=self.model_names,
            subjects=tuple(self.subjects[i] for i in index),
            dropped_contaminated=self.dropped_contaminated,
        )


def load_routing_dataset(data_dir: str | os.PathLike, drop_contaminated: bool = True) -> RoutingDataset:
    """Load ``data_dir/responses/*.csv`` into a :class:`RoutingDataset`.

    Raises ``FileNotFoundError`` naming the missing path when the folder or its
    CSV files are absent, and ``ValueError`` naming the file and line of a
    malformed header or cell.
    """
    root = Path(data_dir)
    responses = root / "responses"
    if not root.is_dir():
        raise FileNotFoundError(f"routing data folder not found: {root}")
    if not responses.is_dir():
        raise FileNotFoundError(f"routing data folder has no responses/ subfolder: {responses}")
    files = sorted(responses.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no CSV files in {responses}; expected responses/<subject>.csv")

    subject_names = _subject_names([path.stem for path in files])
    contaminated = _read_contaminated(root / "contaminated_prompts.jsonl") if drop_contaminated else set()

    model_names: tuple[str, ...] | None = None
    prompts: list[str] = []
    subjects: list[str] = []
    rows: list[list[float]] = []
    dropped = 0
    for path, subject in zip(files, subject_names):
        header, records = _read_csv(path)
        if model_names is None:
            model_names = header
        elif header != model_names:
            raise ValueError(f"{path}: model columns {list(header)} differ from {list(model_names)} in {files[0].name}")
        for prompt, values in records:
            if prompt in contaminated:
                dropped += 1
                continue
            prompts.append(prompt)
            subjects.append(subject)
            rows.append(values)

    if not rows:
        raise ValueError(f"no rows left in {responses} after dropping {dropped} contaminated prompts")
    return RoutingDataset(
        prompts=tuple(prompts),
        outcomes=np.asarray(rows, dtype=np.float64),
        model_names=model_names,
        subjects=tuple(subjects),
        dropped_contaminated=dropped,
    )


def _subject_names(stems: list[str]) -> list[str]:
    prefix = os.path.commonprefix(stems)
    cut = prefix.rfind("_") + 1 if len(stems) > 1 else 0
    if cut and all(len(stem) > cut for stem in stems):
        return [stem[cut:] for stem in stems]
    return list(stems)


def _read_contaminated(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    prompts = set()
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{line_number}: invalid JSON: {error}") from None
            if not isinstance(record, dict) or not isinstance(record.get("eval_prompt"), str):
                raise ValueError(f"{path}:{line_number}: expected an object with a string 'eval_prompt'")
            prompts.add(record["eval_prompt"])
    return prompts


def _read_csv(path: Path) -> tuple[tuple[str, ...], list[tuple[str, list[float]]]]:
    # newline="" lets the csv module keep the line breaks inside quoted prompts.
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or len(header) < 3 or header[0] != "prompt":
            raise ValueError(
                f"{path}: header must be 'prompt' followed by at least two model columns, got {header}"
            )
        models = tuple(header[1:])
        if len(set(models)) != len(models):
            raise ValueError(f"{path}: duplicate model columns in {list(models)}")
        records = []
        for row in reader:
            if len(row) != len(header):
                raise ValueError(f"{path}:{reader.line_num}: expected {len(header)} fields, got {len(row)}")
            values = [_parse_outcome(cell, path, reader.line_num) for cell in row[1:]]
            records.append((row[0], values))
    return models, records


def _parse_outcome(cell: str, path: Path, line_number: int) -> float:
    text = cell.strip().lower()
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{path}:{line_number}: outcome must be True, False or a number in [0, 1], got {cell!r}")
    return value
