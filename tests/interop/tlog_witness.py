#!/usr/bin/env python3
"""An independent C2SP tlog-witness client, written from the specifications only, for interop tests.

It shares no code with the project under test. It was written from:
  - c2sp.org/signed-note      (note format, Ed25519 signatures, key IDs, verifier keys)
  - c2sp.org/tlog-checkpoint  (origin / size / root hash note text)
  - c2sp.org/tlog-cosignature (cosignature/v1: timestamped Ed25519 over a checkpoint)
  - c2sp.org/tlog-witness     (add-checkpoint request/response, monitor retrieval)
  - RFC 6962 section 2.1 (Merkle tree hash, SUBPROOF) and RFC 9162 section 2.1.4.2
    (verifying consistency proofs).
Dependencies: the Python standard library and `cryptography` (Ed25519).

Subcommands (every check prints one line "ok: ..." or "FAIL: ..."; exit 0 iff all pass,
1 on any failure, 2 on usage errors):
  verify-cosigned LOG_VKEY WITNESS_VKEY [WITNESS_VKEY ...] [--min K]   (note on stdin)
  act-as-log WITNESS_URL WITNESS_VKEY
      prints "log-key: <vkey>", waits for one line on stdin, then runs checks a..l
  selftest
"""
import argparse
import base64
import hashlib
import os
import sys
import time
import urllib.error
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04
EM_DASH = "\u2014"
MAX_FUTURE_SKEW = 60
SIZE_CONTENT_TYPE = "text/x.tlog.size"


# ----------------------------------------------------------------------------- RFC 6962 Merkle tree

def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list) -> bytes:
    """Recursive Merkle Tree Hash MTH(D[n]) of raw leaf data (RFC 6962 2.1)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = split_point(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def incremental_root(leaves: list) -> bytes:
    """Root computed with a compact-range stack of perfect subtrees (independent of mth())."""
    stack = []  # list of (height, hash), heights strictly decreasing
    for data in leaves:
        height, h = 0, leaf_hash(data)
        while stack and stack[-1][0] == height:
            h = node_hash(stack.pop()[1], h)
            height += 1
        stack.append((height, h))
    if not stack:
        return hashlib.sha256(b"").digest()
    root = stack[-1][1]
    for _, h in reversed(stack[:-1]):
        root = node_hash(h, root)
    return root


def subproof(m: int, leaves: list, complete: bool) -> list:
    """RFC 6962 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if complete else [mth(leaves)]
    k = split_point(n)
    if m <= k:
        return subproof(m, leaves[:k], complete) + [mth(leaves[k:])]
    return subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]


def consistency_proof(m: int, leaves: list) -> list:
    """RFC 6962 PROOF(m, D[n]); empty for m == 0 or m == n."""
    if m == 0 or m == len(leaves):
        return []
    return subproof(m, leaves, True)


def verify_consistency(m: int, n: int, old_root: bytes, new_root: bytes, proof: list) -> bool:
    """Verify a consistency proof between sizes m <= n (RFC 9162 2.1.4.2)."""
    if m > n:
        return False
    if m == n:
        return not proof and old_root == new_root
    if m == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if m & (m - 1) == 0:  # m is an exact power of two
        path.insert(0, old_root)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old_root and sr == new_root and sn == 0


# ----------------------------------------------------------------------------- keys and notes

