"""The storage goes away mid-run: the real PostgreSQL, reached through a TCP proxy this test cuts and restores.

The server itself stays up for everyone else; only this worker's connections (through the
proxy) are dropped, and new ones are refused while the proxy is cut.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import optuna
import pytest
import sqlalchemy
from test_workers import ROOT, tiny, write_study  # noqa: F401  (tiny: the module's fixture)

from autoprune.study.storage import open_storage
from autoprune.study.workers import counted

COMPLETE, RUNNING = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING


class Proxy:
    """Forwards 127.0.0.1:<port> to ``target``; :meth:`cut` drops every connection and refuses new ones until :meth:`restore`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.up = True
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return  # closed
            with self.lock:
                if not self.up:
                    client.close()  # the client sees its connection closed at once, as from a server gone
                    continue
                upstream = socket.create_connection(self.target)
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self.lock:
            self.up = False
            for s in self.open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.open.clear()

    def restore(self) -> None:
        with self.lock:
            self.up = True

    def close(self) -> None:
        self.cut()
        self.server.close()


@pytest.fixture
def proxied(postgres_db):
    """(direct URL, URL through the proxy with a password to redact, the proxy)."""
    url = sqlalchemy.engine.make_url(postgres_db)
    proxy = Proxy((url.host, url.port or 5432))
    through = url.set(host="127.0.0.1", port=proxy.port, password="s3cret").render_as_string(hide_password=False)
    yield postgres_db, through, proxy
    proxy.close()


def _run(study, url: str, out) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "autoprune", "run", str(study), "--storage", url, "--quiet",
                             "--heartbeat", "1", "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def _wait_for_trials(url: str, name: str, n_complete: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            trials = optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
        except KeyError:
            trials = []
        if sum(t.state == COMPLETE for t in trials) >= n_complete:
            return
        time.sleep(0.05)
    pytest.fail(f"the worker never completed {n_complete} trials")


def _stderr_lines(worker: subprocess.Popen) -> tuple[list[str], threading.Thread]:
    """The worker's stderr, read line by line as it comes (by a thread) into the returned list."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(worker.stderr.readline, "")), daemon=True)
    reader.start()
    return lines, reader


def test_a_brief_outage_is_retried_and_the_study_ends_complete(tmp_path, proxied, tiny):
    direct, through, proxy = proxied
    study = write_study(tmp_path, tiny, "blip", 12)
    worker = _run(study, through, tmp_path / "run")
    lines, reader = _stderr_lines(worker)
    _wait_for_trials(direct, "blip", 3)
    proxy.cut()
    deadline = time.monotonic() + 120  # the cut lasts until the search meets it, however slow the host
    while not any("unreachable (the search" in line for line in lines) and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proxy.restore()  # the retries wait 0.5 + 1 + 2 + 4 s: the storage is back within them
    worker.wait(timeout=240)
    reader.join(timeout=10)
    err = "".join(lines)

    assert worker.returncode == 0, err
    assert "unreachable (the search" in err and "retrying in 0.5 s" in err and "s3cret" not in err
    trials = optuna.load_study(study_name="blip", storage=open_storage(direct)).get_trials(deepcopy=False)
    assert len(counted(trials)) == 12 and all(t.state == COMPLETE for t in counted(trials))
    assert not any(t.state == RUNNING for t in trials)


def test_a_storage_that_stays_away_stops_the_run_with_one_line_naming_it(tmp_path, proxied, tiny):
    direct, through, proxy = proxied
    study = write_study(tmp_path, tiny, "gone", 12)
    worker = _run(study, through, tmp_path / "run")
    _wait_for_trials(direct, "gone", 3)
    proxy.cut()
    t0 = time.monotonic()
    _, err = worker.communicate(timeout=120)

    assert worker.returncode == 1, err
    assert "Traceback" not in err and "s3cret" not in err
    last = err.strip().splitlines()[-1]
    shown = through.replace("s3cret", "***")
    assert last.startswith(f"autoprune run: error: storage {shown} unreachable after 5 attempts over ")
    assert time.monotonic() - t0 < 60  # 0.5 + 1 + 2 + 4 s of waits, and the trial that was running
