/**
 * End-to-end encrypted transport: ECDH P-256 key agreement, HKDF-SHA-256 (empty salt,
 * info "omnirun-e2ee-v1") to an AES-256-GCM key. Only WebCrypto (`globalThis.crypto.subtle`).
 */
export type E2EEAlgorithm = "AES-256-GCM";

export interface EncryptedEnvelope {
  alg: E2EEAlgorithm;
  nonce: string;
  ciphertext: string;
  aad?: string;
}

export interface E2EEKeyPairMaterial {
  publicKey: CryptoKey;
  privateKey: CryptoKey;
  /** Base64 of the DER SubjectPublicKeyInfo. */
  publicKeyBase64: string;
}

export interface E2EECreateOptions {
  enabled?: boolean;
  keyPair?: E2EEKeyPairMaterial;
  clientPublicKey?: string;
}

export interface E2EESessionInfo {
  enabled: boolean;
  clientPublicKey: string;
  clientKeyPair?: E2EEKeyPairMaterial;
  serverPublicKey?: string;
}

const INFO = new TextEncoder().encode("omnirun-e2ee-v1");

function subtle(): SubtleCrypto {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (!c?.subtle) throw new Error("e2ee needs WebCrypto (globalThis.crypto.subtle; Node 18+)");
  return c.subtle;
}

function toBase64(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}

function fromBase64(text: string): Uint8Array {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

export async function generateE2EEKeyPair(): Promise<E2EEKeyPairMaterial> {
  const pair = (await subtle().generateKey({ name: "ECDH", namedCurve: "P-256" }, true, ["deriveBits"])) as CryptoKeyPair;
  const spki = new Uint8Array(await subtle().exportKey("spki", pair.publicKey));
  return { publicKey: pair.publicKey, privateKey: pair.privateKey, publicKeyBase64: toBase64(spki) };
}

export async function importE2EEPublicKey(base64: string): Promise<CryptoKey> {
  return subtle().importKey("spki", fromBase64(base64), { name: "ECDH", namedCurve: "P-256" }, true, []);
}

export async function deriveE2EESharedKey(privateKey: CryptoKey, serverPublicKeyBase64: string): Promise<CryptoKey> {
  const server = await importE2EEPublicKey(serverPublicKeyBase64);
  const secret = await subtle().deriveBits({ name: "ECDH", public: server }, privateKey, 256);
  const hkdf = await subtle().importKey("raw", secret, "HKDF", false, ["deriveKey"]);
  return subtle().deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: INFO },
    hkdf,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

export async function encryptE2EEJSON(key: CryptoKey, value: unknown, aad?: string): Promise<EncryptedEnvelope> {
  const nonce = new Uint8Array(12);
  globalThis.crypto.getRandomValues(nonce);
  const params: AesGcmParams = { name: "AES-GCM", iv: nonce };
  if (aad) params.additionalData = new TextEncoder().encode(aad);
  const sealed = new Uint8Array(await subtle().encrypt(params, key, new TextEncoder().encode(JSON.stringify(value))));
  const envelope: EncryptedEnvelope = { alg: "AES-256-GCM", nonce: toBase64(nonce), ciphertext: toBase64(sealed) };
  if (aad) envelope.aad = aad;
  return envelope;
}

export async function decryptE2EEJSON<T = unknown>(key: CryptoKey, envelope: EncryptedEnvelope): Promise<T> {
  const params: AesGcmParams = { name: "AES-GCM", iv: fromBase64(envelope.nonce) };
  if (envelope.aad) params.additionalData = new TextEncoder().encode(envelope.aad);
  const plain = await subtle().decrypt(params, key, fromBase64(envelope.ciphertext));
  return JSON.parse(new TextDecoder().decode(plain)) as T;
}
