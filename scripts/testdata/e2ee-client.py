#!/usr/bin/env python3
"""An e2ee client written apart from the server, on Python's `cryptography` package (PyPI):
ECDH P-256, HKDF-SHA-256 (empty salt, info "omnirun-e2ee-v1"), AES-256-GCM envelopes
{"_encrypted": {alg, nonce, ciphertext, aad?}} as in wire protocol section 12. Prints one
JSON object with what it saw; the Swift tests judge it.

usage: e2ee-client.py vectors                       known-answer vectors (fixed and random keys)
       e2ee-client.py cycle URL KEY TEMPLATE        create -> command -> files, attacks, plain sandbox
       e2ee-client.py create URL KEY TEMPLATE       an e2ee sandbox; prints its id and the client's keys
       e2ee-client.py run URL KEY ID PRIV SERVERPUB COMMAND   one encrypted command on that sandbox
       e2ee-client.py post URL KEY PATH BODY        a raw POST (e.g. a captured envelope sent again)
       e2ee-client.py fork URL KEY ID PRIV SERVERPUB          forks of an e2ee sandbox get keys of their own

Request envelopes may carry aad = "<METHOD> <path?query>" (checked by the server); every
sealed answer carries aad = "response <METHOD> <path?query>".
"""
import base64
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

INFO = b"omnirun-e2ee-v1"
ALG = "AES-256-GCM"


def b64(data):
    return base64.b64encode(data).decode()


def spki(public_key):
    return b64(public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def private_from_hex(text):
    return ec.derive_private_key(int(text, 16), ec.SECP256R1())


def private_hex(private_key):
    return format(private_key.private_numbers().private_value, "064x")


def shared_secret(private_key, peer_spki_b64):
    peer = serialization.load_der_public_key(base64.b64decode(peer_spki_b64))
    return private_key.exchange(ec.ECDH(), peer)


def derive(secret):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"", info=INFO).derive(secret)


def seal(key, payload, aad=None, nonce=None):
    nonce = nonce if nonce is not None else os.urandom(12)
    data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
    envelope = {"alg": ALG, "nonce": b64(nonce),
                "ciphertext": b64(AESGCM(key).encrypt(nonce, data, aad.encode() if aad else None))}
    if aad is not None:
        envelope["aad"] = aad
    return envelope


def open_envelope(key, envelope):
    aad = envelope.get("aad")
    plaintext = AESGCM(key).decrypt(base64.b64decode(envelope["nonce"]), base64.b64decode(envelope["ciphertext"]),
                                    aad.encode() if aad else None)
    return json.loads(plaintext)


class Client:
    def __init__(self, url, api_key):
        self.url = url.rstrip("/")
        self.api_key = api_key

    def raw(self, method, path, body=None, content_type="application/json", headers=None):
        """Sends bytes (or nothing); returns (status, content type, parsed JSON or text)."""
        request = urllib.request.Request(self.url + path, data=body, method=method)
        request.add_header("X-API-Key", self.api_key)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        if body is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                status, ctype, text = response.status, response.headers.get("Content-Type", ""), response.read()
        except urllib.error.HTTPError as e:
            status, ctype, text = e.code, e.headers.get("Content-Type", ""), e.read()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text.decode(errors="replace")
        return status, ctype, parsed

    def json(self, method, path, payload):
        return self.raw(method, path, json.dumps(payload).encode())


class Channel:
    """An e2ee sandbox seen from the client: every POST body sealed, answers opened."""

    def __init__(self, client, sandbox_id, key):
        self.client, self.id, self.key = client, sandbox_id, key
        self.sent = []  # every request body sent, for the replay checks

    def route(self, path, method="POST"):
        return f"{method} /sandboxes/{self.id}{path}"

    def post(self, path, payload, aad=None):
        body = json.dumps({"_encrypted": seal(self.key, payload, aad)}).encode()
        self.sent.append((path, body))
        status, ctype, answer = self.client.raw("POST", f"/sandboxes/{self.id}{path}", body)
        return status, self.reveal(answer), answer

    def get(self, path):
        # Holding the key, it asks for sealed answers (a GET shows nothing else).
        status, ctype, answer = self.client.raw("GET", f"/sandboxes/{self.id}{path}", headers={"X-OmniRun-E2EE": "seal"})
        return status, self.reveal(answer), answer

    def reveal(self, answer):
        if isinstance(answer, dict) and set(answer) == {"_encrypted"}:
            return open_envelope(self.key, answer["_encrypted"])
        return None


