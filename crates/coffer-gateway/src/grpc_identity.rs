//! The identity and authorization gRPC APIs: tenants, principals, credentials, groups, role
//! definitions, role assignments and access policies. Each method calls one service operation.

use coffer_proto::v1 as pb;
use coffer_proto::v1::authorization_service_server::AuthorizationService;
use coffer_proto::v1::identity_service_server::IdentityService;
use coffer_service::{CreatePrincipal, CreateRoleAssignment, NewCredential, SetAccessPolicy};
use coffer_types::authz::{AccessPolicyEntry, AccessPolicyPermissions, RoleDefinition, Scope};
use coffer_types::error::quote_user_text;
use coffer_types::identity::{PrincipalRecord, RoleAssignmentRecord, TenantRecord};
use tonic::{Request, Response, Status};

use crate::grpc::GrpcApi;
use crate::pipeline::{Audited, Target};

impl Audited for pb::Tenant {}
impl Audited for pb::ListTenantsResponse {}
impl Audited for pb::Principal {}
impl Audited for pb::ListPrincipalsResponse {}
impl Audited for pb::DeletePrincipalResponse {}
impl Audited for pb::AddCredentialResponse {}
impl Audited for pb::RotateSigningKeyResponse {}
impl Audited for pb::RoleDefinition {}
impl Audited for pb::ListRoleDefinitionsResponse {}
impl Audited for pb::DeleteRoleDefinitionResponse {}
impl Audited for pb::RoleAssignment {}
impl Audited for pb::ListRoleAssignmentsResponse {}
impl Audited for pb::AccessPolicy {}
impl Audited for pb::DeleteAccessPolicyResponse {}
impl Audited for pb::ListAccessPoliciesResponse {}

fn identity_target(what: &str) -> Target {
    Target {
        vault: None,
        id: Some(format!("identity/{}", quote_user_text(what))),
    }
}

fn scope_target(scope: &str) -> Target {
    let vault = Scope::parse(scope)
        .ok()
        .and_then(|s| s.vault_name().map(str::to_owned));
    Target {
        vault,
        id: Some(format!("roleAssignments{}", quote_user_text(scope))),
    }
}

fn tenant_to_pb(t: TenantRecord) -> pb::Tenant {
    pb::Tenant {
        id: t.id,
        display_name: t.display_name,
        created: t.created,
    }
}

pub(crate) fn principal_to_pb(p: PrincipalRecord) -> pb::Principal {
    let mut credentials = Vec::new();
    for s in &p.secrets {
        credentials.push(pb::CredentialInfo {
            kind: "secret".into(),
            id: s.id.clone(),
            description: format!("{}…", s.hint),
            expires: s.expires,
        });
    }
    for c in &p.certificates {
        credentials.push(pb::CredentialInfo {
            kind: "certificate".into(),
            id: c.id.clone(),
            description: format!(
                "x5t#S256={}",
                coffer_crypto::jwt::certificate_thumbprints(&c.der).1
            ),
            expires: None,
        });
    }
    for f in &p.federated {
        credentials.push(pb::CredentialInfo {
            kind: "federated".into(),
            id: f.name.clone(),
            description: format!("iss={} sub={}", f.issuer, f.subject),
            expires: None,
        });
    }
    pb::Principal {
        object_id: p.object_id,
        tenant: p.tenant,
        kind: p.kind.as_str().to_owned(),
        display_name: p.display_name,
        client_id: p.app_id.unwrap_or_default(),
        credentials,
        member_of: p.member_of,
        created: p.created,
        updated: p.updated,
    }
}

fn role_to_pb(r: RoleDefinition) -> pb::RoleDefinition {
    pb::RoleDefinition {
        id: r.id,
        name: r.name,
        description: r.description,
        actions: r.actions,
        not_actions: r.not_actions,
        data_actions: r.data_actions,
        not_data_actions: r.not_data_actions,
        assignable_scopes: r
            .assignable_scopes
            .iter()
            .map(ToString::to_string)
            .collect(),
        built_in: r.built_in,
    }
}

