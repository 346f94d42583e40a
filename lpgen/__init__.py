"""lpgen: least-privilege IAM policies from CloudTrail."""

__version__ = "0.1.0"
