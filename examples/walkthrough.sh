#!/usr/bin/env bash
# The promotion walkthrough (docs/walkthrough.md), end to end, against a fresh airlock server
# that this script starts itself and stops on exit. CI runs it, so the walkthrough cannot rot.
#
#   examples/walkthrough.sh                    # uses target/release/airlock or target/debug/airlock
#   AIRLOCK=/path/to/airlock examples/walkthrough.sh
#   KEEP_WORK=1 examples/walkthrough.sh        # keep the temporary directory (kept anyway on failure)
#
# Needs: bash, python3 with `cryptography` (the CI step's test OIDC issuer), skopeo and openssl. Every step checks its exit status and the values it
# produced; any unexpected result stops the script with "walkthrough: FAILED: ...".
set -eEuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The airlock binary: $AIRLOCK, else target/release/airlock or target/debug/airlock (the newer of
# the two when both exist, so a stale release build is not picked over a fresh debug build).
if [ -z "${AIRLOCK:-}" ]; then
  release="$ROOT/target/release/airlock" debug="$ROOT/target/debug/airlock"
  if [ -x "$release" ] && { [ ! -x "$debug" ] || [ ! "$debug" -nt "$release" ]; }; then
    AIRLOCK=$release
  else
    AIRLOCK=$debug
  fi
fi

fail() {
  echo "walkthrough: FAILED: $*" >&2
  exit 1
}

[ -x "$AIRLOCK" ] || fail "no airlock binary at $AIRLOCK: run cargo build (or set AIRLOCK)"
for tool in python3 skopeo openssl; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (sudo scripts/setup installs skopeo)"
done
python3 -c 'import cryptography' 2>/dev/null \
  || fail "python3's cryptography package is not installed (sudo scripts/setup installs it)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/airlock-walkthrough.XXXXXX")
SERVER_PID=""
RECEIVER_PID=""
STARTED=$(date +%s)

