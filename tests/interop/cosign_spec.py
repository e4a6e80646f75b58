#!/usr/bin/env python3
"""An independent cosign-format client, written from the specifications, for interop tests of airlock.

The real cosign binary cannot be installed where airlock's tests run, so this script plays its part.
It shares no code with airlock: it was written from
  - the cosign signature spec (sigstore/cosign specs/SIGNATURE_SPEC.md): simple-signing payload,
    `dev.cosignproject.cosign/signature` layer annotation, tag scheme `sha256-<hex>.sig`;
  - the cosign attestation spec (specs/ATTESTATION_SPEC.md): DSSE envelope layers,
    tag `sha256-<hex>.att`;
  - the DSSE protocol and envelope (secure-systems-lab/dsse protocol.md, envelope.md);
  - the in-toto Statement (in-toto/attestation spec, v1 and v0.1);
  - the OCI image and distribution specs 1.1 (subject, artifactType, referrers API);
  - cosign's encrypted key format (scrypt + nacl/secretbox around a PKCS#8 DER key);
  - the Sigstore bundle v0.3 (sigstore/protobuf-specs protos/sigstore_bundle.proto,
    sigstore_common.proto, envelope.proto, in their protobuf JSON mapping) and cosign's
    specs/BUNDLE_SPEC.md for attaching a bundle to an image as an OCI 1.1 referrer,
and, where the specs are silent, from what cosign is documented or observed to write
(its tag-scheme config blob and its OCI 1.1 referrer manifests; see `--referrer-style`).

Cryptography comes from `cryptography`, `PyNaCl` and `securesystemslib` (DSSE verification),
HTTP from urllib. Every subcommand prints one JSON object on stdout; failures go to stderr with a
non-zero exit status.

Subcommands: keygen, decrypt-key, sign, attest, bundle, verify, verify-attestation, verify-dsse,
verify-bundle (run with --help for their options).
"""
import argparse
import base64
import copy
import datetime
import hashlib
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import nacl.exceptions
import nacl.secret
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils
from securesystemslib import exceptions as sslib_exceptions
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_TYPE = "cosign container image signature"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PREDICATE_TYPE_ANNOTATION = "predicateType"
SIG_ARTIFACT_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPES = {
    "v1": "https://in-toto.io/Statement/v1",
    "v0.1": "https://in-toto.io/Statement/v0.1",
}

# Sigstore bundles (protobuf-specs; cosign specs/BUNDLE_SPEC.md).
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_MEDIA_TYPES = {  # what a verifier must accept (sigstore_bundle.proto, Bundle.media_type)
    BUNDLE_MEDIA_TYPE,
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
}
BUNDLE_CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
BUNDLE_PREDICATE_TYPE_ANNOTATION = "dev.sigstore.bundle.predicateType"
# The predicate type of the statement `cosign sign` (v3, bundle format) signs: cosign
# pkg/types/predicate.go CosignSignPredicateType; the predicate is `{}`.
COSIGN_SIGN_PREDICATE_TYPE = "https://sigstore.dev/cosign/sign/v1"
BUNDLE_MODES = ("dsse", "message")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
MANIFEST_ACCEPT = ", ".join([
    OCI_MANIFEST,
    OCI_INDEX,
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
CREATED_ANNOTATION = "org.opencontainers.image.created"

ENCRYPTED_KEY_LABELS = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
DIGEST_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")

REFERRER_STYLES = ("empty-config", "config-only", "config-and-artifact-type")


class CliError(Exception):
    """A failure reported to the user as a message on stderr."""


# ---------------------------------------------------------------------------------------------
# Small helpers


def sha256_digest(data: bytes) -> str:
    """The OCI digest string of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def b64encode(data: bytes) -> str:
    return base64.standard_b64encode(data).decode("ascii")


def canonical_json(value) -> bytes:
    """Compact JSON with keys in insertion order, as Go's encoding/json writes structs."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_digest(digest: str) -> str:
    if not DIGEST_PATTERN.match(digest):
        raise CliError(f"not a sha256 digest: {digest!r}")
    return digest


def descriptor(media_type: str, data: bytes, annotations=None) -> dict:
    """An OCI content descriptor for `data`."""
    desc = {"mediaType": media_type, "size": len(data), "digest": sha256_digest(data)}
    if annotations is not None:
        desc["annotations"] = annotations
    return desc


# ---------------------------------------------------------------------------------------------
# Keys


def generate_private_key(algorithm: str):
    if algorithm == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise CliError(f"unsupported algorithm {algorithm!r}")


def key_algorithm(key) -> str:
    """'p256' or 'ed25519' for a private or public key; anything else is unsupported by cosign here."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        if isinstance(key.curve, ec.SECP256R1):
            return "p256"
        raise CliError(f"unsupported elliptic curve {key.curve.name}")
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "ed25519"
    raise CliError(f"unsupported key type {type(key).__name__}")


def private_key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(key) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def pem_body(pem_text: str, label: str) -> bytes:
    """The base64-decoded body of the PEM block with `label`."""
    match = re.search(
        rf"-----BEGIN {re.escape(label)}-----(.*?)-----END {re.escape(label)}-----", pem_text, re.S
    )
    if not match:
        raise CliError(f"no PEM block labelled {label!r}")
    return base64.b64decode("".join(match.group(1).split()))


def encrypted_key_label(pem_text: str):
    """The cosign encrypted-key PEM label used in `pem_text`, or None."""
    return next(
        (label for label in ENCRYPTED_KEY_LABELS if f"-----BEGIN {label}-----" in pem_text), None)


def decrypt_cosign_key(pem_text: str, password: bytes):
    """Decrypts a cosign encrypted private key: scrypt KDF, then nacl/secretbox over PKCS#8 DER."""
    label = encrypted_key_label(pem_text)
    if label is None:
        raise CliError(f"not a cosign encrypted key (expected one of {', '.join(ENCRYPTED_KEY_LABELS)})")
    try:
        body = json.loads(pem_body(pem_text, label))
        kdf, cipher = body["kdf"], body["cipher"]
        params = kdf["params"]
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
        salt = base64.b64decode(kdf["salt"])
        nonce = base64.b64decode(cipher["nonce"])
        ciphertext = base64.b64decode(body["ciphertext"])
    except (ValueError, KeyError, TypeError) as error:
        raise CliError(f"malformed cosign encrypted key: {error}") from error
    if kdf.get("name") != "scrypt" or cipher.get("name") != "nacl/secretbox":
        raise CliError(f"unsupported kdf/cipher {kdf.get('name')!r}/{cipher.get('name')!r}")
    # scrypt needs 128*r*N*p bytes plus change; OpenSSL's default cap (32 MiB) is below cosign's N.
    maxmem = 128 * r * (n + p + 2) + (16 << 20)
    secret = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=maxmem)
    try:
        der = nacl.secret.SecretBox(secret).decrypt(ciphertext, nonce)
    except nacl.exceptions.CryptoError as error:
        raise CliError("cannot decrypt the key: wrong password or corrupt key") from error
    return serialization.load_der_private_key(der, password=None)


def load_private_key(path: str):
    """Reads a PKCS#8 PEM key, or a cosign encrypted key with the password in $COSIGN_PASSWORD."""
    pem_text = Path(path).read_text()
    if encrypted_key_label(pem_text):
        password = os.environ.get("COSIGN_PASSWORD")
        if password is None:
            raise CliError(f"{path} is encrypted: set COSIGN_PASSWORD (may be empty)")
        key = decrypt_cosign_key(pem_text, password.encode("utf-8"))
    else:
        key = serialization.load_pem_private_key(pem_text.encode("ascii"), password=None)
    key_algorithm(key)
    return key


def load_public_key(path: str):
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    key_algorithm(key)
    return key


def sign_bytes(key, data: bytes) -> bytes:
    """cosign's signature schemes: ECDSA P-256 with SHA-256 (ASN.1 DER), or pure Ed25519."""
    if key_algorithm(key) == "p256":
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    return key.sign(data)


def verify_bytes(public_key, signature: bytes, data: bytes) -> bool:
    try:
        if key_algorithm(public_key) == "p256":
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        else:
            public_key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# cosign simple signing


def simple_signing_payload(reference: str, digest: str) -> bytes:
    """The payload cosign signs for an image (containers-signature JSON with cosign's type)."""
    return canonical_json({
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": COSIGN_SIGNATURE_TYPE,
        },
        "optional": None,
    })


