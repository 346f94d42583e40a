"""Expansion of attached policies into grants, against the catalogue."""

from __future__ import annotations

from lpgen.attached import Attached, Policy
from lpgen.catalog import load_catalog
from lpgen.expand import covers, expand

ROLE = "arn:aws:iam::111122223333:role/app"


def attached(*statements, boundary=None) -> Attached:
    doc = {"Version": "2012-10-17", "Statement": list(statements)}
    return Attached(principal=ROLE, policies=(Policy(name="p", kind="inline", document=doc),),
                    boundary=Policy(name="b", kind="boundary", document={"Statement": boundary}) if boundary else None)


def allow(action, resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def test_action_wildcards_resolve_against_the_catalogue():
    e = expand(attached(allow("s3:Get*", "arn:aws:s3:::b/*")))
    catalog = load_catalog()
    assert set(e.grants) == {a.full_name for a in catalog.matching("s3:Get*")}
    assert e.patterns("s3:GetObject") == ["arn:aws:s3:::b/*"]


def test_not_action_grants_everything_else():
    e = expand(attached({"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"}))
    assert "s3:DeleteBucket" in e.grants and "ec2:RunInstances" in e.grants
    assert not any(a.startswith(("iam:", "organizations:")) for a in e.grants)


def test_unconditional_deny_removes_and_a_narrow_deny_is_noted():
    e = expand(attached(allow("iam:*"), {"Effect": "Deny", "Action": ["iam:CreateRole"], "Resource": "*"},
                        {"Effect": "Deny", "Action": "iam:DeleteRole", "Resource": "arn:aws:iam::1:role/x"}))
    assert "iam:CreateRole" not in e.grants and "iam:DeleteRole" in e.grants
    assert any("narrows some grants" in n for n in e.notes)


def test_boundary_intersects():
    e = expand(attached(allow(["s3:GetObject", "dynamodb:GetItem"]), boundary=[allow("s3:*")]))
    assert set(e.grants) == {"s3:GetObject"}


def test_unknown_actions_are_reported_not_granted():
    e = expand(attached(allow(["sqs:DeleteMessageBatch", "sqs:DeleteMessage"], "arn:aws:sqs:eu-west-1:1:q")))
    assert set(e.grants) == {"sqs:DeleteMessage"} and e.unknown_actions == ("sqs:DeleteMessageBatch",)


def test_conditions_are_kept_as_annotations():
    e = expand(attached(allow("kms:Decrypt", Condition={"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}})))
    assert "kms:ViaService" in e.grants["kms:Decrypt"][0].conditions


def test_covers_uses_iam_wildcards():
    assert covers(["arn:aws:s3:::b/reports/*"], "arn:aws:s3:::b/reports/2026/a.csv")
    assert not covers(["arn:aws:s3:::b/reports/*"], "arn:aws:s3:::b/finance/a.csv")
