"""Drives the official azure-keyvault-secrets and azure-keyvault-keys clients against a Coffer
node, with TLS verification and the SDKs' challenge-resource verification on.

Usage: keyvault_sdk.py secrets|keys|errors|versions|throttled|firewalled|read
Settings (as dev.env exports them): COFFER_VAULT_URL (https://{vault}.{dns-suffix}),
COFFER_CA_CERT, COFFER_TENANT, COFFER_CLIENT_ID, COFFER_CLIENT_SECRET, COFFER_AUTHORITY
(host:port of the node); or COFFER_CREDENTIAL=managed-identity with IDENTITY_ENDPOINT and
IDENTITY_HEADER. `*.vault.coffer.localhost` does not resolve on every machine, so host
names under the vault URL's DNS suffix are resolved to COFFER_CONNECT_HOST (127.0.0.1) here.
Every step prints "ok <step>"; the first failure raises and exits non-zero.
"""

import hashlib
import os
import socket
import sys
import time
from urllib.parse import urlparse

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.identity import ClientSecretCredential, ManagedIdentityCredential
from azure.keyvault.keys import (
    JsonWebKey,
    KeyClient,
    KeyRotationLifetimeAction,
    KeyRotationPolicy,
    KeyRotationPolicyAction,
)
from azure.keyvault.keys.crypto import (
    CryptographyClient,
    EncryptionAlgorithm,
    KeyWrapAlgorithm,
    SignatureAlgorithm,
)
from azure.keyvault.secrets import SecretClient

VAULT_URL = os.environ["COFFER_VAULT_URL"]
CA = os.environ["COFFER_CA_CERT"]


