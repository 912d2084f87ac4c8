//! [`CofferClient`] methods for `IdentityService` (tenants, principals, credentials, groups,
//! the token signing key) and `AuthorizationService` (role definitions, role assignments, vault
//! access policies). Each is one logical call through the same failover and request-id
//! handling as the vault and secret methods, so a retried write is applied once.

use std::fmt;

use coffer_proto::v1::{
    AccessPolicy, AddCredentialRequest, CreatePrincipalRequest, CreateRoleAssignmentRequest,
    CreateTenantRequest, DeleteAccessPolicyRequest, DeletePrincipalRequest,
    DeleteRoleAssignmentRequest, DeleteRoleDefinitionRequest, GetPrincipalRequest,
    ListAccessPoliciesRequest, ListAccessPoliciesResponse, ListPrincipalsRequest,
    ListRoleAssignmentsRequest, ListRoleDefinitionsRequest, ListTenantsRequest, Principal,
    RemoveCredentialRequest, RoleAssignment, RoleDefinition, RotateSigningKeyRequest,
    SetAccessPolicyRequest, SetGroupMembershipRequest, Tenant,
};

use crate::client::with_meta;
use crate::{ClientError, CofferClient, Token};

/// What [`CofferClient::add_credential`] returns. `Debug` never prints the secret.
#[derive(Clone)]
pub struct AddedCredential {
    /// The principal with its credentials as they can be shown (never a secret).
    pub principal: Principal,
    /// The id that removes the credential again.
    pub credential_id: String,
    /// A generated client secret: returned this once, kept nowhere by the server.
    pub secret: Option<Token>,
}

impl fmt::Debug for AddedCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddedCredential")
            .field("principal", &self.principal.object_id)
            .field("credential_id", &self.credential_id)
            .field("secret", &self.secret)
            .finish()
    }
}

/// An empty string means "not given" on the wire.
fn or_empty(value: Option<&str>) -> String {
    value.unwrap_or_default().to_owned()
}

impl CofferClient {
    /// Creates a tenant.
    pub async fn create_tenant(&self, id: &str, display_name: &str) -> Result<Tenant, ClientError> {
        let request = CreateTenantRequest {
            id: id.to_owned(),
            display_name: display_name.to_owned(),
        };
        self.call(|mut n, m| {
            let r = request.clone();
            async move { n.identity.create_tenant(with_meta(r, m)).await }
        })
        .await
    }