fn role_from_pb(r: pb::RoleDefinition) -> Result<RoleDefinition, coffer_types::Error> {
    let scopes = if r.assignable_scopes.is_empty() {
        vec![Scope::cluster()]
    } else {
        r.assignable_scopes
            .iter()
            .map(|s| Scope::parse(s))
            .collect::<Result<_, _>>()?
    };
    Ok(RoleDefinition {
        id: r.id,
        name: r.name,
        description: r.description,
        actions: r.actions,
        not_actions: r.not_actions,
        data_actions: r.data_actions,
        not_data_actions: r.not_data_actions,
        assignable_scopes: scopes,
        built_in: false,
        assignable_roles: None,
    })
}

fn assignment_to_pb(a: RoleAssignmentRecord, role_name: String) -> pb::RoleAssignment {
    pb::RoleAssignment {
        id: a.id,
        principal_id: a.principal_id,
        role_definition_id: a.role_definition_id,
        role_name,
        scope: a.scope.to_string(),
        created: a.created,
        created_by: a.created_by,
    }
}

fn role_name(svc: &coffer_service::Service, id: &str) -> String {
    svc.role_name(id).unwrap_or_default()
}

fn policy_to_pb(vault: &str, e: AccessPolicyEntry) -> pb::AccessPolicy {
    pb::AccessPolicy {
        vault: vault.to_owned(),
        tenant_id: e.tenant_id,
        object_id: e.object_id,
        keys: e.permissions.keys,
        secrets: e.permissions.secrets,
        certificates: e.permissions.certificates,
        storage: e.permissions.storage,
    }
}

#[tonic::async_trait]
impl IdentityService for GrpcApi {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "TenantCreate",
            request,
            |r| identity_target(&format!("tenants/{}", r.id)),
            |r, ctx| async move {
                Ok(tenant_to_pb(
                    svc.create_tenant(&ctx, &r.id, &r.display_name).await?,
                ))
            },
        )
        .await
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "TenantList",
            request,
            |_| identity_target("tenants"),
            |_, ctx| async move {
                let tenants = svc.list_tenants(&ctx).await?;
                Ok(pb::ListTenantsResponse {
                    tenants: tenants.into_iter().map(tenant_to_pb).collect(),
                })
            },
        )
        .await
    }

    async fn create_principal(
        &self,
        request: Request<pb::CreatePrincipalRequest>,
    ) -> Result<Response<pb::Principal>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "PrincipalCreate",
            request,
            |r| identity_target(&format!("tenants/{}/principals", r.tenant)),
            |r, ctx| async move {
                let input = CreatePrincipal {
                    tenant: r.tenant,
                    kind: r.kind.parse()?,
                    display_name: r.display_name,
                    app_id: Some(r.client_id).filter(|c| !c.is_empty()),
                };
                Ok(principal_to_pb(svc.create_principal(&ctx, input).await?))
            },
        )
        .await
    }

    async fn get_principal(
        &self,
        request: Request<pb::GetPrincipalRequest>,
    ) -> Result<Response<pb::Principal>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "PrincipalGet",
            request,
            |r| identity_target(&format!("principals/{}", r.id)),
            |r, ctx| async move { Ok(principal_to_pb(svc.get_principal(&ctx, &r.id).await?)) },
        )
        .await
    }

    async fn list_principals(
        &self,
        request: Request<pb::ListPrincipalsRequest>,
    ) -> Result<Response<pb::ListPrincipalsResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "PrincipalList",
            request,
            |_| identity_target("principals"),
            |r, ctx| async move {
                let tenant = Some(r.tenant.as_str()).filter(|t| !t.is_empty());
                let principals = svc.list_principals(&ctx, tenant).await?;
                Ok(pb::ListPrincipalsResponse {
                    principals: principals.into_iter().map(principal_to_pb).collect(),
                })
            },
        )
        .await
    }

    async fn delete_principal(
        &self,
        request: Request<pb::DeletePrincipalRequest>,
    ) -> Result<Response<pb::DeletePrincipalResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "PrincipalDelete",
            request,
            |r| identity_target(&format!("principals/{}", r.id)),
            |r, ctx| async move {
                svc.delete_principal(&ctx, &r.id).await?;
                Ok(pb::DeletePrincipalResponse {})
            },
        )
        .await
    }

    async fn add_credential(
        &self,
        request: Request<pb::AddCredentialRequest>,
    ) -> Result<Response<pb::AddCredentialResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "PrincipalCredentialAdd",
            request,
            |r| identity_target(&format!("principals/{}/credentials", r.principal)),
            |r, ctx| async move {
                use pb::add_credential_request::Credential;
                let credential = match r.credential {
                    Some(Credential::Secret(s)) => NewCredential::Secret { expires: s.expires },
                    Some(Credential::Certificate(c)) => {
                        NewCredential::Certificate { certificate: c }
                    }
                    Some(Credential::Federated(f)) => NewCredential::Federated {
                        name: f.name,
                        issuer: f.issuer,
                        subject: f.subject,
                        audiences: f.audiences,
                    },
                    None => {
                        return Err(coffer_types::Error::bad_parameter(
                            "Give a secret, certificate or federated credential.",
                        ));
                    }
                };
                let added = svc.add_credential(&ctx, &r.principal, credential).await?;
                Ok(pb::AddCredentialResponse {
                    principal: Some(principal_to_pb(added.principal)),
                    credential_id: added.credential_id,
                    secret: added
                        .secret
                        .map(|s| s.expose().to_owned())
                        .unwrap_or_default(),
                })
            },
        )
        .await
    }

    async fn remove_credential(
        &self,
        request: Request<pb::RemoveCredentialRequest>,
    ) -> Result<Response<pb::Principal>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "PrincipalCredentialRemove",
            request,
            |r| identity_target(&format!("principals/{}/credentials", r.principal)),
            |r, ctx| async move {
                Ok(principal_to_pb(
                    svc.remove_credential(&ctx, &r.principal, &r.credential)
                        .await?,
                ))
            },
        )
        .await
    }

    async fn set_group_membership(
        &self,
        request: Request<pb::SetGroupMembershipRequest>,
    ) -> Result<Response<pb::Principal>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "GroupMembershipSet",
            request,
            |r| identity_target(&format!("principals/{}/members", r.group)),
            |r, ctx| async move {
                Ok(principal_to_pb(
                    svc.set_group_membership(&ctx, &r.group, &r.member, r.member_of)
                        .await?,
                ))
            },
        )
        .await
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSigningKeyResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "SigningKeyRotate",
            request,
            |_| identity_target("signing-keys"),
            |_, ctx| async move {
                Ok(pb::RotateSigningKeyResponse {
                    kid: svc.rotate_signing_key(&ctx).await?,
                })
            },
        )
        .await
    }
}