def key_id(name: str, sig_type: int, pub: bytes) -> bytes:
    """signed-note key ID: SHA-256(name || 0x0A || type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + pub).digest()[:4]


def raw_public(priv: Ed25519PrivateKey) -> bytes:
    return priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def make_vkey(name: str, sig_type: int, pub: bytes) -> str:
    """Encode a verifier key: name+hex(key id)+base64(type || public key)."""
    blob = base64.b64encode(bytes([sig_type]) + pub).decode()
    return f"{name}+{key_id(name, sig_type, pub).hex()}+{blob}"


def parse_vkey(text: str) -> tuple:
    """Parse a vkey into (name, sig_type, key_id, pub); raises ValueError if malformed."""
    parts = text.strip().split("+", 2)  # base64 may itself contain "+"
    if len(parts) != 3 or not parts[0] or len(parts[1]) != 8:
        raise ValueError(f"malformed vkey {text!r}")
    name, kid, blob = parts[0], bytes.fromhex(parts[1]), base64.b64decode(parts[2], validate=True)
    if len(blob) != 33 or blob[0] not in (SIG_ED25519, SIG_COSIGNATURE_V1):
        raise ValueError(f"vkey {name}: unsupported type or key length")
    sig_type, pub = blob[0], blob[1:]
    if key_id(name, sig_type, pub) != kid:
        raise ValueError(f"vkey {name}: key id {kid.hex()} does not match the key")
    return name, sig_type, kid, pub


def split_note(note: str) -> tuple:
    """Split a signed note into (text, [(name, sig_bytes)]); the text keeps its final newline."""
    i = note.rfind("\n\n")
    if i < 0:
        raise ValueError("note has no blank line before signatures")
    text, sig_block = note[: i + 1], note[i + 2:]
    return text, parse_signature_lines(sig_block)


def parse_signature_lines(block: str) -> list:
    """Parse '— <name> <base64>\\n' lines into (name, bytes) pairs."""
    if not block.endswith("\n"):
        raise ValueError("signature block does not end in a newline")
    sigs = []
    for line in block[:-1].split("\n"):
        if not line.startswith(EM_DASH + " "):
            raise ValueError(f"not a signature line: {line!r}")
        name, _, b64 = line[2:].partition(" ")
        raw = base64.b64decode(b64, validate=True)
        if not name or len(raw) < 5:
            raise ValueError(f"malformed signature line: {line!r}")
        sigs.append((name, raw))
    return sigs


def sig_line(name: str, raw: bytes) -> str:
    return f"{EM_DASH} {name} {base64.b64encode(raw).decode()}\n"


def ed25519_ok(pub: bytes, sig: bytes, msg: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
        return True
    except (InvalidSignature, ValueError):
        return False


def cosign_message(text: str, ts: int) -> bytes:
    """The cosignature/v1 signed message for a checkpoint note text."""
    return f"cosignature/v1\ntime {ts}\n".encode() + text.encode()


def cosign(priv: Ed25519PrivateKey, name: str, text: str, ts: int) -> str:
    """Produce a cosignature/v1 signature line."""
    kid = key_id(name, SIG_COSIGNATURE_V1, raw_public(priv))
    return sig_line(name, kid + ts.to_bytes(8, "big") + priv.sign(cosign_message(text, ts)))


def check_sigs(vkey: tuple, text: str, sigs: list) -> tuple:
    """Verify every line matching vkey's (name, key id). Returns (#valid, #invalid, timestamps)."""
    name, sig_type, kid, pub = vkey
    valid, invalid, stamps = 0, 0, []
    for sname, raw in sigs:
        if sname != name or raw[:4] != kid:
            continue
        body = raw[4:]
        if sig_type == SIG_ED25519:
            ok = len(body) == 64 and ed25519_ok(pub, body, text.encode())
        else:
            ts = int.from_bytes(body[:8], "big")
            ok = len(body) == 72 and ts < 2**63 and ed25519_ok(pub, body[8:], cosign_message(text, ts))
            stamps.append(ts)
        valid, invalid = valid + ok, invalid + (not ok)
    return valid, invalid, stamps


def parse_checkpoint(text: str) -> tuple:
    """Return (origin, size, root) of a checkpoint note text."""
    lines = text[:-1].split("\n")
    if len(lines) < 3 or not all(lines):
        raise ValueError("checkpoint needs origin, size and root lines")
    if not lines[1].isdigit() or (lines[1] != "0" and lines[1].startswith("0")):
        raise ValueError(f"bad tree size {lines[1]!r}")
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise ValueError("root hash is not 32 bytes")
    return lines[0], int(lines[1]), root


