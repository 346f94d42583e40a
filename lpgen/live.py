"""Read-only signals from a live account that sharpen the diff.

- which data events the trails log (``GetEventSelectors``): a data-event action the trails
  do not log is unobservable, not unused;
- IAM Access Advisor (``GenerateServiceLastAccessedDetails``): a service the principal used
  within the last days, even outside the CloudTrail window, is not called unused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

#: CloudTrail data resource types → the IAM prefix whose actions they log.
DATA_RESOURCE_PREFIXES = {
    "AWS::S3::Object": "s3", "AWS::S3::AccessPoint": "s3", "AWS::S3ObjectLambda::AccessPoint": "s3-object-lambda",
    "AWS::Lambda::Function": "lambda", "AWS::DynamoDB::Table": "dynamodb", "AWS::DynamoDB::Stream": "dynamodb",
    "AWS::SNS::Topic": "sns", "AWS::SNS::PlatformEndpoint": "sns", "AWS::SQS::Queue": "sqs",
    "AWS::Kinesis::Stream": "kinesis", "AWS::Kinesis::StreamConsumer": "kinesis",
    "AWS::Bedrock::AgentAlias": "bedrock", "AWS::Bedrock::KnowledgeBase": "bedrock",
    "AWS::StepFunctions::StateMachine": "states", "AWS::SSMMessages::ControlChannel": "ssmmessages",
    "AWS::ApiGateway::Stage": "execute-api", "AWS::CloudTrail::Channel": "cloudtrail-data",
}


def logged_data_prefixes(client_factory: Callable[[str], Any]) -> frozenset[str]:
    """IAM prefixes whose data events at least one trail logs (basic or advanced event selectors)."""
    cloudtrail = client_factory("cloudtrail")
    prefixes: set[str] = set()
    for trail in cloudtrail.describe_trails(includeShadowTrails=True).get("trailList", []):
        selectors = cloudtrail.get_event_selectors(TrailName=trail["TrailARN"])
        for selector in selectors.get("EventSelectors") or []:
            for resource in selector.get("DataResources") or []:
                prefix = DATA_RESOURCE_PREFIXES.get(resource.get("Type", ""))
                if prefix:
                    prefixes.add(prefix)
        for selector in selectors.get("AdvancedEventSelectors") or []:
            fields = {f["Field"]: f for f in selector.get("FieldSelectors") or []}
            if "Data" not in (fields.get("eventCategory") or {}).get("Equals", []):
                continue
            for kind in (fields.get("resources.type") or {}).get("Equals", []):
                prefix = DATA_RESOURCE_PREFIXES.get(kind)
                if prefix:
                    prefixes.add(prefix)
    return frozenset(prefixes)


def recently_accessed_services(arn: str, client_factory: Callable[[str], Any], *, days: int,
                               now: datetime | None = None, poll: float = 1.0, attempts: int = 60) -> dict[str, str]:
    """Service namespaces Access Advisor saw the principal use within ``days``: namespace → last access."""
    iam = client_factory("iam")
    job = iam.generate_service_last_accessed_details(Arn=arn)["JobId"]
    for _ in range(attempts):
        details = iam.get_service_last_accessed_details(JobId=job)
        if details["JobStatus"] != "IN_PROGRESS":
            break
        time.sleep(poll)
    else:
        raise TimeoutError(f"Access Advisor job {job} did not finish")
    if details["JobStatus"] != "COMPLETED":
        return {}
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    out = {}
    for service in details.get("ServicesLastAccessed", []):
        last = service.get("LastAuthenticated")
        if last is not None and last >= cutoff:
            out[service["ServiceNamespace"]] = last.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def public_key_lookup(factory_for_region: Callable[[str], Callable[[str], Any]]):
    """CloudTrail's digest-signing public keys (``ListPublicKeys``) of a region and time range.

    Returns a :data:`lpgen.integrity.KeyLookup`; raises OSError with the AWS error when the call fails.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from lpgen.aws import error_message

    def lookup(region: str, start: datetime, end: datetime) -> dict[str, bytes]:
        cloudtrail = factory_for_region(region)("cloudtrail")
        request: dict[str, Any] = {"StartTime": start, "EndTime": end}
        keys: dict[str, bytes] = {}
        try:
            while True:
                page = cloudtrail.list_public_keys(**request)
                keys.update({k["Fingerprint"]: k["Value"] for k in page.get("PublicKeyList", [])})
                if not page.get("NextToken"):
                    return keys
                request["NextToken"] = page["NextToken"]
        except (BotoCoreError, ClientError) as exc:
            raise OSError(f"ListPublicKeys in {region} failed: {error_message(exc)}") from None

    return lookup
