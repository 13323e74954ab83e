"""Locate the tritonserver bundled in the nvidia-pytriton wheel and prepare its python backend.

The wheel ships the server binary, the python backend library and one backend stub per
Python minor version. Triton expects the stub next to ``libtriton_python.so``, so we copy
both into a per-version backend directory that ``--backend-directory`` points at.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path


class TritonNotInstalledError(RuntimeError):
    """The tritonserver binary, its python backend or the stub for this Python is missing."""


@dataclass(frozen=True)
class TritonInstallation:
    """Paths of one tritonserver installation (binary, python backend, stub, shared libraries)."""

    server_binary: Path
    python_backend_dir: Path
    backend_stub: Path
    library_dir: Path
    version: str

    @classmethod
    def discover(cls) -> TritonInstallation:
        """Find the server bundled with nvidia-pytriton for the running interpreter.

        Raises TritonNotInstalledError naming the missing file and how to install it.
        """
        try:
            import pytriton
        except ImportError as error:
            raise TritonNotInstalledError(
                "nvidia-pytriton is not installed; run `make setup` (it bundles tritonserver)"
            ) from error
        package_dir = Path(pytriton.__file__).parent
        server_root = package_dir / "tritonserver"
        python_tag = f"{sys.version_info.major}.{sys.version_info.minor}"
        installation = cls(
            server_binary=server_root / "bin" / "tritonserver",
            python_backend_dir=server_root / "backends" / "python",
            backend_stub=server_root / "python_backend_stubs" / python_tag / "triton_python_backend_stub",
            library_dir=package_dir.parent / "nvidia_pytriton.libs",
            version=metadata.version("nvidia-pytriton"),
        )
        installation.check()
        return installation

    def check(self) -> None:
        """Raise TritonNotInstalledError if any required file is absent."""
        required = {
            "tritonserver binary": self.server_binary,
            "python backend library": self.python_backend_dir / "libtriton_python.so",
            f"python backend stub for Python {sys.version_info.major}.{sys.version_info.minor}": (self.backend_stub),
            "bundled shared libraries": self.library_dir,
        }
        for what, path in required.items():
            if not path.exists():
                raise TritonNotInstalledError(
                    f"{what} not found at {path}; reinstall with `make setup` "
                    "(nvidia-pytriton==0.7.0 bundles tritonserver for Python 3.8-3.13)"
                )

    def prepare_backend_directory(self, cache_dir: Path | None = None) -> Path:
        """Return a backend directory whose ``python/`` holds the library, utils and stub.

        Idempotent: files are copied once per pytriton version and Python minor version.
        """
        cache_root = cache_dir or default_cache_dir()
        python_tag = f"py{sys.version_info.major}{sys.version_info.minor}"
        backend_root = cache_root / "triton-backends" / f"pytriton-{self.version}-{python_tag}"
        target = backend_root / "python"
        sources = [p for p in self.python_backend_dir.iterdir() if p.is_file()] + [self.backend_stub]
        if all(_same_file(src, target / src.name) for src in sources):
            return backend_root
        staging = backend_root.with_name(backend_root.name + f".tmp{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "python").mkdir(parents=True)
        for src in sources:
            shutil.copy2(src, staging / "python" / src.name)
        shutil.rmtree(backend_root, ignore_errors=True)
        staging.rename(backend_root)
        return backend_root

    def environment(self) -> dict[str, str]:
        """Environment for the server process: bundled libraries first on LD_LIBRARY_PATH, no virtualenv on PATH.

        The python-backend stub embeds the system libpython, which takes its standard library from the first
        ``python3`` on PATH; an activated virtualenv's ``pyvenv.cfg`` would point it at another Python build's
        extension modules (``_ssl`` then fails to load). The project's packages reach the stub another way
        (``SERENDIP_SITE_DIRS``, see the python models).
        """
        env = dict(os.environ)
        inherited = env.get("LD_LIBRARY_PATH", "")
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(self.library_dir), inherited) if p)
        env["PATH"] = path_without_virtualenvs(env.get("PATH", ""))
        env.pop("VIRTUAL_ENV", None)
        return env


def path_without_virtualenvs(search_path: str) -> str:
    """``search_path`` without the ``bin`` directories of virtual environments (those beside a ``pyvenv.cfg``)."""
    kept = [
        entry for entry in search_path.split(os.pathsep) if entry and not (Path(entry).parent / "pyvenv.cfg").exists()
    ]
    return os.pathsep.join(kept)


def default_cache_dir() -> Path:
    """``$SERENDIP_CACHE_DIR``, else ``$XDG_CACHE_HOME/serendip``, else ``~/.cache/serendip``."""
    explicit = os.environ.get("SERENDIP_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "serendip"


def _same_file(source: Path, copy: Path) -> bool:
    if not copy.exists():
        return False
    src_stat, copy_stat = source.stat(), copy.stat()
    return src_stat.st_size == copy_stat.st_size and int(src_stat.st_mtime) == int(copy_stat.st_mtime)