cleanup() {
  local rc=$?
  for pid in $SERVER_PID $RECEIVER_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$rc" -ne 0 ]; then
    echo "--- server log (last 40 lines) ---" >&2
    tail -n 40 "$WORK/server.log" >&2 2>/dev/null || true
    echo "--- work directory kept: $WORK" >&2
  elif [ -n "${KEEP_WORK:-}" ]; then
    echo "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'fail "unexpected exit status $? at line $LINENO: $BASH_COMMAND"' ERR

step() {
  echo
  echo "== $*"
}

# expect CODE CMD...: runs CMD, shows its output (stdout and stderr) indented, keeps it in $OUT,
# and fails unless CMD exits with CODE.
OUT=""
# With QUIET=1 the output is kept but not shown.
expect() {
  local want=$1 rc=0
  shift
  "$@" >"$WORK/out" 2>&1 || rc=$?
  OUT=$(cat "$WORK/out")
  if [ -z "${QUIET:-}" ] || [ "$rc" -ne "$want" ]; then
    sed 's/^/    /' "$WORK/out"
  fi
  [ "$rc" -eq "$want" ] || fail "expected exit status $want, got $rc from: $*"
}

# has TEXT...: fails unless the last command's output contains each TEXT.
has() {
  local text
  for text in "$@"; do
    grep -qF -- "$text" <<<"$OUT" || fail "expected the output to contain: $text"
  done
}

# lacks TEXT: fails if the last command's output contains TEXT.
lacks() {
  ! grep -qF -- "$1" <<<"$OUT" || fail "expected the output not to contain: $1"
}

# first_match REGEX: the first match of REGEX in the last command's output.
first_match() {
  { grep -oE -- "$1" <<<"$OUT" || true; } | head -n 1
}

# as_user USER ARGS...: runs airlock as USER: each user has their own CLI login (XDG_CONFIG_HOME).
as_user() {
  local user=$1
  shift
  XDG_CONFIG_HOME="$WORK/$user" "$AIRLOCK" "$@"
}

# login USER PASSWORD: stores USER's login in $WORK/USER.
login() {
  expect 0 as_user "$1" login "$SERVER" -u "$1" --password-stdin <<<"$2"
  has "logged in to $SERVER as $1"
}

# digest_of CREDS REF: the digest REF names, read with skopeo.
digest_of() {
  skopeo inspect --creds "$1" --tls-verify=false --format '{{.Digest}}' "docker://$2"
}

# ---------------------------------------------------------------------------------------------

step "start a fresh airlock server ($AIRLOCK)"
ADMIN_PW="walkthrough-admin-password-1"
# CI jobs log in with their OIDC ID token (docs/ci.md). A test issuer stands in for GitHub Actions
# or GitLab: its key's JWKS is what the [[access.oidc]] rule "ci" trusts.
OIDC_ISSUER="https://ci.walkthrough.example"
OIDC_AUDIENCE="airlock-walkthrough"
python3 "$ROOT/examples/oidc_test_issuer.py" keygen "$WORK/issuer"
cat >"$WORK/airlock.toml" <<TOML
[[access.oidc]]
name = "ci"
issuer = "$OIDC_ISSUER"
audience = "$OIDC_AUDIENCE"
jwks_file = "$WORK/issuer/jwks.json"
claims = { repository = "acme/svc", ref = "refs/heads/main" }
repositories = ["dev/team/svc"]
TOML
# The alert receiver (step "the security team subscribes ...") listens on this machine's loopback,
# which webhooks refuse unless allowed.
AIRLOCK_INITIAL_ADMIN_PASSWORD="$ADMIN_PW" AIRLOCK_WEBHOOKS__ALLOW_PRIVATE_TARGETS=true \
  "$AIRLOCK" serve --data-dir "$WORK/data" --config "$WORK/airlock.toml" \
  --listen 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
ADDR=""
for _ in $(seq 1 300); do
  first_line=$(head -n 1 "$WORK/server.out")
  case "$first_line" in
    "airlock listening on http://"*)
      ADDR=${first_line#airlock listening on http://}
      break
      ;;
  esac
  kill -0 "$SERVER_PID" 2>/dev/null || fail "the server exited at start: $(tail -n 5 "$WORK/server.log")"
  sleep 0.1
done
[ -n "$ADDR" ] || fail "the server did not print its address within 30 s"
SERVER="http://$ADDR"
export AIRLOCK_SERVER="$SERVER"
export COSIGN_PASSWORD=""   # the walkthrough's signing key has no passphrase
echo "    airlock listening on $SERVER (data in $WORK/data)"

step "admin logs in and creates the team: a CI service account, a key admin, a promoter, an approver"
login admin "$ADMIN_PW"
# Pin the audit log's verifier key and its first checkpoint now; the last step checks the log
# still extends them.
QUIET=1 expect 0 python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode().strip())' "$SERVER/log/key"
printf '%s\n' "$OUT" >"$WORK/log-key.pub"
QUIET=1 expect 0 as_user admin audit checkpoint
printf '%s\n' "$OUT" >"$WORK/trusted.checkpoint"
echo "    pinned the audit log key ($(cat "$WORK/log-key.pub")) and its first checkpoint"
QUIET=1 expect 0 as_user admin service-accounts add ci --expires 1d --output json
CI_KEY=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])' <<<"$OUT")
[[ "$CI_KEY" == alk_* ]] || fail "no API key for ci"
echo "    created service account ci; its API key (shown once) is kept in \$CI_KEY"
KIM_PW="keyring-guard-phrase-1"
PAT_PW="release-request-phrase-1"
ANN_PW="second-pair-of-eyes-1"
expect 0 as_user admin users add kim --password-stdin <<<"$KIM_PW"
expect 0 as_user admin users add pat --password-stdin <<<"$PAT_PW"
expect 0 as_user admin users add ann --password-stdin <<<"$ANN_PW"
# Nobody grants themselves a role: admin (access-admin) grants the others theirs.
expect 0 as_user admin roles grant ci builder --scope 'dev/team/*'
expect 0 as_user admin roles grant kim key-admin --scope '*'
expect 0 as_user admin roles grant pat promoter --scope 'staging/team/*'
expect 0 as_user admin roles grant pat promoter --scope 'prod/team/*'
expect 0 as_user admin roles grant ann approver --scope 'prod/team/*'
login ci "$CI_KEY"
login kim "$KIM_PW"
login pat "$PAT_PW"
login ann "$ANN_PW"
expect 0 as_user ann whoami
has "ann" "approver@prod/team/*"