def create(client, template, e2ee=True):
    private_key = ec.generate_private_key(ec.SECP256R1())
    body = {"template": template, "timeout": 600}
    if e2ee:
        body.update({"e2ee": True, "clientPublicKey": spki(private_key.public_key())})
    status, _, answer = client.json("POST", "/sandboxes", body)
    if status in (500, 502, 503, 504):
        # As the SDK does: one immediate retry of a 5xx (a busy machine may miss a restore).
        status, _, answer = client.json("POST", "/sandboxes", body)
    if status != 201:
        raise SystemExit(json.dumps({"ok": False, "step": "create", "status": status, "body": answer}))
    return private_key, answer


def error_shape(status, answer):
    return {"status": status, "error": answer.get("error") if isinstance(answer, dict) else None,
            "message": answer.get("message") if isinstance(answer, dict) else answer}


def cycle(url, api_key, template):
    client = Client(url, api_key)
    out = {"ok": True}
    private_key, created = create(client, template)
    sid = created["sandboxID"]
    out["sandboxID"] = sid
    out["serverPublicKeyLength"] = len(created.get("serverPublicKey") or "")
    key = derive(shared_secret(private_key, created["serverPublicKey"]))
    out["keyHex"] = key.hex()
    ch = Channel(client, sid, key)
    try:
        # The cycle: command, file write, file read, batch, list, with every body sealed.
        status, plain, raw = ch.post("/commands", {"command": "echo secret-$((6*7))"})
        out["command"] = {"status": status, "encrypted": plain is not None, "rawKeys": sorted(raw) if isinstance(raw, dict) else None,
                          "stdout": (plain or {}).get("stdout"), "exitCode": (plain or {}).get("exitCode", (plain or {}).get("exit_code")),
                          "aad": (raw or {}).get("_encrypted", {}).get("aad") if isinstance(raw, dict) else None,
                          "expectedAad": "response " + ch.route("/commands")}
        status, plain, _ = ch.post("/files", {"path": "/tmp/e2ee/a.txt", "content": "first version \u2713"})
        out["write1"] = {"status": status, "encrypted": plain is not None}
        first_write = ch.sent[-1]
        status, plain, _ = ch.post("/files", {"path": "/tmp/e2ee/a.txt", "content": "second version \u2713"}, aad=ch.route("/files"))
        out["write2"] = {"status": status, "encrypted": plain is not None}
        status, plain, raw = ch.get("/files?path=%2Ftmp%2Fe2ee%2Fa.txt")
        out["read"] = {"status": status, "encrypted": plain is not None, "content": (plain or {}).get("content"),
                       "aadMatches": isinstance(raw, dict) and raw.get("_encrypted", {}).get("aad")
                       == "response " + ch.route("/files?path=%2Ftmp%2Fe2ee%2Fa.txt", "GET")}
        # An envelope (without aad, as the public SDK sends) for one route, captured, then
        # sent to another: refused by its nonce. First its own route (mkdir), then it is undone.
        status, _, _ = ch.post("/files/mkdir", {"path": "/tmp/e2ee/x"})
        mkdir_envelope = ch.sent[-1]
        out["mkdir"] = {"status": status}
        out["undoMkdir"] = client.raw("DELETE", f"/sandboxes/{sid}/files?path=%2Ftmp%2Fe2ee%2Fx")[0]
        status, plain, _ = ch.post("/files/batch", [{"path": "/tmp/e2ee/b.txt", "content": "bee"}])
        out["batch"] = {"status": status, "isArray": isinstance(plain, list), "paths": [i.get("path") for i in plain or []]}
        status, plain, _ = ch.get("/files/list?path=%2Ftmp%2Fe2ee")
        out["list"] = {"status": status, "names": sorted(i.get("name") for i in plain or [])}
        # Multipart stays plaintext both ways (section 12).
        boundary = "e2eeboundary"
        form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n/tmp/e2ee/up.bin\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"up.bin\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\nuploaded-bytes\r\n--{boundary}--\r\n").encode()
        status, _, answer = client.raw("POST", f"/sandboxes/{sid}/files/upload", form, f"multipart/form-data; boundary={boundary}")
        out["upload"] = {"status": status, "plaintextAnswer": isinstance(answer, dict) and "_encrypted" not in answer}
        status, plain, _ = ch.post("/commands", {"command": "cat /tmp/e2ee/up.bin"})
        out["uploadReadBack"] = (plain or {}).get("stdout")

        # Attacks: each must be a 400 with a JSON error, and change nothing.
        attacks = {}
        env = seal(key, {"command": "touch /tmp/e2ee/pwned"})
        tampered = dict(env)
        raw_ct = bytearray(base64.b64decode(env["ciphertext"]))
        raw_ct[3] ^= 0x01
        tampered["ciphertext"] = b64(bytes(raw_ct))
        attacks["tamperedCiphertext"] = client.json("POST", f"/sandboxes/{sid}/commands", {"_encrypted": tampered})
        tag_cut = dict(env, ciphertext=b64(base64.b64decode(env["ciphertext"])[:-1]))
        attacks["truncatedTag"] = client.json("POST", f"/sandboxes/{sid}/commands", {"_encrypted": tag_cut})
        with_aad = seal(key, {"command": "touch /tmp/e2ee/pwned"}, aad="sandbox:x:commands")
        attacks["tamperedAad"] = client.json("POST", f"/sandboxes/{sid}/commands",
                                             {"_encrypted": dict(with_aad, aad=ch.route("/commands"))})
        attacks["droppedAad"] = client.json("POST", f"/sandboxes/{sid}/commands",
                                            {"_encrypted": {k: v for k, v in with_aad.items() if k != "aad"}})
        short = seal(key, {"command": "touch /tmp/e2ee/pwned"})
        short["nonce"] = b64(os.urandom(8))
        attacks["nonce8Bytes"] = client.json("POST", f"/sandboxes/{sid}/commands", {"_encrypted": short})
        attacks["nonceNotBase64"] = client.json("POST", f"/sandboxes/{sid}/commands", {"_encrypted": dict(env, nonce="%%%")})
        attacks["unknownAlg"] = client.json("POST", f"/sandboxes/{sid}/commands", {"_encrypted": dict(env, alg="AES-128-GCM")})
        attacks["envelopeNotObject"] = client.json("POST", f"/sandboxes/{sid}/commands", {"_encrypted": "x"})
        other_key = os.urandom(32)
        attacks["otherKey"] = client.json("POST", f"/sandboxes/{sid}/commands", {"_encrypted": seal(other_key, {"command": "touch /tmp/e2ee/pwned"})})
        attacks["plaintextBody"] = client.json("POST", f"/sandboxes/{sid}/commands", {"command": "touch /tmp/e2ee/pwned"})
        attacks["plaintextBeside"] = client.json("POST", f"/sandboxes/{sid}/commands", {"_encrypted": env, "command": "touch /tmp/e2ee/pwned"})
        attacks["noBody"] = client.raw("POST", f"/sandboxes/{sid}/commands")
        attacks["plaintextArray"] = client.json("POST", f"/sandboxes/{sid}/files/batch", [{"path": "/tmp/e2ee/pwned", "content": "x"}])
        attacks["plaintextTimeout"] = client.json("POST", f"/sandboxes/{sid}/timeout", {"timeout": 5})
        # Replay: the first write again (its content must not come back).
        path, body = first_write
        attacks["replay"] = client.raw("POST", f"/sandboxes/{sid}{path}", body)
        # The mkdir envelope sent to the write route (it would write an empty file /tmp/e2ee/x).
        attacks["replayOtherRoute"] = client.raw("POST", f"/sandboxes/{sid}/files", mkdir_envelope[1])
        # aad bound to another route, or to another sandbox: refused before anything runs.
        attacks["aadOtherRoute"] = client.json("POST", f"/sandboxes/{sid}/commands",
                                               {"_encrypted": seal(key, {"command": "touch /tmp/e2ee/pwned"}, aad=ch.route("/files"))})
        attacks["aadOtherSandbox"] = client.json("POST", f"/sandboxes/{sid}/commands",
                                                 {"_encrypted": seal(key, {"command": "touch /tmp/e2ee/pwned"},
                                                                     aad="POST /sandboxes/sb_00000000/commands")})
        # Reflection: an answer of the server sent back as a request.
        status, _, answer = client.raw("POST", f"/sandboxes/{sid}/files/mkdir",
                                       json.dumps({"_encrypted": seal(key, {"path": "/tmp/e2ee/dir"})}).encode())
        attacks["reflectedAnswer"] = client.json("POST", f"/sandboxes/{sid}/files/mkdir", answer if isinstance(answer, dict) else {})
        out["attacks"] = {name: error_shape(status, answer) for name, (status, _, answer) in attacks.items()}
        status, plain, _ = ch.get("/files?path=%2Ftmp%2Fe2ee%2Fa.txt")
        out["afterAttacks"] = {"content": (plain or {}).get("content")}
        status, plain, _ = ch.post("/commands", {"command": "ls /tmp/e2ee"})
        out["afterAttacks"]["ls"] = (plain or {}).get("stdout")
        # A fresh envelope still works after all that.
        status, plain, _ = ch.post("/commands", {"command": "echo still-fine"})
        out["afterAttacks"]["fresh"] = (plain or {}).get("stdout")
        # Errors stay plaintext JSON (the SDK reads them before it decrypts).
        status, _, answer = client.raw("POST", f"/sandboxes/{sid}/commands",
                                       json.dumps({"_encrypted": seal(key, {"nothing": 1})}).encode())
        out["handlerError"] = {"status": status, "plaintext": isinstance(answer, dict) and "error" in answer}
        # A client without the key (as after Sandbox.connect()): its GETs are answered in
        # plaintext it can parse, its POSTs refused with a message saying why.
        status, _, answer = client.raw("GET", f"/sandboxes/{sid}/files?path=%2Ftmp%2Fe2ee%2Fa.txt")
        out["keylessRead"] = {"status": status, "content": answer.get("content") if isinstance(answer, dict) else None,
                              "sealed": isinstance(answer, dict) and "_encrypted" in answer}
        status, _, answer = client.raw("GET", f"/sandboxes/{sid}/commands")
        out["keylessList"] = {"status": status, "isArray": isinstance(answer, list)}
        status, _, answer = client.json("POST", f"/sandboxes/{sid}/commands", {"command": "touch /tmp/e2ee/pwned"})
        out["keylessWrite"] = error_shape(status, answer)
        status, plain, _ = ch.post("/commands", {"command": "test -e /tmp/e2ee/pwned && echo yes || echo no"})
        out["keylessWriteRan"] = (plain or {}).get("stdout")
    finally:
        out["kill"] = client.raw("DELETE", f"/sandboxes/{sid}")[0]

    # A sandbox without e2ee: plaintext both ways, no serverPublicKey.
    _, plain_created = create(client, template, e2ee=False)
    pid = plain_created["sandboxID"]
    try:
        out["plain"] = {"serverPublicKey": plain_created.get("serverPublicKey")}
        status, _, answer = client.json("POST", f"/sandboxes/{pid}/commands", {"command": "echo plain-ok"})
        out["plain"]["command"] = {"status": status, "stdout": answer.get("stdout") if isinstance(answer, dict) else None}
        status, _, answer = client.json("POST", f"/sandboxes/{pid}/files", {"path": "/tmp/p.txt", "content": "plain file"})
        out["plain"]["write"] = status
        status, _, answer = client.raw("GET", f"/sandboxes/{pid}/files?path=%2Ftmp%2Fp.txt")
        out["plain"]["read"] = answer.get("content") if isinstance(answer, dict) else answer
    finally:
        out["plain"]["kill"] = client.raw("DELETE", f"/sandboxes/{pid}")[0]
    # Bad handshakes.
    bad = {}
    bad["noKey"] = client.json("POST", "/sandboxes", {"template": template, "e2ee": True})
    bad["notBase64"] = client.json("POST", "/sandboxes", {"template": template, "e2ee": True, "clientPublicKey": "not base64!"})
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    bad["p384Key"] = client.json("POST", "/sandboxes", {"template": template, "e2ee": True, "clientPublicKey": spki(p384)})
    bad["keyWithoutE2ee"] = client.json("POST", "/sandboxes", {"template": template, "clientPublicKey": spki(private_key.public_key())})
    out["badHandshakes"] = {name: error_shape(status, answer) for name, (status, _, answer) in bad.items()}
    return out


