"""Helpers for the sandbox's tests: credentials, samples, request bodies, a hand-driven clock."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import aiohttp

from capillary_points_async.testing import FakeCapillary

SAMPLES = Path(__file__).parent.parent / "samples"
CODE_PATH = "/v1.1/points/validationcode"
CHECK_PATH = "/v2/points/isTransferrable"
REDEEMABLE_PATH = "/v1.1/points/isredeemable"
REDEEM_PATH = "/v1.1/points/redeem"
TRANSFER_PATH = "/v2/points/transfer"


def basic(username: str = "sandbox", password: str = "sandbox") -> str:
    digest = hashlib.md5(password.encode()).hexdigest()
    return "Basic " + base64.b64encode(f"{username}:{digest}".encode()).decode()


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def check_body(**overrides: Any) -> dict[str, Any]:
    """The isTransferrable page's request body, with overrides (None removes a field)."""
    body: dict[str, Any] = {
        "pointsTobeTransferred": 1,
        "groupProgramTransfer": False,
        "programId": 973,
        "fromCustomerIdentifier": {"type": "MOBILE", "value": "9777785206"},
        "toCustomerIdentifier": {"type": "MOBILE", "value": "9777785207"},
        "issueOtp": False,
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def redeem_body(mobile: str, points: Any, code: Any, **extra: Any) -> dict[str, Any]:
    """The redeem page's body for one item (``extra``: more item fields)."""
    item = {"points_redeemed": points, "customer": {"mobile": mobile}, "validation_code": code}
    return {"root": {"redeem": [{**item, **extra}]}}


def transfer_body(**overrides: Any) -> dict[str, Any]:
    """The transfer page's body, 9777785206 -> 9777785207 (None removes a field)."""
    return check_body(**{"issueOtp": None, "groupProgramTransfer": None, **overrides})


class Clock:
    """A clock the test moves by hand, so that nothing waits for real time to pass."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Api:
    """One call per endpoint, returning (status, headers, JSON body)."""

    def __init__(self, session: aiohttp.ClientSession, fake: FakeCapillary) -> None:
        self.session, self.fake = session, fake

    async def code(self, **params: str) -> tuple[int, Any, Any]:
        query = {"format": "json", **params}
        async with self.session.get(self.fake.url + CODE_PATH, params=query) as response:
            return response.status, response.headers, await response.json()

    async def check(self, body: Any = None, path: str = CHECK_PATH) -> tuple[int, Any, Any]:
        payload = check_body() if body is None else body
        async with self.session.post(self.fake.url + path, json=payload) as response:
            return response.status, response.headers, await response.json()

    async def redeemable(self, **params: str) -> tuple[int, Any, Any]:
        query = {"format": "json", **params}
        async with self.session.get(self.fake.url + REDEEMABLE_PATH, params=query) as response:
            return response.status, response.headers, await response.json()

    async def redeem(self, body: Any, **params: str) -> tuple[int, Any, Any]:
        query = {"format": "json", **params}
        url = self.fake.url + REDEEM_PATH
        async with self.session.post(url, params=query, json=body) as response:
            return response.status, response.headers, await response.json()

    async def transfer(self, body: Any) -> tuple[int, Any, Any]:
        async with self.session.post(self.fake.url + TRANSFER_PATH, json=body) as response:
            return response.status, response.headers, await response.json()
