#!/usr/bin/env python3
"""An independent checker of SLSA Verification Summary Attestations for airlock's interop tests.

It shares no code with airlock and was written from the specifications, not from airlock's sources:
  - the SLSA Verification Summary Attestation (VSA) spec v1.0 (slsa-framework/slsa,
    docs/spec/v1.0/verification_summary.md): predicateType
    `https://slsa.dev/verification_summary/v1`, the predicate's fields, the SlsaResult values and
    the parsing rules; where a later minor version of the same predicate type
    (docs/spec/draft/verification_summary.md: 1.1, 1.2) added something (`verifier.version`,
    `SLSA_<TRACK>_LEVEL_UNEVALUATED`), it is accepted, since minor versions are backwards
    compatible and share the predicateType;
  - the in-toto attestation framework v1 (in-toto/attestation spec/v1): the Statement
    (statement.md), the ResourceDescriptor (resource_descriptor.md), the DigestSet
    (digest_set.md), the field types TypeURI, ResourceURI and Timestamp (field_types.md) and the
    parsing rules (README.md);
  - the DSSE protocol and envelope (secure-systems-lab/dsse protocol.md, envelope.md): the
    pre-authentication encoding PAE and the JSON envelope, with payloadType
    `application/vnd.in-toto+json` as in-toto's envelope layer requires;
  - RFC 3339 (timestamps) and RFC 3986 (URIs, case normalization of section 6.2.2.1).

DSSE signatures are verified by `securesystemslib` (threshold 1) with an ECDSA P-256 / SHA-256
public key (PEM SubjectPublicKeyInfo) loaded by `cryptography`.

Subcommands:
  check     verify one VSA envelope file; prints one JSON object on stdout:
            {"ok": true, "verifier": ..., "resourceUri": ..., "verificationResult": ...,
             "verifiedLevels": [...], "warnings": [...], ...} and exits 0, or
            {"ok": false, "errors": [...], "warnings": [...]} and exits 1.
            Bad usage (malformed arguments, unreadable or unsupported public key) exits 2.
  selftest  builds signed envelopes in-process (fresh P-256 key, no network) and checks that each
            is accepted or refused as expected; prints {"ok": true, "cases": N}.

Choices where the specs leave room (errors refuse the VSA, warnings are reported only):
  - the envelope's signature is verified before its payload is looked at; nothing is reported
    about an unauthenticated payload;
  - JSON with duplicate object keys is an error (two parsers could read different documents);
  - Statement `_type` must be exactly `https://in-toto.io/Statement/v1` (the VSA v1 schema);
  - `timeVerified` is required (as in v1.0; v1.1 made it optional) and must be an RFC 3339
    date-time with an explicit offset in UTC, as in-toto's Timestamp requires ("Z"; `+00:00` or
    `-00:00` is accepted with a warning, any other offset is an error);
  - `verifier.id` is a TypeURI: it must have a scheme. `resourceUri` and ResourceDescriptor
    `uri`/`downloadLocation` are ResourceURIs: a missing scheme is only a warning (registries'
    image references are often scheme-less), whitespace is an error, and everywhere an upper-case
    scheme or host is an error (in-toto requires RFC 3986 case normalization);
  - `policy` must contain a `uri` (the VSA spec: "The entry MUST contain a `uri`"); a `policy`
    without a `digest` is a warning (v1.1: SHOULD);
  - every `inputAttestations` entry must contain a `digest` (MUST), lacking a `uri` is a warning;
  - DigestSet values of the named algorithms must be lowercase hex of the algorithm's length
    (sha256 64, sha512 128, ...; git* 40 or 64); an unknown algorithm is a warning (consumers MUST
    ignore unrecognized algorithms), an empty DigestSet is an error;
  - a SlsaResult is `FAILED`, or `SLSA_<TRACK>_LEVEL_<0-4>` (TRACK = [A-Z]+), or
    `SLSA_<TRACK>_LEVEL_UNEVALUATED`; any other value starting with `SLSA_` (in any case) is an
    error, because custom values MUST NOT start with `SLSA_`; other custom values (the spec says
    users MAY use them) are warnings. Levels other than SLSA_BUILD_LEVEL_0..3 (the only ones
    v1.0 lists) are warnings. Duplicates and two levels of one track (MUST NOT) are errors;
    `FAILED` in `verifiedLevels` with `verificationResult` PASSED is an error;
  - unknown predicate fields: the VSA parsing rules say consumers MUST ignore unrecognized fields
    and producers MAY add extension fields whose names are URIs; so an unknown field named by a
    URI is accepted silently, any other unknown field is a warning (never an error). The same
    rule applies to the Statement, `verifier` and ResourceDescriptors.
  - `--expect-level` also requires `verificationResult` PASSED (the VSA spec's "How to verify",
    steps 6 and 7).
"""
import argparse
import base64
import binascii
import copy
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib import exceptions as sslib_exceptions
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
VSA_PREDICATE_TYPE = "https://slsa.dev/verification_summary/v1"

STATEMENT_FIELDS = {"_type", "subject", "predicateType", "predicate"}
PREDICATE_FIELDS = {
    "verifier", "timeVerified", "resourceUri", "policy", "inputAttestations",
    "verificationResult", "verifiedLevels", "dependencyLevels", "slsaVersion",
}
VERIFIER_FIELDS = {"id", "version"}
DESCRIPTOR_FIELDS = {"name", "uri", "digest", "content", "downloadLocation", "mediaType",
                     "annotations"}
# VSA v0.1/v0.2 used snake_case names: point at them when they show up in a v1 predicate.
SNAKE_CASE_NAMES = {
    "time_verified": "timeVerified",
    "resource_uri": "resourceUri",
    "input_attestations": "inputAttestations",
    "verification_result": "verificationResult",
    "policy_level": "verifiedLevels",
    "dependency_levels": "dependencyLevels",
    "slsa_version": "slsaVersion",
}
VERIFICATION_RESULTS = ("PASSED", "FAILED")