def check_simple_signing(payload: bytes, signature_b64: str, public_key, digest: str) -> str:
    """Verifies one simple-signing layer; returns its docker-reference, raises CliError on failure."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except ValueError as error:
        raise CliError(f"signature annotation is not base64: {error}") from error
    if not verify_bytes(public_key, signature, payload):
        raise CliError("signature does not verify over the payload")
    try:
        critical = json.loads(payload)["critical"]
        signed_digest = critical["image"]["docker-manifest-digest"]
        signature_type = critical["type"]
        reference = critical["identity"]["docker-reference"]
    except (ValueError, KeyError, TypeError) as error:
        raise CliError(f"payload is not a simple-signing document: {error}") from error
    if signature_type != COSIGN_SIGNATURE_TYPE:
        raise CliError(f"payload type is {signature_type!r}")
    if signed_digest != digest:
        raise CliError(f"payload signs {signed_digest}, not {digest}")
    return reference


# ---------------------------------------------------------------------------------------------
# DSSE and in-toto


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body."""
    type_bytes = payload_type.encode("utf-8")
    return b" ".join([
        b"DSSEv1", str(len(type_bytes)).encode(), type_bytes, str(len(body)).encode(), body
    ])


def in_toto_statement(subject_name, digest: str, predicate_type: str, predicate,
                      version: str = "v1") -> dict:
    """A statement about `digest`; a subject_name of None leaves the subject without a name, as
    cosign v3's `sign` writes it (in-toto v1 ResourceDescriptor: name is optional)."""
    subject = {} if subject_name is None else {"name": subject_name}
    subject["digest"] = {"sha256": digest.split(":", 1)[1]}
    return {
        "_type": STATEMENT_TYPES[version],
        "subject": [subject],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def dsse_envelope(key, payload_type: str, body: bytes) -> dict:
    """A DSSE JSON envelope with one signature and an empty keyid, as cosign writes it."""
    signature = sign_bytes(key, pae(payload_type, body))
    return {
        "payloadType": payload_type,
        "payload": b64encode(body),
        "signatures": [{"keyid": "", "sig": b64encode(signature)}],
    }


def verify_envelope(envelope: dict, public_key) -> bytes:
    """Verifies a DSSE envelope with securesystemslib; returns the payload bytes.

    securesystemslib only tries a key whose keyid equals the signature's keyid (its docs note this
    is stricter than DSSE, where keyid is an unauthenticated hint and unset means empty), and it
    rejects envelopes in which two signatures share a keyid. cosign writes keyid "" for every
    signature. So, per the DSSE rule that several signatures are equivalent to separate envelopes,
    each signature is checked in its own one-signature envelope against an SSlibKey built from the
    public key with that signature's keyid ("" when unset). One valid signature suffices.
    """
    try:
        template = SSlibKey.from_crypto(public_key)
        signatures = envelope["signatures"]
        if not isinstance(signatures, list) or not signatures:
            raise CliError("envelope has no signatures")
        payload = None
        for signature in signatures:
            keyid = signature.get("keyid") or ""
            single = copy.deepcopy(envelope)
            single["signatures"] = [{**copy.deepcopy(signature), "keyid": keyid}]
            parsed = Envelope.from_dict(single)  # from_dict consumes its argument: hence the copies
            key = SSlibKey(keyid, template.keytype, template.scheme, dict(template.keyval))
            try:
                parsed.verify([key], 1)
            except sslib_exceptions.VerificationError:
                continue
            payload = parsed.payload
            break
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CliError(f"malformed DSSE envelope: {error}") from error
    if payload is None:
        raise CliError("no DSSE signature verifies with the public key")
    return payload


def check_statement(payload_type: str, payload: bytes, predicate_type, digest) -> dict:
    """Parses an in-toto statement from a verified payload and checks its type and subject."""
    if payload_type != INTOTO_PAYLOAD_TYPE:
        raise CliError(f"payloadType is {payload_type!r}, not {INTOTO_PAYLOAD_TYPE}")
    try:
        statement = json.loads(payload)
        statement_type = statement["_type"]
        subjects = statement["subject"]
        statement_predicate_type = statement["predicateType"]
    except (ValueError, KeyError, TypeError) as error:
        raise CliError(f"payload is not an in-toto statement: {error}") from error
    if statement_type not in STATEMENT_TYPES.values():
        raise CliError(f"unknown statement _type {statement_type!r}")
    if predicate_type is not None and statement_predicate_type != predicate_type:
        raise CliError(f"predicateType is {statement_predicate_type!r}, not {predicate_type!r}")
    if digest is not None:
        hex_digest = digest.split(":", 1)[1]
        if not any(isinstance(s, dict) and (s.get("digest") or {}).get("sha256") == hex_digest
                   for s in subjects):
            raise CliError(f"no statement subject has sha256 {hex_digest}")
    return statement


# ---------------------------------------------------------------------------------------------
# Sigstore bundles (protobuf-specs sigstore_bundle.proto v0.3, in the protobuf JSON mapping)
#
# Field names are the proto3 JSON names (lowerCamelCase), `bytes` fields are standard base64 with
# padding, enums are their value names. A key-signed bundle carries a PublicKeyIdentifier (an
# optional, unauthenticated `hint`) instead of a certificate; without a transparency log its
# `tlogEntries` is empty. Go's protojson, which writes cosign's bundles, omits empty fields: an
# empty hint, an empty DSSE keyid and an empty tlogEntries list do not appear at all.


def cosign_key_hint(public_key) -> str:
    """The hint cosign v3 writes for a key (internal/key/svkeypair.go): base64 of the SHA-256 of
    the SubjectPublicKeyInfo DER."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64encode(hashlib.sha256(der).digest())


def proto_bytes(value, field: str) -> bytes:
    """Decodes a protobuf JSON `bytes` field: standard or URL-safe base64, padded or not."""
    if not isinstance(value, str):
        raise CliError(f"{field} is not a base64 string")
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError as error:
        raise CliError(f"{field} is not base64: {error}") from error


def digest_bytes(digest: str) -> bytes:
    """The raw 32 bytes of a sha256:<hex> digest."""
    return bytes.fromhex(check_digest(digest).split(":", 1)[1])


def sign_message_digest(key, digest: str, message: bytes = None) -> bytes:
    """A MessageSignature signature over the message whose SHA-256 is `digest`.

    ECDSA P-256 signs the digest itself (prehashed, so the message is not needed); pure Ed25519
    cannot sign a digest, so it signs `message`, which must hash to `digest`."""
    if key_algorithm(key) == "p256":
        return key.sign(digest_bytes(digest), ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    if message is None or sha256_digest(message) != digest:
        raise CliError(f"Ed25519 signs the message itself: the bytes of {digest} are needed")
    return key.sign(message)


def verify_message_digest(public_key, signature: bytes, digest: str, message: bytes = None) -> bool:
    try:
        if key_algorithm(public_key) == "p256":
            public_key.verify(signature, digest_bytes(digest),
                              ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        else:
            if message is None or sha256_digest(message) != digest:
                raise CliError(f"Ed25519 verifies over the message: the bytes of {digest} are needed")
            public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def message_signature_content(key, digest: str, message: bytes = None) -> dict:
    """sigstore_common.proto MessageSignature over the artifact whose SHA-256 is `digest`."""
    return {
        "messageDigest": {"algorithm": "SHA2_256", "digest": b64encode(digest_bytes(digest))},
        "signature": b64encode(sign_message_digest(key, digest, message)),
    }


def dsse_bundle_content(key, payload_type: str, body: bytes, keyid: str) -> dict:
    """envelope.proto Envelope with exactly one signature (a bundle's DSSE envelope MUST have one)."""
    signature = {"sig": b64encode(sign_bytes(key, pae(payload_type, body)))}
    if keyid:
        signature["keyid"] = keyid
    return {"payload": b64encode(body), "payloadType": payload_type, "signatures": [signature]}


def sigstore_bundle(content_field: str, content: dict, hint: str = "",
                    tlog_entries: bool = True) -> dict:
    """A key-signed bundle v0.3: `content_field` is "dsseEnvelope" or "messageSignature".

    `tlog_entries=False` leaves the empty list out, as protojson (and so cosign) writes it."""
    material = {"publicKey": {"hint": hint} if hint else {}}
    if tlog_entries:
        material["tlogEntries"] = []
    return {"mediaType": BUNDLE_MEDIA_TYPE, "verificationMaterial": material, content_field: content}


def verify_bundle(bundle, public_key, digest: str, predicate_type=None, message: bytes = None):
    """Verifies a key-signed bundle for the artifact `digest`; returns a summary dict.

    Checked, from sigstore_bundle.proto: a known media type; verification material that is a
    public key identifier (certificates are out of scope here); exactly one of messageSignature
    and dsseEnvelope; a DSSE envelope with exactly one signature, whose keyid, when set, equals
    the hint ("the key hints MUST be exactly the same" -- an unset keyid is accepted, because
    cosign v3 and sigstore-go write the hint but never the keyid). A DSSE envelope must carry an
    in-toto statement about `digest` (and of `predicate_type`, if given). A message signature is
    verified over `digest` itself, never over its messageDigest field, which the spec says is for
    identification only; that field must name the same digest.
    """
    if not isinstance(bundle, dict):
        raise CliError("bundle is not a JSON object")
    media_type = bundle.get("mediaType")
    if media_type not in BUNDLE_MEDIA_TYPES:
        raise CliError(f"unknown bundle mediaType {media_type!r}")
    material = bundle.get("verificationMaterial")
    if not isinstance(material, dict):
        raise CliError("bundle has no verificationMaterial")
    forms = [f for f in ("publicKey", "x509CertificateChain", "certificate") if f in material]
    if forms != ["publicKey"]:
        raise CliError(f"verificationMaterial must be a publicKey identifier, has {forms}")
    if not isinstance(material["publicKey"], dict):
        raise CliError("verificationMaterial.publicKey is not an object")
    hint = material["publicKey"].get("hint", "")
    if not isinstance(material.get("tlogEntries", []), list):
        raise CliError("verificationMaterial.tlogEntries is not a list")
    contents = [f for f in ("messageSignature", "dsseEnvelope") if f in bundle]
    if len(contents) != 1:
        raise CliError(f"a bundle has exactly one of messageSignature, dsseEnvelope; has {contents}")
    summary = {"media_type": media_type, "hint": hint}
    if contents == ["dsseEnvelope"]:
        envelope = bundle["dsseEnvelope"]
        signatures = envelope.get("signatures") if isinstance(envelope, dict) else None
        if not isinstance(signatures, list) or len(signatures) != 1:
            raise CliError("a bundle's DSSE envelope must have exactly one signature")
        keyid = signatures[0].get("keyid", "") if isinstance(signatures[0], dict) else ""
        if keyid and hint and keyid != hint:
            raise CliError(f"DSSE keyid {keyid!r} differs from the bundle's key hint {hint!r}")
        payload = verify_envelope(envelope, public_key)
        statement = check_statement(envelope["payloadType"], payload, predicate_type, digest)
        summary.update(content="dsse-envelope", statement=statement)
        return summary
    signature = bundle["messageSignature"]
    if not isinstance(signature, dict):
        raise CliError("messageSignature is not an object")
    message_digest = signature.get("messageDigest") or {}
    if message_digest.get("algorithm") != "SHA2_256":
        raise CliError(f"messageDigest.algorithm is {message_digest.get('algorithm')!r}")
    named = proto_bytes(message_digest.get("digest"), "messageDigest.digest")
    if not verify_message_digest(public_key, proto_bytes(signature.get("signature"), "signature"),
                                 digest, message):
        raise CliError(f"the message signature does not verify over {digest}")
    if named != digest_bytes(digest):
        raise CliError(f"messageDigest names sha256:{named.hex()}, not {digest}")
    summary.update(content="message-signature")
    return summary


# ---------------------------------------------------------------------------------------------
# Registry client (OCI distribution API, HTTP Basic on every request)


class Registry:
    """A minimal OCI distribution client for one repository."""

    def __init__(self, url: str, user: str, password: str, repo: str):
        self.base = url.rstrip("/")
        self.host = urllib.parse.urlsplit(self.base).netloc
        self.repo = repo
        token = b64encode(f"{user}:{password}".encode("utf-8"))
        self.auth = f"Basic {token}"

    def request(self, method: str, url: str, body: bytes = None, headers=None, ok=(200,)):
        """Sends a request; returns (status, headers, body); raises CliError unless status is in `ok`."""
        if not url.startswith(("http://", "https://")):
            url = self.base + url
        request = urllib.request.Request(url, data=body, method=method)
        request.add_header("Authorization", self.auth)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request) as response:
                status, response_headers, data = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, response_headers, data = error.code, error.headers, error.read()
        if status not in ok:
            raise CliError(f"{method} {url}: HTTP {status}: {data.decode('utf-8', 'replace')}")
        return status, response_headers, data

    def blob_exists(self, digest: str) -> bool:
        status, _, _ = self.request("HEAD", f"/v2/{self.repo}/blobs/{digest}", ok=(200, 404))
        return status == 200

    def push_blob(self, data: bytes) -> str:
        """Monolithic upload: POST to open a session, PUT the bytes with ?digest=."""
        digest = sha256_digest(data)
        if self.blob_exists(digest):
            return digest
        _, headers, _ = self.request("POST", f"/v2/{self.repo}/blobs/uploads/", body=b"", ok=(202,))
        location = headers.get("Location")
        if not location:
            raise CliError("upload session has no Location header")
        location = urllib.parse.urljoin(self.base + "/", location)
        separator = "&" if urllib.parse.urlsplit(location).query else "?"
        url = f"{location}{separator}{urllib.parse.urlencode({'digest': digest})}"
        self.request("PUT", url, body=data, headers={"Content-Type": "application/octet-stream"},
                     ok=(201,))
        return digest

    def get_blob(self, digest: str) -> bytes:
        _, _, data = self.request("GET", f"/v2/{self.repo}/blobs/{digest}")
        if sha256_digest(data) != digest:
            raise CliError(f"blob {digest} has the wrong content (sha256 {sha256_digest(data)})")
        return data

    def get_manifest(self, reference: str):
        """Returns (bytes, media type, digest) of a manifest, or None if there is none."""
        status, headers, data = self.request(
            "GET", f"/v2/{self.repo}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT},
            ok=(200, 404))
        if status == 404:
            return None
        digest = sha256_digest(data)
        if reference.startswith("sha256:") and digest != reference:
            raise CliError(f"manifest {reference} has the wrong content (sha256 {digest})")
        media_type = (headers.get("Content-Type") or "").split(";")[0].strip()
        return data, media_type or json.loads(data).get("mediaType", ""), digest

    def put_manifest(self, reference: str, data: bytes, media_type: str = OCI_MANIFEST) -> str:
        _, headers, _ = self.request("PUT", f"/v2/{self.repo}/manifests/{reference}", body=data,
                                     headers={"Content-Type": media_type}, ok=(201,))
        digest = sha256_digest(data)
        returned = headers.get("Docker-Content-Digest")
        if returned and returned != digest:
            raise CliError(f"registry says the manifest digest is {returned}, not {digest}")
        return digest

    def subject_descriptor(self, digest: str) -> dict:
        """The descriptor of the target manifest, for a referrer's `subject`."""
        found = self.get_manifest(digest)
        if found is None:
            raise CliError(f"no manifest {digest} in {self.repo}")
        data, media_type, _ = found
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def referrers(self, digest: str) -> list:
        """All descriptors listed by the referrers API for `digest`, following Link pagination."""
        url, found = f"/v2/{self.repo}/referrers/{digest}", []
        while url:
            _, headers, data = self.request("GET", url, headers={"Accept": OCI_INDEX})
            found.extend(json.loads(data).get("manifests") or [])
            next_link = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', headers.get("Link") or "")
            url = urllib.parse.urljoin(self.base + "/", next_link.group(1)) if next_link else None
        return found


# ---------------------------------------------------------------------------------------------
# cosign storage layouts


def cosign_tag(digest: str, suffix: str) -> str:
    """The tag-scheme location: sha256:<hex> -> sha256-<hex>.<suffix>."""
    return digest.replace(":", "-") + "." + suffix


def signature_image_config(layers: list, created: str) -> bytes:
    """The image config cosign writes for a tag-scheme signature image (observed from cosign 1.13):
    an empty image whose rootfs lists each layer digest, with one zero-time history entry per layer."""
    return canonical_json({
        "architecture": "",
        "created": created,
        "history": [{"created": "0001-01-01T00:00:00Z"} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        "config": {},
    })


def tag_scheme_manifest(layers: list, created: str):
    """(manifest bytes, config bytes) of a cosign signature/attestation image with `layers`."""
    config = signature_image_config(layers, created)
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": layers,
    })
    return manifest, config


