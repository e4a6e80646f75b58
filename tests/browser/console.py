"""The web console in a real browser: Debian's chromium, headless, driven by Playwright.

Run by tests/it/console_browser.rs against a test server that holds two images in dev/team/app, a
user `ada` who may read them, a promotion of the first to staging that `rita` requested and which
needs one approval (`rita` and `ann` are approvers), and an open anomaly that locked `mallory`.
Arguments: the server's base URL, the admin password, the users' password, the promotion's id,
the second image's digest, the directory for screenshots, and the path of axe-core's axe.min.js
(npm). Prints one line per scenario passed; any failure raises (non-zero exit) with what was seen.

Scenarios: a stranger is sent to the sign-in page; ada signs in by keyboard alone and sees what
she may read on the board; the pages cannot be framed; a form without its CSRF token is refused
and changes nothing; rita may not approve what she requested and the page says why; ann approves
in a second browser context and sees it promoted, on the board and the artifact's page; ann's
open inbox hears of a new promotion waiting; the admin resolves the anomaly; the audit page
verifies the log in the browser and catches tampering; axe-core finds no serious or critical
accessibility issue on any page; an access-admin revokes ada's role and her open session ends on
her next click; sign-out works.
"""

import base64
import json
import os
import sys
import urllib.request

from playwright.sync_api import sync_playwright

BASE, ADMIN_PASSWORD, PASSWORD, PROMOTION, SECOND_DIGEST, SHOTS, AXE = sys.argv[1:8]
CHROMIUM = os.environ.get("AIRLOCK_CHROMIUM", "/usr/bin/chromium")


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def api(method, path, body, user="admin", password=None):
    """The JSON API (Basic auth), for what a person would do elsewhere."""
    password = password or (ADMIN_PASSWORD if user == "admin" else PASSWORD)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(
        BASE + path,
        method=method,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return response.status, json.loads(response.read() or b"null")


def shot(page, name, full_page=True):
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=full_page)


def axe_clean(page, what):
    """axe-core on the page as shown: no serious or critical violation."""
    page.add_script_tag(path=AXE)
    result = page.evaluate("async () => await axe.run(document)")
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    check(not bad, f"axe-core on {what}: {bad}")
    print(f"ok: axe-core finds no serious or critical issue on {what} ({len(result['passes'])} rules pass)")


def sign_in_by_keyboard(page, user, password):
    page.goto(BASE + "/")
    check(page.url.startswith(BASE + "/console/login"), f"a stranger lands on {page.url}")
    # The user name field takes the focus (autofocus); Tab moves to the password, Enter submits.
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'username'")
    page.keyboard.type(user)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    check(page.url == BASE + "/console", f"{user} signing in landed on {page.url}: {page.inner_text('main')!r}")


