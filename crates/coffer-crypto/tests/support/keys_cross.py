"""The independent side of tests/keys_cross.rs: Python `cryptography` (OpenSSL), driven by JSON.

Reads a JSON list of requests on stdin and writes a JSON list of responses, one for each.
Byte strings and JWK fields are base64url without padding, as in a JWK. Signing and verifying
take a digest (cryptography's Prehashed), as Azure Key Vault does; ECDSA signatures are the JWS
form, r || s at the curve's length, converted here from and to the DER that OpenSSL uses.
"""

import base64
import json
import os
import sys

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

CURVES = {
    "P-256": (ec.SECP256R1(), 32),
    "P-256K": (ec.SECP256K1(), 32),
    "P-384": (ec.SECP384R1(), 48),
    "P-521": (ec.SECP521R1(), 66),
}
HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def uint(value: int, length: int = 0) -> str:
    length = max(length, (value.bit_length() + 7) // 8, 1)
    return b64(value.to_bytes(length, "big"))


def num(jwk: dict, name: str) -> int:
    return int.from_bytes(unb64(jwk[name]), "big")


def signature_hash(alg: str):
    # ES256K signs SHA-256 like ES256; every other name ends in its hash length.
    return HASHES["256" if alg == "ES256K" else alg[-3:]]()


def rsa_public(jwk: dict):
    return rsa.RSAPublicNumbers(num(jwk, "e"), num(jwk, "n")).public_key()


def rsa_private(jwk: dict):
    public = rsa.RSAPublicNumbers(num(jwk, "e"), num(jwk, "n"))
    return rsa.RSAPrivateNumbers(
        num(jwk, "p"), num(jwk, "q"), num(jwk, "d"),
        num(jwk, "dp"), num(jwk, "dq"), num(jwk, "qi"), public,
    ).private_key()


def ec_public(jwk: dict):
    curve, _ = CURVES[jwk["crv"]]
    return ec.EllipticCurvePublicNumbers(num(jwk, "x"), num(jwk, "y"), curve).public_key()


def ec_private(jwk: dict):
    curve, _ = CURVES[jwk["crv"]]
    public = ec.EllipticCurvePublicNumbers(num(jwk, "x"), num(jwk, "y"), curve)
    return ec.EllipticCurvePrivateNumbers(num(jwk, "d"), public).private_key()


def rsa_signature_padding(alg: str):
    if alg.startswith("PS"):
        return padding.PSS(mgf=padding.MGF1(signature_hash(alg)), salt_length=signature_hash(alg).digest_size)
    return padding.PKCS1v15()


def rsa_encryption_padding(alg: str):
    if alg == "RSA1_5":
        return padding.PKCS1v15()
    hash_type = hashes.SHA256 if alg == "RSA-OAEP-256" else hashes.SHA1
    return padding.OAEP(mgf=padding.MGF1(hash_type()), algorithm=hash_type(), label=None)


def generate_rsa(req):
    key = rsa.generate_private_key(public_exponent=65537, key_size=req["bits"])
    p = key.private_numbers()
    return {"jwk": {
        "kty": "RSA", "n": uint(p.public_numbers.n), "e": uint(p.public_numbers.e),
        "d": uint(p.d), "p": uint(p.p), "q": uint(p.q),
        "dp": uint(p.dmp1), "dq": uint(p.dmq1), "qi": uint(p.iqmp),
    }}


def generate_ec(req):
    curve, length = CURVES[req["crv"]]
    key = ec.generate_private_key(curve)
    p = key.private_numbers()
    return {"jwk": {
        "kty": "EC", "crv": req["crv"],
        "x": uint(p.public_numbers.x, length), "y": uint(p.public_numbers.y, length),
        "d": uint(p.private_value, length),
    }}


def sign(req):
    jwk, alg, digest = req["jwk"], req["alg"], unb64(req["digest"])
    prehashed = utils.Prehashed(signature_hash(alg))
    if alg.startswith("ES"):
        der = ec_private(jwk).sign(digest, ec.ECDSA(prehashed))
        r, s = utils.decode_dss_signature(der)
        length = CURVES[jwk["crv"]][1]
        return {"signature": b64(r.to_bytes(length, "big") + s.to_bytes(length, "big"))}
    signature = rsa_private(jwk).sign(digest, rsa_signature_padding(alg), prehashed)
    return {"signature": b64(signature)}


def verify(req):
    jwk, alg = req["jwk"], req["alg"]
    digest, signature = unb64(req["digest"]), unb64(req["signature"])
    prehashed = utils.Prehashed(signature_hash(alg))
    try:
        if alg.startswith("ES"):
            length = CURVES[jwk["crv"]][1]
            if len(signature) != 2 * length:
                return {"valid": False}
            r = int.from_bytes(signature[:length], "big")
            s = int.from_bytes(signature[length:], "big")
            der = utils.encode_dss_signature(r, s)
            ec_public(jwk).verify(der, digest, ec.ECDSA(prehashed))
        else:
            rsa_public(jwk).verify(signature, digest, rsa_signature_padding(alg), prehashed)
    except InvalidSignature:
        return {"valid": False}
    return {"valid": True}


def encrypt(req):
    jwk, alg, plaintext = req["jwk"], req["alg"], unb64(req["plaintext"])
    if alg.endswith("GCM"):
        iv = os.urandom(12)
        aad = unb64(req["aad"]) if req.get("aad") is not None else None
        sealed = AESGCM(unb64(jwk["k"])).encrypt(iv, plaintext, aad)
        return {"ciphertext": b64(sealed[:-16]), "iv": b64(iv), "tag": b64(sealed[-16:])}
    ciphertext = rsa_public(jwk).encrypt(plaintext, rsa_encryption_padding(alg))
    return {"ciphertext": b64(ciphertext)}


def decrypt(req):
    jwk, alg, ciphertext = req["jwk"], req["alg"], unb64(req["ciphertext"])
    try:
        if alg.endswith("GCM"):
            aad = unb64(req["aad"]) if req.get("aad") is not None else None
            sealed = ciphertext + unb64(req["tag"])
            plaintext = AESGCM(unb64(jwk["k"])).decrypt(unb64(req["iv"]), sealed, aad)
        else:
            plaintext = rsa_private(jwk).decrypt(ciphertext, rsa_encryption_padding(alg))
    except (InvalidTag, ValueError) as err:
        return {"error": type(err).__name__}
    return {"plaintext": b64(plaintext)}


def wrap(req):
    return {"wrapped": b64(aes_key_wrap(unb64(req["jwk"]["k"]), unb64(req["key"])))}


def unwrap(req):
    try:
        key = aes_key_unwrap(unb64(req["jwk"]["k"]), unb64(req["wrapped"]))
    except InvalidUnwrap:
        return {"error": "InvalidUnwrap"}
    return {"key": b64(key)}


OPERATIONS = {
    "generate_rsa": generate_rsa, "generate_ec": generate_ec, "sign": sign, "verify": verify,
    "encrypt": encrypt, "decrypt": decrypt, "wrap": wrap, "unwrap": unwrap,
}

if __name__ == "__main__":
    requests = json.load(sys.stdin)
    json.dump([OPERATIONS[req["op"]](req) for req in requests], sys.stdout)
