"""The single-call commands: one request, its result as JSON on stdout; an error reaches
``main``, which prints it on stderr and sets the exit status."""

from __future__ import annotations

import argparse

from .arguments import make_client
from .results import EXIT_OK, to_json

__all__ = ["is_transferrable", "validation_code"]


async def validation_code(args: argparse.Namespace) -> int:
    """The ``validation-code`` command."""
    async with make_client(args) as client:
        result = await client.points.issue_validation_code(args.identifier, points=args.points)
    print(to_json(result, pretty=True))
    return EXIT_OK


async def is_transferrable(args: argparse.Namespace) -> int:
    """The ``is-transferrable`` command."""
    async with make_client(args) as client:
        result = await client.points.is_transferrable(
            from_customer=args.from_customer,
            to_customer=args.to_customer,
            points=args.points,
            program_id=args.program_id,
            group_program_transfer=args.group,
            issue_otp=args.issue_otp,
        )
    print(to_json(result, pretty=True))
    return EXIT_OK
