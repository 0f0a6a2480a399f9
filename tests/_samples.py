"""Loader for the recorded documentation responses in ``tests/samples`` (gidgethub's habit).

The files are Capillary's doc samples copied verbatim (see ``tests/samples/README.md``), so the
pure decoding layers are tested against exactly the bytes the documentation shows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from multidict import CIMultiDict

from capillary_points_async._protocol import RawResponse

SAMPLES = Path(__file__).parent / "samples"

VALIDATION_CODE_SAMPLES = ("validationcode_page_200.json", "validationcode_openapi_200.json")
TRANSFER_CHECK_SAMPLES = ("istransferrable_page_200.json", "istransferrable_openapi_200.json")
REDEEMABILITY_SAMPLES = ("isredeemable_openapi_200.json", "isredeemable_openapi_schema_200.json")
REDEMPTION_SAMPLES = ("redeem_openapi_200.json", "redeem_openapi_schema_200.json")
TRANSFER_SAMPLES = (
    "transfer_openapi_201.json",
    "transfer_openapi_201_mobile.json",
    "transfer_openapi_schema_201.json",
)


def sample_bytes(name: str) -> bytes:
    """The raw bytes of ``tests/samples/<name>``."""
    return (SAMPLES / name).read_bytes()


def sample_json(name: str) -> Any:
    """``tests/samples/<name>`` parsed, for tests that tamper with one field."""
    return json.loads(sample_bytes(name))


def raw_response(
    body: bytes | str | Any,
    status: int = 200,
    request_id: str | None = "req-0001",
    **headers: str,
) -> RawResponse:
    """A transport's answer: ``body`` as bytes (a str is encoded, anything else JSON-dumped),
    case-insensitive headers with ``X-Cap-Requestid`` set unless ``request_id`` is None.
    Keyword headers use ``_`` for ``-`` (``Retry_After="5"``)."""
    if isinstance(body, str):
        body = body.encode()
    elif not isinstance(body, bytes):
        body = json.dumps(body).encode()
    ci: CIMultiDict[str] = CIMultiDict()
    if request_id is not None:
        ci["X-Cap-Requestid"] = request_id
    for name, value in headers.items():
        ci[name.replace("_", "-")] = value
    return RawResponse(status=status, headers=ci, body=body)
