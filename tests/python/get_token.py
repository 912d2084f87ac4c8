"""Gets an access token with an official azure-identity credential and prints it.

Usage: get_token.py managed-identity|default|client-secret|client-certificate SCOPE
The credential reads its settings the way users configure it: IDENTITY_ENDPOINT and
IDENTITY_HEADER for managed identity (App Service protocol); for client-secret,
COFFER_TENANT, COFFER_CLIENT_ID and COFFER_CLIENT_SECRET (or, for client-certificate,
COFFER_CERT_PATH: a PEM holding the private key and certificate) with COFFER_AUTHORITY (host:port
of a Coffer node) and COFFER_CA_CERT (the CA to trust). Prints the token on the first line and its
expiry (Unix seconds) on the second; any failure exits non-zero with the SDK's message.
"""

import os
import sys

from azure.identity import (
    CertificateCredential,
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
)


def main() -> int:
    kind, scope = sys.argv[1], sys.argv[2]
    if kind == "managed-identity":
        credential = ManagedIdentityCredential()
    elif kind == "default":
        credential = DefaultAzureCredential(
            exclude_cli_credential=True,
            exclude_powershell_credential=True,
            exclude_developer_cli_credential=True,
            exclude_visual_studio_code_credential=True,
            exclude_shared_token_cache_credential=True,
            exclude_interactive_browser_credential=True,
        )
    elif kind == "client-secret":
        credential = ClientSecretCredential(
            os.environ["COFFER_TENANT"],
            os.environ["COFFER_CLIENT_ID"],
            os.environ["COFFER_CLIENT_SECRET"],
            authority=os.environ["COFFER_AUTHORITY"],
            disable_instance_discovery=True,
            connection_verify=os.environ["COFFER_CA_CERT"],
        )
    elif kind == "client-certificate":
        credential = CertificateCredential(
            os.environ["COFFER_TENANT"],
            os.environ["COFFER_CLIENT_ID"],
            certificate_path=os.environ["COFFER_CERT_PATH"],
            authority=os.environ["COFFER_AUTHORITY"],
            disable_instance_discovery=True,
            connection_verify=os.environ["COFFER_CA_CERT"],
        )
    else:
        print(f"unknown credential kind {kind}", file=sys.stderr)
        return 2
    token = credential.get_token(scope)
    print(token.token)
    print(token.expires_on)
    return 0


if __name__ == "__main__":
    sys.exit(main())
