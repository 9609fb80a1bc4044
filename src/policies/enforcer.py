"""Casbin behind one door: the model, the SQLAlchemy-adapter store and reference enforcement.

This is the only module that imports Casbin. The model below is the meaning of a policy; the fast
path in ``compiled`` implements the same meaning over indexes, and a test proves the two agree.

A principal's request subject is ``user:subject@institution``. It holds, in a domain, every role
granted to it or to its institution there (``g`` rules), its institution's subject, and, in its
home domain only, the roles its token carries; everyone holds ``public`` in every domain. An
anonymous request's subject is ``public`` itself. ``reference_enforcer`` adds the implicit links.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import casbin
import sqlalchemy as sa
from casbin.model import FastModel, Model
from casbin_sqlalchemy_adapter import Adapter

from policies.errors import PolicyConflict
from policies.lines import PUBLIC, Rule
from policies.principals import Principal
from policies.store import CasbinRule, lock_policy, policy_changes

__all__ = ["MODEL", "CasbinStore", "ReferenceEnforcer", "reference_enforcer"]

P_FIELDS = 10
MODEL = """
[request_definition]
r = sub, dom, obj, act, pur

[policy_definition]
p = sub, dom, obj, act, pur, eft, cols, rows, mask, opts

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && keyMatch(r.obj, p.obj) \
&& (r.act == p.act || (p.eft == "allow" && r.act == "discover" \
&& (p.act == "read" || p.act == "train"))) \
&& (p.pur == "*" || r.pur == p.pur || r.act == "discover") \
&& (p.eft == "allow" || (p.cols == "" && p.rows == ""))
"""
# pycasbin's model parser does not join continued lines, so they are joined here.
MODEL = MODEL.replace(" \\\n", " ")


class _RuleAdapter(Adapter):
    """The SQLAlchemy adapter, reading values column by column (row rules may hold commas)."""

    def load_policy(self, model: Any) -> None:
        """Load every rule into the Casbin model."""
        with self._session_scope() as session:
            for row in session.query(CasbinRule).order_by(CasbinRule.id):
                sec = row.ptype[0]
                if sec in model.model and row.ptype in model.model[sec]:
                    count = P_FIELDS if sec == "p" else 3
                    model.model[sec][row.ptype].policy.append(row.values(count))


class CasbinStore:
    """The policy of a node as Casbin holds it: loaded from, and written to, the database."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._adapter = _RuleAdapter(engine, db_class=CasbinRule, create_all_models=False)
        self._enforcer = casbin.Enforcer(casbin.Enforcer.new_model(text=MODEL), self._adapter)
        self._enforcer.enable_auto_save(False)

    def load(self) -> tuple[int, list[Rule], list[Rule]]:
        """Reload from the database: (version, p rules, g rules)."""
        self._enforcer.load_policy()
        with self._engine.connect() as conn:
            version = conn.execute(sa.select(sa.func.max(policy_changes.c.version))).scalar()
        return (
            int(version or 0),
            [tuple(r) for r in self._enforcer.get_policy()],
            [tuple(r) for r in self._enforcer.get_grouping_policy()],
        )

    def stored_version(self) -> int:
        """The newest policy version in the database (one small query)."""
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(policy_changes.c.version))).scalar() or 0)

    def changes(self, domain: str, limit: int) -> list[dict[str, Any]]:
        """The recorded changes of ``domain``, newest version first (at most ``limit``)."""
        query = (
            sa.select(policy_changes)
            .where(policy_changes.c.domain == domain)
            .order_by(policy_changes.c.version.desc())
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def write(
        self,
        add: Sequence[tuple[str, Rule]],
        remove: Sequence[tuple[str, Rule]],
        change: dict[str, Any],
        then: Callable[[sa.Connection, int], None] | None = None,
        *,
        base: int | None = None,
    ) -> int:
        """Apply rule changes and record the new version in one transaction, calling ``then``
        with the connection and the version before it commits; return the version.

        Under the write lock the stored rules are the truth: a rule to remove that is gone, or
        one to add that is there, was changed by another writer since the caller checked, and is
        refused (PolicyConflict), as is any change when ``base`` is given and the stored version
        is no longer ``base``."""
        with self._engine.begin() as conn:
            lock_policy(conn)
            newest = int(
                conn.execute(sa.select(sa.func.max(policy_changes.c.version))).scalar() or 0
            )
            if base is not None and newest != base:
                raise PolicyConflict(
                    f"the policy is at version {newest}, not {base}: another change came first"
                )
            version = newest + 1
            table = sa.Table("casbin_rule", CasbinRule.metadata)  # the mapped class's table
            for ptype, rule in remove:
                if not conn.execute(sa.delete(table).where(*_same(table, ptype, rule))).rowcount:
                    raise PolicyConflict(f"{ptype} {list(rule)} was removed by another change")
            for ptype, rule in add:
                if conn.execute(sa.select(table.c.id).where(*_same(table, ptype, rule))).first():
                    raise PolicyConflict(f"{ptype} {list(rule)} was added by another change")
            if add:
                conn.execute(
                    sa.insert(table),
                    # Every row names every column: executemany takes the keys of the first.
                    [
                        {"ptype": p, **{f"v{i}": r[i] if i < len(r) else None for i in range(10)}}
                        for p, r in add
                    ],
                )
            conn.execute(sa.insert(policy_changes), [{**change, "version": version}])
            if then is not None:
                then(conn, version)
        return version

    def reference(self) -> ReferenceEnforcer:
        """A plain Casbin Enforcer over the currently loaded rules."""
        return reference_enforcer(self._enforcer.get_policy(), self._enforcer.get_grouping_policy())


def _same(table: sa.Table, ptype: str, rule: Rule) -> list[sa.ColumnElement[bool]]:
    return [table.c.ptype == ptype, *(table.c[f"v{i}"] == v for i, v in enumerate(rule))]


class ReferenceEnforcer:
    """Casbin's own ``enforce`` over given rules, with a principal's implicit links added."""

    def __init__(self, enforcer: Any, domains: Iterable[str]) -> None:
        self._enforcer = enforcer
        self._domains = sorted(set(domains))
        self._linked: set[str] = set()

    def link(self, principal: Principal) -> None:
        """Add the implicit role links of ``principal`` (institution everywhere, token roles)."""
        key = f"{principal.id}|{','.join(sorted(principal.roles))}"
        if key in self._linked:
            return
        self._linked.add(key)
        if principal.anonymous:
            return  # the request subject is ``public`` itself, linked to nothing
        user = f"user:{principal.id}"
        links = [[user, f"inst:{principal.institution}", d] for d in self._domains]
        links += [[user, PUBLIC, d] for d in self._domains]
        links += [[user, f"role:{r}", principal.institution] for r in sorted(principal.roles)]
        if links:
            self._enforcer.add_grouping_policies(links)

    def enforce(
        self, principal: Principal, domain: str, dataset: str, action: str, purpose: str
    ) -> bool:
        """Casbin's answer for this request."""
        self.link(principal)
        sub = PUBLIC if principal.anonymous else f"user:{principal.id}"
        return bool(self._enforcer.enforce(sub, domain, dataset, action, purpose))


def reference_enforcer(
    p_rules: Iterable[Sequence[str]],
    g_rules: Iterable[Sequence[str]],
    *,
    kind: str = "Enforcer",
    domains: Iterable[str] = (),
    order: Sequence[int] | None = None,
) -> ReferenceEnforcer:
    """A Casbin ``Enforcer``, or ``FastEnforcer`` filtering rules on request fields ``order``."""
    if kind == "FastEnforcer":
        fast_model = FastModel(order) if order is not None else Model()
        fast_model.load_model_from_text(MODEL)
        enforcer = casbin.FastEnforcer(fast_model, None, cache_key_order=order)
    else:
        enforcer = casbin.Enforcer(casbin.Enforcer.new_model(text=MODEL))
    enforcer.enable_auto_save(False)
    p_list = [list(r) for r in p_rules]
    g_list = [list(r) for r in g_rules]
    if p_list:
        enforcer.add_policies(p_list)
    if g_list:
        enforcer.add_grouping_policies(g_list)
    doms = set(domains) | {r[1] for r in p_list} | {r[2] for r in g_list}
    return ReferenceEnforcer(enforcer, doms)
