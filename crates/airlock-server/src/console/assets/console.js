// airlock console: checks the audit log in the browser, trusting the server for nothing it can
// check itself (WebCrypto only; no third-party code), and tells an open approvals inbox when
// what waits for approval changes.
//
// On the audit page it verifies
// - the newest checkpoint's Ed25519 signature (C2SP signed note) with the log's key, and that the
//   key is the one this browser saw before for the log (kept in localStorage);
// - that the log extends the checkpoint this browser saw last: the same root at the same size,
//   or an RFC 9162 consistency proof from that size (never a smaller size);
// - each entry: its leaf hash SHA-256(0x00 || bytes) and its RFC 9162 inclusion proof up to
//   the checkpoint's root.
"use strict";

(function () {
  const subtle = window.crypto && window.crypto.subtle;

  function bytesOfBase64(text) {
    const binary = atob(text);
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
    return out;
  }

  function bytesOfHex(hex) {
    if (!/^([0-9a-f]{2})*$/.test(hex)) throw new Error("not hex: " + hex);
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  function equal(a, b) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  async function sha256(bytes) {
    return new Uint8Array(await subtle.digest("SHA-256", bytes));
  }

  const leafHash = (entry) => sha256(concat(new Uint8Array([0]), entry));
  const nodeHash = (left, right) => sha256(concat(new Uint8Array([1]), left, right));

  // RFC 9162, 2.1.3.2: the root an inclusion proof leads to, or null if it cannot be one.
  async function rootFromInclusion(index, size, leaf, path) {
    if (index >= size) return null;
    let fn = index;
    let sn = size - 1;
    let r = leaf;
    for (const p of path) {
      if (sn === 0) return null;
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        if (fn % 2 === 0) {
          while (fn % 2 === 0 && fn !== 0) {
            fn = Math.floor(fn / 2);
            sn = Math.floor(sn / 2);
          }
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    return sn === 0 ? r : null;
  }

  // RFC 9162, 2.1.4.2: whether `path` proves the tree (size1, root1) a prefix of (size2, root2).
  async function consistent(size1, root1, size2, root2, path) {
    if (size1 > size2) return false;
    if (size1 === size2) return path.length === 0 && equal(root1, root2);
    if (size1 === 0) return path.length === 0;
    if (path.length === 0) return false;
    let proof = path;
    if ((size1 & (size1 - 1)) === 0) proof = [root1].concat(path);
    let fn = size1 - 1;
    let sn = size2 - 1;
    while (fn % 2 === 1) {
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    let fr = proof[0];
    let sr = proof[0];
    for (const c of proof.slice(1)) {
      if (sn === 0) return false;
      if (fn % 2 === 1 || fn === sn) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    return sn === 0 && equal(fr, root1) && equal(sr, root2);
  }

  // A C2SP signed-note verifier key: `name+hash+base64(0x01 || Ed25519 public key)`.
  function parseVerifierKey(text) {
    // The name holds no "+"; the key's base64 may.
    const match = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+=*)$/.exec(text.trim());
    if (!match) throw new Error("the log key is not name+hash+key");
    const raw = bytesOfBase64(match[3]);
    if (raw.length !== 33 || raw[0] !== 1) throw new Error("the log key is not an Ed25519 key");
    return { name: match[1], keyHash: bytesOfHex(match[2]), publicKey: raw.slice(1), raw };
  }

  // Verifies a signed checkpoint; returns { origin, size, root } or throws saying why.
  async function verifyCheckpoint(noteBytes, key) {
    const text = new TextDecoder().decode(noteBytes);
    const split = text.indexOf("\n\n");
    if (split < 0) throw new Error("the checkpoint has no signature block");
    const body = text.slice(0, split + 1);
    const expectedHash = (await sha256(concat(new TextEncoder().encode(key.name + "\n"), key.raw))).slice(0, 4);
    if (!equal(expectedHash, key.keyHash)) throw new Error("the log key's hash does not match the key");
    let verified = false;
    for (const line of text.slice(split + 2).split("\n")) {
      const match = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!match || match[1] !== key.name) continue;
      const sig = bytesOfBase64(match[2]);
      if (sig.length !== 68 || !equal(sig.slice(0, 4), key.keyHash)) continue;
      const publicKey = await subtle.importKey("raw", key.publicKey, { name: "Ed25519" }, false, ["verify"]);
      if (await subtle.verify({ name: "Ed25519" }, publicKey, sig.slice(4), new TextEncoder().encode(body))) {
        verified = true;
      }
    }
    if (!verified) throw new Error("no valid signature by the log's key on the checkpoint");
    const lines = body.split("\n");
    if (lines[0] !== key.name) throw new Error("the checkpoint's origin is not the key's name");
    const size = Number(lines[1]);
    if (!Number.isSafeInteger(size)) throw new Error("the checkpoint's size is not a number");
    return { origin: lines[0], size, root: bytesOfBase64(lines[2]) };
  }

  function say(element, text, ok) {
    element.textContent = text;
    element.classList.remove("notice", "alert", "verified");
    element.classList.add(ok ? "verified" : "alert");
    element.dataset.verified = ok ? "yes" : "no";
  }

  async function checkAuditPage(log) {
    const status = document.getElementById("log-status");
    if (!subtle) {
      say(status, "This browser has no WebCrypto (it needs a secure context): nothing was checked.", false);
      return;
    }
    let checkpoint;
    let key;
    try {
      key = parseVerifierKey(log.dataset.key);
      checkpoint = await verifyCheckpoint(bytesOfBase64(log.dataset.note), key);
    } catch (err) {
      say(status, "The checkpoint does not verify: " + err.message, false);
      return;
    }
    const storeKey = "airlock-log:" + checkpoint.origin;
    let seen = null;
    try {
      seen = JSON.parse(localStorage.getItem(storeKey) || "null");
    } catch (_) {
      seen = null;
    }
    let history = "This browser had not seen this log before; it remembers this checkpoint now.";
    if (seen) {
      if (seen.key !== log.dataset.key.trim()) {
        say(status, "The log's key changed since this browser last saw the log: do not trust it until an operator explains why.", false);
        return;
      }
      const seenRoot = bytesOfHex(seen.root);
      if (seen.size > checkpoint.size) {
        say(status, "The log is smaller (" + checkpoint.size + " entries) than when this browser last saw it (" + seen.size + "): it was rolled back.", false);
        return;
      }
      let extends_ = false;
      if (seen.size === checkpoint.size) {
        extends_ = equal(seenRoot, checkpoint.root);
      } else {
        const response = await fetch("/console/audit/consistency?from=" + seen.size + "&to=" + checkpoint.size, { credentials: "same-origin" });
        if (response.ok) {
          const proof = await response.json();
          extends_ = await consistent(seen.size, seenRoot, checkpoint.size, checkpoint.root, proof.hashes.map(bytesOfHex));
        }
      }
      if (!extends_) {
        say(status, "The log does not extend the checkpoint this browser saw last (" + seen.size + " entries): it was rewritten.", false);
        return;
      }
      history = seen.size === checkpoint.size
        ? "It is the checkpoint this browser saw last."
        : "It extends the checkpoint of " + seen.size + " entries this browser saw last (consistency proof checked).";
    }
    localStorage.setItem(storeKey, JSON.stringify({
      key: log.dataset.key.trim(),
      size: checkpoint.size,
      root: Array.from(checkpoint.root, (b) => b.toString(16).padStart(2, "0")).join(""),
    }));
    say(status, "Verified in your browser: the checkpoint of " + checkpoint.size + " entries is signed by the log's key. " + history, true);

    for (const item of document.querySelectorAll("li.entry[data-proof]")) {
      const mark = item.querySelector(".proof");
      try {
        const index = Number(item.dataset.index);
        const path = item.dataset.proof === "" ? [] : item.dataset.proof.split(",").map(bytesOfHex);
        const leaf = await leafHash(bytesOfBase64(item.dataset.bytes));
        const root = await rootFromInclusion(index, checkpoint.size, leaf, path);
        if (root && equal(root, checkpoint.root)) {
          say(mark, "included in the signed checkpoint (verified in your browser)", true);
        } else {
          say(mark, "NOT included: its bytes or proof do not lead to the signed root", false);
        }
      } catch (err) {
        say(mark, "could not be checked: " + err.message, false);
      }
    }
  }

  // An open approvals inbox hears (server-sent events) when what waits for approval changes.
  function followInbox(inbox) {
    if (!window.EventSource) return;
    const live = document.getElementById("live");
    const events = new EventSource(inbox.dataset.events);
    events.addEventListener("changed", (event) => {
      const waiting = Number(event.data);
      live.textContent = "";
      live.append(
        waiting === 1 ? "1 promotion is waiting now. " : waiting + " promotions are waiting now. ",
      );
      const link = document.createElement("a");
      link.href = "/console/approvals";
      link.textContent = "Show them";
      live.append(link);
      live.hidden = false;
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const log = document.getElementById("log");
    if (log) checkAuditPage(log);
    const inbox = document.getElementById("inbox");
    if (inbox) followInbox(inbox);
  });
})();
