"""The ``echo`` model repository: a trivial python-backend model for smoke tests and baselines."""

from __future__ import annotations

from pathlib import Path

from triton_models.model_config import TensorSpec, install_python_model, python_backend_config

ECHO_SOURCE = Path(__file__).parent / "python_models" / "echo.py"


def write_echo_model(
    repository: Path, *, name: str = "echo", max_batch_size: int = 64, max_queue_delay_us: int | None = None
) -> Path:
    """Install the echo model (FP32 vector in, same vector out) into ``repository``."""
    config = python_backend_config(
        name,
        inputs=[TensorSpec("INPUT0", "TYPE_FP32", (-1,))],
        outputs=[TensorSpec("OUTPUT0", "TYPE_FP32", (-1,))],
        max_batch_size=max_batch_size,
        max_queue_delay_us=max_queue_delay_us,
    )
    return install_python_model(repository, config, ECHO_SOURCE)
