//! Identity management: tenants, principals, their credentials and group memberships. Every
//! operation needs `Coffer/identity/read` or `Coffer/identity/write` at the cluster scope.

use coffer_crypto::{ClientSecretHash, SecretString, generate_client_secret};
use coffer_store::{Applied, Command, IdentityCommand};
use coffer_types::authz::{Scope, mgmt};
use coffer_types::error::quote_user_text;
use coffer_types::identity::{
    CertificateCredential, FEDERATION_AUDIENCE, FederatedCredential, PrincipalChange,
    PrincipalKind, PrincipalRecord, SecretCredential, TenantRecord, validate_display_name,
    validate_tenant_id,
};
use coffer_types::records::RECORD_FORMAT;
use coffer_types::{Error, ErrorCode};

use crate::request::RequestContext;
use crate::{Service, new_uuid};

/// Input of [`Service::create_principal`].
#[derive(Debug, Clone)]
pub struct CreatePrincipal {
    pub tenant: String,
    pub kind: PrincipalKind,
    pub display_name: String,
    /// Service principals and managed identities get a client id; `None` generates one.
    pub app_id: Option<String>,
}

/// A credential to add to a principal.
#[derive(Debug, Clone)]
pub enum NewCredential {
    /// Generates a client secret, returned once.
    Secret { expires: Option<i64> },
    /// Registers a certificate (PEM or DER) whose key signs client assertions.
    Certificate { certificate: Vec<u8> },
    Federated {
        name: String,
        issuer: String,
        subject: String,
        audiences: Vec<String>,
    },
}

/// What adding a credential produced: the principal and, for a generated secret, the secret
/// itself (shown once, never stored).
#[derive(Debug)]
pub struct AddedCredential {
    pub principal: PrincipalRecord,
    pub credential_id: String,
    pub secret: Option<SecretString>,
}

fn expect_principal(applied: Applied) -> Result<PrincipalRecord, Error> {
    match applied {
        Applied::Principal(record) => Ok(*record),
        Applied::Failed(e) => Err(e),
        other => Err(Error::internal(format!(
            "unexpected store answer {other:?}"
        ))),
    }
}

fn validate_client_id(id: &str) -> Result<(), Error> {
    let valid = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if valid {
        Ok(())
    } else {
        Err(Error::bad_parameter(format!(
            "The client id {} is invalid: use 1 to 64 letters, digits, '-', '_' or '.'.",
            quote_user_text(id)
        )))
    }
}

fn validate_credential_name(name: &str) -> Result<(), Error> {
    let valid = (1..=120).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(Error::bad_parameter(
            "A federated credential's name must be 1 to 120 letters, digits, '-' or '_'.",
        ))
    }
}

/// An issuer or subject of an external token: printable, at most 600 characters (as Entra).
fn validate_claim_text(what: &str, text: &str) -> Result<(), Error> {
    if (1..=600).contains(&text.len()) && !text.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(Error::bad_parameter(format!(
            "The federated credential's {what} must be 1 to 600 printable characters."
        )))
    }
}

impl Service {
    fn authorize_identity(&self, ctx: &RequestContext, write: bool) -> Result<(), Error> {
        let action = if write {
            mgmt::IDENTITY_WRITE
        } else {
            mgmt::IDENTITY_READ
        };
        self.authorize(ctx, &Scope::cluster(), action)
    }

    async fn identity_write(
        &self,
        ctx: &RequestContext,
        command: IdentityCommand,
    ) -> Result<Applied, Error> {
        Ok(self
            .store
            .write(ctx.request_id().to_owned(), Command::Identity(command))
            .await?)
    }

    pub async fn create_tenant(
        &self,
        ctx: &RequestContext,
        id: &str,
        display_name: &str,
    ) -> Result<TenantRecord, Error> {
        self.authorize_identity(ctx, true)?;
        if !ctx.caller().is_superuser() {
            // A tenant is an isolation boundary; making one is the cluster owner's act.
            return Err(Error::new(
                ErrorCode::Forbidden,
                "Only the bootstrap credential creates tenants.",
            )
            .with_inner(coffer_types::InnerCode::ForbiddenByRbac));
        }
        validate_tenant_id(id)?;
        validate_display_name(display_name)?;
        let record = TenantRecord {
            format: RECORD_FORMAT,
            id: id.to_owned(),
            display_name: display_name.to_owned(),
            created: self.clock.now_unix(),
        };
        match self
            .identity_write(ctx, IdentityCommand::CreateTenant { record })
            .await?
        {
            Applied::Tenant(record) => Ok(record),
            Applied::Failed(e) => Err(e),
            other => Err(Error::internal(format!(
                "unexpected store answer {other:?}"
            ))),
        }
    }

