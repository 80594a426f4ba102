"""CLINC150 helpers shared by the embedder tests."""

from __future__ import annotations

import numpy as np


def few_shot(pairs, shots: int, seed: int = 0) -> list[tuple[str, str]]:
    """Take ``shots`` random examples of every intent in ``pairs``."""
    rng = np.random.default_rng(seed)
    by_intent: dict[str, list[str]] = {}
    for query, intent in pairs:
        by_intent.setdefault(intent, []).append(query)
    chosen = []
    for intent in sorted(by_intent):
        queries = by_intent[intent]
        for index in rng.permutation(len(queries))[:shots]:
            chosen.append((queries[index], intent))
    return chosen


def sample(pairs, count: int, seed: int = 0) -> list:
    """Take ``count`` items of ``pairs`` in a random order fixed by ``seed``."""
    order = np.random.default_rng(seed).permutation(len(pairs))[:count]
    return [pairs[i] for i in order]


def centroid_accuracy(embedder, train, test) -> float:
    """Return the nearest-centroid intent accuracy of ``embedder`` on ``test``."""
    intents = sorted({intent for _, intent in train})
    index = {intent: i for i, intent in enumerate(intents)}
    labels = np.array([index[intent] for _, intent in train])

    train_vectors = embedder.embed([query for query, _ in train]).astype(np.float64)
    centroids = np.zeros((len(intents), train_vectors.shape[1]))
    np.add.at(centroids, labels, train_vectors)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)

    test_vectors = embedder.embed([query for query, _ in test])
    predicted = (test_vectors @ centroids.T).argmax(axis=1)
    expected = np.array([index[intent] for _, intent in test])
    return float((predicted == expected).mean())
