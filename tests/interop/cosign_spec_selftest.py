#!/usr/bin/env python3
"""Self-check of cosign_spec.py without a registry.

Usage: cosign_spec_selftest.py [--fixtures DIR] [unittest options]

DIR (default: tests/fixtures/cosign under the repository root) holds the real cosign fixtures:
cosign_generated_encrypted_empty_private.key and real_signature.{pub,payload.json,sig.b64}.
Checks sign/verify round trips of simple-signing payloads and DSSE envelopes in memory (DSSE
verification goes through securesystemslib), the manifest layouts, decrypt-key on the real
cosign key (empty password accepted, a wrong one refused), and the real cosign signature
(verifies, and fails once one byte changes).
"""
import argparse
import base64
import json
import subprocess
import sys
import tempfile
import unittest
import unittest.mock
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cosign_spec as cs  # noqa: E402  (needs the path above)

SCRIPT = HERE / "cosign_spec.py"
FIXTURES = HERE.parent / "fixtures" / "cosign"
DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"


def run_cli(*args, env=None):
    """Runs cosign_spec.py; returns (exit status, parsed stdout or None, stderr)."""
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env)
    stdout = json.loads(done.stdout) if done.stdout.strip() else None
    return done.returncode, stdout, done.stderr


def flip_byte(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


class SimpleSigningTest(unittest.TestCase):
    def test_payload_bytes_match_real_cosign(self):
        payload = (FIXTURES / "real_signature.payload.json").read_bytes()
        critical = json.loads(payload)["critical"]
        rebuilt = cs.simple_signing_payload(critical["identity"]["docker-reference"],
                                            critical["image"]["docker-manifest-digest"])
        self.assertEqual(rebuilt, payload)

    def test_round_trip_each_algorithm(self):
        for algorithm in ("p256", "ed25519"):
            with self.subTest(algorithm=algorithm):
                key = cs.generate_private_key(algorithm)
                payload = cs.simple_signing_payload("example.test/dev/app", DIGEST)
                signature = base64.b64encode(cs.sign_bytes(key, payload)).decode()
                public = key.public_key()
                self.assertEqual(cs.check_simple_signing(payload, signature, public, DIGEST),
                                 "example.test/dev/app")
                with self.assertRaises(cs.CliError):
                    cs.check_simple_signing(flip_byte(payload, 20), signature, public, DIGEST)
                with self.assertRaises(cs.CliError):
                    cs.check_simple_signing(payload, signature, public, OTHER_DIGEST)
                other = cs.generate_private_key(algorithm).public_key()
                with self.assertRaises(cs.CliError):
                    cs.check_simple_signing(payload, signature, other, DIGEST)

    def test_real_cosign_signature(self):
        public = cs.load_public_key(str(FIXTURES / "real_signature.pub"))
        payload = (FIXTURES / "real_signature.payload.json").read_bytes()
        signature = (FIXTURES / "real_signature.sig.b64").read_text().strip()
        digest = json.loads(payload)["critical"]["image"]["docker-manifest-digest"]
        self.assertEqual(cs.check_simple_signing(payload, signature, public, digest),
                         "registry-testing.svc.lan/busybox")
        for index in (0, len(payload) // 2, len(payload) - 1):
            with self.subTest(changed_byte=index):
                self.assertFalse(cs.verify_bytes(public, base64.b64decode(signature),
                                                 flip_byte(payload, index)))
        raw = base64.b64decode(signature)
        self.assertFalse(cs.verify_bytes(public, flip_byte(raw, len(raw) - 1), payload))


class DsseTest(unittest.TestCase):
    def envelope(self, key, payload_type=cs.INTOTO_PAYLOAD_TYPE, digest=DIGEST, version="v1"):
        statement = cs.in_toto_statement("example.test/dev/app", digest, PREDICATE_TYPE,
                                         {"builder": {"id": "selftest"}}, version)
        return cs.dsse_envelope(key, payload_type, cs.canonical_json(statement))

    def test_pae_matches_spec_example_and_securesystemslib(self):
        self.assertEqual(cs.pae("http://example.com/HelloWorld", b"hello world"),
                         b"DSSEv1 29 http://example.com/HelloWorld 11 hello world")
        envelope = cs.Envelope(b"\xff payload", "type/\u00e9", {})
        self.assertEqual(cs.pae("type/\u00e9", b"\xff payload"), envelope.pae())

    def test_round_trip_each_algorithm_and_statement_version(self):
        for algorithm in ("p256", "ed25519"):
            for version in ("v1", "v0.1"):
                with self.subTest(algorithm=algorithm, version=version):
                    key = cs.generate_private_key(algorithm)
                    envelope = self.envelope(key, version=version)
                    self.assertEqual(envelope["signatures"][0]["keyid"], "")
                    payload = cs.verify_envelope(envelope, key.public_key())
                    statement = cs.check_statement(envelope["payloadType"], payload,
                                                   PREDICATE_TYPE, DIGEST)
                    self.assertEqual(statement["_type"], cs.STATEMENT_TYPES[version])
                    self.assertEqual(envelope["signatures"][0]["keyid"], "", "envelope unchanged")

    def test_tampering_and_wrong_key_are_rejected(self):
        key = cs.generate_private_key("p256")
        envelope = self.envelope(key)
        tampered = dict(envelope, payload=base64.b64encode(
            flip_byte(base64.b64decode(envelope["payload"]), 30)).decode())
        retyped = dict(envelope, payloadType="application/json")
        for name, candidate, public in (
                ("payload", tampered, key.public_key()),
                ("payloadType", retyped, key.public_key()),
                ("key", envelope, cs.generate_private_key("p256").public_key())):
            with self.subTest(changed=name), self.assertRaises(cs.CliError):
                cs.verify_envelope(candidate, public)

    def test_keyid_unset_or_set_and_several_signatures(self):
        key = cs.generate_private_key("p256")
        envelope = self.envelope(key)
        signature = envelope["signatures"][0]
        unset = dict(envelope, signatures=[{"sig": signature["sig"]}])
        named = dict(envelope, signatures=[dict(signature, keyid="some-hint")])
        other = self.envelope(cs.generate_private_key("p256"))["signatures"][0]
        several = dict(envelope, signatures=[other, signature])
        for name, candidate in (("unset", unset), ("named", named), ("several", several)):
            with self.subTest(keyid=name):
                self.assertEqual(cs.verify_envelope(candidate, key.public_key()),
                                 base64.b64decode(envelope["payload"]))

    def test_statement_checks(self):
        key = cs.generate_private_key("p256")
        wrong_type = self.envelope(key, payload_type="application/vnd.example+json")
        wrong_subject = self.envelope(key, digest=OTHER_DIGEST)
        for envelope, predicate_type in ((wrong_type, PREDICATE_TYPE),
                                         (wrong_subject, PREDICATE_TYPE),
                                         (self.envelope(key), "https://example.test/other")):
            payload = cs.verify_envelope(envelope, key.public_key())
            with self.assertRaises(cs.CliError):
                cs.check_statement(envelope["payloadType"], payload, predicate_type, DIGEST)

    def test_verify_dsse_command(self):
        key = cs.generate_private_key("ed25519")
        with tempfile.TemporaryDirectory() as tmp:
            pub, envelope_path = Path(tmp, "key.pub"), Path(tmp, "envelope.json")
            pub.write_bytes(cs.public_key_pem(key.public_key()))
            envelope_path.write_bytes(cs.canonical_json(self.envelope(key)))
            status, out, _ = run_cli("verify-dsse", "--envelope", str(envelope_path),
                                     "--pub", str(pub), "--type", PREDICATE_TYPE)
            self.assertEqual(status, 0)
            self.assertEqual(out["statement"]["predicateType"], PREDICATE_TYPE)
            status, _, err = run_cli("verify-dsse", "--envelope", str(envelope_path),
                                     "--pub", str(pub), "--type", "https://example.test/x")
            self.assertNotEqual(status, 0)
            self.assertIn("predicateType", err)


class KeyTest(unittest.TestCase):
    def test_keygen_writes_loadable_pems(self):
        for algorithm in ("p256", "ed25519"):
            with self.subTest(algorithm=algorithm), tempfile.TemporaryDirectory() as tmp:
                status, out, _ = run_cli("keygen", "--out-dir", tmp, "--algorithm", algorithm)
                self.assertEqual(status, 0)
                self.assertIn(b"BEGIN PRIVATE KEY", Path(out["private"]).read_bytes())
                private = cs.load_private_key(out["private"])
                public = cs.load_public_key(out["public"])
                self.assertTrue(cs.verify_bytes(public, cs.sign_bytes(private, b"x"), b"x"))

    def test_decrypt_real_cosign_key(self):
        path = str(FIXTURES / "cosign_generated_encrypted_empty_private.key")
        status, out, _ = run_cli("decrypt-key", "--key", path, "--password", "")
        self.assertEqual(status, 0)
        self.assertEqual(out["algorithm"], "p256")
        private = cs.decrypt_cosign_key(Path(path).read_text(), b"")
        public = cs.serialization.load_pem_public_key(out["public_pem"].encode())
        self.assertTrue(cs.verify_bytes(public, cs.sign_bytes(private, b"data"), b"data"))
        status, out, err = run_cli("decrypt-key", "--key", path, "--password", "wrong")
        self.assertNotEqual(status, 0)
        self.assertIsNone(out)
        self.assertIn("wrong password", err)

    def test_encrypted_key_signs_with_cosign_password(self):
        path = str(FIXTURES / "cosign_generated_encrypted_empty_private.key")
        with self.assertRaises(cs.CliError):
            cs.load_private_key(path)
        with unittest.mock.patch.dict("os.environ", {"COSIGN_PASSWORD": ""}):
            self.assertEqual(cs.key_algorithm(cs.load_private_key(path)), "p256")


class LayoutTest(unittest.TestCase):
    def signature_layer(self):
        payload = cs.simple_signing_payload("example.test/dev/app", DIGEST)
        return cs.descriptor(cs.SIMPLE_SIGNING_MEDIA_TYPE, payload,
                             {cs.SIGNATURE_ANNOTATION: "c2ln"})

    def test_tag_scheme(self):
        self.assertEqual(cs.cosign_tag(DIGEST, "sig"), "sha256-" + "ab" * 32 + ".sig")
        layers = [self.signature_layer(), self.signature_layer()]
        manifest_bytes, config_bytes = cs.tag_scheme_manifest(layers, "2026-01-01T00:00:00Z")
        manifest, config = json.loads(manifest_bytes), json.loads(config_bytes)
        self.assertEqual(manifest["mediaType"], cs.OCI_MANIFEST)
        self.assertEqual(manifest["config"], cs.descriptor(cs.OCI_CONFIG, config_bytes))
        self.assertEqual(config["rootfs"]["diff_ids"], [layer["digest"] for layer in layers])
        self.assertEqual(len(config["history"]), 2)
        self.assertNotIn("subject", manifest)

    def test_signature_referrer_styles(self):
        subject = {"mediaType": cs.OCI_MANIFEST, "digest": DIGEST, "size": 10}
        expected = {"empty-config": (cs.SIG_ARTIFACT_TYPE, cs.OCI_EMPTY),
                    "config-only": (None, cs.SIG_ARTIFACT_TYPE),
                    "config-and-artifact-type": (cs.SIG_ARTIFACT_TYPE, cs.SIG_ARTIFACT_TYPE)}
        for style, (artifact_type, config_type) in expected.items():
            with self.subTest(style=style):
                manifest_bytes, config = cs.signature_referrer_manifest(
                    [self.signature_layer()], subject, style, "2026-01-01T00:00:00Z")
                manifest = json.loads(manifest_bytes)
                self.assertEqual(manifest.get("artifactType"), artifact_type)
                self.assertEqual(manifest["config"]["mediaType"], config_type)
                self.assertEqual(manifest["config"]["digest"], cs.sha256_digest(config))
                self.assertEqual(manifest["subject"], subject)
                self.assertIn(cs.SIGNATURE_ANNOTATION, manifest["layers"][0]["annotations"])

    def test_attestation_referrer(self):
        subject = {"mediaType": cs.OCI_MANIFEST, "digest": DIGEST, "size": 10}
        layer = cs.descriptor(cs.DSSE_MEDIA_TYPE, b"{}", {cs.PREDICATE_TYPE_ANNOTATION: "x"})
        manifest_bytes, config = cs.attestation_referrer_manifest(
            [layer], subject, cs.DSSE_MEDIA_TYPE, "2026-01-01T00:00:00Z")
        manifest = json.loads(manifest_bytes)
        self.assertEqual(config, b"{}")
        self.assertEqual(manifest["artifactType"], cs.DSSE_MEDIA_TYPE)
        self.assertEqual(manifest["config"]["digest"], cs.sha256_digest(b"{}"))
        self.assertNotIn("annotations", manifest["layers"][0])


def main():
    global FIXTURES
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    args, rest = parser.parse_known_args()
    FIXTURES = args.fixtures.resolve()
    if not (FIXTURES / "real_signature.pub").is_file():
        parser.error(f"cosign fixtures not found in {FIXTURES} (pass --fixtures DIR)")
    unittest.main(argv=[sys.argv[0], *rest])


if __name__ == "__main__":
    main()