    pub async fn list_tenants(&self, ctx: &RequestContext) -> Result<Vec<TenantRecord>, Error> {
        self.authorize_identity(ctx, false)?;
        self.read_point(ctx.consistency).await?;
        Ok(self
            .store
            .tenants()?
            .into_iter()
            .filter(|t| self.check_own_tenant(ctx, &t.id).is_ok())
            .collect())
    }

    pub async fn create_principal(
        &self,
        ctx: &RequestContext,
        input: CreatePrincipal,
    ) -> Result<PrincipalRecord, Error> {
        self.authorize_identity(ctx, true)?;
        validate_tenant_id(&input.tenant)?;
        self.check_own_tenant(ctx, &input.tenant)?;
        validate_display_name(&input.display_name)?;
        let app_id = if input.kind.is_application() {
            let id = match input.app_id {
                Some(id) => id,
                None => new_uuid()?,
            };
            validate_client_id(&id)?;
            Some(id)
        } else if input.app_id.is_some() {
            return Err(Error::bad_parameter(
                "Only service principals and managed identities have a client id.",
            ));
        } else {
            None
        };
        let now = self.clock.now_unix();
        let record = PrincipalRecord {
            format: RECORD_FORMAT,
            tenant: input.tenant,
            object_id: new_uuid()?,
            kind: input.kind,
            display_name: input.display_name,
            app_id,
            secrets: Vec::new(),
            certificates: Vec::new(),
            federated: Vec::new(),
            member_of: Vec::new(),
            created: now,
            updated: now,
        };
        expect_principal(
            self.identity_write(ctx, IdentityCommand::CreatePrincipal { record })
                .await?,
        )
    }