def resolve_vault_hosts_locally():
    suffix = urlparse(VAULT_URL).hostname.split(".", 1)[1]
    target = os.environ.get("COFFER_CONNECT_HOST", "127.0.0.1")
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith("." + suffix):
            host = target
        return real(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo


def credential():
    if os.environ.get("COFFER_CREDENTIAL") == "managed-identity":
        # A workload on the node: IDENTITY_ENDPOINT and IDENTITY_HEADER (App Service protocol).
        return ManagedIdentityCredential()
    return ClientSecretCredential(
        os.environ["COFFER_TENANT"],
        os.environ["COFFER_CLIENT_ID"],
        os.environ["COFFER_CLIENT_SECRET"],
        authority=os.environ["COFFER_AUTHORITY"],
        disable_instance_discovery=True,
        connection_verify=CA,
    )


def step(name, condition=True, detail=""):
    if not condition:
        raise AssertionError(f"{name} failed: {detail}")
    print(f"ok {name}", flush=True)


def expect_error(name, call, error_type, status, code):
    try:
        call()
    except error_type as e:
        got = e.error.code if e.error else None
        step(name, e.status_code == status and got == code, f"{e.status_code} {got}: {e}")
        return e
    raise AssertionError(f"{name}: no {error_type.__name__} raised")


def secrets(client):
    first = client.set_secret("sdk-s1", "first value", content_type="text/plain", tags={"a": "1"})
    second = client.set_secret("sdk-s1", "second value", tags={"a": "2"})
    step("set two versions", first.properties.version != second.properties.version)
    step("ids use the vault url", second.id.startswith(VAULT_URL + "/secrets/sdk-s1/"), second.id)
    latest = client.get_secret("sdk-s1")
    step("get latest", latest.value == "second value" and latest.properties.tags == {"a": "2"})
    old = client.get_secret("sdk-s1", first.properties.version)
    step("get by version", old.value == "first value" and old.properties.content_type == "text/plain")

    for i in range(27):
        client.set_secret(f"sdk-page-{i:02}", f"value {i}")
    names = [p.name for p in client.list_properties_of_secrets()]
    paged = sum(1 for n in names if n.startswith("sdk-page-"))
    step("list follows nextLink past 25", paged == 27 and "sdk-s1" in names, f"{len(names)} names")
    pages = list(client.list_properties_of_secrets(max_page_size=10).by_page())
    step("max_page_size pages", len(pages) >= 3, f"{len(pages)} pages")
    versions = list(client.list_properties_of_secret_versions("sdk-s1"))
    step("list versions", len(versions) == 2 and all(v.version for v in versions))

    updated = client.update_secret_properties(
        "sdk-s1", first.properties.version, content_type="application/json", enabled=False,
        tags={"b": "x"},
    )
    step("update properties", updated.content_type == "application/json"
         and updated.enabled is False and updated.tags == {"b": "x"})
    expect_error("a disabled version is forbidden",
                 lambda: client.get_secret("sdk-s1", first.properties.version),
                 HttpResponseError, 403, "Forbidden")

    deleted = client.begin_delete_secret("sdk-s1").result()
    step("soft delete", deleted.recovery_id.endswith("/deletedsecrets/sdk-s1")
         and deleted.scheduled_purge_date is not None, deleted.recovery_id)
    step("get deleted", client.get_deleted_secret("sdk-s1").name == "sdk-s1")
    step("list deleted", "sdk-s1" in [d.name for d in client.list_deleted_secrets()])
    expect_error("a deleted name cannot be set", lambda: client.set_secret("sdk-s1", "x"),
                 ResourceExistsError, 409, "Conflict")
    client.begin_recover_deleted_secret("sdk-s1").result()
    step("recover", client.get_secret("sdk-s1").value == "second value")
    client.begin_delete_secret("sdk-s1").result()
    client.purge_deleted_secret("sdk-s1")
    expect_error("purged is gone", lambda: client.get_secret("sdk-s1"),
                 ResourceNotFoundError, 404, "SecretNotFound")

    client.set_secret("sdk-backup", "kept value")
    blob = client.backup_secret("sdk-backup")
    client.begin_delete_secret("sdk-backup").result()
    client.purge_deleted_secret("sdk-backup")
    restored = client.restore_secret_backup(blob)
    step("backup and restore", restored.name == "sdk-backup"
         and client.get_secret("sdk-backup").value == "kept value")


def keys(client, cred):
    rsa = client.create_rsa_key("sdk-rsa", size=2048, tags={"t": "1"})
    ec = client.create_ec_key("sdk-ec", curve="P-256")
    step("create rsa and ec", rsa.key_type == "RSA" and ec.key.crv == "P-256")
    step("get key", client.get_key("sdk-rsa").key.n == rsa.key.n)
    names = [k.name for k in client.list_properties_of_keys()]
    step("list keys", "sdk-rsa" in names and "sdk-ec" in names)
    rotated = client.rotate_key("sdk-rsa")
    step("rotate", rotated.properties.version != rsa.properties.version)
    step("list key versions", len(list(client.list_properties_of_key_versions("sdk-rsa"))) == 2)
    updated = client.update_key_properties("sdk-rsa", tags={"t": "2"})
    step("update key", updated.properties.tags == {"t": "2"})

    crypto = CryptographyClient(rotated.id, cred, connection_verify=CA)
    plaintext = b"attack at dawn"
    encrypted = crypto.encrypt(EncryptionAlgorithm.rsa_oaep_256, plaintext)
    step("encrypt/decrypt", crypto.decrypt(EncryptionAlgorithm.rsa_oaep_256,
                                           encrypted.ciphertext).plaintext == plaintext)
    cek = os.urandom(32)
    wrapped = crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep, cek)
    step("wrap/unwrap", crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep, wrapped.encrypted_key).key == cek)
    digest = hashlib.sha256(b"a message").digest()
    signed = crypto.sign(SignatureAlgorithm.rs256, digest)
    step("sign/verify rs256", crypto.verify(SignatureAlgorithm.rs256, digest, signed.signature).is_valid)
    step("tampered signature fails", not crypto.verify(SignatureAlgorithm.rs256,
                                                       hashlib.sha256(b"other").digest(),
                                                       signed.signature).is_valid)
    ec_crypto = CryptographyClient(ec.id, cred, connection_verify=CA)
    ec_signed = ec_crypto.sign(SignatureAlgorithm.es256, digest)
    step("sign/verify es256", ec_crypto.verify(SignatureAlgorithm.es256, digest,
                                               ec_signed.signature).is_valid)

    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_keys

    private = rsa_keys.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = private.private_numbers()

    def b(n):
        return n.to_bytes((n.bit_length() + 7) // 8, "big")

    jwk = JsonWebKey(
        kty="RSA", key_ops=["sign", "verify"], n=b(numbers.public_numbers.n),
        e=b(numbers.public_numbers.e), d=b(numbers.d), p=b(numbers.p), q=b(numbers.q),
        dp=b(numbers.dmp1), dq=b(numbers.dmq1), qi=b(numbers.iqmp),
    )
    imported = client.import_key("sdk-imported", jwk)
    step("import", imported.key.n == b(numbers.public_numbers.n) and imported.key.d is None)

    policy = client.update_key_rotation_policy(
        "sdk-rsa",
        KeyRotationPolicy(
            lifetime_actions=[KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate,
                                                        time_after_create="P30D")],
            expires_in="P90D",
        ),
    )
    got = client.get_key_rotation_policy("sdk-rsa")
    step("rotation policy", got.expires_in == "P90D" and policy.expires_in == "P90D"
         and got.lifetime_actions[0].time_after_create == "P30D"
         and str(got.lifetime_actions[0].action).lower().endswith("rotate"))
    step("random bytes", len(client.get_random_bytes(32)) == 32)

    blob = client.backup_key("sdk-ec")
    client.begin_delete_key("sdk-ec").result()
    client.purge_deleted_key("sdk-ec")
    step("backup and restore key", client.restore_key_backup(blob).key.x == ec.key.x)

    deleted = client.begin_delete_key("sdk-rsa").result()
    step("delete key", deleted.recovery_id.endswith("/deletedkeys/sdk-rsa"))
    step("get deleted key", client.get_deleted_key("sdk-rsa").name == "sdk-rsa")
    step("list deleted keys", "sdk-rsa" in [k.name for k in client.list_deleted_keys()])
    client.begin_recover_deleted_key("sdk-rsa").result()
    step("recover key", client.get_key("sdk-rsa").key.n == rotated.key.n)
    client.begin_delete_key("sdk-rsa").result()
    client.purge_deleted_key("sdk-rsa")
    expect_error("purged key is gone", lambda: client.get_key("sdk-rsa"),
                 ResourceNotFoundError, 404, "KeyNotFound")


