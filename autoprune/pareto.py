"""Pareto fronts and hypervolume as plain numbers, for the study's front and the report.

Optuna 5 exposes hypervolume only through a plotly figure
(``optuna.visualization.plot_hypervolume_history``) and a private module, so the
number itself is computed here with a small exact function; a test checks it against
Optuna's figure on a real study.

Every function works on *minimisation* vectors: callers flip the sign of maximised
objectives first (:func:`to_minimization`).
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["to_minimization", "dominated", "non_dominated", "RunningFront", "hypervolume", "reference_point", "hypervolume_history"]

Vector = Sequence[float]


def to_minimization(values: Vector, directions: Sequence[str]) -> tuple[float, ...]:
    """Negate maximised objectives so that smaller is better everywhere.

    Args:
        values: Objective values.
        directions: ``"minimize"`` or ``"maximize"`` per objective.

    Returns:
        The values, with maximised ones negated.
    """
    return tuple(-v if d == "maximize" else v for v, d in zip(values, directions))


def _dominates(a: Vector, b: Vector) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def dominated(point: Vector, points: Sequence[Vector]) -> bool:
    """Whether any of ``points`` dominates ``point`` (minimisation)."""
    return any(_dominates(q, point) for q in points)


def non_dominated(points: Sequence[Vector]) -> list[int]:
    """Indices of the points no other point dominates (minimisation); duplicates are all kept.

    Args:
        points: Minimisation vectors.

    Returns:
        Indices into ``points``, ascending.
    """
    return [i for i, p in enumerate(points) if not dominated(p, points)]


class RunningFront:
    """The non-dominated points of a growing set, taking one point at a time (minimisation).

    After any sequence of :meth:`add` calls the front is what :func:`non_dominated` gives over
    every point added so far (duplicates all kept), at a cost of O(front size) per point
    instead of O(n) per point: a dominated point never returns to the front, so
    forgetting it is safe.
    """

    def __init__(self) -> None:
        self._points: dict = {}

    def add(self, key: object, point: Vector) -> bool:
        """Offer ``point`` under ``key``; returns whether it joined the front (pushing out those it dominates)."""
        point = tuple(point)
        if dominated(point, list(self._points.values())):
            return False
        self._points = {k: p for k, p in self._points.items() if not _dominates(point, p)}
        self._points[key] = point
        return True

    def keys(self) -> list:
        """Keys of the points on the front, in the order they joined."""
        return list(self._points)

    def points(self) -> list[tuple[float, ...]]:
        """The points on the front, in the order they joined."""
        return list(self._points.values())

    def __len__(self) -> int:
        return len(self._points)


def hypervolume(points: Sequence[Vector], ref: Vector) -> float:
    """Volume dominated by ``points`` and bounded by ``ref`` (minimisation), exact.

    Points not strictly better than ``ref`` in every objective add nothing. Two
    objectives are a sweep; more are sliced along the last objective, recursively
    (fine for the few dozen front points a study has).

    Args:
        points: Minimisation vectors.
        ref: Reference point, worse than every point that should count.

    Returns:
        The hypervolume (0.0 when no point counts).
    """
    pts = [tuple(p) for p in points if all(x < r for x, r in zip(p, ref))]
    if not pts:
        return 0.0
    if len(ref) == 1:
        return ref[0] - min(p[0] for p in pts)
    if len(ref) == 2:
        volume, best_y = 0.0, ref[1]
        for x, y in sorted(pts):
            if y < best_y:
                volume += (ref[0] - x) * (best_y - y)
                best_y = y
        return volume
    pts.sort(key=lambda p: p[-1])
    volume = 0.0
    for i, p in enumerate(pts):
        top = pts[i + 1][-1] if i + 1 < len(pts) else ref[-1]
        if top > p[-1]:
            volume += (top - p[-1]) * hypervolume([q[:-1] for q in pts[: i + 1]], ref[:-1])
    return volume


def reference_point(points: Sequence[Vector], margin: float = 0.1) -> tuple[float, ...]:
    """A reference point just worse than the worst value of each objective (minimisation).

    Args:
        points: Minimisation vectors (all complete trials, so the point stays put as the front moves).
        margin: Fraction of each objective's range (or of its magnitude when the range is 0) added.

    Returns:
        One coordinate per objective.
    """
    ref = []
    for col in zip(*points):
        lo, hi = min(col), max(col)
        span = (hi - lo) or abs(hi) or 1.0
        ref.append(hi + margin * span)
    return tuple(ref)


def hypervolume_history(points: Sequence[Vector | None], ref: Vector) -> list[float]:
    """Hypervolume of the first ``k`` points, for every ``k`` (points in trial order).

    Args:
        points: Minimisation vectors in trial order; ``None`` for a trial that does not
            count (infeasible), which repeats the previous value.
        ref: Reference point.

    Returns:
        One value per entry of ``points``.
    """
    front: list[Vector] = []
    history = []
    volume = 0.0
    for p in points:
        if p is not None and not any(_dominates(q, p) or tuple(q) == tuple(p) for q in front):
            front = [q for q in front if not _dominates(p, q)] + [p]
            volume = hypervolume(front, ref)
        history.append(volume)
    return history