def timestamp_problem(ts: int) -> str:
    """Describe what is wrong with a cosignature timestamp, or '' if it is acceptable."""
    if ts == 0:
        return "timestamp is zero"
    if ts > time.time() + MAX_FUTURE_SKEW:
        return f"timestamp {ts} is in the future"
    return ""


# ----------------------------------------------------------------------------- reporting

class Report:
    """Collects ok/FAIL lines and the final exit status."""

    def __init__(self):
        self.failed = 0

    def check(self, cond: bool, what: str, detail: str = "") -> bool:
        print(f"{'ok' if cond else 'FAIL'}: {what}{': ' + detail if detail else ''}", flush=True)
        self.failed += not cond
        return cond

    def exit(self):
        sys.exit(1 if self.failed else 0)


# ----------------------------------------------------------------------------- verify-cosigned

def cmd_verify_cosigned(args, rep: Report):
    try:
        log = parse_vkey(args.log_vkey)
        witnesses = [parse_vkey(v) for v in args.witness_vkeys]
    except ValueError as e:
        print(f"usage error: {e}", file=sys.stderr)
        sys.exit(2)
    if log[1] != SIG_ED25519 or any(w[1] != SIG_COSIGNATURE_V1 for w in witnesses):
        print("usage error: log key must be type 0x01, witness keys type 0x04", file=sys.stderr)
        sys.exit(2)
    try:
        text, sigs = split_note(sys.stdin.buffer.read().decode("utf-8"))
        origin, size, root = parse_checkpoint(text)
    except ValueError as e:
        rep.check(False, "parse cosigned checkpoint", str(e))
        rep.exit()
    rep.check(True, f"checkpoint origin={origin} size={size} root={base64.b64encode(root).decode()}")
    rep.check(log[0] == origin, "log key name equals origin", f"{log[0]!r} vs {origin!r}")
    valid, invalid, _ = check_sigs(log, text, sigs)
    rep.check(valid > 0 and invalid == 0, "log signature", f"{valid} valid, {invalid} invalid")
    need = len(witnesses) if args.min is None else args.min
    good, absent = 0, []
    for w in witnesses:
        valid, invalid, stamps = check_sigs(w, text, sigs)
        if valid == 0 and invalid == 0:
            absent.append(w[0])
            continue
        problems = [p for p in map(timestamp_problem, stamps) if p]
        ok = rep.check(invalid == 0 and not problems, f"cosignature from {w[0]}",
                       f"timestamps={stamps}" + (f" {problems}" if problems else "")
                       + (f" {invalid} invalid" if invalid else ""))
        good += ok
    rep.check(good >= need, f"quorum: {good} valid cosignatures, need {need}", f"absent={absent}")
    rep.exit()


# ----------------------------------------------------------------------------- act-as-log

class Log:
    """A toy log: an Ed25519 key, an origin, and checkpoint signing."""

    def __init__(self, origin: str):
        self.origin, self.priv = origin, Ed25519PrivateKey.generate()
        self.pub = raw_public(self.priv)
        self.vkey = make_vkey(origin, SIG_ED25519, self.pub)

    def checkpoint(self, size: int, root: bytes) -> tuple:
        """Return (note text, signed note) for a checkpoint."""
        text = f"{self.origin}\n{size}\n{base64.b64encode(root).decode()}\n"
        kid = key_id(self.origin, SIG_ED25519, self.pub)
        return text, text + "\n" + sig_line(self.origin, kid + self.priv.sign(text.encode()))


def add_checkpoint_body(old: int, proof: list, note: str) -> bytes:
    lines = "".join(base64.b64encode(h).decode() + "\n" for h in proof)
    return f"old {old}\n{lines}\n{note}".encode()


