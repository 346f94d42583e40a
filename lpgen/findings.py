"""The findings catalogue: stable codes with title, severity, description and remediation.

The catalogue is data (``lpgen/data/findings.json``) so that every renderer — text, Markdown,
JSON, SARIF ``rules[]``, HTML — and every producer (the account report, the template review)
speaks of the same finding the same way, and a code never changes meaning between releases.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lpgen import data_files

#: Severities from least to most serious; ``--fail-on`` takes any of them.
SEVERITIES = ("info", "low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    code: str  # LPG101
    id: str  # unused-permissions-management
    title: str
    severity: str
    description: str
    remediation: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    """Where a finding points in a file (a template), for SARIF and editors."""

    uri: str
    line: int | None = None
    column: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One occurrence of a catalogue rule about one subject (a principal ARN or a template resource)."""

    code: str
    subject: str
    message: str
    location: Location | None = None
    items: tuple[str, ...] = field(default=())  # the actions, services or calls concerned, sorted

    @property
    def rule(self) -> Rule:
        return rule(self.code)

    @property
    def severity(self) -> str:
        return self.rule.severity


def rules() -> dict[str, Rule]:
    """Every rule of the catalogue, by code, in code order."""
    return _rules()


def rule(code: str) -> Rule:
    try:
        return _rules()[code]
    except KeyError:
        raise KeyError(f"no finding {code} in lpgen's findings catalogue") from None


def at_least(severity: str, threshold: str) -> bool:
    """Whether ``severity`` is ``threshold`` or more serious."""
    return SEVERITIES.index(severity) >= SEVERITIES.index(threshold)


def sort_key(finding: Finding) -> tuple:
    """Most serious first, then by code, subject and message: a stable order for every renderer."""
    return (-SEVERITIES.index(finding.severity), finding.code, finding.subject, finding.message)


_CACHE: dict[str, Rule] = {}


def _rules() -> dict[str, Rule]:
    if not _CACHE:
        entries = [r for r in data_files.load("findings.json")["rules"] if not r.get("retired")]
        _CACHE.update({r["code"]: Rule(**{k: r[k] for k in Rule.__slots__}) for r in sorted(
            entries, key=lambda r: r["code"])})
    return _CACHE
