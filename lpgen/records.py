"""The part of a CloudTrail record that lpgen reads, as a typed msgspec schema.

Decoding into these structs skips every field lpgen does not need (user agents,
TLS details...) without building Python objects for them,
which is what makes mining faster than a plain JSON parse. Unknown fields are
ignored; a field of the wrong type fails the record, never the run. The structs
hold only strings, raw bytes and each other, so they can never form a reference
cycle: ``gc=False`` keeps a million of them out of the garbage collector's lists.
"""

from __future__ import annotations

import msgspec


class SessionIssuer(msgspec.Struct, omit_defaults=True, gc=False):
    type: str | None = None
    arn: str | None = None
    userName: str | None = None
    accountId: str | None = None


class SessionContext(msgspec.Struct, omit_defaults=True, gc=False):
    sessionIssuer: SessionIssuer | None = None


class UserIdentity(msgspec.Struct, omit_defaults=True, gc=False):
    type: str | None = None
    principalId: str | None = None
    arn: str | None = None
    accountId: str | None = None
    userName: str | None = None
    invokedBy: str | None = None
    identityProvider: str | None = None
    sessionContext: SessionContext | None = None


class RawRecord(msgspec.Struct, omit_defaults=True, gc=False):
    eventTime: str | None = None
    eventSource: str | None = None
    eventName: str | None = None
    awsRegion: str | None = None
    eventID: str | None = None
    eventType: str | None = None
    eventCategory: str | None = None
    recipientAccountId: str | None = None
    errorCode: str | None = None
    # Kept undecoded: identical blobs are decoded once (see identity() below and
    # lpgen.fields.event_fields), and mining memoises whole records on them.
    userIdentity: msgspec.Raw = msgspec.Raw(b"null")
    resources: msgspec.Raw = msgspec.Raw(b"null")
    requestParameters: msgspec.Raw = msgspec.Raw(b"null")
    responseElements: msgspec.Raw = msgspec.Raw(b"null")  # read only for calls that create (fields.created_keys)


class DeliveryFile(msgspec.Struct):
    """A log file as CloudTrail delivers it to S3."""

    Records: list[RawRecord]


delivery_decoder = msgspec.json.Decoder(DeliveryFile)
record_decoder = msgspec.json.Decoder(RawRecord)
_identity_decoder = msgspec.json.Decoder(UserIdentity | None)


def identity(raw: bytes | msgspec.Raw) -> UserIdentity | None:
    """The decoded ``userIdentity``; raises ``msgspec.DecodeError`` when it has the wrong shape."""
    return _identity_decoder.decode(raw)
