"""``autoprune report RUN_DIR``: the study as one self-contained HTML page (see docs/report.md)."""

from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="HTML report of a study (fronts, plans, hypervolume, device facts)",
        description="Turn a study (finished or still running) into one self-contained HTML page that works offline.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="directory written by 'autoprune run' (holds run.json)")
    p.add_argument("--out", help="HTML file to write (default RUN_DIR/report.html)")
    p.add_argument("--serve", action="store_true", help="serve the page on 127.0.0.1, rebuilt on every reload, instead of writing it")
    p.add_argument("--port", type=int, default=8000, help="port for --serve (0 picks a free one; default 8000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report import open_run
    from ._serve import serve_until_interrupted

    if args.serve:
        from ..report.serve import ReportServer

        open_run(args.run_dir)  # fail now, with one line, rather than on the first request
        server = ReportServer(args.run_dir, port=args.port)
        return serve_until_interrupted(
            server, f"127.0.0.1:{args.port}",
            lambda url: f"autoprune report: serving {args.run_dir} at {url} (reload to refresh; Ctrl-C to stop)",
        )

    from ..report import write_report

    path = write_report(args.run_dir, args.out)
    print(f"autoprune report: wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
