"""Policy lines and role assignments: the records a steward writes, and their Casbin form.

A policy line says who (a role, a user, a whole institution, or ``public``: callers without a
token) may or may not do an action on
datasets of a domain for a purpose, with which columns and rows. Allow lines are permissive (the
union of the matching ones applies, like PostgreSQL's permissive row policies); a deny line without
a column or row rule denies outright and overrides any allow; a deny line with one is restrictive:
it withholds its columns, or hides its rows, from those it matches.

Each line is one Casbin ``p`` rule ``sub, dom, obj, act, pur, eft, cols, rows, mask, opts``; each
role assignment is one ``g`` rule ``member, role, domain``. Subjects are prefixed ``role:``,
``user:`` (an issuer-qualified principal id, ``namespace:subject``, see ``policies.principals``)
or ``inst:`` so the three kinds can never collide. A user line never names a bare subject: the
same ``sub`` from another issuer is another person. The public subject is the bare word
``public``, which no prefixed subject can equal. Anyone may do what ``public`` may: token holders
match public lines too, anonymous callers match nothing else.
"""

from __future__ import annotations

import functools
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.datasets import PSPPRole, Sensitivity
from policies.decisions import Action
from policies.principals import split_principal_id

__all__ = [
    "DOMAIN_ACTIONS",
    "PUBLIC",
    "PUBLIC_ACTIONS",
    "PolicyLine",
    "RoleAssignment",
    "Rule",
    "line_of",
    "line_template",
    "parse_selector",
    "read_assignment",
    "read_domain",
    "read_rule",
    "read_subject",
    "rule_body",
]

Rule = tuple[str, ...]
DOMAIN_ACTIONS = frozenset({Action.MANAGE, Action.AUDIT})
PUBLIC = "public"
PUBLIC_ACTIONS = frozenset({Action.DISCOVER, Action.READ})
SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
ROLE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# A glob may only end at a separator, so "tens*" cannot quietly match "tensor-secret".
GLOB = re.compile(r"^(\*|[a-z0-9][a-z0-9_.-]*[-_.]\*)$")
MaskName = Literal["drop", "null", "redact", "hash"]


def parse_selector(text: str) -> tuple[str, str]:
    """``sensitivity:personal``, ``pspp:property``, ``name:x`` or a column name -> (kind, value)."""
    kind, sep, value = text.partition(":")
    if not sep:
        kind, value = "name", text
    if kind == "name" and COLUMN.match(value):
        return kind, value
    if kind == "sensitivity" and value in Sensitivity.__members__.values():
        return kind, value
    if kind == "pspp" and value in PSPPRole.__members__.values():
        return kind, value
    raise ValueError(
        f"column selector {text!r} must be a column name, sensitivity:<{'|'.join(Sensitivity)}> "
        f"or pspp:<{'|'.join(PSPPRole)}>"
    )


def _no_separator(values: dict[str, object]) -> None:
    for key, value in values.items():
        if isinstance(value, str):
            if "::" in value:
                raise ValueError(f"{key} must not contain Casbin's '::' separator: {value!r}")
        elif isinstance(value, (list, tuple)):
            for text in value:
                if isinstance(text, str) and "::" in text:
                    raise ValueError(f"{key} must not contain Casbin's '::' separator: {text!r}")