#[tonic::async_trait]
impl AuthorizationService for GrpcApi {
    async fn list_role_definitions(
        &self,
        request: Request<pb::ListRoleDefinitionsRequest>,
    ) -> Result<Response<pb::ListRoleDefinitionsResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "RoleDefinitionList",
            request,
            |_| identity_target("roleDefinitions"),
            |_, ctx| async move {
                let roles = svc.list_role_definitions(&ctx).await?;
                Ok(pb::ListRoleDefinitionsResponse {
                    roles: roles.into_iter().map(role_to_pb).collect(),
                })
            },
        )
        .await
    }

    async fn put_role_definition(
        &self,
        request: Request<pb::RoleDefinition>,
    ) -> Result<Response<pb::RoleDefinition>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "RoleDefinitionPut",
            request,
            |r| identity_target(&format!("roleDefinitions/{}", r.name)),
            |r, ctx| async move {
                let role = role_from_pb(r)?;
                Ok(role_to_pb(svc.put_role_definition(&ctx, role).await?))
            },
        )
        .await
    }

    async fn delete_role_definition(
        &self,
        request: Request<pb::DeleteRoleDefinitionRequest>,
    ) -> Result<Response<pb::DeleteRoleDefinitionResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "RoleDefinitionDelete",
            request,
            |r| identity_target(&format!("roleDefinitions/{}", r.id)),
            |r, ctx| async move {
                svc.delete_role_definition(&ctx, &r.id).await?;
                Ok(pb::DeleteRoleDefinitionResponse {})
            },
        )
        .await
    }

    async fn create_role_assignment(
        &self,
        request: Request<pb::CreateRoleAssignmentRequest>,
    ) -> Result<Response<pb::RoleAssignment>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "RoleAssignmentCreate",
            request,
            |r| scope_target(&r.scope),
            |r, ctx| async move {
                let input = CreateRoleAssignment {
                    principal: r.principal,
                    role: r.role,
                    scope: r.scope,
                };
                let created = svc.create_role_assignment(&ctx, input).await?;
                let name = role_name(&svc, &created.role_definition_id);
                Ok(assignment_to_pb(created, name))
            },
        )
        .await
    }

    async fn delete_role_assignment(
        &self,
        request: Request<pb::DeleteRoleAssignmentRequest>,
    ) -> Result<Response<pb::RoleAssignment>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "RoleAssignmentDelete",
            request,
            |r| identity_target(&format!("roleAssignments/{}", r.id)),
            |r, ctx| async move {
                let deleted = svc.delete_role_assignment(&ctx, &r.id).await?;
                let name = role_name(&svc, &deleted.role_definition_id);
                Ok(assignment_to_pb(deleted, name))
            },
        )
        .await
    }

    async fn list_role_assignments(
        &self,
        request: Request<pb::ListRoleAssignmentsRequest>,
    ) -> Result<Response<pb::ListRoleAssignmentsResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "RoleAssignmentList",
            request,
            |r| scope_target(if r.scope.is_empty() { "/" } else { &r.scope }),
            |r, ctx| async move {
                let scope = Some(r.scope.as_str()).filter(|s| !s.is_empty());
                let principal = Some(r.principal.as_str()).filter(|s| !s.is_empty());
                let list = svc.list_role_assignments(&ctx, scope, principal).await?;
                Ok(pb::ListRoleAssignmentsResponse {
                    assignments: list
                        .into_iter()
                        .map(|a| {
                            let name = role_name(&svc, &a.role_definition_id);
                            assignment_to_pb(a, name)
                        })
                        .collect(),
                })
            },
        )
        .await
    }

    async fn set_access_policy(
        &self,
        request: Request<pb::SetAccessPolicyRequest>,
    ) -> Result<Response<pb::AccessPolicy>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "VaultAccessPolicySet",
            request,
            |r| Target::vault(&quote_user_text(&r.vault)),
            |r, ctx| async move {
                let input = SetAccessPolicy {
                    vault: r.vault.clone(),
                    principal: r.principal,
                    permissions: AccessPolicyPermissions {
                        keys: r.keys,
                        secrets: r.secrets,
                        certificates: r.certificates,
                        storage: r.storage,
                    },
                };
                let (vault, entry) = svc.set_access_policy(&ctx, input).await?;
                Ok(policy_to_pb(&vault.name, entry))
            },
        )
        .await
    }

    async fn delete_access_policy(
        &self,
        request: Request<pb::DeleteAccessPolicyRequest>,
    ) -> Result<Response<pb::DeleteAccessPolicyResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "VaultAccessPolicyDelete",
            request,
            |r| Target::vault(&quote_user_text(&r.vault)),
            |r, ctx| async move {
                svc.delete_access_policy(&ctx, &r.vault, &r.principal)
                    .await?;
                Ok(pb::DeleteAccessPolicyResponse {})
            },
        )
        .await
    }

    async fn list_access_policies(
        &self,
        request: Request<pb::ListAccessPoliciesRequest>,
    ) -> Result<Response<pb::ListAccessPoliciesResponse>, Status> {
        let svc = self.gateway.service.clone();
        self.run(
            "VaultAccessPolicyList",
            request,
            |r| Target::vault(&quote_user_text(&r.vault)),
            |r, ctx| async move {
                let vault = svc.get_vault(&ctx, &r.vault).await?;
                Ok(pb::ListAccessPoliciesResponse {
                    enable_rbac_authorization: vault.enable_rbac_authorization,
                    policies: vault
                        .access_policies
                        .into_iter()
                        .map(|e| policy_to_pb(&vault.name, e))
                        .collect(),
                })
            },
        )
        .await
    }
}