    /// Lists every tenant.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, ClientError> {
        let response = self
            .call(|mut n, m| async move {
                n.identity
                    .list_tenants(with_meta(ListTenantsRequest {}, m))
                    .await
            })
            .await?;
        Ok(response.tenants)
    }

    /// Creates a user, group, service principal or managed identity.
    pub async fn create_principal(
        &self,
        request: CreatePrincipalRequest,
    ) -> Result<Principal, ClientError> {
        self.call(|mut n, m| {
            let r = request.clone();
            async move { n.identity.create_principal(with_meta(r, m)).await }
        })
        .await
    }

    /// Reads a principal by object id or client id.
    pub async fn get_principal(&self, id: &str) -> Result<Principal, ClientError> {
        let request = GetPrincipalRequest { id: id.to_owned() };
        self.call(|mut n, m| {
            let r = request.clone();
            async move { n.identity.get_principal(with_meta(r, m)).await }
        })
        .await
    }

    /// Lists the principals of `tenant`, or of every tenant.
    pub async fn list_principals(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<Principal>, ClientError> {
        let request = ListPrincipalsRequest {
            tenant: or_empty(tenant),
        };
        let response = self
            .call(|mut n, m| {
                let r = request.clone();
                async move { n.identity.list_principals(with_meta(r, m)).await }
            })
            .await?;
        Ok(response.principals)
    }

    /// Deletes a principal, its role assignments and (for a group) its memberships.
    pub async fn delete_principal(&self, id: &str) -> Result<(), ClientError> {
        let request = DeletePrincipalRequest { id: id.to_owned() };
        self.call(|mut n, m| {
            let r = request.clone();
            async move { n.identity.delete_principal(with_meta(r, m)).await }
        })
        .await?;
        Ok(())
    }

    /// Adds a client secret, certificate or federated credential to a service principal.
    pub async fn add_credential(
        &self,
        request: AddCredentialRequest,
    ) -> Result<AddedCredential, ClientError> {
        let response = self
            .call(|mut n, m| {
                let r = request.clone();
                async move { n.identity.add_credential(with_meta(r, m)).await }
            })
            .await?;
        let principal = response
            .principal
            .ok_or_else(|| ClientError::InvalidResponse {
                message: "the server did not return the principal".to_owned(),
            })?;
        Ok(AddedCredential {
            principal,
            credential_id: response.credential_id,
            secret: Some(response.secret)
                .filter(|s| !s.is_empty())
                .map(Token::new),
        })
    }

    /// Removes a credential (by the id or name that [`CofferClient::add_credential`] gave).
    pub async fn remove_credential(
        &self,
        principal: &str,
        credential: &str,
    ) -> Result<Principal, ClientError> {
        let request = RemoveCredentialRequest {
            principal: principal.to_owned(),
            credential: credential.to_owned(),
        };
        self.call(|mut n, m| {
            let r = request.clone();
            async move { n.identity.remove_credential(with_meta(r, m)).await }
        })
        .await
    }

    /// Adds `member` to `group` (`member_of` true) or removes it; returns the member, whose
    /// `member_of` lists its groups.
    pub async fn set_group_membership(
        &self,
        group: &str,
        member: &str,
        member_of: bool,
    ) -> Result<Principal, ClientError> {
        let request = SetGroupMembershipRequest {
            group: group.to_owned(),
            member: member.to_owned(),
            member_of,
        };
        self.call(|mut n, m| {
            let r = request.clone();
            async move { n.identity.set_group_membership(with_meta(r, m)).await }
        })
        .await
    }

    /// Puts a new token signing key in charge; returns its key id.
    pub async fn rotate_signing_key(&self) -> Result<String, ClientError> {
        let response = self
            .call(|mut n, m| async move {
                n.identity
                    .rotate_signing_key(with_meta(RotateSigningKeyRequest {}, m))
                    .await
            })
            .await?;
        Ok(response.kid)
    }

    /// Lists the built-in and custom role definitions.
    pub async fn list_role_definitions(&self) -> Result<Vec<RoleDefinition>, ClientError> {
        let response = self
            .call(|mut n, m| async move {
                n.authorization
                    .list_role_definitions(with_meta(ListRoleDefinitionsRequest {}, m))
                    .await
            })
            .await?;
        Ok(response.roles)
    }

    /// Creates a custom role (an empty id generates one) or replaces the one with this id.
    pub async fn put_role_definition(
        &self,
        role: RoleDefinition,
    ) -> Result<RoleDefinition, ClientError> {
        self.call(|mut n, m| {
            let r = role.clone();
            async move { n.authorization.put_role_definition(with_meta(r, m)).await }
        })
        .await
    }

    /// Deletes a custom role.
    pub async fn delete_role_definition(&self, id: &str) -> Result<(), ClientError> {
        let request = DeleteRoleDefinitionRequest { id: id.to_owned() };
        self.call(|mut n, m| {
            let r = request.clone();
            async move {
                n.authorization
                    .delete_role_definition(with_meta(r, m))
                    .await
            }
        })
        .await?;
        Ok(())
    }

    /// Grants `role` (name or id) to `principal` (object id or client id) at `scope`.
    pub async fn create_role_assignment(
        &self,
        principal: &str,
        role: &str,
        scope: &str,
    ) -> Result<RoleAssignment, ClientError> {
        let request = CreateRoleAssignmentRequest {
            principal: principal.to_owned(),
            role: role.to_owned(),
            scope: scope.to_owned(),
        };
        self.call(|mut n, m| {
            let r = request.clone();
            async move {
                n.authorization
                    .create_role_assignment(with_meta(r, m))
                    .await
            }
        })
        .await
    }

    /// Deletes a role assignment; returns what was deleted.
    pub async fn delete_role_assignment(&self, id: &str) -> Result<RoleAssignment, ClientError> {
        let request = DeleteRoleAssignmentRequest { id: id.to_owned() };
        self.call(|mut n, m| {
            let r = request.clone();
            async move {
                n.authorization
                    .delete_role_assignment(with_meta(r, m))
                    .await
            }
        })
        .await
    }

    /// Lists role assignments, optionally only at `scope` and only of `principal`.
    pub async fn list_role_assignments(
        &self,
        scope: Option<&str>,
        principal: Option<&str>,
    ) -> Result<Vec<RoleAssignment>, ClientError> {
        let request = ListRoleAssignmentsRequest {
            scope: or_empty(scope),
            principal: or_empty(principal),
        };
        let response = self
            .call(|mut n, m| {
                let r = request.clone();
                async move { n.authorization.list_role_assignments(with_meta(r, m)).await }
            })
            .await?;
        Ok(response.assignments)
    }

    /// Sets (replaces) one principal's access policy on a vault.
    pub async fn set_access_policy(
        &self,
        request: SetAccessPolicyRequest,
    ) -> Result<AccessPolicy, ClientError> {
        self.call(|mut n, m| {
            let r = request.clone();
            async move { n.authorization.set_access_policy(with_meta(r, m)).await }
        })
        .await
    }

    /// Removes one principal's access policy from a vault.
    pub async fn delete_access_policy(
        &self,
        vault: &str,
        principal: &str,
    ) -> Result<(), ClientError> {
        let request = DeleteAccessPolicyRequest {
            vault: vault.to_owned(),
            principal: principal.to_owned(),
        };
        self.call(|mut n, m| {
            let r = request.clone();
            async move { n.authorization.delete_access_policy(with_meta(r, m)).await }
        })
        .await?;
        Ok(())
    }

    /// A vault's access policies, and whether the vault uses RBAC instead.
    pub async fn list_access_policies(
        &self,
        vault: &str,
    ) -> Result<ListAccessPoliciesResponse, ClientError> {
        let request = ListAccessPoliciesRequest {
            vault: vault.to_owned(),
        };
        self.call(|mut n, m| {
            let r = request.clone();
            async move { n.authorization.list_access_policies(with_meta(r, m)).await }
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn added_credential_debug_hides_the_secret() {
        let added = AddedCredential {
            principal: Principal {
                object_id: "oid-1".into(),
                ..Principal::default()
            },
            credential_id: "cred-1".into(),
            secret: Some(Token::new("Zq8~generated-s3cret".into())),
        };
        let shown = format!("{added:?} {added:#?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("cred-1") && shown.contains("oid-1"),
            "{shown}"
        );
    }
}
