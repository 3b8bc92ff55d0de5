//! The CM's handler of the cloud's requests: decodes a [`CloudRequest`], runs the provisioning or renewal
//! driver through [`IamAccess`], answers a [`CloudResult`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::{Actor, Context, Handler, Recipient, ResponseFuture};
use aos_transport::frame::{decode_body, encode_body};
use bytes::Bytes;

use super::cloud_link::Idle;
use super::iam_access::IamAccess;
use super::{provisioning, renewal};
use crate::api::cloud::{CloudAnswer, CloudRequest, CloudResult};
use crate::net::{ErrorCode, Incoming, WireError};

/// Serves the cloud's requests; counts those in progress so superseded links close only when idle.
pub(super) struct CloudHandler {
    iam: Arc<dyn IamAccess>,
    in_flight: Arc<AtomicUsize>,
    idle: Recipient<Idle>,
}

impl CloudHandler {
    pub(super) fn new(
        iam: Arc<dyn IamAccess>,
        in_flight: Arc<AtomicUsize>,
        idle: Recipient<Idle>,
    ) -> CloudHandler {
        CloudHandler {
            iam,
            in_flight,
            idle,
        }
    }
}

impl Actor for CloudHandler {
    type Context = Context<Self>;
}

impl Handler<Incoming> for CloudHandler {
    type Result = ResponseFuture<Result<Bytes, WireError>>;

    fn handle(&mut self, msg: Incoming, _: &mut Context<Self>) -> Self::Result {
        let request: CloudRequest = match decode_body(&msg.body, msg.body.len()) {
            Ok(request) => request,
            Err(err) => {
                tracing::warn!("undecodable request from the cloud: {err}");
                return Box::pin(std::future::ready(Err(WireError::new(
                    ErrorCode::BAD_REQUEST,
                    format!("the CM cannot read this request: {err}"),
                ))));
            }
        };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let (iam, in_flight, idle) = (self.iam.clone(), self.in_flight.clone(), self.idle.clone());
        Box::pin(async move {
            let result = serve(iam.as_ref(), request).await;
            if in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                idle.do_send(Idle);
            }
            encode_body(&result, usize::MAX)
                .map(Bytes::from)
                .map_err(|e| WireError::new(ErrorCode::INTERNAL, e.to_string()))
        })
    }
}

/// Carry out one cloud request.
pub(super) async fn serve(iam: &dyn IamAccess, request: CloudRequest) -> CloudResult {
    let result = match request {
        CloudRequest::GetUnitStatus => provisioning::unit_status(iam)
            .await
            .map(CloudAnswer::UnitStatus),
        CloudRequest::StartProvisioning { node_id, password } => {
            tracing::info!(node = %node_id, "cloud: start provisioning");
            provisioning::start(iam, &node_id, &password)
                .await
                .map(CloudAnswer::Csrs)
        }
        CloudRequest::FinishProvisioning {
            node_id,
            password,
            certs,
        } => {
            tracing::info!(node = %node_id, certs = certs.len(), "cloud: finish provisioning");
            provisioning::finish(iam, &node_id, &password, certs)
                .await
                .map(CloudAnswer::Installed)
        }
        CloudRequest::RenewCerts {
            node_id,
            cert_types,
            password,
        } => {
            tracing::info!(node = %node_id, ?cert_types, "cloud: renew certificates");
            renewal::create_csrs(iam, &node_id, &cert_types, &password)
                .await
                .map(CloudAnswer::Csrs)
        }
        CloudRequest::InstallCerts { node_id, certs } => {
            tracing::info!(node = %node_id, certs = certs.len(), "cloud: install certificates");
            let installed = renewal::install(iam, &node_id, certs).await;
            match &installed {
                Ok(certs) => crate::telemetry::renewals(true, certs.len() as u64),
                Err(_) => crate::telemetry::renewal(false),
            }
            installed.map(CloudAnswer::Installed)
        }
    };
    if let Err(failure) = &result {
        tracing::warn!("cloud request failed: {failure}");
    }
    result
}