def signature_referrer_manifest(layers: list, subject: dict, style: str, created: str):
    """(manifest bytes, config bytes) of an OCI 1.1 signature referrer.

    empty-config: top-level artifactType and the OCI empty config `{}`;
    config-only: what cosign <= 2.6.x wrote (WriteSignaturesExperimentalOCI before cosign#4997):
      the tag-scheme image with config.mediaType replaced by the artifact type, no artifactType;
    config-and-artifact-type: the same plus top-level artifactType (cosign after #4997).
    """
    if style == "empty-config":
        config = EMPTY_JSON
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SIG_ARTIFACT_TYPE,
                    "config": descriptor(OCI_EMPTY, config), "layers": layers, "subject": subject}
    else:
        config = signature_image_config(layers, created)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": descriptor(SIG_ARTIFACT_TYPE, config), "layers": layers,
                    "subject": subject}
        if style == "config-and-artifact-type":
            manifest["artifactType"] = SIG_ARTIFACT_TYPE
    return canonical_json(manifest), config


def attestation_referrer_manifest(layers: list, subject: dict, artifact_type: str, created: str):
    """(manifest bytes, config bytes) of an OCI 1.1 attestation referrer, shaped like cosign's
    WriteReferrer: empty config `{}` whose descriptor also carries artifactType, layer descriptors
    without annotations, and an org.opencontainers.image.created manifest annotation."""
    config = EMPTY_JSON
    config_descriptor = {"mediaType": OCI_EMPTY, "artifactType": artifact_type,
                         "size": len(config), "digest": sha256_digest(config)}
    bare_layers = [{k: layer[k] for k in ("mediaType", "size", "digest")} for layer in layers]
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
                "config": config_descriptor, "layers": bare_layers, "subject": subject,
                "annotations": {CREATED_ANNOTATION: created}}
    return canonical_json(manifest), config