def fork(client, sid, private_hex_text, server_public):
    """Forks an e2ee sandbox: refused without a client key; with one, each copy answers
    with its own server key, and no envelope crosses between the sandboxes."""
    out = {"ok": True}
    parent_key = derive(shared_secret(private_from_hex(private_hex_text), server_public))
    parent = Channel(client, sid, parent_key)
    status, _, answer = parent.post("/fork", {"count": 1})
    out["withoutKey"] = error_shape(status, answer)
    fork_key = ec.generate_private_key(ec.SECP256R1())
    status, plain, answer = parent.post("/fork", {"count": 2, "clientPublicKey": spki(fork_key.public_key())})
    copies = (plain or {}).get("sandboxes") or []
    out["forkStatus"] = status
    out["forkAnswer"] = answer if plain is None else None
    out["copies"] = [c.get("sandboxID") for c in copies]
    out["serverKeys"] = [c.get("serverPublicKey") for c in copies]
    out["parentServerKey"] = server_public
    out["runs"] = []
    for copy in copies:
        key = derive(shared_secret(fork_key, copy["serverPublicKey"]))
        channel = Channel(client, copy["sandboxID"], key)
        status, plain, _ = channel.post("/commands", {"command": "echo copy-ok"}, aad=channel.route("/commands"))
        # The parent's key does not open on the copy, nor the copy's on the parent.
        with_parent_key = client.json("POST", f"/sandboxes/{copy['sandboxID']}/commands",
                                      {"_encrypted": seal(parent_key, {"command": "touch /tmp/pwned"})})
        with_copy_key = client.json("POST", f"/sandboxes/{sid}/commands",
                                    {"_encrypted": seal(key, {"command": "touch /tmp/pwned"})})
        out["runs"].append({"status": status, "stdout": (plain or {}).get("stdout"),
                            "parentKeyOnCopy": error_shape(with_parent_key[0], with_parent_key[2]),
                            "copyKeyOnParent": error_shape(with_copy_key[0], with_copy_key[2])})
    status, plain, _ = parent.post("/commands", {"command": "echo parent-ok; test -e /tmp/pwned && echo pwned"})
    out["parentAfter"] = (plain or {}).get("stdout")
    for copy in copies:
        out.setdefault("kills", []).append(client.raw("DELETE", f"/sandboxes/{copy['sandboxID']}")[0])
    return out


