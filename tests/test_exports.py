"""The public surface: ``__all__`` (httpx's tests/test_exported_members.py habit), the public
contract's import list from DESIGN.md, ``__version__``, and the exception tree."""

from __future__ import annotations

import inspect
from importlib.metadata import version

import pytest

import capillary_points_async
from capillary_points_async import (
    APIError,
    AuthenticationError,
    BasicAuth,
    CapillaryError,
    CustomerNotFoundError,
    GroupTransferMismatchError,
    InsufficientPointsError,
    InvalidIdentifierError,
    InvalidProgramError,
    InvalidRequestError,
    InvalidValidationCodeError,
    OutcomeUnknownError,
    RateLimitedError,
    ResponseDecodeError,
    ServerError,
    TransferNotAllowedError,
    TransportError,
    errors,
)

# DESIGN.md, "Public contract": the import list users are promised.
CONTRACT = [
    "CapillaryClient",
    "Region",
    "BasicAuth",
    "Identifier",
    "IdentifierType",
    "RateLimit",
    "RetryPolicy",
    "ValidationCode",
    "TransferCheck",
    "ValidationCodeRequest",
    "TransferCheckRequest",
    "Outcome",
    "CapillaryError",
    "InvalidRequestError",
    "TransportError",
    "ResponseDecodeError",
    "APIError",
    "AuthenticationError",
    "RateLimitedError",
    "ServerError",
    "CustomerNotFoundError",
    "InvalidProgramError",
    "InvalidIdentifierError",
    "GroupTransferMismatchError",
    # "The rest of the two flows"
    "OAuth",
    "Redeemability",
    "Redemption",
    "Transfer",
    "RedeemabilityRequest",
    "RedeemRequest",
    "TransferRequest",
    "OutcomeUnknownError",
    "InvalidValidationCodeError",
    "InsufficientPointsError",
]

# DESIGN.md, "Errors" and "The rest of the two flows": each class and its parent.
TREE = [
    (InvalidRequestError, CapillaryError),
    (TransportError, CapillaryError),
    (ResponseDecodeError, CapillaryError),
    (APIError, CapillaryError),
    (AuthenticationError, APIError),
    (RateLimitedError, APIError),
    (ServerError, APIError),
    (CustomerNotFoundError, APIError),
    (InvalidProgramError, APIError),
    (InvalidIdentifierError, APIError),
    (GroupTransferMismatchError, APIError),
    (OutcomeUnknownError, TransportError),
    (InvalidValidationCodeError, APIError),
    (InsufficientPointsError, APIError),
    (TransferNotAllowedError, APIError),
]

PACKAGE = capillary_points_async.__name__


def test_all_is_sorted_and_unique() -> None:
    names = capillary_points_async.__all__
    assert names == sorted(names)
    assert len(names) == len(set(names))


def test_every_name_in_all_exists() -> None:
    for name in capillary_points_async.__all__:
        assert hasattr(capillary_points_async, name), name


def test_all_is_complete() -> None:
    # Every public class or function of the package's namespace that the package defines.
    defined_here = {
        name
        for name, value in vars(capillary_points_async).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and (value.__module__ == PACKAGE or value.__module__.startswith(f"{PACKAGE}."))
    }
    assert defined_here  # the check below must have something to check
    assert defined_here <= set(capillary_points_async.__all__)


@pytest.mark.parametrize("name", CONTRACT)
def test_public_contract_names_are_exported(name: str) -> None:
    assert name in capillary_points_async.__all__
    assert getattr(capillary_points_async, name).__module__.startswith(PACKAGE)


def test_errors_module_all_is_the_error_tree() -> None:
    assert sorted(errors.__all__) == errors.__all__
    assert set(errors.__all__) == {cls.__name__ for cls, _ in TREE} | {"CapillaryError"}
    assert set(errors.__all__) <= set(capillary_points_async.__all__)


def test_version_is_the_installed_distributions() -> None:
    assert isinstance(capillary_points_async.__version__, str)
    assert capillary_points_async.__version__ == version("capillary-points-async")
    assert "__version__" in capillary_points_async.__all__


# --------------------------------------------------------------------------- error tree


@pytest.mark.parametrize(("cls", "parent"), TREE, ids=[cls.__name__ for cls, _ in TREE])
def test_error_tree(cls: type[Exception], parent: type[Exception]) -> None:
    assert cls.__bases__[0] is parent
    assert issubclass(cls, CapillaryError)


def test_capillary_error_is_an_exception() -> None:
    assert CapillaryError.__bases__ == (Exception,)


def test_invalid_request_error_is_a_value_error() -> None:
    assert issubclass(InvalidRequestError, ValueError)
    with pytest.raises(ValueError, match="bad"):
        raise InvalidRequestError("bad")


@pytest.mark.parametrize(
    "cls", [APIError, InvalidRequestError, TransportError, ResponseDecodeError]
)
def test_only_invalid_request_error_is_a_value_error(cls: type[Exception]) -> None:
    assert issubclass(cls, ValueError) is (cls is InvalidRequestError)


@pytest.mark.parametrize(
    ("cls", "retryable"),
    [
        (TransportError, True),
        (ServerError, True),
        (RateLimitedError, True),
        (ResponseDecodeError, False),
        (APIError, False),
        (AuthenticationError, False),
        (CustomerNotFoundError, False),
        (InvalidProgramError, False),
        (InvalidIdentifierError, False),
        (GroupTransferMismatchError, False),
    ],
)
def test_retryable_per_class(cls: type[CapillaryError], retryable: bool) -> None:
    assert getattr(cls, "retryable") is retryable  # noqa: B009 - a class attribute, not typed


def test_api_error_carries_and_shows_its_fields() -> None:
    error = CustomerNotFoundError(
        "Customer not found for organization",
        status=200,
        code=816,
        request_id="8a1f-req",
        retry_after=None,
    )
    assert (error.status, error.code, error.request_id) == (200, 816, "8a1f-req")
    assert error.message == "Customer not found for organization"
    for text in (str(error), repr(error)):
        assert "Customer not found for organization" in text
        assert "816" in text
        assert "8a1f-req" in text
    assert "200" in str(error)


def test_api_error_str_when_code_is_the_status() -> None:
    error = ServerError("Bad gateway", status=502, code=502, request_id=None)
    assert str(error) == "Bad gateway (HTTP 502)"


def test_errors_from_a_client_never_show_the_credentials() -> None:
    auth = BasicAuth("store123", "Pass123")
    secrets = ["Pass123", "2f23fa3579f3f75175793649115c1b25", auth.header.split()[1]]
    error = AuthenticationError("Unauthorized", status=401, code=401, request_id="r")
    with pytest.raises(InvalidRequestError) as invalid:
        BasicAuth.from_md5("store123", "Pass123")
    for text in (str(error), repr(error), repr(auth), str(auth), str(invalid.value)):
        for secret in secrets:
            assert secret not in text


def test_response_decode_error_shows_its_request_id() -> None:
    error = ResponseDecodeError("not JSON", status=200, request_id="rid-9")
    assert str(error) == "not JSON (request id rid-9)"
    assert str(ResponseDecodeError("not JSON")) == "not JSON"
    assert (error.status, error.request_id) == (200, "rid-9")


def test_transport_error_names_the_request() -> None:
    error = TransportError("timed out", method="POST", path="v2/points/isTransferrable")
    assert (error.method, error.path) == ("POST", "v2/points/isTransferrable")
    assert str(error) == "timed out"
