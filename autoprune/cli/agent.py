"""``autoprune agent serve``: run the profiling agent on the device.

Imports nothing heavy at registration; ``run`` imports :mod:`autoprune.agent`, which needs
only numpy and onnxruntime.
"""

from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("agent", help="on-device profiling agent", description="The on-device profiling agent (see docs/agent.md).")
    sub = p.add_subparsers(dest="agent_command", required=True, metavar="ACTION")
    s = sub.add_parser("serve", help="serve the profiling API on this device")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other needs a token)")
    s.add_argument("--port", type=int, default=8765, help="TCP port (0 picks a free one; default 8765)")
    s.add_argument("--token-file", help="file holding the bearer token clients must send")
    s.add_argument("--token-env", help="environment variable holding the token (checked before --token-file)")
    s.add_argument("--max-body-mb", type=float, default=64.0, help="largest request body (default 64)")
    s.add_argument("--model-cache-mb", type=float, default=256.0, help="uploaded models kept for model_sha256 requests, LRU (default 256)")
    s.add_argument("--session-cache", type=int, default=1, help="onnxruntime sessions kept for repeated requests, LRU; 0 disables (default 1)")
    s.add_argument("--read-timeout", type=float, default=30.0, help="seconds to receive a request before 408 (default 30)")
    s.add_argument("--time-limit", type=float, default=300.0, help="cap on a request's waiting plus measuring seconds (default 300)")
    s.add_argument("--queue", type=int, default=16, help="requests that may wait while one is measured; more get 429 (default 16)")
    s.add_argument("--meters", help="comma-separated meters to try in order: registered names (rapl, hwmon, nvml) "
                   "or module.path:factory (default: by provider)")
    s.add_argument("--powercap-root", default="/sys/class/powercap", help="powercap sysfs directory (RAPL)")
    s.add_argument("--hwmon-root", default="/sys/class/hwmon", help="hwmon sysfs directory (INA3221 and other power rails)")
    s.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from ..agent import AgentConfig, AgentServer
    from ..meters import METERS
    from ..agent.auth import read_token
    from ._serve import serve_until_interrupted

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    meters = tuple(METERS.check(m.strip(), "--meters") for m in args.meters.split(",") if m.strip()) if args.meters else None
    token = read_token(args.token_file, args.token_env)
    config = AgentConfig(
        host=args.host,
        port=args.port,
        token=token,
        max_body_mb=args.max_body_mb,
        model_cache_mb=args.model_cache_mb,
        session_cache=args.session_cache,
        read_timeout_s=args.read_timeout,
        max_time_limit_s=args.time_limit,
        queue_capacity=args.queue,
        meter_roots={"powercap": args.powercap_root, "hwmon": args.hwmon_root},
        meter_order=meters,
    )
    server = AgentServer(config)
    return serve_until_interrupted(
        server, f"{args.host}:{args.port}",
        lambda url: f"autoprune agent listening on {url} (token {'required' if token else 'not required: loopback only'})",
    )