def bundle_referrer_manifest(bundle_bytes: bytes, subject: dict, content: str, predicate_type,
                             created: str):
    """(manifest bytes, config bytes) of a bundle referrer as cosign v3 writes it
    (pkg/oci/remote/write.go WriteAttestationNewBundleFormat, specs/BUNDLE_SPEC.md): artifactType
    and the one layer's media type are the bundle media type, the config is the OCI empty `{}`
    (its descriptor also carries artifactType), and the manifest annotations name the content
    ("dsse-envelope" / "message-signature"), the predicate type and the creation time."""
    config = EMPTY_JSON
    config_descriptor = {"mediaType": OCI_EMPTY, "artifactType": BUNDLE_MEDIA_TYPE,
                         "size": len(config), "digest": sha256_digest(config)}
    annotations = {CREATED_ANNOTATION: created, BUNDLE_CONTENT_ANNOTATION: content}
    if predicate_type is not None:
        annotations[BUNDLE_PREDICATE_TYPE_ANNOTATION] = predicate_type
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE_MEDIA_TYPE,
                "config": config_descriptor,
                "layers": [descriptor(BUNDLE_MEDIA_TYPE, bundle_bytes)], "subject": subject,
                "annotations": annotations}
    return canonical_json(manifest), config


def push_to_tag(registry: Registry, digest: str, suffix: str, layer: dict, layer_bytes: bytes):
    """Adds a layer to the cosign tag for `digest`, appending to an existing image as cosign does.

    The config is rebuilt for the whole layer list (cosign's append yields the same diff_ids and
    history); returns (manifest digest, tag)."""
    tag = cosign_tag(digest, suffix)
    layers = []
    existing = registry.get_manifest(tag)
    if existing is not None:
        layers = json.loads(existing[0]).get("layers") or []
    layers.append(layer)
    registry.push_blob(layer_bytes)
    manifest, config = tag_scheme_manifest(layers, now_rfc3339())
    registry.push_blob(config)
    return registry.put_manifest(tag, manifest), tag