step "CI builds an image and pushes it to dev with skopeo"
expect 0 python3 "$ROOT/scripts/example-image" "$WORK/image" 1.0.0
expect 0 skopeo copy --dest-creds "ci:$CI_KEY" --dest-tls-verify=false --digestfile "$WORK/d1" \
  "oci:$WORK/image:1.0.0" "docker://$ADDR/dev/team/app:1.0.0"
D1=$(cat "$WORK/d1")
[ "$(digest_of "admin:$ADMIN_PW" "$ADDR/dev/team/app:1.0.0")" = "$D1" ] || fail "dev/team/app:1.0.0 does not name $D1"
echo "    pushed $ADDR/dev/team/app:1.0.0 = $D1"

step "a gated stage refuses pushes: staging is reached only by promotion"
expect 1 skopeo copy --dest-creds "admin:$ADMIN_PW" --dest-tls-verify=false \
  "oci:$WORK/image:1.0.0" "docker://$ADDR/staging/team/app:1.0.0"
has "only by promotion"

step "pat tries to promote it to staging: denied, there is no evidence yet"
expect 1 as_user pat promote "$ADDR/dev/team/app:1.0.0" --to staging
has "DENIED" "staging.signature_required" "has no verified signature" "fix: sign it"

step "CI generates a signing key pair (cosign-compatible files)"
expect 0 as_user ci keys generate --output-key-prefix "$WORK/ci"
[ -s "$WORK/ci.key" ] && [ -s "$WORK/ci.pub" ] || fail "no key pair written"

step "kim (key-admin) trusts the key for team/*: signatures and five predicate types"
expect 0 as_user kim keys add ci-builder --public-key "$WORK/ci.pub" --scope 'team/*' \
  --purpose sign \
  --purpose attest:https://slsa.dev/provenance/v1 \
  --purpose attest:https://cyclonedx.org/bom \
  --purpose attest:https://cosign.sigstore.dev/attestation/vuln/v1 \
  --purpose attest:https://in-toto.io/attestation/test-result/v0.1 \
  --purpose attest:https://scorecard.dev/result/v0.1
has "added key ci-builder"
expect 0 as_user pat keys list
has "ci-builder" "active" "team/*"

step "CI writes its evidence: SLSA provenance, a CycloneDX SBOM, a Trivy scan, test results, a Scorecard result"
# The predicates are the files docs/walkthrough.md shows, in examples/predicates/.
cp "$ROOT/examples/predicates/provenance.json" "$ROOT/examples/predicates/sbom.json" \
  "$ROOT/examples/predicates/vuln.json" "$ROOT/examples/predicates/tests.json" \
  "$ROOT/examples/predicates/scorecard.json" "$WORK/"
