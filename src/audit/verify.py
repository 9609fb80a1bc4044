"""Verify a log, live or exported, against signed checkpoints and say exactly what was proven.

Trust comes from the auditor, never from the copy: the log keys are a JWKS file or pinned key
fingerprints (``Trust``), witnesses are C2SP verifier keys, and without any key the answer is
``unauthenticated``, never ``ok``. A copy verifies only when a checkpoint signed by a trusted key
covers every entry given (its size is the number of entries and its root is recomputed), with as
many cosignatures from trusted witnesses as the auditor asked for.

Three independent checks find what is wrong: each checkpoint's signature (JSON or C2SP note);
the Merkle root of the entries at every checkpointed size; and the hash chain inside the entries
(each holds its ``seq`` and its predecessor's leaf hash), which pins a change to one entry: an
altered entry is no longer referenced by its successor, a deleted one leaves a gap in ``seq``, a
moved one breaks the order, an inserted one duplicates a ``seq`` or links to nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.chain import Problem, chain_problems, scan
from audit.checkpoints import Checkpoint
from audit.keys import public_keys, thumbprint
from audit.merkle import MerkleTree, verify_consistency
from audit.notes import ED25519, Note, NoteKey, parse_checkpoint, parse_note

__all__ = ["Problem", "Report", "Trust", "consistent_with", "verify", "verify_checkpoint"]

VERIFIED, FAILED, UNAUTHENTICATED = "verified", "failed", "unauthenticated"


@dataclass(frozen=True, slots=True)
class Trust:
    """What the auditor trusts: log keys by kid, witness keys, and how many cosignatures to ask."""

    keys: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)
    witnesses: tuple[NoteKey, ...] = ()
    required: int = 0
    unmatched: tuple[str, ...] = ()  # pinned fingerprints that no offered key has

    @property
    def named(self) -> bool:
        """Whether the auditor named any trust root at all."""
        return bool(self.keys or self.unmatched)

    @classmethod
    def of(
        cls,
        *,
        jwks: Mapping[str, Any] | None = None,
        pins: Iterable[str] = (),
        offered: Mapping[str, Any] | None = None,
        witnesses: Iterable[str | NoteKey] = (),
        required: int = 0,
    ) -> Trust:
        """Log keys from a trusted JWKS and pinned keys, witness keys from vkeys.

        A pin is a C2SP vkey (it holds the key) or an RFC 7638 thumbprint, which accepts the key
        of that thumbprint from ``offered`` (a JWKS the verified copy or node handed over):
        offered keys count only through a pin."""
        keys = dict(public_keys(jwks)) if jwks is not None else {}
        offered_keys = {thumbprint(k): k for k in _jwks_list(offered)}
        unmatched: list[str] = []
        for pin in pins:
            pin = pin.strip()
            if "+" in pin:
                nk = NoteKey.from_vkey(pin)
                keys[f"vkey:{nk.name}"] = nk.public
            elif pin in offered_keys:
                jwk = offered_keys[pin]
                keys.update(public_keys([{**jwk, "kid": jwk.get("kid", pin)}]))
            else:
                unmatched.append(pin)
        wkeys = tuple(w if isinstance(w, NoteKey) else NoteKey.from_vkey(w) for w in witnesses)
        if required > len(wkeys):
            raise ValueError(f"{required} cosignatures asked for but {len(wkeys)} witnesses named")
        return cls(keys, wkeys, required, tuple(unmatched))

    def log_signer(self, note: Note) -> str | None:
        """The kid of the trusted log key that signed ``note`` (Ed25519, type 0x01), if any."""
        text = note.text.encode()
        for sig in note.signatures:
            for kid, key in self.keys.items():
                if NoteKey(sig.name, ED25519, key).verify(text, sig) is not None:
                    return kid
        return None


def _jwks_list(jwks: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if not jwks:
        return []
    keys = jwks.get("keys", [jwks])
    return [k for k in keys if isinstance(k, Mapping)] if isinstance(keys, list) else []


@dataclass(slots=True)
class Report:
    """The outcome of a verification: what was proven, and every problem found."""

    size: int
    root: str
    checkpoints: int
    verified_size: int
    problems: list[Problem] = field(default_factory=list)
    authenticated: bool = True
    signer: str | None = None
    cosigners: list[str] = field(default_factory=list)
    witnesses_required: int = 0
    checkpoint_time: str | None = None

    @property
    def status(self) -> str:
        """``verified``, ``failed`` or ``unauthenticated`` (nothing wrong found, but no trusted
        key was named, so nothing about who wrote the log was checked)."""
        if self.problems:
            return FAILED
        return VERIFIED if self.authenticated else UNAUTHENTICATED

    @property
    def ok(self) -> bool:
        """True only when the entries are proven by a trusted, covering checkpoint."""
        return self.status == VERIFIED

    def kinds(self) -> set[tuple[str, int | None]]:
        """``(kind, index)`` of every problem, for quick checks."""
        return {(p.kind, p.index) for p in self.problems}

    def summary(self) -> str:
        """One sentence saying what was proven, or why not."""
        if self.status == UNAUTHENTICATED:
            return (
                f"authenticity NOT checked: no trusted key was given (--trust-key or "
                f"--trust-jwks); the {self.size} entries are only self-consistent"
            )
        if self.status == FAILED:
            return f"verification FAILED: {len(self.problems)} problem(s), first: " + (
                self.problems[0].detail
            )
        wit = f", cosigned by {', '.join(self.cosigners)}" if self.cosigners else ""
        return (
            f"{self.size} entries proven: checkpoint of size {self.verified_size}, root "
            f"{self.root}, signed by {self.signer}{wit}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the CLI and the API."""
        return {
            "ok": self.ok,
            "status": self.status,
            "summary": self.summary(),
            "entries": self.size,
            "size": self.size,
            "root": self.root,
            "checkpoints": self.checkpoints,
            "verified_size": self.verified_size,
            "checkpoint_time": self.checkpoint_time,
            "signer": self.signer,
            "cosigners": self.cosigners,
            "witnesses_required": self.witnesses_required,
            "problems": [p.to_dict() for p in self.problems],
        }


