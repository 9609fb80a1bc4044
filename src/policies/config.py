"""The ``[policy]`` section of a node's TOML config: purposes, licences, agreements, seed policy.

An example a data steward can write by hand::

    [policy]
    purposes = ["benchmarking"]                 # added to research, ml-training, education, ...
    roles = ["steward", "auditor", "member", "partner"]
    mask_key = "node"                           # hash masks: this node's own secret (default)

    [[policy.shared_mask_keys]]                 # only to join hashed columns across nodes:
    name = "alloy-consortium"                   # set mask_key = "alloy-consortium" above, and
    env = "MATGATE_MASK_KEY_ALLOY_CONSORTIUM"   # give every member node the same secret

    [[policy.licences]]
    id = "LicenseRef-nims-terms"
    title = "NIMS terms of use"
    attribution = true
    non_commercial = true
    requires_agreement = "nims-terms"

    [[policy.agreements]]
    id = "nims-terms"
    title = "NIMS data terms"
    terms = "Use for research only; cite the dataset; do not redistribute."
    institution = "nims"                        # or: dataset = "nims/tensile"
    valid_until = 2030-01-01T00:00:00Z
    acceptance_days = 365                       # an acceptance lasts this long

    [[policy.assignments]]
    institution = "kyoto"                       # or: user = "kyoto:bob"
    role = "partner"
    domain = "nims"

    [[policy.lines]]
    role = "steward"
    domain = "nims"
    action = "manage"

    [[policy.lines]]
    role = "partner"
    domain = "nims"
    dataset = "tensile-*"
    action = "read"
    purpose = "research"
    withhold = ["sensitivity:personal", "operator"]
    mask = "hash"
    rows = 'year >= 2020'

    [[policy.lines]]
    effect = "deny"
    institution = "rival"
    domain = "nims"
    action = "read"
"""

from __future__ import annotations

import datetime as dt
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from policies.lines import ROLE, SLUG, PolicyLine, RoleAssignment
from policies.registry import BASE_PURPOSES

__all__ = ["AgreementSpec", "CustomLicence", "PolicyConfig", "SharedMaskKey"]

_DATASET = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}/[a-z0-9][a-z0-9_.-]{0,63}$")


class CustomLicence(BaseModel):
    """A ``LicenseRef-...`` licence of this node and its conditions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="LicenseRef-... id.", pattern=r"^LicenseRef-[A-Za-z0-9.-]+$")
    title: str = Field(description="Human-readable name.")
    attribution: bool = Field(default=False, description="Receivers must cite the dataset.")
    share_alike: bool = Field(default=False, description="Derived data under the same licence.")
    non_commercial: bool = Field(default=False, description="Refuses the commercial purpose.")
    no_derivatives: bool = Field(default=False, description="No adapted data may be shared.")
    no_redistribution: bool = Field(default=False, description="Receivers may not pass data on.")
    requires_agreement: str | None = Field(default=None, description="Agreement to accept first.")


class AgreementSpec(BaseModel):
    """Terms of use for one dataset or for every dataset of an institution."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Agreement id.", pattern=SLUG.pattern)
    title: str = Field(description="Short title.")
    terms: str = Field(description="The terms text a person or institution accepts.")
    dataset: str | None = Field(default=None, description="Scope: one dataset 'institution/name'.")
    institution: str | None = Field(default=None, description="Scope: an institution's datasets.")
    valid_from: dt.datetime | None = Field(default=None, description="Terms apply from.")
    valid_until: dt.datetime | None = Field(default=None, description="Terms apply until.")
    acceptance_days: int | None = Field(
        default=None, gt=0, description="How long an acceptance stays valid (default: as terms)."
    )

    @model_validator(mode="after")
    def _scope(self) -> AgreementSpec:
        if (self.dataset is None) == (self.institution is None):
            raise ValueError("an agreement is scoped to exactly one of dataset or institution")
        if self.dataset is not None and not _DATASET.match(self.dataset):
            raise ValueError(f"dataset {self.dataset!r} must be 'institution/name'")
        if self.institution is not None and not SLUG.match(self.institution):
            raise ValueError(f"institution {self.institution!r} must be an institution slug")
        for key in ("valid_from", "valid_until"):
            value = getattr(self, key)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{key} must carry a time zone (e.g. ...Z)")
        return self


