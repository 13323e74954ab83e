"""Command lines generated from a job's config dataclass (tyro): a ``--field-name`` per field, help from its docstring.

A job module defines a frozen dataclass of its options and ``run(config)``; its ``main(argv)`` is
``run_job(run, JobConfig, argv, __doc__, "python -m package.job")``: the options parsed, then ``run``, with the
job's domain errors ending the process as one line ``job: message`` (status 1) instead of a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

import tyro
from tyro.constructors import PrimitiveConstructorSpec

from serendip.core.errors import DataError

ConfigT = TypeVar("ConfigT")
ResultT = TypeVar("ResultT")


def parse_config(config_type: type[ConfigT], argv: Sequence[str] | None, description: str | None, prog: str) -> ConfigT:
    """``argv`` (None: ``sys.argv[1:]``) as a ``config_type``; ``--help`` prints ``description`` and every field.

    Flags are the field names with dashes; a boolean ``flag`` takes ``--flag`` and ``--no-flag``; an enum field takes
    its values; an optional field also takes ``None``. A bad value, or a ``ValueError`` from the dataclass's
    ``__post_init__``, exits with the usage and status 2.
    """
    if description is not None:  # tyro joins only the lines that start with a letter; indented lines stay as written
        description = re.sub(r"(?<=\S)\n(?=\S)", " ", description)
    return tyro.cli(
        config_type, args=argv, prog=prog, description=description, config=(tyro.conf.EnumChoicesFromValues,)
    )


def run_job(
    run: Callable[[ConfigT], ResultT],
    config_type: type[ConfigT],
    argv: Sequence[str] | None,
    description: str | None,
    prog: str,
    errors: tuple[type[Exception], ...] = (DataError,),
) -> ResultT:
    """``run(parse_config(...))``; an exception of ``errors`` (each names the field, file or item at fault) exits
    with ``<job>: <message>`` and status 1, never a traceback."""
    config = parse_config(config_type, argv, description, prog)
    try:
        return run(config)
    except errors as error:
        raise SystemExit(f"{prog.rsplit('.', 1)[-1]}: {error}") from None


def _comma_separated(parse_part: Callable[[str], object], metavar: str) -> PrimitiveConstructorSpec:
    """A tuple typed as one comma-separated word (``1,2,4``), as the jobs' flags always took it."""
    return PrimitiveConstructorSpec(
        nargs=1,
        metavar=metavar,
        instance_from_str=lambda args: tuple(parse_part(part.strip()) for part in args[0].split(",") if part.strip()),
        is_instance=lambda value: isinstance(value, tuple),
        str_from_instance=lambda value: [",".join(str(part) for part in value)],
    )


CommaInts = Annotated[tuple[int, ...], _comma_separated(int, "N,N,...")]
"""A tuple of ints; on the command line ``1,2,4``."""
CommaNames = Annotated[tuple[str, ...], _comma_separated(str, "NAME,NAME,...")]
"""A tuple of names; on the command line ``video_cot,text_only``."""
