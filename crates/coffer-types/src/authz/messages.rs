//! Refusals in Azure's words (the shapes of §1.9 of the compatibility report), so that SDK
//! users see the messages they know and their troubleshooting guides apply.

use std::borrow::Cow;

use super::operation::DataOperation;
use crate::error::{Error, ErrorCode, InnerCode, quote_user_text};

/// Azure's help link for access-policy refusals.
const ACCESS_DENIED_HELP: &str = "https://go.microsoft.com/fwlink/?linkid=2125287";

/// Azure's `AccessDenied` text (vault access-policy model): "The user, group or application
/// '{caller}' does not have secrets get permission on key vault '{vault};location={location}'.
/// …". The vault name is quoted as user text; `caller` and `location` are Coffer's own
/// (`appid=…;oid=…;iss=…`, from validated token claims) and are passed through as they are,
/// unless they hold something other than printable ASCII, in which case they are quoted too.
pub fn access_denied_message(
    caller: &str,
    operation: DataOperation,
    vault: &str,
    location: &str,
) -> String {
    format!(
        "The user, group or application '{}' does not have {} permission on key vault \
         '{};location={}'. For help resolving this issue, please see {ACCESS_DENIED_HELP}",
        plain(caller),
        operation.describe(),
        quote_user_text(vault),
        plain(location),
    )
}

/// The `Forbidden` / `AccessDenied` error of the access-policy model.
pub fn access_denied(caller: &str, operation: DataOperation, vault: &str, location: &str) -> Error {
    Error::new(
        ErrorCode::Forbidden,
        access_denied_message(caller, operation, vault, location),
    )
    .with_inner(InnerCode::AccessDenied)
}

/// Azure's `ForbiddenByRbac` text: several lines separated by `\r\n`, as the service sends
/// them. The vault and the resource are quoted as user text (the resource names the object);
/// `caller`, `action` and `location` pass through unless they hold something other than
/// printable ASCII, so that no line can be forged.
pub fn forbidden_by_rbac_message(
    caller: &str,
    action: &str,
    resource: &str,
    vault: &str,
    location: &str,
) -> String {
    format!(
        "Caller is not authorized to perform action on resource.\r\n\
         If role assignments, deny assignments or role definitions were changed recently, \
         please observe propagation time.\r\n\
         Caller: {}\r\n\
         Action: '{}'\r\n\
         Resource: '{}'\r\n\
         Assignment: (not found)\r\n\
         DenyAssignmentId: null\r\n\
         DecisionReason: 'DeniedWithNoValidRBAC'\r\n\
         Vault: {};location={}\r\n",
        plain(caller),
        plain(action),
        quote_user_text(resource),
        quote_user_text(vault),
        plain(location),
    )
}

/// Text Coffer built itself, kept whole when it is printable ASCII (quoting would shorten a
/// long caller string), and quoted like user text otherwise.
fn plain(text: &str) -> Cow<'_, str> {
    if text.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(quote_user_text(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLER: &str = "appid=04b07795-8ddb-461a-bbee-02f9e1bf7b46;\
                          oid=2a2a9e1b-2a9f-4b8d-9c4a-1a2b3c4d5e6f;\
                          iss=https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/";

    #[test]
    fn access_denied_has_azures_shape() {
        let e = access_denied(CALLER, DataOperation::SecretGet, "kv", "westeurope");
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert_eq!(e.inner, Some(InnerCode::AccessDenied));
        assert_eq!(
            e.message,
            format!(
                "The user, group or application '{CALLER}' does not have secrets get permission \
                 on key vault 'kv;location=westeurope'. For help resolving this issue, please \
                 see https://go.microsoft.com/fwlink/?linkid=2125287"
            )
        );
        let m = access_denied_message(CALLER, DataOperation::KeyWrap, "kv", "local");
        assert!(
            m.contains(" does not have keys wrapKey permission on key vault 'kv;location=local'")
        );
    }

    #[test]
    fn forbidden_by_rbac_has_azures_shape() {
        let m = forbidden_by_rbac_message(
            CALLER,
            DataOperation::SecretGet.data_action(),
            "/vaults/kv/secrets/x",
            "kv",
            "westeurope",
        );
        let lines: Vec<&str> = m.split("\r\n").collect();
        assert_eq!(
            lines,
            [
                "Caller is not authorized to perform action on resource.",
                "If role assignments, deny assignments or role definitions were changed \
                 recently, please observe propagation time.",
                &format!("Caller: {CALLER}"),
                "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'",
                "Resource: '/vaults/kv/secrets/x'",
                "Assignment: (not found)",
                "DenyAssignmentId: null",
                "DecisionReason: 'DeniedWithNoValidRBAC'",
                "Vault: kv;location=westeurope",
                "",
            ]
        );
    }

    #[test]
    fn hostile_text_cannot_forge_lines() {
        let m = forbidden_by_rbac_message(
            "x\r\nDecisionReason: 'Allowed'",
            "a",
            "/vaults/kv/secrets/\r\nx",
            "k\nv",
            "here",
        );
        let lines: Vec<&str> = m.split("\r\n").collect();
        assert_eq!(lines.len(), 10);
        assert!(lines.iter().all(|l| !l.contains('\n') && !l.contains('\r')));
        assert_eq!(lines[2], "Caller: x\\r\\nDecisionReason: 'Allowed'");
        assert_eq!(lines[7], "DecisionReason: 'DeniedWithNoValidRBAC'");
        let m = access_denied_message("a\nb", DataOperation::SecretGet, "k\u{1b}v", "l");
        assert!(!m.contains('\n') && !m.contains('\u{1b}'));
    }
}