def verify(
    entries: Iterable[bytes],
    checkpoints: Iterable[Checkpoint | Mapping[str, Any]],
    trust: Trust | Mapping[str, Any] | Iterable[Mapping[str, Any]] | None,
) -> Report:
    """Verify entry bytes (in stored order) against checkpoints, trusting only ``trust`` (a
    ``Trust``, or a JWKS the caller trusts; None: nothing is trusted)."""
    if not isinstance(trust, Trust):
        trust = Trust(public_keys(trust) if trust is not None else {})
    hashes, seqs, prevs, malformed = scan(entries)
    n = len(hashes)
    tree = MerkleTree(hashes)
    problems = [
        Problem("malformed", p, f"entry at position {p} is not an audit entry") for p in malformed
    ]
    chain_ok = seqs is None
    if seqs is not None and prevs is not None:
        problems += chain_problems(hashes, seqs, prevs)
    checked = [_parse(c) for c in checkpoints]
    authenticated = trust.named
    found, signers = _checkpoint_problems(checked, trust, tree, n, chain_ok=chain_ok)
    found += [
        Problem("unknown-key", None, f"the pinned key {pin} signed nothing in this copy")
        for pin in trust.unmatched
    ]
    report = Report(n, tree.root().hex(), len(checked), 0, authenticated=authenticated)
    report.witnesses_required = trust.required
    valid = [c for c in checked if id(c) in signers]
    covering = [c for c in valid if c.size == n and tree.root(n).hex() == c.root]
    report.verified_size = max((c.size for c in valid if c.size <= n), default=0)
    if authenticated:
        problems += found
        if not any(c.size >= n for c in valid):  # (a larger one is reported as truncation)
            problems.append(_uncovered(n, report.verified_size))
    if covering:
        best = max(covering, key=lambda c: len(_cosigners(c, trust)))
        report.signer = signers[id(best)]
        report.cosigners = sorted(_cosigners(best, trust))
        report.checkpoint_time = best.time
        if len(report.cosigners) < trust.required:
            problems.append(
                Problem(
                    "witnesses",
                    None,
                    f"the checkpoint of size {n} has {len(report.cosigners)} cosignature(s) "
                    f"from trusted witnesses, {trust.required} required",
                    n,
                )
            )
    report.problems = problems
    return report


def verify_checkpoint(cp: Checkpoint | Mapping[str, Any], trust: Trust) -> Report:
    """Check one checkpoint alone: signed by a trusted key, cosigned by enough trusted
    witnesses. The report's sizes are the checkpoint's."""
    cp = _parse(cp)
    report = Report(cp.size, cp.root, 1, cp.size, authenticated=trust.named)
    report.witnesses_required = trust.required
    report.checkpoint_time = cp.time
    if not trust.named:
        return report
    kid, why = _signer(cp, trust)
    if kid is None:
        report.problems.append(
            Problem(
                why,
                None,
                f"the checkpoint of size {cp.size} is not signed by a trusted key",
                cp.size,
            )
        )
        return report
    report.signer = kid
    report.problems += [
        Problem("unknown-key", None, f"the pinned key {pin} did not sign this checkpoint")
        for pin in trust.unmatched
    ]
    report.cosigners = sorted(_cosigners(cp, trust))
    if len(report.cosigners) < trust.required:
        report.problems.append(
            Problem(
                "witnesses",
                None,
                f"the checkpoint of size {cp.size} has {len(report.cosigners)} cosignature(s) "
                f"from trusted witnesses, {trust.required} required",
                cp.size,
            )
        )
    return report


