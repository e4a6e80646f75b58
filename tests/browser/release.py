"""A release through the web console under the default policy, in a real browser.

Run by tests/it/console_browser.rs against a test server with the default policy bundle, one
approval on staging, an image that skopeo pushed to dev/team/app:1.0, a signing key in the
keyring (trusted for team/*), `rita` (promoter and approver on staging) and `ann` (approver on
staging). Arguments: the server's base URL, the users' password, the image's digest, the signing
key (PEM), the directory for screenshots. Prints one line per scenario passed; any failure raises.

Scenarios: rita sees the image skopeo pushed on the board; her promotion of the unsigned image is
denied and its artifact page says what to do; once it is signed and its SBOM attested (by the
independent cosign implementation, as a builder would), the page shows both verified and her
promotion waits for approval; ann approves it in a
second browser context, and sees the signature verified and the artifact promoted in staging.
"""

import base64
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

from playwright.sync_api import sync_playwright

BASE, PASSWORD, DIGEST, KEY, SHOTS = sys.argv[1:6]
CHROMIUM = os.environ.get("AIRLOCK_CHROMIUM", "/usr/bin/chromium")
ARTIFACT = f"/console/artifact?repository=dev%2Fteam%2Fapp&digest={DIGEST.replace(':', '%3A')}"


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def promote(user):
    """Requests the promotion of the image to staging as `user`, through the API (as the CLI does)."""
    token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        BASE + "/api/v1/promotions",
        method="POST",
        data=json.dumps({"source": "dev/team/app", "reference": DIGEST, "to": "staging"}).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"null")


def sign_in(page, user):
    page.goto(BASE + "/console/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    check(page.url == BASE + "/console", f"{user} signing in landed on {page.url}")


def main():
    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])

        # 1. What skopeo pushed is on the board.
        rita = browser.new_context().new_page()
        sign_in(rita, "rita")
        card = rita.locator("section.card[aria-label='team/app']")
        dev = card.locator(".stage").first.inner_text()
        check(dev.startswith("dev") and DIGEST[:19] in dev and "1.0" in dev,
              f"dev on the board: {card.inner_text()!r}")
        print("ok: the image skopeo pushed is on the stages board with its tag")

        # 2. Unsigned, the default gate denies it; the artifact page says what to do.
        status, body = promote("rita")
        check(status == 403 and body["promotion"]["state"] == "denied", f"the first promotion: {status} {body}")
        rita.goto(BASE + ARTIFACT)
        shown = rita.inner_text("main")
        check("The gate denied it" in shown and "staging.signature_required" in shown, f"the artifact page: {shown}")
        check("What to do: sign it" in shown, f"the remediation: {shown}")
        rita.screenshot(path=os.path.join(SHOTS, "release-denied.png"), full_page=True)
        print("ok: a denied promotion's artifact page shows the rule and what to do")

        # 3. A builder signs it (the independent cosign implementation); the next request waits
        #    for an approver.
        signed = subprocess.run(
            [sys.executable, "tests/interop/cosign_spec.py", "sign", "--registry", BASE,
             "--user", "ci", "--password", PASSWORD, "--repo", "dev/team/app",
             "--digest", DIGEST, "--key", KEY],
            capture_output=True, text=True, env={**os.environ, "COSIGN_PASSWORD": ""},
        )
        check(signed.returncode == 0, f"signing: {signed.stderr}")
        # ... and attests its SBOM (CycloneDX, by the same implementation).
        sbom = os.path.join(tempfile.mkdtemp(), "sbom.json")
        with open(sbom, "w") as out:
            json.dump({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": [
                {"type": "library", "name": "serde", "version": "1.0.200", "purl": "pkg:cargo/serde@1.0.200",
                 "licenses": [{"expression": "MIT OR Apache-2.0"}]}]}, out)
        attested = subprocess.run(
            [sys.executable, "tests/interop/cosign_spec.py", "attest", "--registry", BASE,
             "--user", "ci", "--password", PASSWORD, "--repo", "dev/team/app",
             "--digest", DIGEST, "--key", KEY, "--predicate-type", "https://cyclonedx.org/bom",
             "--predicate", sbom],
            capture_output=True, text=True, env={**os.environ, "COSIGN_PASSWORD": ""},
        )
        check(attested.returncode == 0, f"attesting: {attested.stderr}")
        status, body = promote("rita")
        check(status == 201 and body["promotion"]["state"] == "pending_approval", f"the signed promotion: {status} {body}")
        promotion = body["promotion"]["id"]
        rita.goto(BASE + ARTIFACT)
        evidence = rita.locator("section[aria-labelledby=evidence]").inner_text()
        check(evidence.count("verified") >= 2 and "signature" in evidence and "attestation" in evidence,
              f"the evidence: {evidence}")
        says = rita.locator("section[aria-labelledby=says]").inner_text()
        check("Licenses (cyclonedx 1.5 SBOM)" in says and "MIT OR Apache-2.0" in says, f"what it says: {says}")
        rita.screenshot(path=os.path.join(SHOTS, "release-signed.png"), full_page=True)
        print("ok: once signed and attested, the evidence shows verified with its licenses, and the promotion waits for approval")

        # 4. Ann approves it in her own browser context and sees it promoted.
        ann = browser.new_context().new_page()
        sign_in(ann, "ann")
        with ann.expect_navigation():
            ann.get_by_role("link", name="Approvals", exact=True).click()
        card = ann.locator("section.card", has_text=promotion)
        check(card.count() == 1, f"ann's inbox: {ann.inner_text('main')}")
        seen = card.inner_text()
        check("Signed by" in seen and "release-ci" in seen, f"what the gate saw: {seen}")
        card.get_by_label("Comment (optional)").fill("signed by release-ci; checked")
        with ann.expect_navigation():
            card.get_by_role("button", name="Approve").click()
        check("it is now promoted" in ann.inner_text("main"), f"after approving: {ann.inner_text('main')}")
        with ann.expect_navigation():
            ann.get_by_role("link", name="Stages board", exact=True).click()
        stages = ann.locator("section.card[aria-label='team/app'] .stage").all_inner_texts()
        staging = next((text for text in stages if text.startswith("staging")), "")
        check(DIGEST[:19] in staging and "approved by ann" in staging, f"team/app on ann's board: {stages}")
        ann.screenshot(path=os.path.join(SHOTS, "release-promoted.png"), full_page=True)
        print("ok: a second person approves in another browser, and the board shows it promoted to staging")

        browser.close()


if __name__ == "__main__":
    main()
