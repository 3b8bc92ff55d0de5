//! `aosctl permissions check`: what an instance's secret grants on one functional server, asked exactly as
//! that server asks (GetPermissions on the public endpoint).

use aos_actors::api::{PublicRequest, PublicResponse, WireSecret};
use aos_actors::iam::permissions::Secret;

use crate::cli::PermissionsCheckArgs;
use crate::error::CtlError;
use crate::output::{self, Table};
use crate::password::first_line;
use crate::session::Session;

/// `aosctl permissions check`.
pub async fn check(args: &PermissionsCheckArgs, json: bool) -> Result<(), CtlError> {
    let secret = first_line(&args.secret_file, "secret")?;
    let session = Session::open(&args.connect).await?;
    let request = PublicRequest::GetPermissions {
        secret: WireSecret(Secret::from_text(secret.as_str())),
        functional_server_id: args.server_id.clone(),
    };
    let grant = match session.public("GetPermissions", request).await? {
        PublicResponse::Permissions(grant) => grant,
        other => return Err(session.unexpected("GetPermissions", &session.node_id, &other)),
    };
    session.close().await;
    let ident = &grant.ident;
    let instance = format!(
        "{}/{}/{} ({})",
        ident.item_id, ident.subject_id, ident.instance, ident.kind
    );
    let mut table = Table::new(&["INSTANCE", "SERVER", "FUNCTION", "PERMISSION"]);
    for (function, permission) in &grant.permissions {
        table.row(vec![
            instance.clone(),
            args.server_id.clone(),
            function.clone(),
            permission.clone(),
        ]);
    }
    output::print(json, &grant, &table)
}
