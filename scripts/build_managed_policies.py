#!/usr/bin/env python3
"""Regenerate lpgen/data/aws_managed_policies.json: the AWS managed policies a SAM template names most.

A template's ``Policies:`` may name AWS managed policies, and SAM attaches some itself
(basic execution, VPC access, X-Ray, event-source polling). To expand them offline lpgen
needs their documents. The documents are AWS's; this script takes them from the copy that
moto bundles (``moto/iam/aws_managed_policies.py``), for the list below only (the whole set
is several megabytes, and ``ReadOnlyAccess`` alone 100 KB). A name outside the list is kept
by ``lpgen sam`` as an unexpanded grant with a note.

Usage: pip install '.[test]' && python scripts/build_managed_policies.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "lpgen" / "data" / "aws_managed_policies.json"

#: SAM's implicit policies first, then the ones templates name for convenience.
NAMES = (
    "AWSLambdaBasicExecutionRole", "AWSLambdaVPCAccessExecutionRole", "AWSLambdaSQSQueueExecutionRole",
    "AWSLambdaKinesisExecutionRole", "AWSLambdaDynamoDBExecutionRole", "AWSLambdaMSKExecutionRole",
    "AWSXrayWriteOnlyAccess", "AWSXRayDaemonWriteAccess", "CloudWatchLambdaInsightsExecutionRolePolicy",
    "AdministratorAccess", "PowerUserAccess", "IAMFullAccess", "IAMReadOnlyAccess",
    "AmazonS3FullAccess", "AmazonS3ReadOnlyAccess", "AmazonDynamoDBFullAccess", "AmazonDynamoDBReadOnlyAccess",
    "AmazonSQSFullAccess", "AmazonSQSReadOnlyAccess", "AmazonSNSFullAccess", "AmazonSNSReadOnlyAccess",
    "AWSLambda_FullAccess", "AWSLambda_ReadOnlyAccess", "AWSLambdaRole", "AWSLambdaExecute",
    "SecretsManagerReadWrite", "AmazonSSMReadOnlyAccess", "AmazonSSMFullAccess", "CloudWatchLogsFullAccess",
    "CloudWatchFullAccess", "AWSStepFunctionsFullAccess", "AmazonKinesisFullAccess", "AmazonEventBridgeFullAccess",
    "AmazonAPIGatewayInvokeFullAccess",
)


def build() -> str:
    import moto
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    data = json.loads(aws_managed_policies_data)
    missing = [n for n in NAMES if n not in data]
    if missing:
        sys.exit(f"moto's copy lacks {', '.join(missing)}: refusing to write an incomplete table")
    policies = {}
    for name in NAMES:
        entry = data[name]
        path = entry.get("Path") or "/"
        policies[name] = {"arn": f"arn:aws:iam::aws:policy{path}{name}", "version": entry["DefaultVersionId"],
                          "document": entry["Document"]}
    return json.dumps({
        "note": "AWS managed policy documents (default version) that SAM attaches implicitly or templates commonly "
                "name; AWS's documents, taken from the copy moto bundles. Regenerate with "
                "scripts/build_managed_policies.py.",
        "source": f"moto {moto.__version__}, moto/iam/aws_managed_policies.py",
        "policies": policies,
    }, indent=1, sort_keys=True) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file is out of date")
    args = parser.parse_args()
    text = build()
    if args.check:
        sys.exit(0 if OUT.read_text() == text else 1)
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(text):,} bytes, {len(NAMES)} policies)")


if __name__ == "__main__":
    main()