echo "    copied provenance.json, sbom.json, vuln.json, tests.json, scorecard.json from examples/predicates/ to $WORK"
# A Scorecard result counts for scorecard_max_age_days (90 by default): date the example today.
python3 - "$WORK/scorecard.json" <<'PY'
import datetime, json, sys
result = json.load(open(sys.argv[1]))
result["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
json.dump(result, open(sys.argv[1], "w"), indent=2)
PY

# attach_evidence DIGEST: CI signs and attests dev/team/app@DIGEST; each item must be verified.
attach_evidence() {
  local ref="$ADDR/dev/team/app@$1"
  expect 0 as_user ci sign "$ref" --key "$WORK/ci.key"
  has "verified" "signature" "key=ci-builder"
  expect 0 as_user ci attest "$ref" --key "$WORK/ci.key" --type slsaprovenance1 --predicate "$WORK/provenance.json"
  has "verified" "builder https://github.com/actions/runner/github-hosted source https://github.com/acme/app"
  expect 0 as_user ci attest "$ref" --key "$WORK/ci.key" --type cyclonedx --predicate "$WORK/sbom.json"
  has "verified" "2 components"
  expect 0 as_user ci attest "$ref" --key "$WORK/ci.key" --type vuln --predicate "$WORK/vuln.json"
  has "verified" "critical 0 high 0 medium 1 low 1"
  expect 0 as_user ci attest "$ref" --key "$WORK/ci.key" \
    --type https://in-toto.io/attestation/test-result/v0.1 --predicate "$WORK/tests.json"
  has "verified" "passed: 3 passed, 0 warned, 0 failed"
  expect 0 as_user ci attest "$ref" --key "$WORK/ci.key" \
    --type https://scorecard.dev/result/v0.1 --predicate "$WORK/scorecard.json"
  has "verified" "scorecard 9.1 for github.com/acme/app (Maintained 10)"
}

step "CI signs and attests the image with airlock sign / airlock attest"
attach_evidence "$D1"

step "whoever may pull the artifact may read its evidence (admin holds developer on *)"
expect 0 as_user admin evidence "$ADDR/dev/team/app@$D1"
has "tags: 1.0.0" "key=ci-builder"
[ "$(grep -c '^ *verified' <<<"$OUT" || true)" -eq 6 ] || fail "expected 6 verified evidence items"
lacks "rejected"

step "pat promotes it to staging: the staging gate allows it, no approval needed"
expect 0 as_user pat promote "$ADDR/dev/team/app:1.0.0" --to staging
has "PROMOTED dev/team/app -> staging/team/app" "artifact: $D1"
[ "$(digest_of "admin:$ADMIN_PW" "$ADDR/staging/team/app:1.0.0")" = "$D1" ] || fail "staging/team/app:1.0.0 is not $D1"

step "a dry run of prod evaluates the gate without acting"
expect 0 as_user pat promote "$ADDR/staging/team/app:1.0.0" --to prod --dry-run
has "ALLOWED (dry run; approvals required: 1)"
# Dependency health passed too: sources allowed, inputs pinned, Scorecard above the minimum. The
# one warning: a single builder built it (no independent rebuild agrees yet).
has "prod.rebuild_agreement (warning)" "by 1 independent builder(s)"
[ "$(grep -c '(warning)' <<<"$OUT" || true)" -eq 1 ] || fail "expected exactly one warning"

step "pat requests the promotion to prod: allowed by the gate, waiting for one approval"
expect 0 as_user pat promote "$ADDR/staging/team/app:1.0.0" --to prod
has "PENDING APPROVAL" "0 of 1 approvals"
PRM1=$(first_match 'prm_[0-9a-f]+')
DEC1=$(first_match 'dec_[0-9a-f]+')
[ -n "$PRM1" ] && [ -n "$DEC1" ] || fail "no promotion or decision id in the answer"
expect 0 as_user pat promotions show "$PRM1"
has "$PRM1" "pending_approval" "staging/team/app -> prod/team/app" "approvals: 0 of 1" "by pat"
expect 0 as_user pat promotions list --state pending_approval
has "$PRM1"

step "separation of duties: pat requested it, so pat cannot approve it"
expect 1 as_user pat approve "$PRM1"
has "APPROVAL_REFUSED" "pat requested this promotion and cannot approve it"
step "ci (a builder in dev only) cannot even see the prod promotion, let alone approve it"
expect 1 as_user ci approve "$PRM1"
has "NOT_FOUND" "no such promotion you may read"

step "ann (approver on prod/team/*) approves: the gate is decided again and the artifact promoted"
expect 0 as_user ann approve "$PRM1" --comment "release 1.0.0"
has "PROMOTED staging/team/app -> prod/team/app ($PRM1)" "attestation: sha256:"
ATT1=$(sed -n 's/.*attestation: \(sha256:[0-9a-f]*\).*/\1/p' <<<"$OUT" | head -n 1)
expect 0 as_user pat promotions show "$PRM1"
has "promoted" "approvals: 1 of 1" "ann at"
[ "$(digest_of "admin:$ADMIN_PW" "$ADDR/prod/team/app:1.0.0")" = "$D1" ] || fail "prod/team/app:1.0.0 is not $D1"
[ "$(digest_of "admin:$ADMIN_PW" "$ADDR/prod/team/app:stable")" = "$D1" ] || fail "prod/team/app:stable is not $D1"

step "airlock status: which digest is in which stage, and by which promotion"
expect 0 as_user admin status team/app
has "dev/team/app" "staging/team/app" "prod/team/app" "$D1  tags: 1.0.0,stable  by $PRM1 (pat)"

step "version 1.1.0 goes the same way, and moves the stable channel"
D1_IMAGE=$(python3 -c 'import json,sys; print([m["digest"] for m in json.load(open(sys.argv[1]))["manifests"]][0])' "$WORK/image/index.json")
for _ in 1 2 3; do
  expect 0 python3 "$ROOT/scripts/example-image" "$WORK/image" 1.1.0
  # scripts/example-image stamps the build time in seconds: within the same second it would
  # write the same image again.
  grep -qF "$D1_IMAGE" <<<"$OUT" || break
  sleep 1
done
expect 0 skopeo copy --dest-creds "ci:$CI_KEY" --dest-tls-verify=false --digestfile "$WORK/d2" \
  "oci:$WORK/image:1.1.0" "docker://$ADDR/dev/team/app:1.1.0"
D2=$(cat "$WORK/d2")
[ "$D2" != "$D1" ] || fail "version 1.1.0 has the same digest as 1.0.0"
attach_evidence "$D2"
expect 0 as_user pat promote "$ADDR/dev/team/app:1.1.0" --to staging
has "PROMOTED dev/team/app -> staging/team/app"
expect 0 as_user pat promote "$ADDR/staging/team/app:1.1.0" --to prod
has "PENDING APPROVAL"
PRM2=$(first_match 'prm_[0-9a-f]+')
[ -n "$PRM2" ] || fail "no promotion id in the answer"
expect 0 as_user ann approve "$PRM2" --comment "release 1.1.0"
has "PROMOTED staging/team/app -> prod/team/app ($PRM2)"
STABLE=$(digest_of "admin:$ADMIN_PW" "$ADDR/prod/team/app:stable")
[ "$STABLE" = "$D2" ] || fail "prod/team/app:stable names $STABLE, expected $D2"
echo "    prod/team/app:stable = $STABLE (1.1.0)"

step "tags in gated stages are immutable: 1.0.0 still names the first image"
[ "$(digest_of "admin:$ADMIN_PW" "$ADDR/prod/team/app:1.0.0")" = "$D1" ] || fail "prod/team/app:1.0.0 moved"
[ "$(digest_of "admin:$ADMIN_PW" "$ADDR/prod/team/app:1.1.0")" = "$D2" ] || fail "prod/team/app:1.1.0 is not $D2"
echo "    prod/team/app:1.0.0 = ${D1:0:19}...  prod/team/app:1.1.0 = ${D2:0:19}...  (only channel tags move)"

step "1.1.0 misbehaves: pat rolls stable back to the digest it named before"
expect 0 as_user pat rollback prod/team/app --channel stable
has "rolled prod/team/app:stable back from $D2 to $D1"
STABLE=$(digest_of "admin:$ADMIN_PW" "$ADDR/prod/team/app:stable")
[ "$STABLE" = "$D1" ] || fail "after the rollback prod/team/app:stable names $STABLE, expected $D1"
echo "    skopeo: prod/team/app:stable = $STABLE (1.0.0 again)"

step "every decision is stored with its input and policy digest, and can be replayed"
expect 0 as_user pat decisions show "$DEC1"
has "$DEC1" "promote data.airlock.gates.prod" "allowed"
expect 0 as_user pat decisions replay "$DEC1"
has "replayed $DEC1 with policy" "identical"

step "the promotion attestation: signed by airlock's own key, attached in prod"
expect 0 as_user pat keys export-attestation-key
printf '%s\n' "$OUT" >"$WORK/airlock-attestation.pub"
has "BEGIN PUBLIC KEY"
openssl pkey -pubin -in "$WORK/airlock-attestation.pub" -noout -text 2>/dev/null | grep -q "P-256" \
  || fail "the attestation key is not an ECDSA P-256 public key"
ATT_TAG="sha256-${D1#sha256:}.att"
curl_json() {
  python3 - "$@" <<'PY'
import base64, json, sys, urllib.request
url, user, password = sys.argv[1:4]
request = urllib.request.Request(url, headers={
    "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode(),
    "Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"})
print(urllib.request.urlopen(request).read().decode())
PY
}
QUIET=1 expect 0 curl_json "$SERVER/v2/prod/team/app/tags/list" admin "$ADMIN_PW"
has "\"$ATT_TAG\"" "\"sha256-${D1#sha256:}.sig\"" "\"stable\""
echo "    GET /v2/prod/team/app/tags/list: $(python3 -c 'import json,sys; print(" ".join(t[:18] + "..." + t[-4:] if t.startswith("sha256-") else t for t in json.load(sys.stdin)["tags"]))' <<<"$OUT")"
QUIET=1 expect 0 curl_json "$SERVER/v2/prod/team/app/referrers/$D1" admin "$ADMIN_PW"
has "$ATT1"
echo "    GET /v2/prod/team/app/referrers/${D1:0:19}...: $(python3 -c 'import json,sys; print(" ".join(m["digest"][:19] + "..." for m in json.load(sys.stdin)["manifests"]))' <<<"$OUT") (the promotion attestations of staging and prod)"
curl_json "$SERVER/v2/prod/team/app/manifests/$ATT_TAG" admin "$ADMIN_PW" >"$WORK/att-manifest.json"
# Find the layer with the promotion predicate, verify its DSSE signature with openssl over the
# DSSE pre-authentication encoding, and check what the statement says.
python3 - "$WORK" "$SERVER" "$ADMIN_PW" "$D1" "$PRM1" <<'PY' || fail "the promotion attestation does not verify"
import base64, json, subprocess, sys, urllib.request
work, server, password, digest, promotion = sys.argv[1:6]
auth = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
manifest = json.load(open(f"{work}/att-manifest.json"))
assert manifest["subject"]["digest"] == digest, "the .att manifest's subject is not the artifact"
layers = [l for l in manifest["layers"] if l.get("annotations", {}).get("predicateType")
          == "https://airlock.dev/attestation/promotion/v1"]
# staging's promotion attestation is carried to prod next to prod's own.
assert len(layers) == 2, f"expected 2 promotion attestations, found {len(layers)}"
found = {}
for layer in layers:
    request = urllib.request.Request(f"{server}/v2/prod/team/app/blobs/{layer['digest']}",
                                     headers={"Authorization": auth})
    envelope = json.loads(urllib.request.urlopen(request).read())
    payload = base64.b64decode(envelope["payload"])
    ptype = envelope["payloadType"].encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)
    open(f"{work}/pae.bin", "wb").write(pae)
    open(f"{work}/sig.der", "wb").write(base64.b64decode(envelope["signatures"][0]["sig"]))
    subprocess.run(["openssl", "dgst", "-sha256", "-verify", f"{work}/airlock-attestation.pub",
                    "-signature", f"{work}/sig.der", f"{work}/pae.bin"], check=True,
                   stdout=subprocess.DEVNULL)
    statement = json.loads(payload)
    assert statement["subject"][0]["digest"]["sha256"] == digest.split(":")[1]
    predicate = statement["predicate"]
    found[predicate["gate"]] = predicate
