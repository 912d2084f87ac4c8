//! Compiles the `.proto` files under `proto/` into `OUT_DIR`; nothing generated is committed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The .proto files live at the workspace root so that non-Rust clients can use them too.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let vault = root.join("coffer/v1/vault.proto");
    let keys = root.join("coffer/v1/keys.proto");
    let operator = root.join("coffer/v1/operator.proto");
    let identity = root.join("coffer/v1/identity.proto");
    let cluster = root.join("coffer/cluster/v1/cluster.proto");
    for proto in [&vault, &keys, &operator, &identity, &cluster] {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Messages carrying a secret value get a hand-written, redacting Debug in lib.rs.
        .skip_debug([
            ".coffer.v1.Secret",
            ".coffer.v1.SetSecretRequest",
            ".coffer.v1.AddCredentialResponse",
            ".coffer.v1.ExportGeographyKeyRequest",
            ".coffer.v1.ExportGeographyKeyResponse",
            ".coffer.v1.ImportGeographyKeyRequest",
            ".coffer.v1.JsonWebKey",
            ".coffer.v1.KeyOperationRequest",
            ".coffer.v1.KeyOperationResult",
            ".coffer.v1.GetRandomBytesResponse",
        ])
        .compile_protos(&[vault, keys, operator, identity, cluster], &[root])?;
    Ok(())
}
