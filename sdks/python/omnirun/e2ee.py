"""End-to-end encrypted transport (`e2ee=True`): ECDH P-256, HKDF-SHA-256 (empty salt,
info "omnirun-e2ee-v1") to an AES-256-GCM key; POST bodies travel as
`{"_encrypted": {alg, nonce, ciphertext, aad}}` with `aad` = "<METHOD> <path?query>", and
encrypted answers (`aad` = "response <METHOD> <path?query>") are checked and opened. Needs the
optional `cryptography` package (`pip install omnirun[e2ee]`)."""
from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional

from .errors import SandboxError

INFO = b"omnirun-e2ee-v1"


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise SandboxError("e2ee needs the 'cryptography' package: pip install 'omnirun[e2ee]'") from exc
    return hashes, serialization, ec, AESGCM, HKDF


@dataclass
class E2EEKeyPair:
    private_key: Any
    public_key_base64: str


def generate_key_pair() -> E2EEKeyPair:
    _, serialization, ec, _, _ = _crypto()
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return E2EEKeyPair(private, base64.b64encode(der).decode())


def derive_shared_key(private_key: Any, server_public_key_base64: str) -> bytes:
    hashes, serialization, ec, _, HKDF = _crypto()
    server = serialization.load_der_public_key(base64.b64decode(server_public_key_base64))
    secret = private_key.exchange(ec.ECDH(), server)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO).derive(secret)  # type: ignore[no-any-return]


def encrypt_json(key: bytes, value: Any, aad: Optional[str] = None) -> Dict[str, str]:
    """Seals a request body; `aad` ("POST /sandboxes/{id}/commands") binds it to its route."""
    _, _, _, AESGCM, _ = _crypto()
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, json.dumps(value).encode(), aad.encode() if aad else None)
    envelope = {"alg": "AES-256-GCM", "nonce": base64.b64encode(nonce).decode(), "ciphertext": base64.b64encode(sealed).decode()}
    if aad:
        envelope["aad"] = aad
    return envelope


def decrypt_json(key: bytes, envelope: Dict[str, str], expected_aad: Optional[str] = None) -> Any:
    """Opens an answer; with `expected_aad` ("response POST /sandboxes/{id}/commands") an
    answer sealed for another request is refused."""
    _, _, _, AESGCM, _ = _crypto()
    if expected_aad is not None and envelope.get("aad") != expected_aad:
        raise SandboxError("e2ee: the answer is bound to another request (aad mismatch)")
    aad = envelope["aad"].encode() if envelope.get("aad") else None
    plain = AESGCM(key).decrypt(base64.b64decode(envelope["nonce"]), base64.b64decode(envelope["ciphertext"]), aad)
    return json.loads(plain)