# DigestSet algorithms with lowercase hex values (in-toto digest_set.md) and their lengths in hex
# digits; None: hex of an unspecified length (variable-output or unspecified-size functions).
HEX_DIGEST_LENGTHS = {
    "sha256": (64,), "sha224": (56,), "sha384": (96,), "sha512": (128,),
    "sha512_224": (56,), "sha512_256": (64,),
    "sha3_224": (56,), "sha3_256": (64,), "sha3_384": (96,), "sha3_512": (128,),
    "shake128": None, "shake256": None, "blake2b": None, "blake2s": None,
    "ripemd160": (40,), "sm3": (64,), "gost": None, "sha1": (40,), "md5": (32,),
    "dirHash": (64,),
    "gitCommit": (40, 64), "gitTree": (40, 64), "gitBlob": (40, 64), "gitTag": (40, 64),
}
LOWER_HEX = re.compile(r"^[0-9a-f]+$")

LEVEL_PATTERN = re.compile(r"^SLSA_(?P<track>[A-Z]+)_LEVEL_(?P<level>[0-4]|UNEVALUATED)$")
V1_0_LEVELS = {f"SLSA_BUILD_LEVEL_{n}" for n in range(4)}
FAILED_RESULT = "FAILED"

URI_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*):")
RFC3339 = re.compile(
    r"^(?P<date>(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2}))[Tt]"
    r"(?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})(?P<frac>\.\d+)?"
    r"(?P<offset>[Zz]|[+-]\d{2}:\d{2})?$"
)
SLSA_VERSION = re.compile(r"^(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)$")
DIGEST_ARG = re.compile(r"^sha256:(?P<hex>[0-9a-fA-F]{64})$")


class UsageError(Exception):
    """Bad command-line input: exit status 2."""


class Findings:
    """Errors (the VSA is refused) and warnings (reported only), as messages."""

    def __init__(self):
        self.errors = []
        self.warnings = []

    def error(self, message: str):
        self.errors.append(message)

    def warn(self, message: str):
        self.warnings.append(message)


# ---------------------------------------------------------------------------------------------
# JSON, DSSE