def vectors():
    """Vectors for the Swift side to reproduce: keys, shared secret, channel key, envelopes."""
    cases = []
    fixed = [
        ("client", "server"),
        ("omnirun-e2ee-a", "omnirun-e2ee-b"),
    ]
    keys = [(ec.derive_private_key(int.from_bytes(hashlib.sha256(a.encode()).digest(), "big") % (2**255), ec.SECP256R1()),
             ec.derive_private_key(int.from_bytes(hashlib.sha256(b.encode()).digest(), "big") % (2**255), ec.SECP256R1()))
            for a, b in fixed]
    keys += [(ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())) for _ in range(3)]
    for index, (client_key, server_key) in enumerate(keys):
        secret = shared_secret(client_key, spki(server_key.public_key()))
        assert secret == shared_secret(server_key, spki(client_key.public_key()))
        key = derive(secret)
        envelopes = []
        payloads = [({"command": "echo hi", "background": False}, None),
                    ([{"path": "/tmp/\u00e9t\u00e9.txt", "content": "caf\u00e9 \u2603"}], f"sandbox:sbx_{index}:files/batch"),
                    ({}, "")]
        for number, (payload, aad) in enumerate(payloads):
            nonce = hashlib.sha256(f"nonce-{index}-{number}".encode()).digest()[:12] if index < 2 else os.urandom(12)
            plaintext = json.dumps(payload, ensure_ascii=False).encode()
            envelope = seal(key, plaintext, aad, nonce)
            envelopes.append({"plaintext": b64(plaintext), "envelope": envelope})
        cases.append({
            "clientPrivate": private_hex(client_key), "serverPrivate": private_hex(server_key),
            "clientPublicKey": spki(client_key.public_key()), "serverPublicKey": spki(server_key.public_key()),
            "sharedSecret": secret.hex(), "key": key.hex(), "envelopes": envelopes,
        })
    return {"ok": True, "cases": cases}


