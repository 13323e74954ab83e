"""``python -m ray_jobs.loopback_node start --address 127.0.0.1:6379 ...``: ``ray start`` for one more node of a
cluster on this machine, every port on 127.0.0.1.

Ray binds only loopback when ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (docs/platform.md), but its CLI then refuses
to start a node that joins a head ("Multi-node Ray clusters are not supported on Windows and OSX"): the variable is
also the switch for multi-node support on those systems. With it at 1, Ray replaces a loopback node address by the
host's interface address and listens on every interface, so it stays 0 here. This command is Ray's own
``ray start`` (same options) with only that guard lifted, on Linux: the node's addresses still resolve to
127.0.0.1, so the head and this node talk over
loopback and nothing listens elsewhere. Ray supports several nodes on one host (a driver joins the head's raylet).

On a real cluster none of this applies: worker nodes run plain ``ray start --address <head-ip>:6379`` without the
variable (docs/ray_jobs.md). Relies on ``ray.scripts.scripts`` reading the guard from its module-level
``ray_constants`` (Ray 2.60, pinned).
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any

LOOPBACK_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class _MultiNodeConstants(types.ModuleType):
    """Ray's constants as the CLI sees them, except that multi-node clusters are allowed."""

    ENABLE_RAY_CLUSTER = True

    def __init__(self, constants: types.ModuleType) -> None:
        super().__init__(constants.__name__)
        self._constants = constants

    def __getattr__(self, name: str) -> Any:
        return getattr(self._constants, name)


def main(argv: list[str] | None = None) -> None:
    """Run ``ray <argv>`` with the CLI's multi-node guard lifted (only when loopback binding is on, on Linux)."""
    if not sys.platform.startswith("linux"):
        raise SystemExit("loopback_node: Linux only (Ray does not support multi-node clusters on Windows or OSX)")
    os.environ.setdefault(LOOPBACK_VARIABLE, "0")
    import ray._private.ray_constants as ray_constants
    import ray.scripts.scripts as ray_cli

    if not ray_constants.ENABLE_RAY_CLUSTER:
        ray_cli.ray_constants = _MultiNodeConstants(ray_constants)  # the CLI's guard only; services keep loopback
    sys.argv = ["ray", *(sys.argv[1:] if argv is None else argv)]
    ray_cli.main()


if __name__ == "__main__":
    main()
