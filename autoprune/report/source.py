"""Opening a run directory for reading: ``run.json`` and the Optuna study it names.

The study may still be running in another process; the report only reads it (no table
creation, no migration), so it can be regenerated while trials are being added.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import optuna

from .._scoped import quiet_optuna
from ..exceptions import ConfigError

__all__ = ["RunSource", "open_run"]

RUN_FILE = "run.json"


@dataclasses.dataclass
class RunSource:
    """A run directory, its ``run.json`` and its study.

    Args:
        run_dir: The directory as the user named it (it appears in the export commands).
        run: The parsed ``run.json``.
        study: The study, opened read-only.
    """

    run_dir: Path
    run: dict[str, Any]
    study: optuna.Study


def _check_exists(url: str, run_file: Path) -> None:
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///"):])  # relative paths are relative to the cwd, as for sqlite
        if not db.exists():  # sqlite would create an empty database and report "no study"
            raise ConfigError(f"{run_file}: storage {url} does not exist")


def _storage(url: str) -> optuna.storages.BaseStorage | str:
    if url.startswith(("sqlite:", "postgresql", "mysql")):
        return optuna.storages.RDBStorage(url, skip_table_creation=True)
    return url


def open_run(run_dir: str | os.PathLike) -> RunSource:
    """Open the run in ``run_dir`` (a directory written by ``autoprune run``).

    Args:
        run_dir: Directory holding ``run.json``.

    Returns:
        The run, with its study loaded read-only.

    Raises:
        ConfigError: ``run.json`` is missing or malformed, or its storage does not exist, cannot be
            opened or does not hold the study (all bad input: the directory given is not a run).
    """
    run_dir = Path(run_dir)
    run_file = run_dir / RUN_FILE
    try:
        run = json.loads(run_file.read_text())
        name, url = run["study_name"], run["storage"]
    except FileNotFoundError:
        raise ConfigError(f"{run_file}: not found; give the directory 'autoprune run' wrote") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ConfigError(f"{run_file}: not a run file (needs study_name and storage): {e}") from None
    _check_exists(url, run_file)
    try:
        with quiet_optuna():
            study = optuna.load_study(study_name=name, storage=_storage(url))
    except KeyError:
        raise ConfigError(f"{run_file}: storage {url} holds no study named {name!r}") from None
    except Exception as e:  # SQLAlchemy / journal errors: name the file, keep one line
        raise ConfigError(f"{run_file}: cannot open storage {url}: {type(e).__name__}: {e}".splitlines()[0]) from None
    return RunSource(run_dir, run, study)
