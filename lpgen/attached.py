"""What a principal is granted: its policies, from an authorization-details file or live IAM.

Both sources give the same :class:`Attached`: identity policies (inline, managed,
and for users their groups'), and the permissions boundary. Reading is all this
module does; :mod:`lpgen.expand` turns policies into grants.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote


class AttachedError(Exception):
    """Attached policies cannot be read (missing file, wrong shape, unknown principal)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """One policy document attached to a principal, and how it is attached."""

    name: str
    kind: str  # inline, managed, aws-managed, group-inline, group-managed
    document: dict
    arn: str | None = None
    via: str | None = None  # the group a user has it through


@dataclass(frozen=True, slots=True, kw_only=True)
class Attached:
    principal: str
    policies: tuple[Policy, ...]
    boundary: Policy | None = None

    def documents(self) -> dict[str, dict]:
        """Every identity policy by a readable name (for the structural diff)."""
        return {_label(p): p.document for p in self.policies}


def _label(p: Policy) -> str:
    return f"{p.kind}:{p.name}" + (f" (via {p.via})" if p.via else "")


def _document(raw: Any) -> dict:
    """A policy document as the CLI prints it (an object) or as the API returns it (URL-encoded JSON)."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            return json.loads(unquote(raw))
        except json.JSONDecodeError as exc:
            raise AttachedError(f"unreadable policy document: {exc}") from None
    raise AttachedError(f"policy document of type {type(raw).__name__}")


def _managed_kind(arn: str) -> str:
    return "aws-managed" if ":iam::aws:policy/" in arn else "managed"


class AuthorizationDetails:
    """An ``aws iam get-account-authorization-details`` output (one file or several pages merged)."""

    def __init__(self, data: dict) -> None:
        if not isinstance(data, dict) or not any(k in data for k in ("RoleDetailList", "UserDetailList")):
            raise AttachedError("not an authorization-details file (no RoleDetailList or UserDetailList)")
        self.roles = {r["Arn"]: r for r in data.get("RoleDetailList") or [] if isinstance(r, dict) and "Arn" in r}
        self.users = {u["Arn"]: u for u in data.get("UserDetailList") or [] if isinstance(u, dict) and "Arn" in u}
        self.groups = {g["GroupName"]: g for g in data.get("GroupDetailList") or []
                       if isinstance(g, dict) and "GroupName" in g}
        self.policies = {p["Arn"]: p for p in data.get("Policies") or [] if isinstance(p, dict) and "Arn" in p}

    @classmethod
    def load(cls, path: str | Path) -> AuthorizationDetails:
        try:
            return cls(json.loads(Path(path).read_text(encoding="utf-8")))
        except OSError as exc:
            raise AttachedError(f"{path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise AttachedError(f"{path}: not JSON ({exc})") from None

    def principals(self) -> list[str]:
        return sorted([*self.roles, *self.users])

    def attached(self, principal: str) -> Attached:
        if principal in self.roles:
            entry = self.roles[principal]
            inline, managed = entry.get("RolePolicyList") or [], entry.get("AttachedManagedPolicies") or []
            policies = [*self._inline(inline, "inline"), *self._managed(managed)]
        elif principal in self.users:
            entry = self.users[principal]
            policies = [*self._inline(entry.get("UserPolicyList") or [], "inline"),
                        *self._managed(entry.get("AttachedManagedPolicies") or [])]
            for group in entry.get("GroupList") or []:
                g = self.groups.get(group)
                if g is None:
                    raise AttachedError(f"{principal} is in group {group}, which the file does not describe")
                policies += [Policy(name=p.name, kind=f"group-{p.kind}", document=p.document, arn=p.arn, via=group)
                             for p in [*self._inline(g.get("GroupPolicyList") or [], "inline"),
                                       *self._managed(g.get("AttachedManagedPolicies") or [])]]
        else:
            raise AttachedError(f"{principal} is not in the authorization details")
        boundary = None
        raw = entry.get("PermissionsBoundary") or {}
        if raw.get("PermissionsBoundaryArn"):
            boundary = self._policy(raw["PermissionsBoundaryArn"], "boundary")
        return Attached(principal=principal, policies=tuple(policies), boundary=boundary)

    def _inline(self, items: Iterable[dict], kind: str) -> list[Policy]:
        return [Policy(name=i.get("PolicyName", "?"), kind=kind, document=_document(i.get("PolicyDocument")))
                for i in items]

    def _managed(self, items: Iterable[dict]) -> list[Policy]:
        return [self._policy(i["PolicyArn"], _managed_kind(i["PolicyArn"])) for i in items if i.get("PolicyArn")]

    def _policy(self, arn: str, kind: str) -> Policy:
        entry = self.policies.get(arn)
        if entry is None:
            raise AttachedError(f"managed policy {arn} is attached but the file holds no document for it")
        versions = entry.get("PolicyVersionList") or []
        default = next((v for v in versions if v.get("IsDefaultVersion")), versions[0] if versions else None)
        if default is None:
            raise AttachedError(f"managed policy {arn} has no policy version in the file")
        return Policy(name=entry.get("PolicyName", arn.rsplit("/", 1)[-1]), kind=kind,
                      document=_document(default.get("Document")), arn=arn)


def live_attached(principal: str, client_factory: Callable[[str], Any]) -> Attached:
    """A principal's policies read from IAM with read-only calls (roles and users)."""
    iam = client_factory("iam")
    name = principal.rsplit("/", 1)[-1]

    def managed(arn: str) -> Policy:
        policy = iam.get_policy(PolicyArn=arn)["Policy"]
        version = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"]
        return Policy(name=policy["PolicyName"], kind=_managed_kind(arn), document=_document(version["Document"]),
                      arn=arn)

    def pages(method: str, key: str, **kwargs) -> list:
        out = []
        for page in iam.get_paginator(method).paginate(**kwargs):
            out.extend(page[key])
        return out

    def own(kind: str, name: str) -> list[Policy]:
        """Inline and attached managed policies of a role, user or group: the same three calls for each."""
        who = {f"{kind.title()}Name": name}
        get_inline = getattr(iam, f"get_{kind}_policy")
        inline = [Policy(name=p, kind="inline", document=_document(get_inline(**who, PolicyName=p)["PolicyDocument"]))
                  for p in pages(f"list_{kind}_policies", "PolicyNames", **who)]
        return inline + [managed(p["PolicyArn"]) for p in pages(f"list_attached_{kind}_policies", "AttachedPolicies",
                                                                **who)]

    if ":role/" in principal:
        entry = iam.get_role(RoleName=name)["Role"]
        policies = own("role", name)
    elif ":user/" in principal:
        entry = iam.get_user(UserName=name)["User"]
        policies = own("user", name)
        for group in pages("list_groups_for_user", "Groups", UserName=name):
            policies += [replace(p, kind=f"group-{p.kind}", via=group["GroupName"])
                         for p in own("group", group["GroupName"])]
    else:
        raise AttachedError(f"{principal}: only IAM roles and users have attached policies")
    boundary_arn = (entry.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
    return Attached(principal=principal, policies=tuple(policies),
                    boundary=managed(boundary_arn) if boundary_arn else None)


def live_principals(client_factory: Callable[[str], Any]) -> list[str]:
    """Every role and user ARN of the account (ListRoles, ListUsers; read-only)."""
    iam = client_factory("iam")
    out = []
    for method, key in (("list_roles", "Roles"), ("list_users", "Users")):
        for page in iam.get_paginator(method).paginate():
            out += [entry["Arn"] for entry in page[key]]
    return sorted(out)
