#!/usr/bin/env python3
"""A stand-in for a CI's OIDC issuer, for trying `airlock login --oidc` without GitHub or GitLab.

    oidc_test_issuer.py keygen DIR
        writes DIR/issuer-key.pem (an ECDSA P-256 private key) and DIR/jwks.json (its public key
        as a JWKS, for an [[access.oidc]] rule's jwks_file)
    oidc_test_issuer.py token DIR --issuer URL --audience AUD [--claim NAME=VALUE ...] [--ttl SECS]
        prints an ES256 ID token signed with DIR/issuer-key.pem, as a CI job would receive it

Needs python3 with the `cryptography` package (Debian: python3-cryptography).
"""
import argparse
import base64
import json
import os
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

KID = "test-issuer-1"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def keygen(directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = os.path.join(directory, "issuer-key.pem")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        out.write(pem)
    numbers = key.public_key().public_numbers()
    jwk = {
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": KID,
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }
    with open(os.path.join(directory, "jwks.json"), "w") as out:
        json.dump({"keys": [jwk]}, out)


def token(args: argparse.Namespace) -> None:
    with open(os.path.join(args.dir, "issuer-key.pem"), "rb") as pem:
        key = serialization.load_pem_private_key(pem.read(), password=None)
    now = int(time.time())
    claims = {"iss": args.issuer, "aud": args.audience, "iat": now - 5, "nbf": now - 5,
              "exp": now + args.ttl}
    for claim in args.claim:
        name, _, value = claim.partition("=")
        if not value:
            sys.exit(f"--claim {claim!r}: use NAME=VALUE")
        claims[name] = value
    header = {"alg": "ES256", "typ": "JWT", "kid": KID}
    signing_input = (b64url(json.dumps(header).encode()) + "." +
                     b64url(json.dumps(claims).encode()))
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    print(signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    keygen_args = commands.add_parser("keygen", help="write a key and its JWKS")
    keygen_args.add_argument("dir")
    token_args = commands.add_parser("token", help="print a signed ID token")
    token_args.add_argument("dir")
    token_args.add_argument("--issuer", required=True)
    token_args.add_argument("--audience", required=True)
    token_args.add_argument("--claim", action="append", default=[])
    token_args.add_argument("--ttl", type=int, default=300)
    args = parser.parse_args()
    if args.command == "keygen":
        keygen(args.dir)
    else:
        token(args)


if __name__ == "__main__":
    main()