prod = found["prod"]
assert prod["promotion"] == promotion and prod["target"] == "prod/team/app", prod
assert [a["principal"] for a in prod["approvals"]] == ["ann"], prod["approvals"]
assert prod["requester"] == "pat" and prod["policy"]["digest"].startswith("sha256:"), prod
print(f"    verified with airlock-attestation.pub: {sorted(found)} promotion attestations; "
      f"prod: {prod['promotion']} requested by {prod['requester']}, approved by ann, "
      f"policy {prod['policy']['digest'][:19]}..., decision {prod['policy']['decision']}")
PY

step "a CI job with no stored secret: its OIDC ID token becomes a short-lived builder token"
# ci_login: what each CI job run starts with. In GitHub Actions `airlock login --oidc` asks the
# job's token service itself; in GitLab it reads the ID token variable. Here the test issuer
# mints the job's ID token. The builder token goes to CI_TOKEN (a CI job exports it as
# AIRLOCK_TOKEN; here ci_job sets it per command so the people keep their own logins).
ci_login() {
  python3 "$ROOT/examples/oidc_test_issuer.py" token "$WORK/issuer" --issuer "$OIDC_ISSUER" \
    --audience "$OIDC_AUDIENCE" --claim repository=acme/svc --claim ref=refs/heads/main \
    --claim sub=repo:acme/svc:ref:refs/heads/main >"$WORK/id-token"
  CI_TOKEN=$(XDG_CONFIG_HOME="$WORK/ci-job" "$AIRLOCK" login --oidc \
    --id-token-file "$WORK/id-token" --scope repository:dev/team/svc:pull,push --print-token \
    2>"$WORK/login.err") || fail "airlock login --oidc: $(cat "$WORK/login.err")"
  [ -n "$CI_TOKEN" ] || fail "airlock login --oidc printed no token"
  echo "    $(cat "$WORK/login.err")"
  [ ! -e "$WORK/ci-job/airlock/credentials.json" ] || fail "--print-token stored a credential"
}
# ci_job ARGS...: runs airlock as the CI job does: with AIRLOCK_TOKEN, nothing stored.
ci_job() {
  AIRLOCK_TOKEN="$CI_TOKEN" XDG_CONFIG_HOME="$WORK/ci-job" "$AIRLOCK" "$@"
}
ci_login
expect 0 ci_job whoami
has "oidc/ci" "builder@dev/team/svc"
# The rule's principal exists from its first exchange on. The job also promotes its builds to
# staging: admin grants the workload that once; the next job run's token carries it.
expect 0 as_user admin roles grant oidc/ci promoter --scope 'staging/team/svc'