def push_referrer(registry: Registry, manifest: bytes, config: bytes, layer_bytes: bytes) -> str:
    registry.push_blob(layer_bytes)
    registry.push_blob(config)
    return registry.put_manifest(sha256_digest(manifest), manifest)


def manifests_for(registry: Registry, digest: str, suffix: str, artifact_types, referrer: bool):
    """The cosign manifests attached to `digest`: the tag-scheme image, or referrers of the types."""
    if not referrer:
        found = registry.get_manifest(cosign_tag(digest, suffix))
        return [json.loads(found[0])] if found else []
    manifests = []
    for entry in registry.referrers(digest):
        if entry.get("artifactType") not in artifact_types:
            continue
        found = registry.get_manifest(entry["digest"])
        if found is None:
            raise CliError(f"referrer {entry['digest']} is listed but missing")
        manifest = json.loads(found[0])
        if (manifest.get("subject") or {}).get("digest") != digest:
            raise CliError(f"referrer {entry['digest']} has subject {manifest.get('subject')}")
        manifests.append(manifest)
    return manifests


# ---------------------------------------------------------------------------------------------
# Subcommands


def cmd_keygen(args):
    key = generate_private_key(args.algorithm)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out_dir / "key.pem", out_dir / "key.pub"
    private_path.write_bytes(private_key_pem(key))
    private_path.chmod(0o600)
    public_path.write_bytes(public_key_pem(key.public_key()))
    return {"private": str(private_path), "public": str(public_path)}


