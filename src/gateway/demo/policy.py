"""What every demo institution's policy starts with: its own people, and partners' discovery."""

from __future__ import annotations

from typing import Any

__all__ = ["ROLES", "house_lines"]

ROLES = ["member", "steward", "auditor", "partner"]


def house_lines(domain: str) -> list[dict[str, Any]]:
    """Members discover, read and train on everything and may take their models home; stewards
    manage; auditors audit; partners may see what exists (what they may read or train on is
    each institution's own choice)."""
    return [
        {"role": "member", "domain": domain, "action": "discover"},
        {"role": "member", "domain": domain, "action": "read"},
        {"role": "member", "domain": domain, "action": "train"},
        {"role": "member", "domain": domain, "action": "export-model"},
        {"role": "steward", "domain": domain, "action": "manage"},
        {"role": "auditor", "domain": domain, "action": "audit"},
        {"role": "auditor", "domain": domain, "action": "discover"},
        {"role": "partner", "domain": domain, "action": "discover"},
    ]