step "the next CI job run builds, pushes, signs, attests and promotes to staging with its token"
ci_login
expect 0 python3 "$ROOT/scripts/example-image" "$WORK/svc-image" 2.0.0
expect 0 skopeo copy --dest-registry-token "$CI_TOKEN" --dest-tls-verify=false \
  --digestfile "$WORK/d3" "oci:$WORK/svc-image:2.0.0" "docker://$ADDR/dev/team/svc:2.0.0"
D3=$(cat "$WORK/d3")
expect 0 ci_job sign "$ADDR/dev/team/svc@$D3" --key "$WORK/ci.key"
has "verified" "key=ci-builder"
expect 0 ci_job attest "$ADDR/dev/team/svc@$D3" --key "$WORK/ci.key" --type slsaprovenance1 \
  --predicate "$WORK/provenance.json"
has "verified"
expect 0 ci_job promote "$ADDR/dev/team/svc:2.0.0" --to staging
has "PROMOTED dev/team/svc -> staging/team/svc" "artifact: $D3"
[ "$(digest_of "admin:$ADMIN_PW" "$ADDR/staging/team/svc:2.0.0")" = "$D3" ] || fail "staging/team/svc:2.0.0 is not $D3"
# The token is limited to the rule's repositories: another repository is refused.
expect 1 skopeo copy --dest-registry-token "$CI_TOKEN" --dest-tls-verify=false \
  "oci:$WORK/svc-image:2.0.0" "docker://$ADDR/dev/team/app:ci-job"