class SharedMaskKey(BaseModel):
    """A hash-mask key that institutions share on purpose, its secret read from the environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Name of the shared key.", pattern=SLUG.pattern)
    env: str = Field(
        description="Environment variable holding the secret (32+ random characters).",
        pattern=r"^[A-Z_][A-Z0-9_]{0,127}$",
    )


_NO_SALT = (
    "mask_salt is no longer read: hash masks are keyed (HMAC-SHA-256) with the node's own secret, "
    "made at first start beside its signing key. Remove mask_salt; to join hashed columns with "
    "other institutions on purpose, set mask_key to the name of a [[policy.shared_mask_keys]] "
    "entry whose env variable holds a secret shared with them"
)


class PolicyConfig(BaseModel):
    """Governance settings of a node: registries, agreements and the seed policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mask_key: str = Field(
        default="node",
        description="Key of hash masks: 'node' (this node's own secret) or a shared key's name.",
    )
    shared_mask_keys: tuple[SharedMaskKey, ...] = Field(
        default=(), description="Keys shared with other institutions on purpose."
    )
    purposes: tuple[str, ...] = Field(default=(), description="Purposes added to the base ones.")
    roles: tuple[str, ...] = Field(
        default=("steward", "auditor", "member", "partner"), description="Known role names."
    )
    licences: tuple[CustomLicence, ...] = Field(default=(), description="Custom licences.")
    agreements: tuple[AgreementSpec, ...] = Field(default=(), description="Terms of use.")
    assignments: tuple[RoleAssignment, ...] = Field(default=(), description="Seed role grants.")
    lines: tuple[PolicyLine, ...] = Field(default=(), description="Seed policy lines.")

    @model_validator(mode="before")
    @classmethod
    def _no_salt(cls, data: object) -> object:
        if isinstance(data, dict) and "mask_salt" in data:
            raise ValueError(_NO_SALT)
        return data

    @field_validator("purposes")
    @classmethod
    def _purposes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for p in value:
            if not SLUG.match(p) or p == "*":
                raise ValueError(f"purpose {p!r} must be lower-case letters, digits, '_', '-'")
        return value

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for r in value:
            if not ROLE.match(r):
                raise ValueError(f"role {r!r} must be lower-case letters, digits, '_', '-'")
        return value

    @property
    def all_purposes(self) -> frozenset[str]:
        """The base purposes plus the configured ones."""
        return BASE_PURPOSES | frozenset(self.purposes)

    @model_validator(mode="after")
    def _references(self) -> PolicyConfig:
        from policies.validation import Registries, check_assignment, check_line

        shared = [k.name for k in self.shared_mask_keys]
        if len(set(shared)) != len(shared) or "node" in shared:
            raise ValueError("shared mask key names must be unique and not 'node'")
        if self.mask_key != "node" and self.mask_key not in shared:
            raise ValueError(f"mask_key {self.mask_key!r} names no [[policy.shared_mask_keys]]")
        agreements = [a.id for a in self.agreements]
        if len(set(agreements)) != len(agreements):
            raise ValueError("agreement ids must be unique")
        for lic in self.licences:
            if lic.requires_agreement and lic.requires_agreement not in agreements:
                raise ValueError(f"licence {lic.id} requires unknown agreement")
        reg = Registries(self.all_purposes, frozenset(self.roles), frozenset(agreements))
        for i, line in enumerate(self.lines):
            if (reason := check_line(line, reg)) is not None:
                raise ValueError(f"lines[{i}]: {reason}")
        for i, assignment in enumerate(self.assignments):
            if (reason := check_assignment(assignment, reg)) is not None:
                raise ValueError(f"assignments[{i}]: {reason}")
        return self