def http(url: str, body: bytes = None) -> tuple:
    """POST (or GET if body is None); return (status, content type, body text)."""
    req = urllib.request.Request(url, data=body, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as e:
        return 0, "", f"connection error: {e}"


class Session:
    """Runs the add-checkpoint scenarios against one witness."""

    def __init__(self, rep: Report, url: str, witness: tuple, log: Log):
        self.rep, self.url, self.witness, self.log = rep, url.rstrip("/"), witness, log

    def submit(self, old: int, proof: list, note: str) -> tuple:
        return http(self.url + "/add-checkpoint", add_checkpoint_body(old, proof, note))

    def cosigned(self, label: str, text: str, sigs_text: str) -> bool:
        """Check that sigs_text holds a valid witness cosignature over text."""
        try:
            sigs = parse_signature_lines(sigs_text)
        except ValueError as e:
            return self.rep.check(False, label, f"bad signature lines: {e}")
        valid, invalid, stamps = check_sigs(self.witness, text, sigs)
        problems = [p for p in map(timestamp_problem, stamps) if p]
        return self.rep.check(valid > 0 and invalid == 0 and not problems, label,
                              f"{valid} valid, {invalid} invalid cosignatures, timestamps={stamps} {problems}")

    def expect_200(self, label: str, old: int, proof: list, text: str, note: str) -> bool:
        status, _, body = self.submit(old, proof, note)
        if not self.rep.check(status == 200, label + " -> 200", f"got {status} {body.strip()[:200]!r}"):
            return False
        return self.cosigned(label + " cosignature", text, body)

    def expect_409(self, label: str, old: int, proof: list, note: str, size: int):
        status, ctype, body = self.submit(old, proof, note)
        media = ctype.split(";")[0].strip().lower()
        self.rep.check(status == 409 and body == f"{size}\n" and media == SIZE_CONTENT_TYPE,
                       label + f" -> 409 {size!r}", f"got {status} {ctype!r} {body[:200]!r}")

    def expect(self, label: str, want: int, body_bytes: bytes):
        status, _, body = http(self.url + "/add-checkpoint", body_bytes)
        self.rep.check(status == want, f"{label} -> {want}", f"got {status} {body.strip()[:200]!r}")


def cmd_act_as_log(args, rep: Report):
    try:
        witness = parse_vkey(args.witness_vkey)
    except ValueError as e:
        print(f"usage error: {e}", file=sys.stderr)
        sys.exit(2)
    if witness[1] != SIG_COSIGNATURE_V1:
        print("usage error: witness key must be type 0x04 (cosignature/v1)", file=sys.stderr)
        sys.exit(2)
    log = Log(f"interop.test/log-{os.urandom(8).hex()}")
    print(f"log-key: {log.vkey}", flush=True)
    if not sys.stdin.readline():
        rep.check(False, "waiting for the go line", "stdin closed")
        rep.exit()
    run_scenarios(Session(rep, args.witness_url, witness, log), log)
    rep.exit()


def run_scenarios(s: Session, log: Log):
    """Checks a..l of the add-checkpoint protocol, in order."""
    tree = [b"leaf-%d" % i for i in range(16)]
    other = [b"other-%d" % i for i in range(16)]
    cp = {n: log.checkpoint(n, mth(tree[:n])) for n in (5, 7, 9, 16)}
    s.expect_200("a. size 5, old 0", 0, [], *cp[5])
    s.expect_409("b. size 9, old 0", 0, [], cp[9][1], 5)
    s.expect_200("c. size 9, old 5 + proof", 5, consistency_proof(5, tree[:9]), *cp[9])
    _, rewritten = log.checkpoint(12, mth(other[:12]))
    s.expect("d. rewritten history size 12, old 9", 422,
             add_checkpoint_body(9, consistency_proof(9, other[:12]), rewritten))
    s.expect_409("e. rollback size 7, old 7", 7, [], cp[7][1], 9)
    s.expect_200("f. size 9 again, old 9, empty proof", 9, [], *cp[9])
    _, fork = log.checkpoint(9, mth(other[:9]))
    s.expect("g. fork at size 9, old 9", 422, add_checkpoint_body(9, [], fork))
    _, impostor = Log(log.origin).checkpoint(9, mth(tree[:9]))
    s.expect("h. same origin, unknown key", 403, add_checkpoint_body(9, [], impostor))
    _, unknown = Log(f"interop.test/unknown-{os.urandom(8).hex()}").checkpoint(5, mth(tree[:5]))
    s.expect("i. unknown origin", 404, add_checkpoint_body(0, [], unknown))
    s.expect("j. old 10 > size 9", 400, add_checkpoint_body(10, [], cp[9][1]))
    s.expect("k. 64 proof lines", 400, add_checkpoint_body(9, [os.urandom(32) for _ in range(64)], cp[16][1]))
    if s.expect_200("l. size 16, old 9 + proof", 9, consistency_proof(9, tree), *cp[16]):
        check_monitor(s, log, cp[16][0])


def check_monitor(s: Session, log: Log, text: str):
    """GET <prefix>/<sha256(origin)>/checkpoint and verify it is the cosigned size-16 checkpoint."""
    url = f"{s.url}/{hashlib.sha256(log.origin.encode()).hexdigest()}/checkpoint"
    status, _, body = http(url)
    if not s.rep.check(status == 200, "l. monitor GET checkpoint -> 200", f"got {status} {body[:200]!r}"):
        return
    try:
        got_text, sigs = split_note(body)
    except ValueError as e:
        s.rep.check(False, "l. monitor checkpoint parses", str(e))
        return
    s.rep.check(got_text == text, "l. monitor checkpoint is the size-16 checkpoint", repr(got_text))
    valid, invalid, _ = check_sigs(parse_vkey(log.vkey), got_text, sigs)
    s.rep.check(valid > 0 and invalid == 0, "l. monitor checkpoint log signature", f"{valid} valid")
    s.cosigned("l. monitor checkpoint witness cosignature", got_text,
               "".join(sig_line(n, raw) for n, raw in sigs))


# ----------------------------------------------------------------------------- selftest

CT_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
             "606162636465666768696a6b6c6d6e6f"]