step "the security team subscribes its alert receiver to anomalies (signed CloudEvents)"
openssl rand -hex 32 >"$WORK/webhook.secret"
python3 "$ROOT/examples/webhook_receiver.py" --secret-file "$WORK/webhook.secret" \
  --out "$WORK/alerts.jsonl" >"$WORK/receiver.out" 2>&1 &
RECEIVER_PID=$!
RECEIVER=""
for _ in $(seq 1 100); do
  RECEIVER=$(grep -oE 'http://127\.0\.0\.1:[0-9]+/' "$WORK/receiver.out" || true)
  [ -n "$RECEIVER" ] && break
  sleep 0.1
done
[ -n "$RECEIVER" ] || fail "the webhook receiver did not start"
expect 0 as_user admin webhooks add "$RECEIVER" --events 'anomaly.*' --secret-file "$WORK/webhook.secret"
has "added webhook" "anomaly.*"
WEBHOOK=$(first_match 'added webhook [0-9]+' | grep -oE '[0-9]+')

# wait_for_alert TYPE: waits until the receiver logged a verified CloudEvent of TYPE.
wait_for_alert() {
  for _ in $(seq 1 100); do
    grep -qF "\"type\": \"$1\"" "$WORK/alerts.jsonl" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "the receiver got no $1 within 10 s"
}

