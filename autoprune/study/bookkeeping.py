"""What the runner does after every trial, at a cost that does not grow with the study.

Reloading every trial from the storage after each one, recomputing the front over all of
them and rewriting trials.csv costs O(n) per trial (O(n^2) for the front), which a
5,000-trial study notices. :class:`Bookkeeping` reads the storage once, when a run starts
(so a resumed study, or one whose last run crashed, is rebuilt from it), and then takes
the trials one by one: each finished trial's row is appended to trials.csv, a running
Pareto front takes it in O(front size), and front.json is rewritten from that front.

While a run goes on, trials.csv lists the finished trials (those of other processes sharing
the storage appear when a run starts or ends). When the search ends the runner rewrites
both files from the storage (:func:`~autoprune.study.outputs.write_outputs`), so the files
a run leaves are exactly what a from-scratch rebuild writes.
"""

from __future__ import annotations

import os
from pathlib import Path
import optuna

from .._schema import atomic_write_text
from ..pareto import RunningFront, to_minimization
from .outputs import csv_text, front_document, front_json, metric_columns, point_json, trial_row
from .progress import ProgressBar
from .records import CONFIRMATION_ATTR, TrialRecord, confirmation_entries, record

__all__ = ["Bookkeeping"]

_COMPLETE = optuna.trial.TrialState.COMPLETE


class Bookkeeping:
    """Optuna callback keeping trials.csv, front.json and the progress bar up to date, O(front size) per trial.

    Call :meth:`start` once before the search (it reads the storage and writes both files),
    then pass the object in ``study.optimize(callbacks=[...])``.

    Args:
        out_dir: The run directory.
        objectives: The study's objective names, in the order of its directions.
        bar: The progress bar to advance after each trial, if any.
    """

    def __init__(self, out_dir: str | os.PathLike, objectives: list[str], bar: ProgressBar | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.objectives = list(objectives)
        self.bar = bar

    def start(self, study: optuna.Study) -> None:
        """Rebuild the state from the storage (one read) and write trials.csv and front.json from it."""
        trials = study.get_trials(deepcopy=False)
        attrs = study.user_attrs  # constant during the search: the confirmation pass runs after it
        self._study_name = study.study_name
        self._directions = [d.name.lower() for d in study.directions]
        self._dense = attrs.get("dense")
        self._confirmation = attrs.get(CONFIRMATION_ATTR)
        self._entries = confirmation_entries(attrs)
        recs = [record(t, self._entries) for t in trials if t.state == _COMPLETE]
        by_number = {r.number: r for r in recs}
        self._columns = metric_columns(self.objectives, self._dense, recs)
        self._n_trials = len(trials)
        self._n_complete = len(recs)
        self._front = RunningFront()
        self._front_records: dict[int, TrialRecord] = {}
        self._point_texts: dict[int, str] = {}  # rendered once, when the trial joins the front
        for r in recs:
            self._offer(r)
        self._point_texts = {n: point_json(r, self.objectives) for n, r in self._front_records.items()}
        # Waiting or running trials get their row when they finish (an appended row cannot change).
        rows = [trial_row(t, self._columns, by_number.get(t.number)) for t in trials if t.state.is_finished()]
        self._has_header = bool(rows)
        atomic_write_text(self.out_dir / "trials.csv", csv_text(rows))
        self._write_front()

    @property
    def front(self) -> list[TrialRecord]:
        """The front's records (feasible, non-dominated, confirmed numbers where there are), by trial number."""
        return sorted((self._front_records[n] for n in self._front.keys()), key=lambda r: r.number)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.bar is not None:
            self.bar(study, trial)
        rec = record(trial, self._entries) if trial.state == _COMPLETE else None
        # Trial numbers are 0..n-1 in a study: this process's newest trial bounds the count.
        self._n_trials = max(self._n_trials, trial.number + 1)
        if rec is not None:
            self._n_complete += 1
            if self._offer(rec):
                self._point_texts[rec.number] = point_json(rec, self.objectives)
        self._append(csv_text([trial_row(trial, self._columns, rec)], header=not self._has_header))
        self._has_header = True
        self._write_front()

    def _offer(self, r: TrialRecord) -> bool:
        """Offer ``r`` to the front; whether it joined (the points it pushed out are forgotten)."""
        if not (r.feasible and all(o in r.metrics for o in self.objectives)):
            return False
        if not self._front.add(r.number, to_minimization(r.values(self.objectives), self._directions)):
            return False
        kept = set(self._front.keys())
        self._front_records = {n: q for n, q in self._front_records.items() if n in kept} | {r.number: r}
        self._point_texts = {n: t for n, t in self._point_texts.items() if n in kept}
        return True

    def _append(self, text: str) -> None:
        # One write on an O_APPEND descriptor: readers see whole rows. A crash can at worst cut
        # the last row, and the next run rewrites the file from the storage.
        fd = os.open(self.out_dir / "trials.csv", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            data = text.encode()
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)

    def _write_front(self) -> None:
        doc = front_document(
            self._study_name, self.objectives, self._directions, [],
            dense=self._dense, confirmation=self._confirmation, n_trials=self._n_trials, n_complete=self._n_complete,
        )
        points = [self._point_texts[n] for n in sorted(self._point_texts)]
        atomic_write_text(self.out_dir / "front.json", front_json(doc, points))