    /// A principal by object id or client id.
    pub async fn get_principal(
        &self,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<PrincipalRecord, Error> {
        self.authorize_identity(ctx, false)?;
        self.read_point(ctx.consistency).await?;
        let found = self.find_principal(id)?;
        self.check_own_tenant(ctx, &found.tenant)?;
        Ok(found)
    }

    pub(crate) fn find_principal(&self, id: &str) -> Result<PrincipalRecord, Error> {
        if let Some(p) = self.store.principal(id)? {
            return Ok(p);
        }
        self.store.principal_by_app(id)?.ok_or_else(|| {
            Error::new(
                ErrorCode::NotFound,
                format!("The principal {} does not exist.", quote_user_text(id)),
            )
        })
    }

    pub async fn list_principals(
        &self,
        ctx: &RequestContext,
        tenant: Option<&str>,
    ) -> Result<Vec<PrincipalRecord>, Error> {
        self.authorize_identity(ctx, false)?;
        self.read_point(ctx.consistency).await?;
        Ok(self
            .store
            .principals()?
            .into_iter()
            .filter(|p| tenant.is_none_or(|t| p.tenant == t))
            .filter(|p| self.check_own_tenant(ctx, &p.tenant).is_ok())
            .collect())
    }

    pub async fn delete_principal(&self, ctx: &RequestContext, id: &str) -> Result<(), Error> {
        self.authorize_identity(ctx, true)?;
        self.read_point(ctx.consistency).await?;
        let principal = self.find_principal(id)?;
        self.check_own_tenant(ctx, &principal.tenant)?;
        match self
            .identity_write(
                ctx,
                IdentityCommand::DeletePrincipal {
                    object_id: principal.object_id,
                },
            )
            .await?
        {
            Applied::Deleted => Ok(()),
            Applied::Failed(e) => Err(e),
            other => Err(Error::internal(format!(
                "unexpected store answer {other:?}"
            ))),
        }
    }

    async fn change_principal(
        &self,
        ctx: &RequestContext,
        object_id: &str,
        change: PrincipalChange,
    ) -> Result<PrincipalRecord, Error> {
        expect_principal(
            self.identity_write(
                ctx,
                IdentityCommand::ChangePrincipal {
                    object_id: object_id.to_owned(),
                    change,
                    updated: self.clock.now_unix(),
                },
            )
            .await?,
        )
    }

    pub async fn add_credential(
        &self,
        ctx: &RequestContext,
        principal: &str,
        credential: NewCredential,
    ) -> Result<AddedCredential, Error> {
        self.authorize_identity(ctx, true)?;
        self.read_point(ctx.consistency).await?;
        let target = self.find_principal(principal)?;
        self.check_own_tenant(ctx, &target.tenant)?;
        self.check_may_act_as(ctx, &target)?;
        if target.kind != PrincipalKind::ServicePrincipal {
            return Err(Error::bad_parameter(
                "Only service principals hold credentials; managed identities get tokens from \
                 their node.",
            ));
        }
        let id = new_uuid()?;
        let now = self.clock.now_unix();
        let (change, secret) = match credential {
            NewCredential::Secret { expires } => {
                let secret =
                    generate_client_secret().map_err(|e| Error::internal(e.to_string()))?;
                let hash = ClientSecretHash::new(secret.expose())
                    .map_err(|e| Error::internal(e.to_string()))?;
                let hint = secret
                    .expose()
                    .split_once('_')
                    .map_or("", |(_, rest)| rest)
                    .chars()
                    .take(3)
                    .collect();
                let change = PrincipalChange::AddSecret(SecretCredential {
                    id: id.clone(),
                    hint,
                    hash: hash.to_bytes().to_vec(),
                    created: now,
                    expires,
                });
                (change, Some(secret))
            }
            NewCredential::Certificate { certificate } => {
                let der = certificate_der(&certificate)?;
                coffer_crypto::jwt::VerifyingKey::from_certificate_der(&der).map_err(|e| {
                    Error::bad_parameter(format!("The certificate is not usable: {e}."))
                })?;
                let change = PrincipalChange::AddCertificate(CertificateCredential {
                    id: id.clone(),
                    der,
                    created: now,
                });
                (change, None)
            }
            NewCredential::Federated {
                name,
                issuer,
                subject,
                audiences,
            } => {
                validate_credential_name(&name)?;
                validate_claim_text("issuer", &issuer)?;
                validate_claim_text("subject", &subject)?;
                let audiences = if audiences.is_empty() {
                    vec![FEDERATION_AUDIENCE.to_owned()]
                } else {
                    audiences
                };
                for a in &audiences {
                    validate_claim_text("audience", a)?;
                }
                let change = PrincipalChange::AddFederated(FederatedCredential {
                    name: name.clone(),
                    issuer,
                    subject,
                    audiences,
                });
                return Ok(AddedCredential {
                    principal: self
                        .change_principal(ctx, &target.object_id, change)
                        .await?,
                    credential_id: name,
                    secret: None,
                });
            }
        };
        Ok(AddedCredential {
            principal: self
                .change_principal(ctx, &target.object_id, change)
                .await?,
            credential_id: id,
            secret,
        })
    }

    /// Removes a secret or certificate (by id) or a federated credential (by name).
    pub async fn remove_credential(
        &self,
        ctx: &RequestContext,
        principal: &str,
        credential: &str,
    ) -> Result<PrincipalRecord, Error> {
        self.authorize_identity(ctx, true)?;
        self.read_point(ctx.consistency).await?;
        let target = self.find_principal(principal)?;
        self.check_own_tenant(ctx, &target.tenant)?;
        self.change_principal(
            ctx,
            &target.object_id,
            PrincipalChange::RemoveCredential(credential.to_owned()),
        )
        .await
    }

    /// Adds (`join`) or removes a principal's membership in a group.
    pub async fn set_group_membership(
        &self,
        ctx: &RequestContext,
        group: &str,
        member: &str,
        join: bool,
    ) -> Result<PrincipalRecord, Error> {
        self.authorize_identity(ctx, true)?;
        self.read_point(ctx.consistency).await?;
        let group = self.find_principal(group)?;
        if group.kind != PrincipalKind::Group {
            return Err(Error::bad_parameter(format!(
                "{} is not a group.",
                quote_user_text(&group.display_name)
            )));
        }
        let member = self.find_principal(member)?;
        self.check_own_tenant(ctx, &group.tenant)?;
        self.check_own_tenant(ctx, &member.tenant)?;
        if join {
            // The member gains everything the group holds.
            self.check_may_act_as(ctx, &group)?;
        }
        let change = if join {
            PrincipalChange::JoinGroup(group.object_id)
        } else {
            PrincipalChange::LeaveGroup(group.object_id)
        };
        self.change_principal(ctx, &member.object_id, change).await
    }
}

/// The DER of a certificate given as PEM or DER.
fn certificate_der(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    if bytes.starts_with(b"-----BEGIN") {
        let mut certs = coffer_crypto::jwt::certificates_from_pem(bytes)
            .map_err(|e| Error::bad_parameter(format!("The certificate PEM is invalid: {e}.")))?;
        if certs.len() != 1 {
            return Err(Error::bad_parameter(
                "Give exactly one certificate (the public certificate, without its key).",
            ));
        }
        Ok(certs.remove(0))
    } else if bytes.len() > 16 * 1024 {
        Err(Error::bad_parameter(
            "The certificate is larger than 16 KiB.",
        ))
    } else {
        Ok(bytes.to_vec())
    }
}