step "incident drill: eve's promoter account is used to push unvetted builds at staging"
# The default anomaly rules are on: 5 denied promotions by one principal within 10 minutes lock it.
EVE_PW="night-shift-phrase-1"
expect 0 as_user admin users add eve --password-stdin <<<"$EVE_PW"
expect 0 as_user admin roles grant eve promoter --scope 'staging/team/*'
login eve "$EVE_PW"
expect 0 python3 "$ROOT/scripts/example-image" "$WORK/image" 9.9.9
expect 0 skopeo copy --dest-creds "ci:$CI_KEY" --dest-tls-verify=false \
  "oci:$WORK/image:9.9.9" "docker://$ADDR/dev/team/tool:9.9.9"
for attempt in 1 2 3 4; do
  QUIET=1 expect 1 as_user eve promote "$ADDR/dev/team/tool:9.9.9" --to staging
  has "staging.signature_required"
done
QUIET=1 expect 0 as_user admin anomalies list
has "no open anomalies"
echo "    4 denials: below the threshold, eve still works"
expect 1 as_user eve promote "$ADDR/dev/team/tool:9.9.9" --to staging
has "staging.signature_required"
# The fifth denial locked eve before it returned: her stored login no longer works.
expect 1 as_user eve whoami     # refused: exit 1
has "locked by anomaly"

step "the alert reached the receiver, signed (it checked the HMAC with the shared secret)"
wait_for_alert dev.airlock.anomaly.detected
python3 - "$WORK/alerts.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    d = e["data"]["entry"]["details"]
    print(f"    {e['type']} id={e['id']} subject={e['subject']}: {d['summary'][:60]}... action={d['action']}")
PY
expect 0 as_user admin webhooks deliveries "$WEBHOOK"
has "delivered" "dev.airlock.anomaly.detected"

step "the security engineer looks at the anomaly and resolves it"
expect 0 as_user admin anomalies list
has "denied_promotions" "lock_principal" "requested by eve"
ANOMALY=$(first_match '^ *[0-9]+  open' | grep -oE '[0-9]+')
expect 0 as_user admin anomalies show "$ANOMALY"
has "principal:eve" "5 of threshold 5"
expect 0 as_user admin anomalies resolve "$ANOMALY" --reason "drill: eve's CI job pointed at an unsigned build"
has "resolved anomaly $ANOMALY"
login eve "$EVE_PW"
expect 0 as_user eve whoami
has "promoter@staging/team/*"
wait_for_alert dev.airlock.anomaly.resolved
echo "    the receiver got dev.airlock.anomaly.resolved too"

step "everything above is in the tamper-evident audit log"
QUIET=1 expect 0 as_user admin audit tail -n 100 --filter promotion
has "promotion.denied" "promotion.pending" "promotion.approved" "promotion.allowed" "promotion.promoted"
# One line per entry: index, type, who, what (the entries themselves are JSON lines).
printf '%s\n' "$OUT" >"$WORK/entries.jsonl"
python3 - "$WORK/entries.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    entry, subject = e["entry"], e["entry"]["subject"]
    print("    %3d %-19s %-4s %s %s %s" % (e["index"], entry["type"], entry["actor"]["principal"],
          subject.get("id", ""), subject.get("repository", ""), subject.get("digest", "")[:19]))
PY
QUIET=1 expect 0 as_user admin audit tail -n 5 --filter anomaly
has "anomaly.detected" "anomaly.resolved" "drill: eve" '"alert":true'
QUIET=1 expect 0 as_user admin audit tail -n 5 --filter channel
has "channel.rolled_back" "\"to\":\"$D1\""
# Verify the whole log against the key and checkpoint pinned at the start: it only grew.
expect 0 as_user admin audit verify --log-key "$WORK/log-key.pub" --trusted-checkpoint "$WORK/trusted.checkpoint"
has "ok:" "matches the checkpoint"
lacks "warning"

echo
echo "walkthrough: OK ($(($(date +%s) - STARTED)) s)"