def main():
    command = sys.argv[1]
    if command == "vectors":
        result = vectors()
    elif command == "cycle":
        result = cycle(sys.argv[2], sys.argv[3], sys.argv[4])
    elif command == "create":
        client = Client(sys.argv[2], sys.argv[3])
        private_key, created = create(client, sys.argv[4])
        result = {"ok": True, "sandboxID": created["sandboxID"], "clientPrivate": private_hex(private_key),
                  "serverPublicKey": created.get("serverPublicKey")}
    elif command == "run":
        client = Client(sys.argv[2], sys.argv[3])
        key = derive(shared_secret(private_from_hex(sys.argv[5]), sys.argv[6]))
        channel = Channel(client, sys.argv[4], key)
        status, plain, raw = channel.post("/commands", {"command": sys.argv[7]})
        result = {"ok": True, "status": status, "stdout": (plain or {}).get("stdout"), "raw": raw if plain is None else None,
                  "sentBody": channel.sent[-1][1].decode()}
    elif command == "post":
        client = Client(sys.argv[2], sys.argv[3])
        status, _, answer = client.raw("POST", sys.argv[4], sys.argv[5].encode())
        result = dict(error_shape(status, answer), ok=True)
    elif command == "fork":
        result = fork(Client(sys.argv[2], sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6])
    else:
        raise SystemExit(__doc__)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
