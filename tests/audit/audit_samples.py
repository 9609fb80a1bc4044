"""Sample events for the audit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from audit.events import DecisionMade, SliceDelivered


class SteppingClock:
    """A clock that advances one second per reading, so times are distinct and ordered."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def decision(i: int, *, allow: bool = True, principal: str = "ana@uni-a") -> DecisionMade:
    """A decision event numbered ``i``."""
    return DecisionMade(
        request_id=f"req-{i}",
        principal=principal,
        institution=principal.split("@")[1],
        dataset="inst-a/alloys" if i % 2 else "inst-b/films",
        action="read",
        purpose="research" if i % 3 else "ml-training",
        decision="allow" if allow else "deny",
        policy_version=7,
        reasons=(f"rule {i}",),
        columns=("composition", "hardness"),
    )


def delivered(i: int, manifest_id: str, *, principal: str = "ana@uni-a") -> SliceDelivered:
    """A completed slice event."""
    return SliceDelivered(
        request_id=f"req-{i}",
        principal=principal,
        institution=principal.split("@")[1],
        dataset="inst-a/alloys",
        action="read",
        purpose="ml-training",
        decision="allow",
        manifest_id=manifest_id,
        policy_version=7,
        rows=120,
        bytes=4096,
        sha256="ab" * 32,
        columns=("composition", "hardness"),
    )


REFUSE_SQLITE = (
    "CREATE TRIGGER audit_refuse BEFORE INSERT ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit store refuses writes'); END"
)
REFUSE_PG = (
    "CREATE OR REPLACE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'audit store refuses writes'; END $$",
    "CREATE TRIGGER audit_refuse BEFORE INSERT ON audit_entries "
    "FOR EACH ROW EXECUTE FUNCTION audit_refuse()",
)


def refuse_audit_writes(conn, refuse: bool = True) -> None:  # type: ignore[no-untyped-def]
    """Make the audit table refuse (or accept again) every insert, with a trigger."""
    pg = conn.dialect.name == "postgresql"
    if not refuse:
        conn.exec_driver_sql(
            "DROP TRIGGER IF EXISTS audit_refuse" + (" ON audit_entries" if pg else "")
        )
        return
    for statement in REFUSE_PG if pg else (REFUSE_SQLITE,):
        conn.exec_driver_sql(statement)