def cmd_decrypt_key(args):
    key = decrypt_cosign_key(Path(args.key).read_text(), args.password.encode("utf-8"))
    return {"public_pem": public_key_pem(key.public_key()).decode("ascii"),
            "algorithm": key_algorithm(key)}


def registry_from(args) -> Registry:
    check_digest(args.digest)
    return Registry(args.registry, args.user, args.password, args.repo)


def cmd_sign(args):
    registry = registry_from(args)
    key = load_private_key(args.key)
    reference = args.reference or f"{registry.host}/{args.repo}"
    payload = simple_signing_payload(reference, args.digest)
    signature = b64encode(sign_bytes(key, payload))
    layer = descriptor(SIMPLE_SIGNING_MEDIA_TYPE, payload, {SIGNATURE_ANNOTATION: signature})
    if args.referrer:
        subject = registry.subject_descriptor(args.digest)
        manifest, config = signature_referrer_manifest(
            [layer], subject, args.referrer_style, now_rfc3339())
        manifest_digest, tag = push_referrer(registry, manifest, config, payload), None
    else:
        manifest_digest, tag = push_to_tag(registry, args.digest, "sig", layer, payload)
    return {"manifest_digest": manifest_digest, "tag": tag,
            "payload": b64encode(payload), "signature": signature}


def cmd_attest(args):
    registry = registry_from(args)
    key = load_private_key(args.key)
    subject_digest = check_digest(args.subject_digest or args.digest)
    predicate = json.loads(Path(args.predicate).read_text())
    subject_name = args.reference or f"{registry.host}/{args.repo}"
    statement = in_toto_statement(subject_name, subject_digest, args.predicate_type, predicate,
                                  args.statement_version)
    envelope = dsse_envelope(key, args.payload_type, canonical_json(statement))
    envelope_bytes = canonical_json(envelope)
    if args.out:
        Path(args.out).write_bytes(envelope_bytes)
    layer = descriptor(DSSE_MEDIA_TYPE, envelope_bytes,
                       {SIGNATURE_ANNOTATION: "", PREDICATE_TYPE_ANNOTATION: args.predicate_type})
    if args.referrer:
        subject = registry.subject_descriptor(args.digest)
        manifest, config = attestation_referrer_manifest(
            [layer], subject, args.artifact_type, now_rfc3339())
        manifest_digest, tag = push_referrer(registry, manifest, config, envelope_bytes), None
    else:
        manifest_digest, tag = push_to_tag(registry, args.digest, "att", layer, envelope_bytes)
    return {"manifest_digest": manifest_digest, "tag": tag, "envelope": envelope}


