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
    "parse_selector",
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
        texts = value if isinstance(value, list | tuple) else [value]
        for text in texts:
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
        """The line a Casbin ``p`` rule stands for."""
        sub, dom, obj, act, pur, eft, cols, rows, mask, opts = (list(rule) + [""] * 10)[:10]
        kind, _, name = sub.partition(":")
        who = {"role": "role", "user": "user", "inst": "institution"}.get(kind, PUBLIC)
        mode, _, sels = cols.partition(":")
        options = opts.split()
        agreement = next((o.split("=", 1)[1] for o in options if o.startswith("agreement=")), None)
        return cls.model_validate(
            {
                who: True if who == PUBLIC else name,
                "effect": eft,
                "domain": dom,
                "dataset": obj,
                "action": act,
                "purpose": pur,
                "keep": tuple(sels.split("|")) if mode == "keep" else (),
                "withhold": tuple(sels.split("|")) if mode == "withhold" else (),
                "mask": mask or "drop",
                "rows": rows or None,
                "agreement": agreement,
                "embargo": "embargo" in options,
            }
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
        member, role, domain = rule[:3]
        kind, _, name = member.partition(":")
        key = "user" if kind == "user" else "institution"
        return cls.model_validate({key: name, "role": role.removeprefix("role:"), "domain": domain})