class PolicyLine(BaseModel):
    """One allow or deny line of a domain's policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    effect: Literal["allow", "deny"] = Field(default="allow", description="Allow or deny.")
    role: str | None = Field(default=None, description="Role the line applies to.")
    user: str | None = Field(
        default=None, description="User, by issuer-qualified id ('namespace:subject')."
    )
    institution: str | None = Field(default=None, description="Every user of an institution.")
    public: bool = Field(default=False, description="Anyone, with or without a token.")
    domain: str = Field(description="Institution whose datasets and policies this line governs.")
    dataset: str = Field(default="*", description="Dataset name, '*' or a 'prefix-*' glob.")
    action: Action = Field(description="discover, read, train, export-model, manage or audit.")
    purpose: str = Field(default="*", description="A registered purpose or '*'.")
    keep: tuple[str, ...] = Field(default=(), description="Only these columns (selectors).")
    withhold: tuple[str, ...] = Field(default=(), description="Withhold these columns.")
    mask: MaskName = Field(default="drop", description="How withheld columns are replaced.")
    rows: str | None = Field(default=None, description="Row rule in the filter language.")
    agreement: str | None = Field(default=None, description="Agreement that must be accepted.")
    embargo: bool = Field(default=False, description="Also applies while under embargo.")

    @model_validator(mode="before")
    @classmethod
    def _separator(cls, data: object) -> object:
        if isinstance(data, dict):
            _no_separator(data)
        return data

    @field_validator("keep", "withhold")
    @classmethod
    def _selectors(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(":".join(parse_selector(s)) for s in value)

    @model_validator(mode="after")
    def _shape(self) -> PolicyLine:
        given = [k for k in ("role", "user", "institution") if getattr(self, k) is not None]
        if len(given) + self.public != 1:
            raise ValueError("a line names exactly one of role, user, institution or public")
        if self.public and self.action not in PUBLIC_ACTIONS:
            raise ValueError(f"public may only be granted {' or '.join(sorted(PUBLIC_ACTIONS))}")
        if self.public and self.agreement is not None:
            raise ValueError("public lines cannot require an agreement: nobody could accept it")
        if self.role is not None and not ROLE.match(self.role):
            raise ValueError(f"role {self.role!r} must be lower-case letters, digits, '_', '-'")
        if self.user is not None:
            split_principal_id(self.user)
        for key in ("institution", "domain"):
            if (v := getattr(self, key)) is not None and not SLUG.match(v):
                raise ValueError(f"{key} {v!r} must be an institution slug")
        if not (SLUG.match(self.dataset) or GLOB.match(self.dataset)):
            raise ValueError(
                f"dataset {self.dataset!r} must be a dataset name, '*', or a glob ending at a "
                "separator ('tensile-*'); other patterns match more than meant"
            )
        if self.purpose != "*" and not SLUG.match(self.purpose):
            raise ValueError(f"purpose {self.purpose!r} must be a purpose name or '*'")
        if self.keep and self.withhold:
            raise ValueError("a line either keeps or withholds columns, not both")
        if self.action in DOMAIN_ACTIONS and (
            self.dataset != "*" or self.purpose != "*" or self.keep or self.withhold or self.rows
        ):
            raise ValueError(f"{self.action} is a domain action: dataset and purpose are '*'")
        if self.action is Action.EXPORT_MODEL and (self.keep or self.withhold or self.rows):
            raise ValueError(
                "export-model lets a whole trained model leave: it takes no column or row rules "
                "(those belong on the train line the model was trained under)"
            )
        if self.agreement is not None and not SLUG.match(self.agreement):
            raise ValueError(f"agreement {self.agreement!r} must be an agreement id")
        return self

    @property
    def subject(self) -> str:
        """The Casbin subject: ``role:x``, ``user:ns:s``, ``inst:i`` or ``public``."""
        if self.public:
            return PUBLIC
        if self.role is not None:
            return f"role:{self.role}"
        if self.user is not None:
            return f"user:{self.user}"
        return f"inst:{self.institution}"

    @property
    def restrictive(self) -> bool:
        """A deny line that narrows columns or rows instead of denying outright."""
        return self.effect == "deny" and bool(self.keep or self.withhold or self.rows)

    def to_rule(self) -> Rule:
        """The Casbin ``p`` rule."""
        cols = ""
        if self.keep:
            cols = "keep:" + "|".join(self.keep)
        elif self.withhold:
            cols = "withhold:" + "|".join(self.withhold)
        opts = []
        if self.agreement:
            opts.append(f"agreement={self.agreement}")
        if self.embargo:
            opts.append("embargo")
        return (
            self.subject,
            self.domain,
            self.dataset,
            self.action.value,
            self.purpose,
            self.effect,
            cols,
            self.rows or "",
            self.mask,
            " ".join(opts),
        )

    @classmethod
    def from_rule(cls, rule: Rule) -> PolicyLine:
        """The line a Casbin ``p`` rule stands for (validated in full; see ``read_rule``)."""
        kind, name = _subject(rule[0] if rule else "")
        fields = _body_fields(_body(rule))
        return cls.model_validate(
            {kind: name, "domain": rule[1] if len(rule) > 1 else "", **fields}
        )


class RoleAssignment(BaseModel):
    """A user, or every user of an institution, holds a role in a domain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: str | None = Field(
        default=None, description="User, by issuer-qualified id ('namespace:subject')."
    )
    institution: str | None = Field(default=None, description="Every user of an institution.")
    role: str = Field(description="Role held.")
    domain: str = Field(description="Domain the role is held in.")

    @model_validator(mode="before")
    @classmethod
    def _separator(cls, data: object) -> object:
        if isinstance(data, dict):
            _no_separator(data)
        return data

    @model_validator(mode="after")
    def _shape(self) -> RoleAssignment:
        if (self.user is None) == (self.institution is None):
            raise ValueError("an assignment names exactly one of user or institution")
        if self.user is not None:
            split_principal_id(self.user)
        if self.institution is not None and not SLUG.match(self.institution):
            raise ValueError(f"institution {self.institution!r} must be an institution slug")
        if not ROLE.match(self.role):
            raise ValueError(f"role {self.role!r} must be lower-case letters, digits, '_', '-'")
        if not SLUG.match(self.domain):
            raise ValueError(f"domain {self.domain!r} must be an institution slug")
        return self

    @property
    def member(self) -> str:
        """The Casbin member: ``user:ns:s`` or ``inst:i``."""
        return f"user:{self.user}" if self.user is not None else f"inst:{self.institution}"

    def to_rule(self) -> Rule:
        """The Casbin ``g`` rule."""
        return (self.member, f"role:{self.role}", self.domain)

    @classmethod
    def from_rule(cls, rule: Rule) -> RoleAssignment:
        """The assignment a Casbin ``g`` rule stands for."""
        member, role, domain = (list(rule) + [""] * 3)[:3]
        kind, name = _member(member)
        return cls.model_validate(
            {kind: name, "role": role.removeprefix("role:"), "domain": domain}
        )