def cmd_bundle(args):
    registry = registry_from(args)
    key = load_private_key(args.key)
    signed_digest = check_digest(args.subject_digest or args.digest)
    hint = cosign_key_hint(key.public_key()) if args.hint_from_key else (args.hint or "")
    keyid = hint if args.dsse_keyid is None else args.dsse_keyid
    if args.mode == "dsse":
        predicate_type = args.predicate_type or COSIGN_SIGN_PREDICATE_TYPE
        predicate = json.loads(Path(args.predicate).read_text()) if args.predicate else {}
        subject_name = args.subject_name
        if subject_name is None and predicate_type != COSIGN_SIGN_PREDICATE_TYPE:
            subject_name = f"{registry.host}/{args.repo}"  # cosign attest: the repository
        statement = in_toto_statement(subject_name or None, signed_digest, predicate_type,
                                      predicate)
        field, kind = "dsseEnvelope", "dsse-envelope"
        content = dsse_bundle_content(key, INTOTO_PAYLOAD_TYPE, canonical_json(statement), keyid)
    else:
        if args.predicate_type or args.predicate or args.subject_name is not None:
            raise CliError("--predicate-type, --predicate and --subject-name are for --mode dsse")
        message = None
        if key_algorithm(key) == "ed25519":
            found = registry.get_manifest(signed_digest)
            if found is None:
                raise CliError(f"no manifest {signed_digest} in {args.repo} to sign")
            message = found[0]
        predicate_type, field, kind = None, "messageSignature", "message-signature"
        content = message_signature_content(key, signed_digest, message)
    bundle = sigstore_bundle(field, content, hint, tlog_entries=not args.omit_tlog_entries)
    bundle_bytes = canonical_json(bundle)
    if args.out:
        Path(args.out).write_bytes(bundle_bytes)
    manifest_digest = None
    if not args.no_push:
        subject = registry.subject_descriptor(args.digest)
        manifest, config = bundle_referrer_manifest(bundle_bytes, subject, kind, predicate_type,
                                                    now_rfc3339())
        manifest_digest = push_referrer(registry, manifest, config, bundle_bytes)
    return {"manifest_digest": manifest_digest, "bundle": bundle}


def cmd_verify(args):
    registry = registry_from(args)
    public_key = load_public_key(args.pub)
    verified, failures, references = 0, [], []
    for manifest in manifests_for(registry, args.digest, "sig", {SIG_ARTIFACT_TYPE}, args.referrer):
        for layer in manifest.get("layers") or []:
            if layer.get("mediaType") != SIMPLE_SIGNING_MEDIA_TYPE:
                continue
            try:
                payload = registry.get_blob(layer["digest"])
                signature = (layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION)
                if signature is None:
                    raise CliError("layer has no signature annotation")
                references.append(check_simple_signing(payload, signature, public_key, args.digest))
                verified += 1
            except CliError as error:
                failures.append({"layer": layer.get("digest"), "reason": str(error)})
    result = {"verified": verified, "failed": len(failures), "docker_references": references,
              "failures": failures}
    return result, verified > 0


def cmd_verify_attestation(args):
    registry = registry_from(args)
    public_key = load_public_key(args.pub)
    verified, predicate_types, failures = 0, [], []
    artifact_types = {DSSE_MEDIA_TYPE, INTOTO_PAYLOAD_TYPE}
    for manifest in manifests_for(registry, args.digest, "att", artifact_types, args.referrer):
        for layer in manifest.get("layers") or []:
            if layer.get("mediaType") != DSSE_MEDIA_TYPE:
                continue
            try:
                envelope = json.loads(registry.get_blob(layer["digest"]))
                payload = verify_envelope(envelope, public_key)
                statement = check_statement(envelope["payloadType"], payload, None, None)
                predicate_types.append(statement["predicateType"])
                check_statement(envelope["payloadType"], payload, args.type, args.digest)
                verified += 1
            except (CliError, ValueError, KeyError) as error:
                failures.append({"layer": layer.get("digest"), "reason": str(error)})
    result = {"verified": verified, "predicate_types": predicate_types, "failures": failures}
    return result, verified > 0


def cmd_verify_dsse(args):
    envelope = json.loads(Path(args.envelope).read_text())
    payload = verify_envelope(envelope, load_public_key(args.pub))
    payload_type = envelope["payloadType"]
    if args.type is not None:
        statement = check_statement(payload_type, payload, args.type, None)
    else:
        try:
            statement = json.loads(payload)
        except ValueError as error:
            raise CliError(f"payload is not JSON: {error}") from error
    return {"payload_type": payload_type, "statement": statement}


def cmd_verify_bundle(args):
    bundle = json.loads(Path(args.bundle).read_text())
    message = Path(args.manifest).read_bytes() if args.manifest else None
    return verify_bundle(bundle, load_public_key(args.pub), check_digest(args.digest), args.type,
                         message)


# ---------------------------------------------------------------------------------------------
# Command line