def errors(secret_client, key_client):
    expect_error("an invalid name", lambda: secret_client.set_secret("bad_name", "x"),
                 HttpResponseError, 400, "BadParameter")
    expect_error("a missing secret", lambda: secret_client.get_secret("never-set"),
                 ResourceNotFoundError, 404, "SecretNotFound")
    expect_error("a missing key", lambda: key_client.get_key("never-made"),
                 ResourceNotFoundError, 404, "KeyNotFound")
    expect_error("a bad key size", lambda: key_client.create_rsa_key("bad-size", size=1000),
                 HttpResponseError, 400, "BadParameter")
    expect_error("purging what is not deleted",
                 lambda: secret_client.purge_deleted_secret("never-set"),
                 ResourceNotFoundError, 404, "SecretNotFound")


def throttled(client):
    name = os.environ["COFFER_SECRET_NAME"]
    calls = int(os.environ.get("COFFER_CALLS", "30"))
    started = time.monotonic()
    for _ in range(calls):
        client.get_secret(name)
    elapsed = time.monotonic() - started
    print(f"ok throttled calls={calls} elapsed_ms={int(elapsed * 1000)}", flush=True)


def read(client):
    secret = client.get_secret(os.environ["COFFER_SECRET_NAME"])
    step("read", secret.value == os.environ["COFFER_EXPECTED"])
    expect_error("a reader may not write", lambda: client.set_secret("not-allowed", "x"),
                 HttpResponseError, 403, "Forbidden")


def versions(cred):
    """Every api-version the installed SDKs know, each with a client of its own."""
    from azure.keyvault.keys import ApiVersion as KeyApiVersion
    from azure.keyvault.secrets import ApiVersion

    for version in ApiVersion:
        client = SecretClient(VAULT_URL, cred, connection_verify=CA, api_version=version)
        name = "v-" + version.value.replace(".", "-")
        client.set_secret(name, version.value)
        step(f"secrets api-version {version.value}", client.get_secret(name).value == version.value)
    for version in KeyApiVersion:
        client = KeyClient(VAULT_URL, cred, connection_verify=CA, api_version=version)
        name = "k-" + version.value.replace(".", "-")
        client.create_ec_key(name, curve="P-256")
        step(f"keys api-version {version.value}", client.get_key(name).key.crv == "P-256")


def firewalled(client):
    e = expect_error("firewall refuses", lambda: client.get_secret("anything"),
                     HttpResponseError, 403, "Forbidden")
    inner = (e.error.innererror or {}).get("code") if e.error else None
    step("inner code ForbiddenByFirewall", inner == "ForbiddenByFirewall", str(inner))


def main():
    resolve_vault_hosts_locally()
    cred = credential()
    scenario = sys.argv[1]
    secret_client = SecretClient(VAULT_URL, cred, connection_verify=CA)
    key_client = KeyClient(VAULT_URL, cred, connection_verify=CA)
    if scenario == "secrets":
        secrets(secret_client)
    elif scenario == "keys":
        keys(key_client, cred)
    elif scenario == "errors":
        errors(secret_client, key_client)
    elif scenario == "throttled":
        throttled(secret_client)
    elif scenario == "versions":
        versions(cred)
    elif scenario == "read":
        read(secret_client)
    elif scenario == "firewalled":
        firewalled(secret_client)
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