# -- reading stored rules ---------------------------------------------------------------------
# A stored policy repeats itself: a few thousand distinct bodies (dataset, action, purpose,
# effect, columns, rows, mask, options), subjects and domains make up 100,000 lines. The readers
# below validate each distinct part once, with the pydantic models themselves as the judge, and
# build the full models only when asked. That a line is valid exactly when its parts are is
# checked against ``from_rule`` by ``tests/policies/test_policy_rules.py``.

_PLACEHOLDER: dict[str, object] = {"role": "x", "user": "x:x", "institution": "x", "public": True}
_KINDS = {"role": "role", "user": "user", "inst": "institution"}


def _subject(sub: str) -> tuple[str, str | bool]:
    """``role:x`` -> ("role", "x"), ``public`` -> ("public", True); other forms are refused."""
    if sub == PUBLIC:
        return PUBLIC, True
    kind, sep, name = sub.partition(":")
    if not sep or kind not in _KINDS:
        raise ValueError(f"subject {sub!r} must be public or start with role:, user: or inst:")
    return _KINDS[kind], name


def _member(member: str) -> tuple[str, str]:
    kind, sep, name = member.partition(":")
    if not sep or kind not in ("user", "inst"):
        raise ValueError(f"member {member!r} must start with user: or inst:")
    return ("user" if kind == "user" else "institution"), name


def _body(rule: Rule) -> Rule:
    """The eight fields of a ``p`` rule after subject and domain (missing ones empty)."""
    body = tuple(rule[2:10])
    return body + ("",) * (8 - len(body)) if len(body) < 8 else body


def _body_fields(body: Rule) -> dict[str, object]:
    """The line fields that a rule's body spells, before their values are validated."""
    obj, act, pur, eft, cols, rows, mask, opts = body
    mode, _, sels = cols.partition(":")
    if cols and mode not in ("keep", "withhold"):
        raise ValueError(f"column rule {cols!r} must start with keep: or withhold:")
    agreement: str | None = None
    embargo = False
    for option in opts.split():
        if option == "embargo" and not embargo:
            embargo = True
        elif option.startswith("agreement=") and agreement is None:
            agreement = option.split("=", 1)[1]
        else:
            raise ValueError(f"option {option!r} must be embargo or agreement=<id>, once each")
    return {
        "effect": eft,
        "dataset": obj,
        "action": act,
        "purpose": pur,
        "keep": tuple(sels.split("|")) if mode == "keep" else (),
        "withhold": tuple(sels.split("|")) if mode == "withhold" else (),
        "mask": mask or "drop",
        "rows": rows or None,
        "agreement": agreement,
        "embargo": embargo,
    }


@functools.lru_cache(maxsize=1 << 16)
def line_template(kind: str, body: Rule) -> PolicyLine:
    """A line of this subject kind and body, validated once; its subject and domain are
    placeholders that ``read_rule``'s callers replace."""
    return PolicyLine.model_validate(
        {kind: _PLACEHOLDER[kind], "domain": "x", **_body_fields(body)}
    )


@functools.lru_cache(maxsize=1 << 17)
def read_subject(sub: str) -> tuple[str, str | bool]:
    """Check a rule's subject once: (kind, name), ``public`` -> ("public", True)."""
    kind, name = _subject(sub)
    PolicyLine.model_validate({kind: name, "domain": "x", "action": "read"})
    return kind, name


@functools.lru_cache(maxsize=1 << 12)
def read_domain(domain: str) -> str:
    """Check a rule's domain once."""
    PolicyLine.model_validate({"public": True, "domain": domain, "action": "read"})
    return domain


def rule_body(rule: Rule) -> Rule:
    """The eight fields of a ``p`` rule after subject and domain (missing ones empty)."""
    return _body(rule)


def read_rule(rule: Rule) -> tuple[str, str | bool, str, Rule]:
    """Check a stored ``p`` rule: (subject kind, subject name, domain, body); ValueError if it
    is not one that ``PolicyLine.from_rule`` accepts."""
    kind, name = read_subject(rule[0] if rule else "")
    domain = read_domain(rule[1] if len(rule) > 1 else "")
    body = _body(rule)
    line_template(kind, body)
    return kind, name, domain, body


def line_of(kind: str, name: str | bool, domain: str, body: Rule) -> PolicyLine:
    """The PolicyLine of a rule that ``read_rule`` accepted."""
    return line_template(kind, body).model_copy(update={kind: name, "domain": domain})


@functools.lru_cache(maxsize=1 << 16)
def read_assignment(rule: Rule) -> tuple[str, str, str]:
    """Check a stored ``g`` rule: (member, ``role:<name>``, domain); ValueError if invalid."""
    a = RoleAssignment.from_rule(rule)
    return a.member, f"role:{a.role}", a.domain
