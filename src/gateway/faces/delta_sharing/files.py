"""Table files: a query's permitted slice as Parquet on the node, behind short-lived signed URLs.

A query materialises its slice (decided, recorded, manifested like any slice) into the node's
data folder and answers a URL naming it, with an expiry and an HMAC bound to the principal, the
dataset, the query and the expiry; the key is derived from the node's signing key and never
leaves it. Every fetch of the URL is decided again for the same principal and recorded: a
recipient who has lost access, or whose columns or policy version changed, gets 403, not the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.access import ensure
from gateway.errors import Forbidden, NotFound
from policies.decisions import Action, Decision
from policies.principals import Principal

if TYPE_CHECKING:
    from gateway.node import Node

__all__ = ["URL_TTL_SECONDS", "Grant", "check_download", "folder", "keep_grant", "sweep"]

URL_TTL_SECONDS = 900
_RID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Grant:
    """What one signed URL stands for, kept beside its file."""

    rid: str
    subject: str
    institution: str
    roles: tuple[str, ...]
    actor: str | None
    dataset: str
    purpose: str
    columns: tuple[str, ...]
    shape: str
    query: str
    exp: int  # epoch seconds
    sha256: str
    size: int

    @property
    def principal(self) -> Principal:
        """The recipient the URL was made for."""
        return Principal(
            subject=self.subject,
            institution=self.institution,
            roles=frozenset(self.roles),
            actor=self.actor,
        )


def folder(node: Node) -> Path:
    """Where this node keeps materialised table files."""
    path = Path(node.settings.data_dir) / "delta-sharing"
    path.mkdir(parents=True, exist_ok=True)
    return path


def shape(columns: list[str], masks: dict[str, str], policy_version: int) -> str:
    """What a file's content depends on in a decision: columns, masks and policy version."""
    text = json.dumps([list(columns), dict(sorted(masks.items())), policy_version])
    return hashlib.sha256(text.encode()).hexdigest()


def shape_of(decision: Decision) -> str:
    """The shape of a decision."""
    masks = {k: m.kind.value for k, m in decision.masks.items()}
    return shape(list(decision.columns), masks, decision.policy_version)


def shape_of_manifest(manifest: dict[str, Any]) -> str:
    """The shape of the decision a slice's manifest records."""
    return shape(
        manifest["query"]["columns"], manifest["decision"]["masked"], manifest["policy_version"]
    )


def _key(node: Node) -> bytes:
    return node.key.derived("matgate delta-sharing file urls")


def _signature(node: Node, grant: Grant) -> str:
    message = "\n".join(
        (grant.rid, grant.principal.id, grant.dataset, grant.query, str(grant.exp))
    ).encode()
    return hmac.new(_key(node), message, hashlib.sha256).hexdigest()


def keep_grant(node: Node, grant: Grant) -> str:
    """Store ``grant`` beside its file and return the signed URL of the file."""
    (folder(node) / f"{grant.rid}.json").write_text(json.dumps(asdict(grant)))
    sig = _signature(node, grant)
    return f"{node.public_url}/delta-sharing/files/{grant.rid}.parquet?exp={grant.exp}&sig={sig}"


def _load(node: Node, rid: str) -> Grant:
    try:
        data: dict[str, Any] = json.loads((folder(node) / f"{rid}.json").read_text())
    except (OSError, ValueError):
        raise NotFound("no such file") from None
    data["roles"] = tuple(data["roles"])
    data["columns"] = tuple(data["columns"])
    return Grant(**data)


def check_download(node: Node, rid: str, exp: str | None, sig: str | None) -> Path:
    """The file a signed URL names, after checking the signature, expiry and a fresh decision."""
    if not _RID.match(rid) or not exp or not sig:
        raise NotFound("no such file")
    grant = _load(node, rid)
    if not hmac.compare_digest(_signature(node, grant), sig) or exp != str(grant.exp):
        raise Forbidden("the URL's signature does not match")
    if time.time() >= grant.exp:
        raise Forbidden("the URL has expired; query the table again")
    dataset = node.catalog.get(grant.dataset)
    decision = ensure(
        node,
        grant.principal,
        dataset,
        Action.READ,
        grant.purpose,
        grant.columns,
        request_id=grant.rid,
    )
    if shape_of(decision) != grant.shape:
        raise Forbidden("the policy changed since this file was made; query the table again")
    path = folder(node) / f"{rid}.parquet"
    if not path.exists():
        raise NotFound("no such file")
    return path


def sweep(node: Node) -> None:
    """Delete files whose URLs have expired (a minute after, for fetches under way)."""
    cutoff = time.time() - 60
    for meta in folder(node).glob("*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            if json.loads(meta.read_text())["exp"] < cutoff:
                meta.with_suffix(".parquet").unlink(missing_ok=True)
                meta.unlink(missing_ok=True)