CT_ROOTS = [  # RFC 6962 reference roots (certificate-transparency merkle_tree_test.cc)
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = ("This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2"
             "ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n")


def flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 1]) + h[1:]


def selftest_merkle() -> tuple:
    """Returns (cases, failures) for roots and consistency proofs."""
    cases, bad = 0, []
    ct = [bytes.fromhex(x) for x in CT_LEAVES]
    for n in range(9):
        cases += 1
        if mth(ct[:n]).hex() != CT_ROOTS[n] or incremental_root(ct[:n]).hex() != CT_ROOTS[n]:
            bad.append(f"reference root of size {n}")
    leaves = [b"leaf-%d" % i for i in range(20)]
    roots = [mth(leaves[:n]) for n in range(21)]
    for n in range(21):
        cases += 1
        if incremental_root(leaves[:n]) != roots[n]:
            bad.append(f"root of size {n}: recursive != incremental")
    for n in range(1, 21):
        for m in range(1, n + 1):
            proof = consistency_proof(m, leaves[:n])
            cases += 1
            if not verify_consistency(m, n, roots[m], roots[n], proof):
                bad.append(f"proof {m}->{n} does not verify")
            for tampered in tamperings(proof, roots[m]):
                cases += 1
                if verify_consistency(m, n, roots[m], roots[n], tampered):
                    bad.append(f"tampered proof {m}->{n} verifies")
            cases += 1
            if verify_consistency(m, n, flip(roots[m]), roots[n], proof):
                bad.append(f"proof {m}->{n} verifies with a wrong old root")
    return cases, bad


def tamperings(proof: list, extra: bytes) -> list:
    """Every single-hash corruption of the proof, a truncation, and an extension."""
    out = [proof[:i] + [flip(h)] + proof[i + 1:] for i, h in enumerate(proof)]
    if proof:
        out.append(proof[:-1])
    out.append(proof + [extra])
    return out


