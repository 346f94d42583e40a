"""No credentials leak: lpgen's outputs never contain the access keys of the records it read,
nor the credentials it runs with, whatever the command and whatever fails."""

from __future__ import annotations

import gzip
import json
import re

from click.testing import CliRunner

from lpgen.cli import main

from .conftest import DEMO

SECRET_ENV = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLESECRET000", "AWS_SECRET_ACCESS_KEY": "s3cr3t/Value+Never+Printed",
              "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"}


def record_access_keys() -> set[str]:
    keys = set()
    for path in (DEMO / "AWSLogs").rglob("*_CloudTrail_*.json.gz"):
        for record in json.loads(gzip.decompress(path.read_bytes()))["Records"]:
            key = (record.get("userIdentity") or {}).get("accessKeyId")
            if key:
                keys.add(key)
    return keys


def test_no_command_output_contains_access_keys_or_credentials(tmp_path):
    runner = CliRunner()
    store = str(tmp_path / "s.db")
    logs = str(DEMO / "AWSLogs")
    reader = "arn:aws:iam::210987654321:role/service-role/reports-reader-role-k2j4h6"
    outputs = [
        runner.invoke(main, ["mine", logs, "--store", store, "--format", "json"], env=SECRET_ENV),
        runner.invoke(main, ["summary", "--store", store, "--format", "json"], env=SECRET_ENV),
        runner.invoke(main, ["generate", "--store", store, "--explain"], env=SECRET_ENV),
        runner.invoke(main, ["graph", "--store", store], env=SECRET_ENV),
        runner.invoke(main, ["map", logs], env=SECRET_ENV),
        runner.invoke(main, ["diff", "--principal", reader, "--store", store, "--attached",
                             str(DEMO / "authorization-details.json"), "--format", "json"], env=SECRET_ENV),
        *(runner.invoke(main, ["report", "--store", store, "--attached", str(DEMO / "authorization-details.json"),
                               "--min-days", "1", "--format", fmt], env=SECRET_ENV)
          for fmt in ("text", "md", "json", "sarif", "html")),
        runner.invoke(main, ["who", "acme-reports-prod", "--store", store, "--format", "json"], env=SECRET_ENV),
        *(runner.invoke(main, ["sam", str(DEMO / "template.yaml"), "--store", store, "--stack", "orders-service",
                               "--format", fmt], env=SECRET_ENV) for fmt in ("text", "json", "md", "sarif")),
        runner.invoke(main, ["verify", logs, "--format", "json"], env=SECRET_ENV),
        # a failing AWS call: the error message must not echo credentials either
        runner.invoke(main, ["attached", "--principal", reader, "--live", "--endpoint-url", "http://127.0.0.1:9"],
                      env=SECRET_ENV),
    ]
    failing = outputs.pop()
    assert failing.exit_code == 1 and "reading IAM" in failing.output
    assert all(r.exit_code in (0, 1) and len(r.output) > 100 for r in outputs), [r.output[:200] for r in outputs]
    outputs.append(failing)
    secrets = record_access_keys() | set(SECRET_ENV.values())
    assert len(secrets) > 3
    for result in outputs:
        text = result.output + (result.stderr if result.stderr_bytes is not None else "")
        leaked = {s for s in secrets if s in text}
        assert not leaked, f"{result.output[:80]!r} leaks {leaked}"
        assert not re.search(r"X-Amz-Signature=|X-Amz-Credential=", text)
