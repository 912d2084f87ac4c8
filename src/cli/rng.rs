//! `coffer rng --vault V --count N`: random bytes from the node's random number generator
//! (`az keyvault key random`), printed as base64.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use serde_json::json;
use zeroize::Zeroizing;

use super::output::{self, Table};
use super::{CliError, GlobalArgs};

/// The most bytes one call returns (`GetRandomBytes` in keys.proto).
const MAX_COUNT: u32 = 128;

/// `coffer rng ...`.
#[derive(Debug, Args)]
pub struct RngArgs {
    #[command(flatten)]
    global: GlobalArgs,
    /// Vault name (any vault the caller can reach; no key is used).
    #[arg(long, visible_alias = "vault-name")]
    vault: String,
    /// Number of bytes, 1 to 128.
    #[arg(long)]
    count: u32,
}

pub async fn run(args: RngArgs) -> Result<(), CliError> {
    let RngArgs {
        global,
        vault,
        count,
    } = args;
    check_count(count)?;
    let bytes = global
        .connect()
        .await?
        .get_random_bytes(&vault, count)
        .await?;
    // Random bytes often become key material: the encoded copy is wiped too.
    let value = Zeroizing::new(STANDARD.encode(bytes.as_slice()));
    let json = json!({ "value": value.as_str() });
    output::print(&global, &json, || Table {
        headers: vec!["Value"],
        rows: vec![vec![value.to_string()]],
    })
}

/// Refuses a count the server would refuse, before connecting.
fn check_count(count: u32) -> Result<(), CliError> {
    if (1..=MAX_COUNT).contains(&count) {
        Ok(())
    } else {
        Err(CliError::bad_parameter(format!(
            "--count must be between 1 and {MAX_COUNT}, not {count}"
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_outside_1_to_128_are_bad_parameters() {
        assert!(check_count(1).is_ok() && check_count(128).is_ok());
        for bad in [0, 129, u32::MAX] {
            let err = check_count(bad).unwrap_err().to_string();
            assert!(err.starts_with("(BadParameter) --count "), "{err}");
        }
    }
}
