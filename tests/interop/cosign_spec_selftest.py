#!/usr/bin/env python3
"""Self-check of cosign_spec.py without a registry.

Usage: cosign_spec_selftest.py [--fixtures DIR] [unittest options]

DIR (default: tests/fixtures/cosign under the repository root) holds the real cosign fixtures:
cosign_generated_encrypted_empty_private.key and real_signature.{pub,payload.json,sig.b64}.
Checks sign/verify round trips of simple-signing payloads and DSSE envelopes in memory (DSSE
verification goes through securesystemslib), the manifest layouts, decrypt-key on the real
cosign key (empty password accepted, a wrong one refused), the real cosign signature
(verifies, and fails once one byte changes), and key-signed Sigstore bundles (built, then
verified and tampered with; the bundle and verify-bundle commands without a registry).
"""
import argparse
import base64
import hashlib
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


class BundleTest(unittest.TestCase):
    MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'

    def dsse_bundle(self, key, predicate_type=cs.COSIGN_SIGN_PREDICATE_TYPE, predicate=None,
                    digest=None, subject_name=None, hint="", keyid=None):
        statement = cs.in_toto_statement(subject_name, digest or cs.sha256_digest(self.MANIFEST),
                                         predicate_type, predicate or {})
        content = cs.dsse_bundle_content(key, cs.INTOTO_PAYLOAD_TYPE, cs.canonical_json(statement),
                                         hint if keyid is None else keyid)
        return cs.sigstore_bundle("dsseEnvelope", content, hint)

    def message_bundle(self, key, message=None, hint=""):
        message = self.MANIFEST if message is None else message
        content = cs.message_signature_content(key, cs.sha256_digest(message), message)
        return cs.sigstore_bundle("messageSignature", content, hint)

    def test_dsse_bundle_shape_and_round_trip(self):
        digest = cs.sha256_digest(self.MANIFEST)
        for algorithm in ("p256", "ed25519"):
            with self.subTest(algorithm=algorithm):
                key = cs.generate_private_key(algorithm)
                bundle = json.loads(cs.canonical_json(self.dsse_bundle(key)))
                self.assertEqual(list(bundle), ["mediaType", "verificationMaterial", "dsseEnvelope"])
                self.assertEqual(bundle["mediaType"], "application/vnd.dev.sigstore.bundle.v0.3+json")
                self.assertEqual(bundle["verificationMaterial"], {"publicKey": {}, "tlogEntries": []})
                envelope = bundle["dsseEnvelope"]
                self.assertEqual(sorted(envelope), ["payload", "payloadType", "signatures"])
                self.assertEqual(envelope["signatures"], [{"sig": envelope["signatures"][0]["sig"]}])
                statement = json.loads(base64.b64decode(envelope["payload"]))
                self.assertEqual(statement["_type"], "https://in-toto.io/Statement/v1")
                self.assertEqual(statement["subject"], [{"digest": {"sha256": digest[7:]}}])
                self.assertEqual(statement["predicateType"], "https://sigstore.dev/cosign/sign/v1")
                self.assertEqual(statement["predicate"], {})
                summary = cs.verify_bundle(bundle, key.public_key(), digest,
                                           cs.COSIGN_SIGN_PREDICATE_TYPE)
                self.assertEqual(summary["content"], "dsse-envelope")
                with self.assertRaises(cs.CliError):
                    cs.verify_bundle(bundle, key.public_key(), OTHER_DIGEST)
                with self.assertRaises(cs.CliError):
                    cs.verify_bundle(bundle, cs.generate_private_key(algorithm).public_key(),
                                     digest)

    def test_dsse_signature_is_over_the_pae(self):
        key = cs.generate_private_key("p256")
        envelope = self.dsse_bundle(key, PREDICATE_TYPE, {"builder": {"id": "x"}},
                                    subject_name="example.test/dev/app")["dsseEnvelope"]
        payload = base64.b64decode(envelope["payload"])
        signed = b"DSSEv1 28 application/vnd.in-toto+json %d %s" % (len(payload), payload)
        self.assertTrue(cs.verify_bytes(key.public_key(),
                                        base64.b64decode(envelope["signatures"][0]["sig"]), signed))
        statement = json.loads(payload)
        self.assertEqual(statement["subject"][0]["name"], "example.test/dev/app")
        self.assertEqual(statement["predicate"], {"builder": {"id": "x"}})

    def test_message_signature_signs_the_manifest_digest(self):
        digest = cs.sha256_digest(self.MANIFEST)
        for algorithm in ("p256", "ed25519"):
            with self.subTest(algorithm=algorithm):
                key = cs.generate_private_key(algorithm)
                bundle = self.message_bundle(key)
                signature = bundle["messageSignature"]
                self.assertEqual(signature["messageDigest"], {
                    "algorithm": "SHA2_256",
                    "digest": base64.b64encode(hashlib.sha256(self.MANIFEST).digest()).decode()})
                # Prehashed signing equals signing the manifest bytes: either verifies over them.
                self.assertTrue(cs.verify_bytes(key.public_key(),
                                                base64.b64decode(signature["signature"]),
                                                self.MANIFEST))
                summary = cs.verify_bundle(bundle, key.public_key(), digest,
                                           message=self.MANIFEST)
                self.assertEqual(summary["content"], "message-signature")
                with self.assertRaises(cs.CliError):
                    cs.verify_bundle(bundle, key.public_key(), OTHER_DIGEST,
                                     message=self.MANIFEST + b" ")

    def test_message_digest_field_is_not_what_is_verified(self):
        key = cs.generate_private_key("p256")
        bundle = self.message_bundle(key)
        digest = cs.sha256_digest(self.MANIFEST)
        # The field names another artifact while the signature covers this one: refused, and a
        # signature over another artifact is refused even if the field names this one.
        renamed = json.loads(json.dumps(bundle))
        renamed["messageSignature"]["messageDigest"]["digest"] = base64.b64encode(
            bytes.fromhex("cd" * 32)).decode()
        with self.assertRaisesRegex(cs.CliError, "names"):
            cs.verify_bundle(renamed, key.public_key(), digest)
        other = self.message_bundle(key, b"another manifest")
        other["messageSignature"]["messageDigest"] = bundle["messageSignature"]["messageDigest"]
        with self.assertRaisesRegex(cs.CliError, "does not verify"):
            cs.verify_bundle(other, key.public_key(), digest)
        with self.assertRaisesRegex(cs.CliError, "Ed25519"):
            cs.sign_message_digest(cs.generate_private_key("ed25519"), digest)

    def test_hints(self):
        key = cs.generate_private_key("p256")
        der = base64.b64decode("".join(
            cs.public_key_pem(key.public_key()).decode().splitlines()[1:-1]))
        self.assertEqual(cs.cosign_key_hint(key.public_key()),
                         base64.b64encode(hashlib.sha256(der).digest()).decode())
        digest = cs.sha256_digest(self.MANIFEST)
        hinted = self.dsse_bundle(key, hint="ci-key")
        self.assertEqual(hinted["verificationMaterial"]["publicKey"], {"hint": "ci-key"})
        self.assertEqual(hinted["dsseEnvelope"]["signatures"][0]["keyid"], "ci-key")
        self.assertEqual(cs.verify_bundle(hinted, key.public_key(), digest)["hint"], "ci-key")
        # cosign v3 writes the hint without a keyid: accepted; a different keyid is not.
        unset = self.dsse_bundle(key, hint="ci-key", keyid="")
        self.assertNotIn("keyid", unset["dsseEnvelope"]["signatures"][0])
        cs.verify_bundle(unset, key.public_key(), digest)
        with self.assertRaisesRegex(cs.CliError, "keyid"):
            cs.verify_bundle(self.dsse_bundle(key, hint="ci-key", keyid="other"),
                             key.public_key(), digest)
        omitted = cs.sigstore_bundle("messageSignature", {}, "", tlog_entries=False)
        self.assertEqual(omitted["verificationMaterial"], {"publicKey": {}})

    def test_malformed_bundles_are_refused(self):
        key = cs.generate_private_key("p256")
        digest = cs.sha256_digest(self.MANIFEST)
        good = self.dsse_bundle(key)
        cs.verify_bundle(good, key.public_key(), digest)

        def changed(edit):
            bundle = json.loads(json.dumps(good))
            edit(bundle)
            return bundle

        envelope_payload = base64.b64decode(good["dsseEnvelope"]["payload"])
        cases = {
            "tampered payload": lambda b: b["dsseEnvelope"].update(
                payload=base64.b64encode(flip_byte(envelope_payload, 40)).decode()),
            "two signatures": lambda b: b["dsseEnvelope"]["signatures"].append(
                b["dsseEnvelope"]["signatures"][0]),
            "no signature": lambda b: b["dsseEnvelope"].update(signatures=[]),
            "both contents": lambda b: b.update(
                messageSignature=self.message_bundle(key)["messageSignature"]),
            "no content": lambda b: b.pop("dsseEnvelope"),
            "certificate": lambda b: b["verificationMaterial"].update(
                certificate={"rawBytes": "MAA="}),
            "media type": lambda b: b.update(mediaType="application/json"),
            "no material": lambda b: b.pop("verificationMaterial"),
        }
        for name, edit in cases.items():
            with self.subTest(case=name), self.assertRaises(cs.CliError):
                cs.verify_bundle(changed(edit), key.public_key(), digest)
        older = changed(lambda b: b.update(
            mediaType="application/vnd.dev.sigstore.bundle+json;version=0.2"))
        cs.verify_bundle(older, key.public_key(), digest)

    def test_proto_bytes_accepts_the_json_mapping_variants(self):
        raw = bytes(range(250, 256))
        for text in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(),
                     base64.urlsafe_b64encode(raw).decode().rstrip("=")):
            self.assertEqual(cs.proto_bytes(text, "f"), raw)
        with self.assertRaises(cs.CliError):
            cs.proto_bytes("not base64!", "f")

    def test_bundle_referrer_manifest(self):
        subject = {"mediaType": cs.OCI_MANIFEST, "digest": DIGEST, "size": 10}
        bundle_bytes = b'{"mediaType":"x"}'
        for content, predicate_type in (("dsse-envelope", PREDICATE_TYPE),
                                        ("message-signature", None)):
            with self.subTest(content=content):
                manifest_bytes, config = cs.bundle_referrer_manifest(
                    bundle_bytes, subject, content, predicate_type, "2026-01-01T00:00:00Z")
                manifest = json.loads(manifest_bytes)
                self.assertEqual(config, b"{}")
                self.assertEqual(manifest["artifactType"], cs.BUNDLE_MEDIA_TYPE)
                self.assertEqual(manifest["config"]["mediaType"], "application/vnd.oci.empty.v1+json")
                self.assertEqual(manifest["config"]["digest"], cs.sha256_digest(b"{}"))
                self.assertEqual(manifest["layers"], [{
                    "mediaType": cs.BUNDLE_MEDIA_TYPE, "size": len(bundle_bytes),
                    "digest": cs.sha256_digest(bundle_bytes)}])
                self.assertEqual(manifest["subject"], subject)
                annotations = manifest["annotations"]
                self.assertEqual(annotations["dev.sigstore.bundle.content"], content)
                self.assertEqual(annotations.get("dev.sigstore.bundle.predicateType"),
                                 predicate_type)

    def test_bundle_and_verify_bundle_commands(self):
        digest = cs.sha256_digest(self.MANIFEST)
        with tempfile.TemporaryDirectory() as tmp:
            status, keys, _ = run_cli("keygen", "--out-dir", tmp)
            self.assertEqual(status, 0)
            predicate = Path(tmp, "predicate.json")
            predicate.write_text(json.dumps({"buildDefinition": {}}))
            # --no-push with a P-256 key never contacts the registry.
            registry = ["--registry", "http://127.0.0.1:9", "--user", "u", "--password", "p",
                        "--repo", "dev/app", "--digest", digest, "--key", keys["private"],
                        "--no-push"]
            runs = {
                "sign": (["--mode", "dsse", "--hint-from-key", "--dsse-keyid", ""],
                         cs.COSIGN_SIGN_PREDICATE_TYPE),
                "provenance": (["--mode", "dsse", "--predicate-type", PREDICATE_TYPE,
                                "--predicate", str(predicate), "--hint", "ci",
                                "--omit-tlog-entries"], PREDICATE_TYPE),
                "message": (["--mode", "message"], None),
            }
            for name, (extra, predicate_type) in runs.items():
                with self.subTest(run=name):
                    out_file = Path(tmp, f"{name}.json")
                    status, out, err = run_cli("bundle", *registry, *extra, "--out", str(out_file))
                    self.assertEqual(status, 0, err)
                    self.assertIsNone(out["manifest_digest"])
                    self.assertEqual(json.loads(out_file.read_bytes()), out["bundle"])
                    args = ["verify-bundle", "--bundle", str(out_file), "--pub", keys["public"],
                            "--digest", digest]
                    if predicate_type:
                        args += ["--type", predicate_type]
                    status, verdict, err = run_cli(*args)
                    self.assertEqual(status, 0, err)
                    status, _, err = run_cli(*args[:-2], OTHER_DIGEST, *args[-2:])
                    self.assertNotEqual(status, 0)
            sign = json.loads(Path(tmp, "sign.json").read_bytes())
            self.assertEqual(sign["verificationMaterial"]["publicKey"]["hint"],
                             cs.cosign_key_hint(cs.load_public_key(keys["public"])))
            self.assertNotIn("keyid", sign["dsseEnvelope"]["signatures"][0])
            provenance = json.loads(Path(tmp, "provenance.json").read_bytes())
            self.assertEqual(provenance["verificationMaterial"], {"publicKey": {"hint": "ci"}})
            statement = json.loads(base64.b64decode(provenance["dsseEnvelope"]["payload"]))
            self.assertEqual(statement["subject"][0]["name"], "127.0.0.1:9/dev/app")
            status, _, err = run_cli("bundle", *registry, "--mode", "message",
                                     "--predicate-type", PREDICATE_TYPE)
            self.assertNotEqual(status, 0)
            self.assertIn("--mode dsse", err)


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
