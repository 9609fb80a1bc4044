"""Attacks against real nodes: the gateway tests' demo node and personas, reused here.

Each module in this folder is one threat (OWASP API Security Top 10, 2023, as the frame): a
table of attacks, each row with the refusal it must meet.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

GATEWAY_TESTS = Path(__file__).resolve().parent.parent / "gateway"
if str(GATEWAY_TESTS) not in sys.path:
    sys.path.insert(0, str(GATEWAY_TESTS))

_spec = importlib.util.spec_from_file_location("gateway_fixtures", GATEWAY_TESTS / "conftest.py")
assert _spec is not None and _spec.loader is not None
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)

app = _fixtures.app
api = _fixtures.api
auth = _fixtures.auth
demo_plan = _fixtures.demo_plan
fresh = _fixtures.fresh
live = _fixtures.live
tokens = _fixtures.tokens
