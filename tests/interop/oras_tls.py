#!/usr/bin/env python3
"""Pushes a file with the ORAS Python client (PyPI `oras`) to airlock over HTTPS and pulls it back.

Usage: oras_tls.py HOST REPO WORKDIR CA_FILE

Verifies the server against CA_FILE only (requests' `verify`), authenticates with AIRLOCK_USER /
AIRLOCK_PASSWORD (Basic on every request). Prints {"pulled": [...]} on success; on any failure
prints the client's error text on stderr and exits 1.
"""
import json
import os
import sys

import oras.client


def main():
    host, repo, workdir, ca_file = sys.argv[1:5]
    client = oras.client.OrasClient(
        hostname=host, insecure=False, tls_verify=ca_file, auth_backend="basic"
    )
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
    data = os.urandom(200_000)
    path = os.path.join(src, "payload.bin")
    with open(path, "wb") as f:
        f.write(data)
    target = f"{host}/{repo}:tls"
    try:
        client.push(files=[path], target=target, disable_path_validation=True)
        pulled = client.pull(target=target, outdir=os.path.join(workdir, "out"))
    except Exception as error:  # the test asserts on the text
        print(f"oras failed: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
    with open(os.path.join(workdir, "out", "payload.bin"), "rb") as f:
        if f.read() != data:
            print("pulled payload differs from what was pushed", file=sys.stderr)
            sys.exit(1)
    print(json.dumps({"pulled": sorted(os.path.basename(p) for p in pulled)}))


if __name__ == "__main__":
    main()
