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
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.datasets import PSPPRole, Sensitivity
from policies.decisions import Action
from policies.principals import split_principal_id

__all__ = [
    "DOMAIN_ACTIONS",
    "PUBLIC",
    "PUBLIC_ACTIONS",
    "BodyFields",
    "PolicyLine",
    "RoleAssignment",
    "Rule",
    "forget_rules",
    "line_of",
    "line_template",
    "parse_selector",
    "read_assignment",
    "read_body",
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


def _check_slug(key: str, value: str) -> None:
    if not SLUG.match(value):
        raise ValueError(f"{key} {value!r} must be an institution slug")


def _check_role(role: str) -> None:
    if not ROLE.match(role):
        raise ValueError(f"role {role!r} must be lower-case letters, digits, '_', '-'")


def _check_subject(kind: str, name: str) -> None:
    """A line's role, user or institution name."""
    if kind == "role":
        _check_role(name)
    elif kind == "user":
        split_principal_id(name)
    else:
        _check_slug(kind, name)


def _body_problem(
    public: bool,
    dataset: str,
    action: Action,
    purpose: str,
    keep: tuple[str, ...],
    withhold: tuple[str, ...],
    rows: str | None,
    agreement: str | None,
) -> str | None:
    """What is wrong with a line's body (all but subject and domain), or None."""
    if public and action not in PUBLIC_ACTIONS:
        return f"public may only be granted {' or '.join(sorted(PUBLIC_ACTIONS))}"
    if public and agreement is not None:
        return "public lines cannot require an agreement: nobody could accept it"
    if not (SLUG.match(dataset) or GLOB.match(dataset)):
        return (
            f"dataset {dataset!r} must be a dataset name, '*', or a glob ending at a "
            "separator ('tensile-*'); other patterns match more than meant"
        )
    if purpose != "*" and not SLUG.match(purpose):
        return f"purpose {purpose!r} must be a purpose name or '*'"
    if keep and withhold:
        return "a line either keeps or withholds columns, not both"
    if action in DOMAIN_ACTIONS and (dataset != "*" or purpose != "*" or keep or withhold or rows):
        return f"{action} is a domain action: dataset and purpose are '*'"
    if action is Action.EXPORT_MODEL and (keep or withhold or rows):
        return (
            "export-model lets a whole trained model leave: it takes no column or row rules "
            "(those belong on the train line the model was trained under)"
        )
    if agreement is not None and not SLUG.match(agreement):
        return f"agreement {agreement!r} must be an agreement id"
    return None


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
        for kind in given:
            _check_subject(kind, getattr(self, kind))
        _check_slug("domain", self.domain)
        problem = _body_problem(
            self.public,
            self.dataset,
            self.action,
            self.purpose,
            self.keep,
            self.withhold,
            self.rows,
            self.agreement,
        )
        if problem is not None:
            raise ValueError(problem)
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
            _check_subject("user", self.user)
        if self.institution is not None:
            _check_subject("institution", self.institution)
        _check_role(self.role)
        _check_slug("domain", self.domain)
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
    if isinstance(name, str):
        _no_separator({kind: name})
        _check_subject(kind, name)
    return kind, name


@functools.lru_cache(maxsize=1 << 12)
def read_domain(domain: str) -> str:
    """Check a rule's domain once."""
    _no_separator({"domain": domain})
    _check_slug("domain", domain)
    return domain


class BodyFields(NamedTuple):
    """The validated fields of a rule's body."""

    dataset: str
    action: Action
    purpose: str
    effect: str
    keep: tuple[str, ...]
    withhold: tuple[str, ...]
    mask: str
    rows: str | None
    agreement: str | None
    embargo: bool


_ACTIONS = {a.value: a for a in Action}
_MASKS = frozenset(("drop", "null", "redact", "hash"))


@functools.lru_cache(maxsize=1 << 17)
def read_body(kind: str, body: Rule) -> BodyFields:
    """Check a rule's body once, for a subject of this kind: the same verdict as the pydantic
    validators, without building a model."""
    if any("::" in part for part in body):
        raise ValueError(f"a rule must not contain Casbin's '::' separator: {body!r}")
    fields = _body_fields(body)
    action = _ACTIONS.get(body[1])
    if action is None:
        raise ValueError(f"unknown action {body[1]!r}")
    if fields["effect"] not in ("allow", "deny"):
        raise ValueError(f"effect {fields['effect']!r} must be allow or deny")
    if fields["mask"] not in _MASKS:
        raise ValueError(f"mask {fields['mask']!r} must be one of {sorted(_MASKS)}")
    keep = _selectors(fields["keep"])
    withhold = _selectors(fields["withhold"])
    out = BodyFields(
        body[0],
        action,
        body[2],
        body[3],
        keep,
        withhold,
        body[6] or "drop",
        body[5] or None,
        fields["agreement"],  # type: ignore[arg-type]
        bool(fields["embargo"]),
    )
    problem = _body_problem(
        kind == PUBLIC, out.dataset, action, out.purpose, keep, withhold, out.rows, out.agreement
    )
    if problem is not None:
        raise ValueError(problem)
    return out


@functools.lru_cache(maxsize=1 << 12)
def _selectors(sels: object) -> tuple[str, ...]:
    assert isinstance(sels, tuple)
    return tuple(":".join(parse_selector(s)) for s in sels)


def rule_body(rule: Rule) -> Rule:
    """The eight fields of a ``p`` rule after subject and domain (missing ones empty)."""
    return _body(rule)


def read_rule(rule: Rule) -> tuple[str, str | bool, str, Rule]:
    """Check a stored ``p`` rule: (subject kind, subject name, domain, body); ValueError if it
    is not one that ``PolicyLine.from_rule`` accepts."""
    kind, name = read_subject(rule[0] if rule else "")
    domain = read_domain(rule[1] if len(rule) > 1 else "")
    body = _body(rule)
    read_body(kind, body)
    return kind, name, domain, body


def line_of(kind: str, name: str | bool, domain: str, body: Rule) -> PolicyLine:
    """The PolicyLine of a rule that ``read_rule`` accepted."""
    return line_template(kind, body).model_copy(update={kind: name, "domain": domain})


@functools.lru_cache(maxsize=1 << 17)
def _read_member(member: str) -> str:
    kind, name = _member(member)
    _no_separator({kind: name})
    _check_subject(kind, name)
    return member


@functools.lru_cache(maxsize=1 << 12)
def _read_role(role: str) -> str:
    name = role.removeprefix("role:")
    _no_separator({"role": name})
    _check_role(name)
    return f"role:{name}"


def read_assignment(rule: Rule) -> tuple[str, str, str]:
    """Check a stored ``g`` rule: (member, ``role:<name>``, domain); ValueError if it is not
    one that ``RoleAssignment.from_rule`` accepts."""
    member, role, domain = rule[:3] if len(rule) >= 3 else (tuple(rule) + ("",) * 3)[:3]
    return _read_member(member), _read_role(role), read_domain(domain)


def forget_rules() -> None:
    """Drop the process-wide caches of checked rule parts (benchmarks time a cold start)."""
    for cached in (
        line_template,
        read_subject,
        read_domain,
        read_body,
        _selectors,
        _read_member,
        _read_role,
    ):
        cached.cache_clear()