def consistent_with(
    previous: tuple[int, str], current: tuple[int, str], proof: Iterable[str]
) -> Problem | None:
    """Whether the log ``current`` (size, hex root) extends the ``previous`` one an auditor
    accepted before, by an RFC 6962 consistency proof (hex hashes); the problem if not."""
    (old, old_root), (new, new_root) = previous, current
    if new < old:
        return Problem(
            "rollback",
            new,
            f"the log has {new} entries, fewer than the {old} accepted before: it was rolled back",
            old,
        )
    path = [bytes.fromhex(p) for p in proof]
    if not verify_consistency(old, new, bytes.fromhex(old_root), bytes.fromhex(new_root), path):
        return Problem(
            "fork",
            None,
            f"the log of size {new} does not extend the checkpoint of "
            f"size {old} accepted before: the log was forked or rewritten",
            old,
        )
    return None


def _uncovered(n: int, covered: int) -> Problem:
    if n == covered:
        detail = f"no checkpoint signed by a trusted key covers the {n} entries given"
    else:
        detail = (
            f"entries {covered}..{n - 1} are covered by no checkpoint signed by a trusted key "
            f"(the largest trusted checkpoint has size {covered})"
        )
    return Problem("uncovered", covered if covered < n else None, detail)


def _cosigners(cp: Checkpoint, trust: Trust) -> list[str]:
    if not cp.note or not trust.witnesses:
        return []
    try:
        note = parse_note(cp.note)
        _, size, root = parse_checkpoint(note.text)
    except ValueError:
        return []
    if (size, root.hex()) != (cp.size, cp.root):
        return []  # cosignatures of another tree head do not vouch for this one
    return list(note.verified_by(trust.witnesses))


def _parse(cp: Checkpoint | Mapping[str, Any]) -> Checkpoint:
    return cp if isinstance(cp, Checkpoint) else Checkpoint.from_dict(cp)


def _signer(cp: Checkpoint, trust: Trust) -> tuple[str | None, str]:
    """The kid of the trusted key that signed ``cp`` (JSON signature, or its C2SP note over the
    same size and root), or None and why not: ``unknown-key`` or ``bad-signature``."""
    key = trust.keys.get(cp.kid)
    if key is not None and cp.verify(key):
        return cp.kid, ""
    if key is None:  # a key pinned under another name (a vkey) may still have signed it
        for kid, other in trust.keys.items():
            if cp.verify(other):
                return kid, ""
    if cp.note:
        try:
            note = parse_note(cp.note)
            _, size, root = parse_checkpoint(note.text)
        except ValueError:
            return None, "bad-signature"
        signer = trust.log_signer(note)
        if signer is not None:
            same = (size, root.hex()) == (cp.size, cp.root)
            return (signer, "") if same else (None, "bad-signature")
    return None, "bad-signature" if key is not None else "unknown-key"


def _checkpoint_problems(
    checked: list[Checkpoint], trust: Trust, tree: MerkleTree, n: int, *, chain_ok: bool
) -> tuple[list[Problem], dict[int, str]]:
    problems: list[Problem] = []
    signers: dict[int, str] = {}
    roots_by_size: dict[int, set[str]] = {}
    good_sizes: list[int] = []
    for cp in checked:
        kid, why = _signer(cp, trust)
        if kid is None:
            detail = (
                f"checkpoint at size {cp.size} names key {cp.kid!r}, which is not trusted"
                if why == "unknown-key"
                else f"checkpoint at size {cp.size}: signature does not verify with key {cp.kid!r}"
            )
            problems.append(Problem(why, None, detail, cp.size))
            continue
        signers[id(cp)] = kid
        roots_by_size.setdefault(cp.size, set()).add(cp.root)
        if cp.size > n:
            problems.append(
                Problem(
                    "truncated",
                    n,
                    f"log has {n} entries but a checkpoint signed size {cp.size}: "
                    f"entries {n}..{cp.size - 1} are missing",
                    cp.size,
                )
            )
        elif tree.root(cp.size).hex() != cp.root:
            good = max((s for s in good_sizes if s < cp.size), default=0)
            suspect = cp.size - 1 if chain_ok else None
            problems.append(
                Problem(
                    "root-mismatch",
                    suspect,
                    f"entries {good}..{cp.size - 1} do not hash to the root "
                    f"signed at size {cp.size}",
                    cp.size,
                )
            )
        else:
            good_sizes.append(cp.size)
    for size, roots in sorted(roots_by_size.items()):
        if len(roots) > 1:
            problems.append(
                Problem(
                    "fork",
                    None,
                    f"{len(roots)} checkpoints of size {size} sign different "
                    f"roots: {sorted(roots)}",
                    size,
                )
            )
    return problems, signers
