#!/usr/bin/env python3
"""Drives airlock with the ORAS Python client (PyPI `oras`), an independent OCI client.

Usage: oras_roundtrip.py HOST REPO WORKDIR

1. pushes a non-image artifact (two files, a custom artifactType, an empty config),
2. pulls it back into another directory and checks the files byte for byte,
3. pushes a second artifact whose `subject` is the first one (a referrer),
4. prints one JSON object with what it pushed, for the Rust test to check against the registry.
"""
import hashlib
import json
import os
import sys

import oras.client
import oras.defaults
import oras.oci
import oras.provider

ARTIFACT_TYPE = "application/vnd.airlock.test.bundle.v1"
REFERRER_TYPE = "application/vnd.airlock.test.sbom.v1"
EMPTY = b"{}"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_artifact(client, container, files, artifact_type, subject=None):
    """Uploads files as layers and an OCI 1.1 artifact manifest; returns the manifest PUT response."""
    registry = client
    layers = []
    for path in files:
        layer = oras.oci.NewLayer(path, media_type="application/octet-stream")
        layer["annotations"] = {oras.defaults.annotation_title: os.path.basename(path)}
        # Large files go up in 64 KiB PATCH chunks, exercising the chunked upload path.
        chunked = os.path.getsize(path) > 100_000
        response = registry.upload_blob(path, container, layer, do_chunked=chunked, chunk_size=65536)
        registry._check_200_response(response)
        layers.append(layer)
    empty_path = os.path.join(os.path.dirname(files[0]), "empty.json")
    with open(empty_path, "wb") as f:
        f.write(EMPTY)
    config = {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(EMPTY), "size": 2}
    registry._check_200_response(registry.upload_blob(empty_path, container, config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": artifact_type,
        "config": config,
        "layers": layers,
        "annotations": {"org.opencontainers.image.created": "2026-11-25T00:00:00Z"},
    }
    if subject is not None:
        manifest["subject"] = subject
    response = registry.upload_manifest(manifest, container)
    registry._check_200_response(response)
    return response


def main():
    host, repo, workdir = sys.argv[1], sys.argv[2], sys.argv[3]
    # oras-py's token backend keeps the first token it gets (pull only) for later pushes, so use
    # its basic backend: credentials on every request, which airlock accepts on /v2 as well.
    client = oras.client.OrasClient(hostname=host, insecure=True, auth_backend="basic")
    if os.environ.get("AIRLOCK_USER"):
        client.login(
            username=os.environ["AIRLOCK_USER"],
            password=os.environ["AIRLOCK_PASSWORD"],
            hostname=host,
            # The test's own file: the default (~/.docker/config.json) is shared with every other
            # test logging in at the same time, and a half-written one breaks this login.
            config_path=os.path.join(workdir, "docker-config.json"),
        )
    src = os.path.join(workdir, "src")
    os.makedirs(src, exist_ok=True)
    payloads = {"report.txt": b"airlock interop report\n" * 100, "data.bin": os.urandom(300_000)}
    paths = []
    for name, data in payloads.items():
        path = os.path.join(src, name)
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)

    target = f"{host}/{repo}:bundle"
    container = client.get_container(target)
    response = push_artifact(client, container, paths, ARTIFACT_TYPE)
    artifact_digest = response.headers["Docker-Content-Digest"]
    artifact_size = int(client.do_request(
        f"http://{host}/v2/{repo}/manifests/{artifact_digest}", "HEAD",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).headers["Content-Length"])

    out = os.path.join(workdir, "out")
    pulled = client.pull(target=target, outdir=out)
    for name, data in payloads.items():
        with open(os.path.join(out, name), "rb") as f:
            if f.read() != data:
                raise SystemExit(f"pulled {name} differs from what was pushed")

    sbom = os.path.join(workdir, "sbom")
    os.makedirs(sbom, exist_ok=True)
    sbom_path = os.path.join(sbom, "sbom.json")
    with open(sbom_path, "wb") as f:
        f.write(b'{"bomFormat":"CycloneDX","specVersion":"1.6"}')
    subject = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
               "digest": artifact_digest, "size": artifact_size}
    referrer_container = client.get_container(f"{host}/{repo}:sbom")
    response = push_artifact(client, referrer_container, [sbom_path], REFERRER_TYPE, subject)
    print(json.dumps({
        "artifact_digest": artifact_digest,
        "artifact_type": ARTIFACT_TYPE,
        "pulled": sorted(os.path.basename(p) for p in pulled),
        "referrer_digest": response.headers["Docker-Content-Digest"],
        "referrer_type": REFERRER_TYPE,
        "oci_subject": response.headers.get("OCI-Subject"),
    }))


if __name__ == "__main__":
    main()
