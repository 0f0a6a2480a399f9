"""The single-call commands: one request, its result as JSON on stdout; an error reaches
``main``, which prints it on stderr and sets the exit status."""

from __future__ import annotations

import argparse

from .arguments import make_client
from .results import EXIT_OK, to_json

__all__ = ["is_redeemable", "is_transferrable", "redeem", "transfer", "validation_code"]


async def validation_code(args: argparse.Namespace) -> int:
    """The ``validation-code`` command."""
    async with make_client(args) as client:
        result = await client.points.issue_validation_code(args.identifier, points=args.points)
    print(to_json(result, pretty=True))
    return EXIT_OK


async def is_redeemable(args: argparse.Namespace) -> int:
    """The ``is-redeemable`` command."""
    async with make_client(args) as client:
        result = await client.points.is_redeemable(
            args.identifier,
            args.points,
            program_id=args.program_id,
            validation_code=args.validation_code,
            issue_otp=args.issue_otp,
        )
    print(to_json(result, pretty=True))
    return EXIT_OK


async def redeem(args: argparse.Namespace) -> int:
    """The ``redeem`` command. An ``OutcomeUnknownError`` reaches ``main`` like any error."""
    async with make_client(args) as client:
        result = await client.points.redeem(
            args.identifier,
            points=args.points,
            validation_code=args.validation_code,
            transaction_number=args.transaction_number,
            program_id=args.program_id,
            notes=args.notes,
        )
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


async def transfer(args: argparse.Namespace) -> int:
    """The ``transfer`` command. An ``OutcomeUnknownError`` reaches ``main`` like any error."""
    async with make_client(args) as client:
        result = await client.points.transfer(
            from_customer=args.from_customer,
            to_customer=args.to_customer,
            points=args.points,
            program_id=args.program_id,
            code=args.code,
            notes=args.notes,
        )
    print(to_json(result, pretty=True))
    return EXIT_OK