def add_registry_args(parser, referrer_flag: bool = True):
    parser.add_argument("--registry", required=True,
                        help="registry base URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--repo", required=True, help="repository name, e.g. dev/team/app")
    parser.add_argument("--digest", required=True, help="digest of the target manifest (sha256:...)")
    if referrer_flag:
        parser.add_argument("--referrer", action="store_true",
                            help="use the OCI 1.1 referrers API instead of the cosign tag scheme")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    keygen = commands.add_parser("keygen", help="write key.pem (PKCS#8) and key.pub (SPKI)")
    keygen.add_argument("--out-dir", required=True)
    keygen.add_argument("--algorithm", choices=("p256", "ed25519"), default="p256")
    keygen.set_defaults(func=cmd_keygen)

    decrypt = commands.add_parser("decrypt-key", help="decrypt a cosign encrypted private key")
    decrypt.add_argument("--key", required=True)
    decrypt.add_argument("--password", required=True)
    decrypt.set_defaults(func=cmd_decrypt_key)

    key_help = "PKCS#8 PEM private key, or a cosign encrypted key (password in $COSIGN_PASSWORD)"
    sign = commands.add_parser("sign", help="push a cosign simple-signing signature")
    add_registry_args(sign)
    sign.add_argument("--key", required=True, help=key_help)
    sign.add_argument("--reference", help="docker-reference to sign (default HOST:PORT/REPO)")
    sign.add_argument("--referrer-style", choices=REFERRER_STYLES, default="empty-config",
                      help="--referrer manifest layout: empty-config (artifactType + OCI empty "
                           "config), config-only (config.mediaType = sig type, no artifactType: "
                           "cosign <= 2.6.x), config-and-artifact-type (cosign after #4997)")
    sign.set_defaults(func=cmd_sign)

    attest = commands.add_parser("attest", help="push a DSSE-wrapped in-toto attestation")
    add_registry_args(attest)
    attest.add_argument("--key", required=True, help=key_help)
    attest.add_argument("--predicate-type", required=True)
    attest.add_argument("--predicate", required=True, help="JSON file holding the predicate")
    attest.add_argument("--statement-version", choices=tuple(STATEMENT_TYPES), default="v1")
    attest.add_argument("--payload-type", default=INTOTO_PAYLOAD_TYPE,
                        help="DSSE payloadType (override only to test rejections)")
    attest.add_argument("--subject-digest", help="statement subject digest (default --digest)")
    attest.add_argument("--reference", help="statement subject name (default HOST:PORT/REPO)")
    attest.add_argument("--artifact-type", default=DSSE_MEDIA_TYPE,
                        help=f"artifactType of the --referrer manifest (cosign itself uses "
                             f"{INTOTO_PAYLOAD_TYPE})")
    attest.add_argument("--out", help="also write the envelope JSON to this file")
    attest.set_defaults(func=cmd_attest)

    bundle = commands.add_parser(
        "bundle", help="push a key-signed Sigstore bundle v0.3 as an OCI 1.1 referrer (cosign v3)")
    add_registry_args(bundle, referrer_flag=False)
    bundle.add_argument("--key", required=True, help=key_help)
    bundle.add_argument("--mode", choices=BUNDLE_MODES, required=True,
                        help="dsse: a DSSE envelope holding an in-toto v1 statement about the "
                             "digest; message: a messageSignature over the manifest bytes")
    bundle.add_argument("--predicate-type",
                        help=f"statement predicateType (default {COSIGN_SIGN_PREDICATE_TYPE}, "
                             f"what `cosign sign` v3 writes, with predicate {{}})")
    bundle.add_argument("--predicate", help="JSON file holding the predicate (default {})")
    bundle.add_argument("--subject-name",
                        help="statement subject name; '' for none (default: none for the cosign "
                             "sign predicate, as cosign sign writes, else HOST:PORT/REPO)")
    bundle.add_argument("--subject-digest",
                        help="the artifact the statement or message signature is about "
                             "(default --digest; the referrer's subject stays --digest)")
    hints = bundle.add_mutually_exclusive_group()
    hints.add_argument("--hint", help="verificationMaterial.publicKey.hint (default: none)")
    hints.add_argument("--hint-from-key", action="store_true",
                       help="the hint cosign v3 writes: base64(sha256(SPKI DER))")
    bundle.add_argument("--dsse-keyid",
                        help="the DSSE signature's keyid (default: the hint, as protobuf-specs "
                             "requires; cosign v3 writes none: pass '')")
    bundle.add_argument("--omit-tlog-entries", action="store_true",
                        help="leave out the empty tlogEntries list, as Go's protojson does")
    bundle.add_argument("--no-push", action="store_true",
                        help="only build the bundle (with --out); push nothing")
    bundle.add_argument("--out", help="also write the bundle JSON to this file")
    bundle.set_defaults(func=cmd_bundle)

    verify = commands.add_parser("verify", help="verify cosign signatures of an image")
    add_registry_args(verify)
    verify.add_argument("--pub", required=True)
    verify.set_defaults(func=cmd_verify)

    verify_att = commands.add_parser("verify-attestation", help="verify cosign attestations")
    add_registry_args(verify_att)
    verify_att.add_argument("--pub", required=True)
    verify_att.add_argument("--type", required=True, help="required predicateType URI")
    verify_att.set_defaults(func=cmd_verify_attestation)

    verify_dsse = commands.add_parser("verify-dsse", help="verify a DSSE envelope file")
    verify_dsse.add_argument("--envelope", required=True)
    verify_dsse.add_argument("--pub", required=True)
    verify_dsse.add_argument("--type", help="require an in-toto statement with this predicateType")
    verify_dsse.set_defaults(func=cmd_verify_dsse)

    verify_bundle_cmd = commands.add_parser("verify-bundle",
                                            help="verify a key-signed Sigstore bundle file")
    verify_bundle_cmd.add_argument("--bundle", required=True)
    verify_bundle_cmd.add_argument("--pub", required=True)
    verify_bundle_cmd.add_argument("--digest", required=True, help="the artifact (sha256:...)")
    verify_bundle_cmd.add_argument("--type", help="require a statement with this predicateType")
    verify_bundle_cmd.add_argument("--manifest",
                                   help="the artifact's bytes (needed for Ed25519 message "
                                        "signatures)")
    verify_bundle_cmd.set_defaults(func=cmd_verify_bundle)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except (CliError, OSError, ValueError) as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return 1
    result, ok = result if isinstance(result, tuple) else (result, True)
    print(json.dumps(result))
    if not ok:
        print(f"{args.command}: nothing verified", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