def main():
    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])

        # 1. A stranger is sent to sign in; every answer carries the policy.
        ada = browser.new_context()
        page = ada.new_page()
        response = page.goto(BASE + "/console")
        check(page.url.startswith(BASE + "/console/login"), f"the board sent a stranger to {page.url}")
        csp = response.headers.get("content-security-policy", "")
        check("frame-ancestors 'none'" in csp and "script-src 'self'" in csp, f"CSP: {csp!r}")
        check(response.headers.get("x-frame-options") == "DENY", "X-Frame-Options")
        shot(page, "sign-in")
        print("ok: a stranger is sent to the sign-in page, which carries the CSP")

        # 2. Ada signs in by keyboard alone and sees only what she may read.
        sign_in_by_keyboard(page, "ada", PASSWORD)
        board = page.inner_text("main")
        check("team/app" in board, f"ada's board: {board}")
        check("other/secret" not in board, f"ada sees what she may not read: {board}")
        check("ada" in page.inner_text("header"), "the header names who is signed in")
        shot(page, "stages-board")
        # Every control is reachable by Tab, in order: skip link, brand, nav, sign-out, search.
        reached = []
        page.locator("body").focus()
        for _ in range(12):
            page.keyboard.press("Tab")
            reached.append(page.evaluate(
                "() => { const e = document.activeElement; return e.tagName + ':' + (e.getAttribute('name') || e.textContent.trim()); }"
            ))
        for control in ["A:Skip to content", "BUTTON:Sign out", "INPUT:q", "BUTTON:Search"]:
            check(control in reached, f"{control} is not reachable by Tab: {reached}")
        print("ok: ada signed in by keyboard; the board shows team/app and not other/secret; every control is reachable by Tab")

        # 3. The console cannot be framed.
        framer = browser.new_context().new_page()
        framer.set_content(f'<iframe id="f" src="{BASE}/console/login" width="400" height="300"></iframe>')
        framer.wait_for_timeout(1500)
        frame = framer.frame_locator("#f")
        framed_forms = frame.locator("form").count()
        check(framed_forms == 0, "the sign-in page rendered inside a frame")
        print("ok: the console does not render in a frame")

        # 4. A form without the session's CSRF token is refused and changes nothing.
        page.evaluate("() => document.querySelector('form[action=\"/console/logout\"] input[name=csrf_token]').remove()")
        with page.expect_navigation():
            page.click("text=Sign out")
        check("Refused" in page.inner_text("main"), f"a forged sign-out: {page.inner_text('main')}")
        page.goto(BASE + "/console")
        check(page.url == BASE + "/console", "the forged sign-out ended the session")
        print("ok: a form without its CSRF token is refused, and the session goes on")

        # 5. Rita requested the promotion: her approval is refused, and the page says why.
        rita = browser.new_context().new_page()
        sign_in_by_keyboard(rita, "rita", PASSWORD)
        rita.click("text=Approvals")
        check(PROMOTION in rita.inner_text("main"), f"rita's inbox: {rita.inner_text('main')}")
        card = rita.locator("section.card", has_text=PROMOTION)
        with rita.expect_navigation():
            card.get_by_role("button", name="Approve").click()
        refused = rita.inner_text("main")
        check("Approval refused" in refused and "What to do" in refused, f"rita's approval: {refused}")
        shot(rita, "approval-refused")
        print("ok: an approver refused for separation of duties sees why")

        # 6. Ann approves in a second context and sees it promoted, on the board too.
        ann = browser.new_context().new_page()
        sign_in_by_keyboard(ann, "ann", PASSWORD)
        ann.click("text=Approvals")
        shot(ann, "approvals")
        card = ann.locator("section.card", has_text=PROMOTION)
        card.get_by_label("Comment (optional)").fill("checked in the browser")
        with ann.expect_navigation():
            card.get_by_role("button", name="Approve").click()
        check("it is now promoted" in ann.inner_text("main"), f"after ann's approval: {ann.inner_text('main')}")
        ann.click("text=Stages board")
        staging = ann.locator(".stage", has_text="staging").last.inner_text()
        check("Promoted by rita" in staging and "approved by ann" in staging, f"staging on the board: {staging}")
        print("ok: a second approver approves in another browser and sees it promoted on the board")
        with ann.expect_navigation():
            ann.locator(".stage", has_text="staging").last.locator("a.digest").first.click()
        artifact_url = ann.url
        shown = ann.inner_text("main")
        check("dev → staging" in shown and "promoted" in shown and "checked in the browser" in shown,
              f"the artifact page: {shown}")
        shot(ann, "artifact")
        print("ok: the artifact page shows the promotion with its approval")

        # An open inbox hears of a promotion that starts waiting (server-sent events).
        ann.goto(BASE + "/console/approvals")
        status, body = api("POST", "/api/v1/promotions",
                           {"source": "dev/team/app", "reference": SECOND_DIGEST, "to": "staging"}, user="rita")
        check(status == 201, f"the second promotion: {status} {body}")
        live = ann.locator("#live")
        live.wait_for(state="visible", timeout=15000)
        check("1 promotion is waiting now" in live.inner_text(), f"the live notice: {live.inner_text()}")
        with ann.expect_navigation():
            live.get_by_role("link", name="Show them").click()
        check(body["promotion"]["id"] in ann.inner_text("main"), "the new promotion is not in the inbox")
        print("ok: an open inbox hears of a new promotion waiting and shows it")

        # 7. The admin resolves the anomaly that locked mallory, with a reason.
        resolver = browser.new_context().new_page()
        sign_in_by_keyboard(resolver, "admin", ADMIN_PASSWORD)
        resolver.click("text=Anomalies")
        card = resolver.locator("section.card", has_text="mallory")
        check(card.count() == 1, f"the anomalies page: {resolver.inner_text('main')}")
        shot(resolver, "anomalies")
        card.get_by_label("Why it is resolved").fill("mallory mistyped; confirmed by phone")
        with resolver.expect_navigation():
            card.get_by_role("button", name="Resolve and undo the action").click()
        check("is resolved" in resolver.inner_text("main"), f"after resolving: {resolver.inner_text('main')}")
        print("ok: an access-admin resolves an anomaly with a reason")

        # 8. The audit page checks the log in the browser: the signed checkpoint, every entry's
        #    inclusion proof, and later that the log extends the checkpoint it saw; it catches a
        #    changed entry and a rewritten log.
        auditor = resolver
        auditor.click("text=Audit log")
        auditor.wait_for_selector("#log-status[data-verified]")
        status = auditor.locator("#log-status")
        check(status.get_attribute("data-verified") == "yes", f"the checkpoint: {status.inner_text()}")
        check("had not seen this log before" in status.inner_text(), status.inner_text())
        auditor.wait_for_function("() => !document.querySelector('li.entry[data-proof] .proof:not([data-verified])')")
        proofs = auditor.locator("li.entry[data-proof] .proof")
        check(proofs.count() > 0, "no entry is in a signed checkpoint")
        for i in range(proofs.count()):
            check(proofs.nth(i).get_attribute("data-verified") == "yes", f"entry proof: {proofs.nth(i).inner_text()}")
        shot(auditor, "audit", full_page=False)
        seen = auditor.evaluate("() => Object.keys(localStorage).filter(k => k.startsWith('airlock-log:')).map(k => JSON.parse(localStorage.getItem(k)).size)[0]")
        # New entries (a sign-in) and a newer checkpoint: the page proves the log extends the old one.
        extended = ""
        for _ in range(40):
            other = browser.new_context().new_page()
            sign_in_by_keyboard(other, "ann", PASSWORD)
            other.context.close()
            auditor.reload()
            auditor.wait_for_selector("#log-status[data-verified]")
            extended = auditor.locator("#log-status").inner_text()
            if "extends the checkpoint of" in extended:
                break
            auditor.wait_for_timeout(250)
        check("extends the checkpoint of %d entries" % seen in extended, f"after new entries: {extended}")
        print(f"ok: the audit page verifies the checkpoint, {proofs.count()} inclusion proofs and the log's consistency in the browser")

        # A changed entry does not verify.
        def tamper(route):
            response = route.fetch()
            html = response.text()
            at = html.index('data-bytes="') + len('data-bytes="')
            changed = html[:at] + ("A" if html[at] != "A" else "B") + html[at + 1:]
            route.fulfill(response=response, body=changed)
        auditor.route("**/console/audit", tamper)
        auditor.reload()
        auditor.wait_for_function("() => !document.querySelector('li.entry[data-proof] .proof:not([data-verified])')")
        first = auditor.locator("li.entry[data-proof] .proof").first
        check(first.get_attribute("data-verified") == "no", f"a changed entry: {first.inner_text()}")
        auditor.unroute("**/console/audit")
        # A log rewritten under the remembered checkpoint does not verify.
        auditor.evaluate("() => { for (const k of Object.keys(localStorage)) { if (k.startsWith('airlock-log:')) { const v = JSON.parse(localStorage.getItem(k)); v.root = '00'.repeat(32); localStorage.setItem(k, JSON.stringify(v)); } } }")
        auditor.reload()
        auditor.wait_for_selector("#log-status[data-verified]")
        rewritten = auditor.locator("#log-status")
        check(rewritten.get_attribute("data-verified") == "no" and "rewritten" in rewritten.inner_text(),
              f"a rewritten log: {rewritten.inner_text()}")
        print("ok: the audit page catches a changed entry and a rewritten log")

        # Just-in-time access: rita asks for a role; the admin grants it on the access page.
        status, body = api("POST", "/api/v1/access-requests",
                           {"role": "auditor", "scope": "*", "duration_secs": 3600, "reason": "CHG-7 release audit"},
                           user="rita")
        check(status == 201, f"rita's access request: {status} {body}")
        resolver.goto(BASE + "/console/access")
        with resolver.expect_navigation():
            resolver.get_by_role("button", name=f"Grant request {body['id']}").click()
        check(f"Access request {body['id']} is granted." in resolver.inner_text("main"),
              f"after granting: {resolver.inner_text('main')}")
        status, mine = api("GET", "/api/v1/whoami", None, user="rita")
        check("auditor" in json.dumps(mine), f"rita's grants: {mine}")
        print("ok: an access-admin grants a just-in-time access request on the access page")

        # 9. Accessibility, in a context that lets the test inject axe-core past the CSP.
        audit = browser.new_context(bypass_csp=True)
        audit_page = audit.new_page()
        audit_page.goto(BASE + "/console/login")
        axe_clean(audit_page, "the sign-in page")
        sign_in_by_keyboard(audit_page, "admin", ADMIN_PASSWORD)
        axe_clean(audit_page, "the stages board")
        audit_page.goto(BASE + "/console?q=team%2Fnothing")
        axe_clean(audit_page, "the board with a search that finds nothing")
        audit_page.goto(BASE + "/console/approvals")
        axe_clean(audit_page, "the approvals inbox")
        audit_page.goto(BASE + "/console/anomalies?status=all")
        axe_clean(audit_page, "the anomalies page")
        audit_page.goto(artifact_url)
        # An auditor's artifact page carries the artifact's own audit entries, whose inclusion
        # proofs the page checks in the browser against the signed checkpoint.
        audit_page.wait_for_selector("#log-status[data-verified]")
        audit_page.wait_for_function("() => !document.querySelector('li.entry[data-proof] .proof:not([data-verified])')")
        marks = audit_page.locator("li.entry[data-proof] .proof")
        check(marks.count() > 0, f"the artifact's entries: {audit_page.inner_text('main')}")
        for i in range(marks.count()):
            check(marks.nth(i).get_attribute("data-verified") == "yes", f"an artifact entry's proof: {marks.nth(i).inner_text()}")
        check(audit_page.locator("#log-status").get_attribute("data-verified") == "yes", "the artifact page's checkpoint")
        shot(audit_page, "artifact-audit")
        axe_clean(audit_page, "the artifact page")
        print(f"ok: the artifact page verifies its {marks.count()} audit entries' inclusion proofs in the browser")
        audit_page.goto(BASE + "/console/audit")
        audit_page.wait_for_selector("#log-status[data-verified]")
        axe_clean(audit_page, "the audit log page")
        audit_page.goto(BASE + "/console/keys")
        axe_clean(audit_page, "the keyring page")
        shot(audit_page, "keyring")
        audit_page.goto(BASE + "/console/access")
        axe_clean(audit_page, "the access page")
        shot(audit_page, "access")
        audit.close()

        # 10. An access-admin revokes ada's role: her open session ends on her next click.
        status, body = api("POST", "/api/v1/roles/revoke",
                           {"principal": "ada", "role": "developer", "scope": "dev/team/app"})
        check(status == 200, f"revoke: {status} {body}")
        page.click("text=Stages board")
        page.wait_for_url(BASE + "/console/login?reason=ended")
        check("session ended" in page.inner_text("main"), f"after the revocation: {page.inner_text('main')}")
        shot(page, "session-ended")
        print("ok: a revoked user's open session ends on the next request")

        # 11. Sign-out.
        admin = browser.new_context().new_page()
        sign_in_by_keyboard(admin, "admin", ADMIN_PASSWORD)
        admin.click("text=Sign out")
        admin.wait_for_url(BASE + "/console/login?reason=out")
        admin.goto(BASE + "/console")
        check(admin.url.startswith(BASE + "/console/login"), "signed out, the board still shows")
        print("ok: sign-out ends the session")

        browser.close()


if __name__ == "__main__":
    main()
