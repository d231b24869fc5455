"""Clustering of window embeddings into speakers, with the number of speakers estimated.

Pure numpy (no scipy/sklearn at run time): average-linkage agglomerative clustering on
cosine distance, refined by a few spherical k-means steps. The number of speakers is the
largest k in [min, max] whose clusters are all distinct enough (raw centroid cosine below
``merge_threshold``) and each hold enough speech.
"""

from __future__ import annotations

import numpy as np


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-9)


def agglomerative(x: np.ndarray, n_clusters: int) -> np.ndarray:
    """Average-linkage AHC on cosine distance down to ``n_clusters``; labels 0..k-1."""
    n = len(x)
    if n <= n_clusters:
        return np.arange(n)
    xn = _normalise(x)
    dist = 1.0 - xn @ xn.T
    np.fill_diagonal(dist, np.inf)
    sizes = np.ones(n)
    members = {i: [i] for i in range(n)}
    active = np.ones(n, dtype=bool)
    for _ in range(n - n_clusters):
        i, j = np.unravel_index(np.argmin(dist), dist.shape)
        if i > j:
            i, j = j, i
        # Lance-Williams update for average linkage: i absorbs j
        new = (sizes[i] * dist[i] + sizes[j] * dist[j]) / (sizes[i] + sizes[j])
        dist[i, :] = new
        dist[:, i] = new
        dist[i, i] = np.inf
        dist[j, :] = np.inf
        dist[:, j] = np.inf
        sizes[i] += sizes[j]
        members[i].extend(members.pop(j))
        active[j] = False
    labels = np.empty(n, dtype=int)
    for k, idx in enumerate(sorted(members, key=lambda m: min(members[m]))):
        labels[members[idx]] = k
    return labels


def refine(x: np.ndarray, labels: np.ndarray, n_iter: int = 5) -> np.ndarray:
    """Spherical k-means steps from an initial labelling (keeps empty clusters out)."""
    xn = _normalise(x)
    for _ in range(n_iter):
        ks = np.unique(labels)
        centroids = _normalise(np.stack([xn[labels == k].mean(axis=0) for k in ks]))
        new = ks[np.argmax(xn @ centroids.T, axis=1)]
        if np.array_equal(new, labels):
            break
        labels = new
    _, labels = np.unique(labels, return_inverse=True)
    return labels


def centroids(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return _normalise(np.stack([x[labels == k].mean(axis=0) for k in range(labels.max() + 1)]))


def silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean cosine-distance silhouette (x already L2-normed)."""
    k = labels.max() + 1
    if k < 2:
        return 0.0
    dist = 1.0 - x @ x.T
    mean_to = np.stack([dist[:, labels == i].mean(axis=1) for i in range(k)], axis=1)
    own = mean_to[np.arange(len(x)), labels]
    sizes = np.bincount(labels, minlength=k)
    own = own * sizes[labels] / np.maximum(sizes[labels] - 1, 1)  # exclude self-distance 0
    mean_to[np.arange(len(x)), labels] = np.inf
    other = mean_to.min(axis=1)
    return float(np.mean((other - own) / np.maximum(np.maximum(own, other), 1e-9)))


def cluster_speakers(
    raw: np.ndarray,
    weights: np.ndarray,
    *,
    num_speakers: int | None,
    min_speakers: int,
    max_speakers: int,
    merge_threshold: float,
    min_cluster_weight: float,
) -> tuple[np.ndarray, dict]:
    """Labels for each embedding row and a report of how k was chosen.

    ``raw`` are the encoder embeddings (all-positive, high baseline similarity);
    clustering runs on embeddings centred on the call's mean, which spreads speakers
    apart. For k >= 2 the silhouette picks the count (clusters holding less than
    ``min_cluster_weight`` seconds are not counted as speakers); a single speaker is
    chosen when even the best split leaves raw centroids at cosine >= ``merge_threshold``
    (the raw scale does not depend on the call). ``weights`` are seconds per row.
    """
    n = len(raw)
    if n < 2:
        return np.zeros(n, dtype=int), {"k": n}
    centred = _normalise(raw - raw.mean(axis=0))
    ks = [num_speakers] if num_speakers else list(range(max(2, min_speakers), max_speakers + 1))
    report: dict = {"tried": []}
    best, best_score = np.zeros(n, dtype=int), -np.inf
    for k in ks:
        if k == 1:
            break
        labels = refine(centred, agglomerative(centred, min(k, n)))
        k_found = int(labels.max() + 1)
        c = centroids(raw, labels)
        sims = c @ c.T
        max_sim = float(np.max(sims[~np.eye(k_found, dtype=bool)])) if k_found > 1 else 1.0
        mass = np.array([weights[labels == i].sum() for i in range(k_found)])
        score = silhouette(centred, labels)
        report["tried"].append(
            {
                "k": k_found,
                "silhouette": round(score, 3),
                "max_centroid_cosine": round(max_sim, 3),
                "speech_s": mass.round(1).tolist(),
            }
        )
        if num_speakers or (mass.min() >= min_cluster_weight and score > best_score):
            best, best_score, best_sim = labels, score, max_sim
    if not num_speakers and min_speakers <= 1 and (best.max() == 0 or best_sim >= merge_threshold):
        best = np.zeros(n, dtype=int)
    report["k"] = int(best.max() + 1)
    return best, report