def selftest_notes() -> tuple:
    """Returns (cases, failures) for vkeys, log signatures and cosignatures."""
    cases, bad = 0, []

    def expect(cond, what):
        nonlocal cases
        cases += 1
        if not cond:
            bad.append(what)

    spec = parse_vkey(SPEC_VKEY)
    text, sigs = split_note(SPEC_NOTE)
    expect(check_sigs(spec, text, sigs)[:2] == (1, 0), "signed-note spec example verifies")
    expect(make_vkey(spec[0], spec[1], spec[3]) == SPEC_VKEY, "spec vkey round trips")
    log, wpriv, wname = Log("example.com/log"), Ed25519PrivateKey.generate(), "witness.example/w1"
    wvkey = make_vkey(wname, SIG_COSIGNATURE_V1, raw_public(wpriv))
    w = parse_vkey(wvkey)
    expect(make_vkey(w[0], w[1], w[3]) == wvkey, "witness vkey round trips")
    expect(w[2] == hashlib.sha256(wname.encode() + b"\n\x04" + w[3]).digest()[:4], "witness key id")
    expect(parse_vkey(log.vkey)[2] == hashlib.sha256(b"example.com/log\n\x01" + log.pub).digest()[:4],
           "log key id")
    for wrong in (SPEC_VKEY.replace("530d903a", "530d903b"), "a+b", SPEC_VKEY[:-4]):
        try:
            parse_vkey(wrong)
            expect(False, f"bad vkey {wrong!r} rejected")
        except ValueError:
            expect(True, "")
    text, note = log.checkpoint(7, mth([b"x"] * 7))
    ts = int(time.time())
    line = cosign(wpriv, wname, text, ts)
    _, sigs = split_note(note + line)
    expect(check_sigs(parse_vkey(log.vkey), text, sigs)[:2] == (1, 0), "log signature verifies")
    expect(check_sigs(w, text, sigs) == (1, 0, [ts]), "cosignature verifies")
    expect(check_sigs(w, text.replace("\n7\n", "\n8\n"), sigs)[:2] == (0, 1), "cosignature over other text fails")
    raw = sigs[1][1]
    for i in (4, 11, 12, 75):  # timestamp bytes and signature bytes
        bent = raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1:]
        expect(check_sigs(w, text, [(wname, bent)])[:2] == (0, 1), f"tampered cosignature byte {i} fails")
    expect(check_sigs(w, text, [(wname + "x", raw)])[:2] == (0, 0), "other name ignored")
    expect(timestamp_problem(ts) == "" and timestamp_problem(0) and timestamp_problem(ts + 3600),
           "timestamp checks")
    expect(parse_checkpoint(text) == ("example.com/log", 7, mth([b"x"] * 7)), "checkpoint parses")
    return cases, bad


def cmd_selftest(args, rep: Report):
    c1, bad1 = selftest_merkle()
    c2, bad2 = selftest_notes()
    for what in bad1 + bad2:
        rep.check(False, what)
    rep.check(not bad1, f"merkle: {c1} cases (roots 0..20 two ways, proofs 1<=m<=n<=20, tampering)")
    rep.check(not bad2, f"notes: {c2} cases (vkeys, key ids, log signatures, cosignatures, tampering)")
    rep.check(not (bad1 or bad2), f"selftest: {c1 + c2} cases")
    rep.exit()


# ----------------------------------------------------------------------------- CLI

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify-cosigned", help="verify a cosigned checkpoint read from stdin")
    v.add_argument("log_vkey", metavar="LOG_VKEY")
    v.add_argument("witness_vkeys", metavar="WITNESS_VKEY", nargs="+")
    v.add_argument("--min", type=int, metavar="K", help="valid cosignatures required (default: all)")
    a = sub.add_parser("act-as-log", help="act as a log against a running witness")
    a.add_argument("witness_url", metavar="WITNESS_URL", help="submission prefix, e.g. http://host/witness")
    a.add_argument("witness_vkey", metavar="WITNESS_VKEY")
    sub.add_parser("selftest", help="offline self checks")
    args = p.parse_args()
    if args.cmd == "verify-cosigned" and args.min is not None and not 0 <= args.min <= len(args.witness_vkeys):
        p.error("--min must be between 0 and the number of witness keys")
    handler = {"verify-cosigned": cmd_verify_cosigned, "act-as-log": cmd_act_as_log, "selftest": cmd_selftest}
    handler[args.cmd](args, Report())


if __name__ == "__main__":
    main()