def _reject_duplicates(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate JSON object key {key!r}")
        result[key] = value
    return result


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def strict_json(data):
    """json.loads that refuses duplicate keys and NaN/Infinity."""
    return json.loads(data, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body,
    LEN being the decimal byte length with no leading zeros."""
    type_bytes = payload_type.encode("utf-8")
    return b" ".join([
        b"DSSEv1", str(len(type_bytes)).encode("ascii"), type_bytes,
        str(len(body)).encode("ascii"), body,
    ])


def load_public_key(path: str):
    """An ECDSA P-256 public key from a PEM SubjectPublicKeyInfo file (UsageError otherwise)."""
    try:
        with open(path, "rb") as handle:
            key = serialization.load_pem_public_key(handle.read())
    except (OSError, ValueError, TypeError) as error:
        raise UsageError(f"cannot read public key {path}: {error}") from error
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise UsageError(f"{path} is not an ECDSA P-256 public key")
    return key


def verify_envelope(envelope, public_key, findings: Findings):
    """Verifies a DSSE JSON envelope with securesystemslib; returns (payloadType, payload bytes)
    or None after recording errors.

    securesystemslib only tries a key whose keyid equals the signature's keyid, whereas in DSSE
    the keyid is an optional, unauthenticated hint. So each signature is checked on its own, in a
    one-signature envelope, against an SSlibKey carrying that signature's keyid ("" when unset):
    per DSSE, several signatures are equivalent to several envelopes. One valid signature is
    enough (threshold 1).
    """
    if not isinstance(envelope, dict):
        findings.error("envelope: not a JSON object")
        return None
    if "dsseEnvelope" in envelope or "mediaType" in envelope:
        findings.error("envelope: this looks like a Sigstore bundle, not a DSSE envelope")
        return None
    payload_type = envelope.get("payloadType")
    payload = envelope.get("payload")
    signatures = envelope.get("signatures")
    if not isinstance(payload_type, str):
        findings.error("envelope: payloadType missing or not a string")
    if not isinstance(payload, str):
        findings.error("envelope: payload missing or not a (base64) string")
    if not isinstance(signatures, list) or not signatures:
        findings.error("envelope: signatures missing, empty or not a list")
    if findings.errors:
        return None

    template = SSlibKey.from_crypto(public_key)
    problems = []
    verified = None
    for index, signature in enumerate(signatures):
        where = f"envelope.signatures[{index}]"
        if not isinstance(signature, dict):
            problems.append(f"{where}: not a JSON object")
            continue
        keyid = signature.get("keyid")
        if keyid is None:
            keyid = ""
        sig = signature.get("sig")
        if not isinstance(keyid, str):
            problems.append(f"{where}.keyid: not a string")
            continue
        if not isinstance(sig, str) or not sig:
            problems.append(f"{where}.sig: missing or not a string")
            continue
        single = {
            "payloadType": payload_type,
            "payload": payload,
            "signatures": [{"keyid": keyid, "sig": sig}],
        }
        key = SSlibKey(keyid, template.keytype, template.scheme, dict(template.keyval))
        try:
            parsed = Envelope.from_dict(copy.deepcopy(single))
        except (binascii.Error, ValueError, KeyError, TypeError) as error:
            problems.append(f"{where}: malformed envelope or signature (base64?): {error}")
            continue
        try:
            parsed.verify([key], 1)
        except (sslib_exceptions.VerificationError,
                sslib_exceptions.UnverifiedSignatureError) as error:
            problems.append(f"{where}: does not verify with the public key ({error})")
            continue
        verified = (parsed.payload_type, parsed.payload)
        break
    if verified is None:
        findings.error("envelope: no DSSE signature verifies with the public key")
        for problem in problems:
            findings.error(problem)
        return None
    return verified


# ---------------------------------------------------------------------------------------------
# Field types


def is_uri_name(name: str) -> bool:
    """A field name that is a URI (the documented form of extension fields)."""
    return bool(URI_SCHEME.match(name)) and not any(c.isspace() for c in name)


def report_unknown_fields(obj: dict, known, where: str, findings: Findings):
    for name in obj:
        if name in known or is_uri_name(name):
            continue
        hint = ""
        if name in SNAKE_CASE_NAMES:
            hint = f" (the VSA v0.2 name of {SNAKE_CASE_NAMES[name]!r}?)"
        findings.warn(f"{where}: unknown field {name!r} ignored (extension fields should be "
                      f"named by URIs){hint}")


def check_uri(value, where: str, findings: Findings, type_uri: bool) -> bool:
    """TypeURI (a scheme is required) or ResourceURI (a missing scheme is a warning), per in-toto
    field_types.md and RFC 3986. Returns False when the value is not a usable string."""
    if not isinstance(value, str):
        findings.error(f"{where}: not a string")
        return False
    if not value:
        findings.error(f"{where}: empty")
        return False
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        findings.error(f"{where}: {value!r} contains whitespace or control characters")
        return True
    if not value.isascii():
        findings.warn(f"{where}: {value!r} has non-ASCII characters (an IRI, not an RFC 3986 URI)")
    match = URI_SCHEME.match(value)
    if not match:
        message = f"{where}: {value!r} has no URI scheme"
        (findings.error if type_uri else findings.warn)(message)
        return True
    scheme = match.group("scheme")
    if scheme != scheme.lower():
        findings.error(f"{where}: {value!r}: the scheme must be lowercase (RFC 3986 6.2.2.1)")
    rest = value[match.end():]
    if rest.startswith("//"):
        authority = re.split(r"[/?#]", rest[2:], maxsplit=1)[0]
        host = authority.rsplit("@", 1)[-1]
        if host != host.lower():
            findings.error(f"{where}: {value!r}: the host must be lowercase (RFC 3986 6.2.2.1)")
    return True


def check_timestamp(value, where: str, findings: Findings):
    """An in-toto Timestamp: RFC 3339, in UTC."""
    if not isinstance(value, str):
        findings.error(f"{where}: not a string")
        return
    match = RFC3339.match(value)
    if not match:
        findings.error(f"{where}: {value!r} is not an RFC 3339 date-time")
        return
    offset = match.group("offset")
    if offset is None:
        findings.error(f"{where}: {value!r} has no time zone offset")
        return
    try:
        datetime.date(int(match.group("y")), int(match.group("mo")), int(match.group("d")))
        hour, minute, second = (int(match.group(k)) for k in ("h", "mi", "s"))
        if hour > 23 or minute > 59 or second > 60:  # 60: a leap second
            raise ValueError("time out of range")
        if offset not in ("Z", "z") and (int(offset[1:3]) > 23 or int(offset[4:6]) > 59):
            raise ValueError("offset out of range")
    except ValueError as error:
        findings.error(f"{where}: {value!r} is not a valid RFC 3339 date-time: {error}")
        return
    if offset in ("Z", "z"):
        return
    if offset in ("+00:00", "-00:00"):
        findings.warn(f"{where}: {value!r} is UTC but written {offset}, not \"Z\"")
    else:
        findings.error(f"{where}: {value!r} is not in UTC (in-toto Timestamps MUST be UTC, \"Z\")")


def check_digest_set(value, where: str, findings: Findings, want_sha256: bool = False):
    """An in-toto DigestSet: a non-empty map of algorithm to digest, lowercase hex for the named
    algorithms."""
    if not isinstance(value, dict):
        findings.error(f"{where}: not a JSON object (DigestSet)")
        return
    if not value:
        findings.error(f"{where}: empty DigestSet")
        return
    for algorithm, digest in value.items():
        if not isinstance(digest, str):
            findings.error(f"{where}.{algorithm}: not a string")
            continue
        if algorithm not in HEX_DIGEST_LENGTHS:
            findings.warn(f"{where}.{algorithm}: unknown digest algorithm, ignored")
            continue
        if not digest or not LOWER_HEX.match(digest):
            findings.error(f"{where}.{algorithm}: {digest!r} is not lowercase hex")
            continue
        lengths = HEX_DIGEST_LENGTHS[algorithm]
        if lengths is not None and len(digest) not in lengths:
            expected = " or ".join(str(n) for n in lengths)
            findings.error(f"{where}.{algorithm}: {len(digest)} hex digits, not {expected}")
    if want_sha256 and "sha256" not in value:
        findings.warn(f"{where}: no sha256 digest (in-toto RECOMMENDS at least sha256)")


def check_descriptor(value, where: str, findings: Findings, require=()):
    """An in-toto ResourceDescriptor; `require` names fields the context makes mandatory."""
    if not isinstance(value, dict):
        findings.error(f"{where}: not a JSON object (ResourceDescriptor)")
        return False
    if not any(field in value for field in ("uri", "digest", "content")):
        findings.error(f"{where}: a ResourceDescriptor needs at least one of uri, digest, content")
    for field in require:
        if field not in value:
            findings.error(f"{where}: {field} is required")
    if "name" in value and not isinstance(value["name"], str):
        findings.error(f"{where}.name: not a string")
    if "uri" in value:
        check_uri(value["uri"], f"{where}.uri", findings, type_uri=False)
    if "digest" in value:
        check_digest_set(value["digest"], f"{where}.digest", findings, want_sha256=True)
    if "content" in value:
        content = value["content"]
        try:
            if not isinstance(content, str):
                raise ValueError("not a string")
            base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError) as error:
            findings.error(f"{where}.content: not base64 ({error})")
    if "downloadLocation" in value:
        check_uri(value["downloadLocation"], f"{where}.downloadLocation", findings, type_uri=False)
    if "mediaType" in value and not isinstance(value["mediaType"], str):
        findings.error(f"{where}.mediaType: not a string")
    if "annotations" in value and not isinstance(value["annotations"], dict):
        findings.error(f"{where}.annotations: not a JSON object")
    report_unknown_fields(value, DESCRIPTOR_FIELDS, where, findings)
    return True


def check_slsa_result(value, where: str, findings: Findings):
    """A SlsaResult; returns its track (e.g. "BUILD"), "" for FAILED or a custom value, None if
    invalid."""
    if not isinstance(value, str):
        findings.error(f"{where}: not a string")
        return None
    if value == FAILED_RESULT:
        return ""
    match = LEVEL_PATTERN.match(value)
    if match:
        if value not in V1_0_LEVELS:
            findings.warn(f"{where}: {value!r} is not a level SLSA v1.0 defines "
                          f"(v1.0 lists SLSA_BUILD_LEVEL_0..3)")
        return match.group("track")
    if value.upper().startswith("SLSA_"):
        findings.error(f"{where}: {value!r} is not a SLSA level (SLSA_<TRACK>_LEVEL_<0-4>); "
                       f"custom values MUST NOT start with SLSA_")
        return None
    if not value:
        findings.error(f"{where}: empty")
        return None
    findings.warn(f"{where}: {value!r} is a custom SlsaResult")
    return ""


# ---------------------------------------------------------------------------------------------
# Statement and predicate


def check_statement(payload_type: str, payload: bytes, subject_hex: str, findings: Findings):
    """Checks the in-toto Statement v1 around the VSA; returns the predicate (or None)."""
    if payload_type != INTOTO_PAYLOAD_TYPE:
        findings.error(f"envelope: payloadType is {payload_type!r}, not {INTOTO_PAYLOAD_TYPE}")
        return None
    try:
        statement = strict_json(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        findings.error(f"statement: payload is not UTF-8 JSON: {error}")
        return None
    if not isinstance(statement, dict):
        findings.error("statement: not a JSON object")
        return None
    statement_type = statement.get("_type")
    if statement_type != STATEMENT_V1:
        findings.error(f"statement._type is {statement_type!r}, not {STATEMENT_V1}")
    predicate_type = statement.get("predicateType")
    if predicate_type != VSA_PREDICATE_TYPE:
        findings.error(f"statement.predicateType is {predicate_type!r}, not {VSA_PREDICATE_TYPE}")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        findings.error("statement.subject: missing, empty or not a list")
    else:
        for index, subject in enumerate(subjects):
            check_descriptor(subject, f"statement.subject[{index}]", findings, require=("digest",))
        if not any(isinstance(s, dict) and isinstance(s.get("digest"), dict)
                   and s["digest"].get("sha256") == subject_hex for s in subjects):
            findings.error(f"statement.subject: no subject has digest.sha256 {subject_hex}")
    report_unknown_fields(statement, STATEMENT_FIELDS, "statement", findings)
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        findings.error("statement.predicate: missing or not a JSON object")
        return None
    return predicate


def check_predicate(predicate: dict, expect, findings: Findings):
    """Checks a VSA v1 predicate against the spec and the caller's expectations (`expect`)."""
    where = "predicate"
    required = ("verifier", "timeVerified", "resourceUri", "policy", "verificationResult",
                "verifiedLevels")
    for field in required:
        if field not in predicate:
            findings.error(f"{where}.{field}: required field missing")
    report_unknown_fields(predicate, PREDICATE_FIELDS, where, findings)

    verifier = predicate.get("verifier")
    if "verifier" in predicate:
        if not isinstance(verifier, dict):
            findings.error(f"{where}.verifier: not a JSON object")
        else:
            if "id" not in verifier:
                findings.error(f"{where}.verifier.id: required field missing")
            else:
                check_uri(verifier["id"], f"{where}.verifier.id", findings, type_uri=True)
                if expect.verifier_id is not None and verifier["id"] != expect.verifier_id:
                    findings.error(f"{where}.verifier.id is {verifier['id']!r}, "
                                   f"not {expect.verifier_id!r}")
            if "version" in verifier:
                version = verifier["version"]
                if not isinstance(version, dict) or not all(
                        isinstance(v, str) for v in version.values()):
                    findings.error(f"{where}.verifier.version: not a map of string to string")
            report_unknown_fields(verifier, VERIFIER_FIELDS, f"{where}.verifier", findings)

    if "timeVerified" in predicate:
        check_timestamp(predicate["timeVerified"], f"{where}.timeVerified", findings)

    resource_uri = predicate.get("resourceUri")
    if "resourceUri" in predicate:
        if check_uri(resource_uri, f"{where}.resourceUri", findings, type_uri=False):
            if not resource_uri.endswith(expect.resource_uri_suffix):
                findings.error(f"{where}.resourceUri {resource_uri!r} does not end with "
                               f"{expect.resource_uri_suffix!r}")

    policy = predicate.get("policy")
    if "policy" in predicate:
        if check_descriptor(policy, f"{where}.policy", findings, require=("uri",)):
            if "digest" not in policy:
                findings.warn(f"{where}.policy: no digest (the policy version is not pinned)")
    if expect.policy_hex is not None:
        digest = policy.get("digest") if isinstance(policy, dict) else None
        actual = digest.get("sha256") if isinstance(digest, dict) else None
        if actual != expect.policy_hex:
            findings.error(f"{where}.policy.digest.sha256 is {actual!r}, "
                           f"not {expect.policy_hex!r}")

    inputs = predicate.get("inputAttestations")
    if "inputAttestations" in predicate:
        if not isinstance(inputs, list):
            findings.error(f"{where}.inputAttestations: not a list")
            inputs = []
        for index, entry in enumerate(inputs):
            entry_where = f"{where}.inputAttestations[{index}]"
            if check_descriptor(entry, entry_where, findings, require=("digest",)):
                if "uri" not in entry:
                    findings.warn(f"{entry_where}: no uri to fetch the attestation from (SHOULD)")
    else:
        inputs = []
    input_hexes = {entry["digest"].get("sha256") for entry in inputs
                   if isinstance(entry, dict) and isinstance(entry.get("digest"), dict)
                   and isinstance(entry["digest"].get("sha256"), str)}
    for wanted in expect.input_hexes:
        if wanted not in input_hexes:
            findings.error(f"{where}.inputAttestations: no entry has digest.sha256 {wanted}")

    result = predicate.get("verificationResult")
    if "verificationResult" in predicate and result not in VERIFICATION_RESULTS:
        findings.error(f"{where}.verificationResult is {result!r}, not PASSED or FAILED")
    if expect.result is not None and result != expect.result:
        findings.error(f"{where}.verificationResult is {result!r}, not {expect.result!r}")
    if expect.levels and result != "PASSED":
        findings.error(f"{where}.verificationResult is {result!r}: expected levels need PASSED")

    levels = predicate.get("verifiedLevels")
    if "verifiedLevels" in predicate:
        if not isinstance(levels, list):
            findings.error(f"{where}.verifiedLevels: not a list")
            levels = []
        elif not levels:
            findings.warn(f"{where}.verifiedLevels: empty")
        seen, tracks = set(), {}
        for index, level in enumerate(levels):
            level_where = f"{where}.verifiedLevels[{index}]"
            track = check_slsa_result(level, level_where, findings)
            if not isinstance(level, str):
                continue
            if level in seen:
                findings.error(f"{level_where}: {level!r} listed twice")
                continue
            seen.add(level)
            if track:
                if track in tracks:
                    findings.error(f"{level_where}: {level!r} and {tracks[track]!r}: more than "
                                   f"one level of the {track} track (MUST NOT)")
                else:
                    tracks[track] = level
        if FAILED_RESULT in seen and result == "PASSED":
            findings.error(f"{where}.verifiedLevels has FAILED but verificationResult is PASSED")
        if result == "FAILED" and FAILED_RESULT not in seen:
            findings.warn(f"{where}.verificationResult is FAILED but verifiedLevels lacks FAILED")
        if FAILED_RESULT in seen and len(seen) > 1:
            findings.warn(f"{where}.verifiedLevels has FAILED alongside other values")
    else:
        levels = []
    for wanted in expect.levels:
        if wanted not in levels:
            findings.error(f"{where}.verifiedLevels {levels!r} lacks {wanted}")

    dependency_levels = predicate.get("dependencyLevels")
    if dependency_levels is not None:
        if not isinstance(dependency_levels, dict):
            findings.error(f"{where}.dependencyLevels: not a JSON object")
        else:
            for level, count in dependency_levels.items():
                level_where = f"{where}.dependencyLevels[{level!r}]"
                check_slsa_result(level, level_where, findings)
                if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                    findings.error(f"{level_where}: count {count!r} is not a non-negative integer")

    if "slsaVersion" in predicate:
        version = predicate["slsaVersion"]
        match = SLSA_VERSION.match(version) if isinstance(version, str) else None
        if not match:
            findings.error(f"{where}.slsaVersion: {version!r} is not <MAJOR>.<MINOR>")
        elif match.group("major") != "1":
            findings.warn(f"{where}.slsaVersion: {version!r} is not a 1.x version")


# ---------------------------------------------------------------------------------------------
# check


class Expectations:
    def __init__(self, subject_hex, resource_uri_suffix, policy_hex=None, input_hexes=(),
                 levels=(), result=None, verifier_id=None):
        self.subject_hex = subject_hex
        self.resource_uri_suffix = resource_uri_suffix
        self.policy_hex = policy_hex
        self.input_hexes = list(input_hexes)
        self.levels = list(levels)
        self.result = result
        self.verifier_id = verifier_id


def check_envelope(envelope_text, public_key, expect: Expectations) -> dict:
    """Checks a VSA envelope (JSON text or bytes); returns the JSON report (with "ok")."""
    findings = Findings()
    predicate = None
    try:
        envelope = strict_json(envelope_text)
    except (UnicodeDecodeError, ValueError) as error:
        findings.error(f"envelope: not JSON: {error}")
        envelope = None
    if envelope is not None:
        verified = verify_envelope(envelope, public_key, findings)
        if verified is not None:
            predicate = check_statement(verified[0], verified[1], expect.subject_hex, findings)
    if predicate is not None:
        check_predicate(predicate, expect, findings)
    if findings.errors:
        return {"ok": False, "errors": findings.errors, "warnings": findings.warnings}
    verifier = predicate["verifier"]
    return {
        "ok": True,
        "verifier": verifier["id"],
        "verifierVersion": verifier.get("version"),
        "timeVerified": predicate["timeVerified"],
        "resourceUri": predicate["resourceUri"],
        "policy": predicate["policy"],
        "verificationResult": predicate["verificationResult"],
        "verifiedLevels": predicate["verifiedLevels"],
        "dependencyLevels": predicate.get("dependencyLevels"),
        "slsaVersion": predicate.get("slsaVersion"),
        "warnings": findings.warnings,
    }


def digest_arg(value: str) -> str:
    match = DIGEST_ARG.match(value)
    if not match:
        raise UsageError(f"not a sha256 digest (sha256:<64 hex>): {value!r}")
    return match.group("hex").lower()


def level_arg(value: str) -> str:
    if value != FAILED_RESULT and not LEVEL_PATTERN.match(value):
        raise UsageError(f"not a SLSA level (SLSA_<TRACK>_LEVEL_<N>): {value!r}")
    return value


def cmd_check(args) -> int:
    public_key = load_public_key(args.public_key)
    expect = Expectations(
        subject_hex=digest_arg(args.subject_digest),
        resource_uri_suffix=args.resource_uri_suffix,
        policy_hex=None if args.policy_digest is None else digest_arg(args.policy_digest),
        input_hexes=[digest_arg(d) for d in args.input_digest],
        levels=[level_arg(level) for level in args.expect_level],
        result=args.expect_result,
        verifier_id=args.verifier_id,
    )
    try:
        with open(args.envelope, "rb") as handle:
            envelope_text = handle.read()
    except OSError as error:
        report = {"ok": False, "errors": [f"cannot read envelope {args.envelope}: {error}"],
                  "warnings": []}
    else:
        report = check_envelope(envelope_text, public_key, expect)
    print(json.dumps(report))
    return 0 if report["ok"] else 1


# ---------------------------------------------------------------------------------------------
# selftest


def _b64(data: bytes) -> str:
    return base64.standard_b64encode(data).decode("ascii")


def _hex(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


SUBJECT_HEX = _hex("subject")
POLICY_HEX = _hex("policy")
INPUT_HEX = _hex("provenance")
SUFFIX = "demo/app@sha256:" + SUBJECT_HEX


def sample_predicate() -> dict:
    return {
        "verifier": {"id": "https://airlock.example/verifier", "version": {"airlock": "0.1.0"}},
        "timeVerified": "2024-05-01T12:34:56.789Z",
        "resourceUri": "oci://registry.example:5000/" + SUFFIX,
        "policy": {"uri": "https://airlock.example/policy/default",
                   "digest": {"sha256": POLICY_HEX}},
        "inputAttestations": [{"uri": "oci://registry.example:5000/demo/app@sha256:" + INPUT_HEX,
                               "digest": {"sha256": INPUT_HEX}}],
        "verificationResult": "PASSED",
        "verifiedLevels": ["SLSA_BUILD_LEVEL_2"],
        "dependencyLevels": {"SLSA_BUILD_LEVEL_2": 3, "SLSA_BUILD_LEVEL_0": 1},
        "slsaVersion": "1.0",
    }


def sample_statement(predicate=None) -> dict:
    return {
        "_type": STATEMENT_V1,
        "subject": [{"name": "registry.example:5000/demo/app",
                     "digest": {"sha256": SUBJECT_HEX}}],
        "predicateType": VSA_PREDICATE_TYPE,
        "predicate": sample_predicate() if predicate is None else predicate,
    }


def sign_envelope(private_key, statement, payload_type=INTOTO_PAYLOAD_TYPE, keyid="",
                  body=None, urlsafe=False) -> bytes:
    """A DSSE envelope around `statement` (or raw `body`), signed over its PAE with ECDSA P-256."""
    if body is None:
        body = json.dumps(statement, separators=(",", ":")).encode("utf-8")
    signature = private_key.sign(pae(payload_type, body), ec.ECDSA(hashes.SHA256()))
    encode = base64.urlsafe_b64encode if urlsafe else base64.standard_b64encode
    entry = {"sig": encode(signature).decode("ascii")}
    if keyid is not None:
        entry["keyid"] = keyid
    envelope = {"payloadType": payload_type, "payload": encode(body).decode("ascii"),
                "signatures": [entry]}
    return json.dumps(envelope).encode("utf-8")


def _mutated(change) -> dict:
    statement = sample_statement()
    change(statement, statement["predicate"])
    return statement


def selftest_cases(key, other_key):
    """(name, envelope bytes, Expectations, expected ok, substring of an error or warning)."""
    base = Expectations(SUBJECT_HEX, SUFFIX)
    full = Expectations(SUBJECT_HEX, SUFFIX, policy_hex=POLICY_HEX, input_hexes=[INPUT_HEX],
                        levels=["SLSA_BUILD_LEVEL_2"], result="PASSED",
                        verifier_id="https://airlock.example/verifier")
    valid = sign_envelope(key, sample_statement())

    def signed(change, **kwargs):
        return sign_envelope(key, _mutated(change), **kwargs)

    def delete(field):
        return lambda s, p: p.pop(field)

    def setp(field, value):
        return lambda s, p: p.__setitem__(field, value)

    tampered = json.loads(valid)
    tampered["payload"] = _b64(json.dumps(_mutated(setp("verificationResult", "FAILED"))).encode())
    two_sigs = json.loads(sign_envelope(other_key, sample_statement()))
    two_sigs["signatures"].append(json.loads(valid)["signatures"][0])

    cases = [
        # The brief's cases.
        ("valid VSA", valid, full, True, None),
        ("wrong signature", sign_envelope(other_key, sample_statement()), base, False,
         "no DSSE signature verifies"),
        ("wrong predicate type",
         signed(lambda s, p: s.__setitem__("predicateType", "https://slsa.dev/provenance/v1")),
         base, False, "predicateType"),
        ("missing timeVerified", signed(delete("timeVerified")), base, False, "timeVerified"),
        ("bad level string", signed(setp("verifiedLevels", ["SLSA_BUILD_LEVEL_5"])), base, False,
         "not a SLSA level"),
        ("policy digest of wrong length",
         signed(lambda s, p: p["policy"]["digest"].__setitem__("sha256", POLICY_HEX[:-1])),
         base, False, "63 hex digits"),
        # Envelope.
        ("tampered payload", json.dumps(tampered).encode(), base, False,
         "no DSSE signature verifies"),
        ("second signature verifies", json.dumps(two_sigs).encode(), base, True, None),
        ("keyid unset, URL-safe base64", sign_envelope(key, sample_statement(), keyid=None,
                                                       urlsafe=True), base, True, None),
        ("keyid set", sign_envelope(key, sample_statement(), keyid="abc"), base, True, None),
        ("wrong payloadType", sign_envelope(key, sample_statement(),
                                            payload_type="application/json"), base, False,
         "payloadType"),
        ("not JSON", b"{", base, False, "not JSON"),
        ("duplicate key", valid[:-1] + b', "payloadType": "x"}', base, False, "duplicate"),
        # Statement.
        ("statement v0.1", signed(lambda s, p: s.__setitem__(
            "_type", "https://in-toto.io/Statement/v0.1")), base, False, "_type"),
        ("other subject", sign_envelope(key, sample_statement()),
         Expectations(_hex("other"), SUFFIX), False, "no subject has"),
        # Predicate fields.
        ("missing verifier.id", signed(lambda s, p: p["verifier"].pop("id")), base, False,
         "verifier.id"),
        ("verifier.id without scheme", signed(lambda s, p: p["verifier"].__setitem__(
            "id", "airlock")), base, False, "no URI scheme"),
        ("verifier.version not strings", signed(lambda s, p: p["verifier"].__setitem__(
            "version", {"airlock": 1})), base, False, "map of string to string"),
        ("timeVerified without zone", signed(setp("timeVerified", "2024-05-01T12:34:56")), base,
         False, "no time zone"),
        ("timeVerified not UTC", signed(setp("timeVerified", "2024-05-01T12:34:56+02:00")), base,
         False, "not in UTC"),
        ("timeVerified +00:00", signed(setp("timeVerified", "2024-05-01T12:34:56+00:00")), base,
         True, "not \"Z\""),
        ("timeVerified invalid date", signed(setp("timeVerified", "2024-02-30T12:34:56Z")), base,
         False, "not a valid RFC 3339"),
        ("resourceUri suffix", sign_envelope(key, sample_statement()),
         Expectations(SUBJECT_HEX, "demo/other"), False, "does not end with"),
        ("resourceUri without scheme", signed(setp("resourceUri", "127.0.0.1:5000/" + SUFFIX)),
         base, True, "no URI scheme"),
        ("resourceUri upper-case scheme", signed(setp("resourceUri", "OCI://registry.example/"
                                                      + SUFFIX)), base, False, "lowercase"),
        ("resourceUri empty", signed(setp("resourceUri", "")), Expectations(SUBJECT_HEX, ""),
         False, "empty"),
        ("policy without uri", signed(lambda s, p: p["policy"].pop("uri")), base, False,
         "uri is required"),
        ("policy without digest", signed(lambda s, p: p["policy"].pop("digest")), base, True,
         "no digest"),
        ("policy digest upper-case", signed(lambda s, p: p["policy"]["digest"].__setitem__(
            "sha256", POLICY_HEX.upper())), base, False, "lowercase hex"),
        ("policy sha512 wrong length", signed(lambda s, p: p["policy"]["digest"].__setitem__(
            "sha512", POLICY_HEX)), base, False, "not 128"),
        ("policy digest mismatch", valid, Expectations(SUBJECT_HEX, SUFFIX,
                                                       policy_hex=_hex("x")), False,
         "policy.digest.sha256"),
        ("input without digest", signed(lambda s, p: p["inputAttestations"][0].pop("digest")),
         base, False, "digest is required"),
        ("input digest missing", valid, Expectations(SUBJECT_HEX, SUFFIX,
                                                     input_hexes=[_hex("x")]), False,
         "inputAttestations: no entry"),
        ("no inputAttestations", signed(delete("inputAttestations")), base, True, None),
        ("verificationResult lowercase", signed(setp("verificationResult", "passed")), base,
         False, "not PASSED or FAILED"),
        ("expected level absent", valid, Expectations(SUBJECT_HEX, SUFFIX,
                                                      levels=["SLSA_BUILD_LEVEL_3"]), False,
         "lacks SLSA_BUILD_LEVEL_3"),
        ("expected level but FAILED", signed(setp("verificationResult", "FAILED")),
         Expectations(SUBJECT_HEX, SUFFIX, levels=["SLSA_BUILD_LEVEL_2"]), False,
         "need PASSED"),
        ("FAILED VSA", signed(lambda s, p: p.update(verificationResult="FAILED",
                                                     verifiedLevels=["FAILED"])), base, True,
         None),
        ("FAILED level with PASSED", signed(setp("verifiedLevels", ["FAILED"])), base, False,
         "verificationResult is PASSED"),
        ("duplicate level", signed(setp("verifiedLevels", ["SLSA_BUILD_LEVEL_2"] * 2)), base,
         False, "listed twice"),
        ("two build levels", signed(setp("verifiedLevels", ["SLSA_BUILD_LEVEL_1",
                                                            "SLSA_BUILD_LEVEL_2"])), base, False,
         "more than one level"),
        ("lower-case level", signed(setp("verifiedLevels", ["slsa_build_level_2"])), base, False,
         "not a SLSA level"),
        ("custom level", signed(setp("verifiedLevels", ["SLSA_BUILD_LEVEL_2", "ACME_OK"])), base,
         True, "custom SlsaResult"),
        ("source level", signed(setp("verifiedLevels", ["SLSA_BUILD_LEVEL_3",
                                                        "SLSA_SOURCE_LEVEL_4"])), base, True,
         "not a level SLSA v1.0 defines"),
        ("verifiedLevels not a list", signed(setp("verifiedLevels", "SLSA_BUILD_LEVEL_2")), base,
         False, "not a list"),
        ("dependencyLevels negative", signed(setp("dependencyLevels", {"SLSA_BUILD_LEVEL_1": -1})),
         base, False, "non-negative"),
        ("slsaVersion bad", signed(setp("slsaVersion", "v1")), base, False, "<MAJOR>.<MINOR>"),
        ("unknown field warns", signed(setp("verifiedBy", "me")), base, True, "unknown field"),
        ("snake_case hint", signed(lambda s, p: p.__setitem__(
            "time_verified", p.pop("timeVerified"))), base, False, "v0.2 name"),
    ]
    extension = _mutated(setp("https://airlock.example/vsa/ext", {"x": 1}))
    cases.append(("URI-named extension field", sign_envelope(key, extension), base, True, None))
    return cases


def run_selftest_cli(key, other_key, failures) -> int:
    """Runs `check` as a subprocess on files, for exit statuses and stdout; returns its count."""
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    count = 0
    with tempfile.TemporaryDirectory() as tmp:
        pub = os.path.join(tmp, "key.pub")
        good = os.path.join(tmp, "good.json")
        bad = os.path.join(tmp, "bad.json")
        with open(pub, "wb") as handle:
            handle.write(public_pem)
        with open(good, "wb") as handle:
            handle.write(sign_envelope(key, sample_statement()))
        with open(bad, "wb") as handle:
            handle.write(sign_envelope(other_key, sample_statement()))
        common = ["--public-key", pub, "--subject-digest", "sha256:" + SUBJECT_HEX,
                  "--resource-uri-suffix", SUFFIX]
        runs = [
            ("cli valid", ["check", "--envelope", good, *common,
                           "--policy-digest", "sha256:" + POLICY_HEX,
                           "--input-digest", "sha256:" + INPUT_HEX,
                           "--expect-level", "SLSA_BUILD_LEVEL_2"], 0, True),
            ("cli refused", ["check", "--envelope", bad, *common], 1, False),
            ("cli missing envelope", ["check", "--envelope", os.path.join(tmp, "none"),
                                      *common], 1, False),
            ("cli bad digest argument", ["check", "--envelope", good, "--public-key", pub,
                                         "--subject-digest", "sha256:abc",
                                         "--resource-uri-suffix", SUFFIX], 2, None),
            ("cli bad level argument", ["check", "--envelope", good, *common,
                                        "--expect-level", "LEVEL_2"], 2, None),
            ("cli bad public key", ["check", "--envelope", good, "--public-key", good,
                                    "--subject-digest", "sha256:" + SUBJECT_HEX,
                                    "--resource-uri-suffix", SUFFIX], 2, None),
            ("cli missing option", ["check", "--envelope", good], 2, None),
        ]
        for name, argv, status, ok in runs:
            count += 1
            done = subprocess.run([sys.executable, os.path.abspath(__file__), *argv],
                                  capture_output=True, text=True, timeout=60, check=False)
            if done.returncode != status:
                failures.append(f"{name}: exit {done.returncode}, not {status}: "
                                f"{done.stdout.strip()} {done.stderr.strip()}")
                continue
            if ok is None:
                continue
            try:
                report = json.loads(done.stdout)
            except ValueError:
                failures.append(f"{name}: stdout is not one JSON object: {done.stdout!r}")
                continue
            if report.get("ok") is not ok or (not ok and not report.get("errors")):
                failures.append(f"{name}: unexpected report {report}")
    return count


def cmd_selftest(_args) -> int:
    key = ec.generate_private_key(ec.SECP256R1())
    other_key = ec.generate_private_key(ec.SECP256R1())
    failures = []
    cases = selftest_cases(key, other_key)
    for name, envelope, expect, ok, needle in cases:
        report = check_envelope(envelope, key.public_key(), expect)
        messages = report.get("errors", []) + report.get("warnings", [])
        if report["ok"] is not ok:
            failures.append(f"{name}: ok is {report['ok']}, expected {ok}: {messages}")
        elif needle is not None and not any(needle in message for message in messages):
            failures.append(f"{name}: no message mentions {needle!r}: {messages}")
        elif ok and needle is None and report["warnings"]:
            failures.append(f"{name}: unexpected warnings {report['warnings']}")
        elif name == "valid VSA" and (
                report["verifier"] != "https://airlock.example/verifier"
                or report["verifiedLevels"] != ["SLSA_BUILD_LEVEL_2"]
                or report["verificationResult"] != "PASSED"
                or not report["resourceUri"].endswith(SUFFIX)):
            failures.append(f"{name}: unexpected report {report}")
    count = len(cases) + run_selftest_cli(key, other_key, failures)
    if failures:
        print(json.dumps({"ok": False, "cases": count, "failures": failures}))
        return 1
    print(json.dumps({"ok": True, "cases": count}))
    return 0


# ---------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", help="check a DSSE-signed SLSA VSA envelope file")
    check.add_argument("--envelope", required=True, help="DSSE envelope JSON file")
    check.add_argument("--public-key", required=True,
                       help="ECDSA P-256 public key, PEM SubjectPublicKeyInfo")
    check.add_argument("--subject-digest", required=True,
                       help="sha256:<hex> that one statement subject must have")
    check.add_argument("--resource-uri-suffix", required=True,
                       help="predicate.resourceUri must end with this")
    check.add_argument("--policy-digest", help="sha256:<hex> that policy.digest must have")
    check.add_argument("--input-digest", action="append", default=[],
                       help="sha256:<hex> of an inputAttestations entry (repeatable)")
    check.add_argument("--expect-level", action="append", default=[],
                       help="a level verifiedLevels must list, e.g. SLSA_BUILD_LEVEL_2 "
                            "(repeatable; implies verificationResult PASSED)")
    check.add_argument("--expect-result", choices=VERIFICATION_RESULTS,
                       help="required verificationResult")
    check.add_argument("--verifier-id", help="required verifier.id (exact)")
    check.set_defaults(func=cmd_check)

    selftest = commands.add_parser("selftest", help="check this checker on in-process envelopes")
    selftest.set_defaults(func=cmd_selftest)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
