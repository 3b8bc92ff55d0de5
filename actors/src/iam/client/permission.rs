//! Functional server support: validating a service's secret through the IAM public endpoint.

use crate::api::{ApiError, ErrorCode, PublicRequest, PublicResponse, WireSecret};
use crate::iam::permissions::{InstanceIdent, PermissionGrant, Secret};

use super::IamClient;

/// What a functional server may serve: who asked, and the permission it holds for the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    /// The instance the secret belongs to.
    pub ident: InstanceIdent,
    /// The function asked for.
    pub function: String,
    /// The permission string the instance holds for it (e.g. `"rw"`).
    pub permission: String,
}

/// Asks IAM what a secret may do (`GetPermissions`). Cheap to clone.
///
/// A functional server keeps one, on a client of the (main node's) IAM public endpoint, and serves a
/// request only when [`PermissionChecker::authorize`] succeeds. The secret crosses only the TLS link to IAM
/// and never appears in an error or a log line.
#[derive(Debug, Clone)]
pub struct PermissionChecker {
    client: IamClient,
}

// === impl PermissionChecker ===

impl PermissionChecker {
    /// A checker asking through `client`.
    pub fn new(client: IamClient) -> Self {
        PermissionChecker { client }
    }

    /// The client it asks through.
    pub fn client(&self) -> &IamClient {
        &self.client
    }

    /// Who holds `secret` and what it may do on the functional server `server_id`. An unknown, malformed or
    /// revoked secret, and a secret without permissions there, all get `NotFound`.
    pub async fn check(
        &self,
        secret: &Secret,
        server_id: &str,
    ) -> Result<PermissionGrant, ApiError> {
        let request = PublicRequest::GetPermissions {
            secret: WireSecret(secret.clone()),
            functional_server_id: server_id.to_owned(),
        };
        match self.client.public(request).await? {
            PublicResponse::Permissions(grant) => Ok(grant),
            _ => Err(ApiError::new(
                ErrorCode::Internal,
                "IAM answered GetPermissions with a message of the wrong kind",
            )),
        }
    }

    /// Whether `secret` may call `function` on `server_id`: the grant for that function, `NotFound` as in
    /// [`PermissionChecker::check`], or `Unauthorized` when the instance holds no permission for that
    /// function.
    pub async fn authorize(
        &self,
        secret: &Secret,
        server_id: &str,
        function: &str,
    ) -> Result<Authorized, ApiError> {
        let grant = self.check(secret, server_id).await?;
        match grant.permissions.get(function) {
            Some(permission) => Ok(Authorized {
                function: function.to_owned(),
                permission: permission.clone(),
                ident: grant.ident,
            }),
            None => Err(ApiError::new(
                ErrorCode::Unauthorized,
                format!(
                    "{} holds no permission for function {function:?} of {server_id:?}",
                    grant.ident
                ),
            )),
        }
    }
}
