//! Why a live call's queue offers went to their agents, for the HTTP layer
//! (`GET /api/v1/calls/{id}/routing`): the registry finds the call's actor
//! and asks it for its [`RoutingRecord`] (the call owns it, see
//! [`crate::queue::explain`]).

use super::Registry;
use crate::call::actor::GetRouting;
use crate::ids::CallId;
use crate::queue::explain::RoutingRecord;
use actix::prelude::*;
use serde::Serialize;

/// Ask for a call's routing explanations; `None` when no live (or
/// lingering ended) call has this id.
#[derive(Message)]
#[rtype(result = "Option<CallRouting>")]
pub struct GetCallRouting(pub CallId);

/// A call's routing explanations and its phase now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallRouting {
    /// The call.
    pub call_id: CallId,
    /// Its phase now (`queued`, `offering`, `connected`, ...).
    pub phase: &'static str,
    /// Its latest offers' explanations and their count.
    #[serde(flatten)]
    pub routing: RoutingRecord,
}

impl Handler<GetCallRouting> for Registry {
    type Result = ResponseFuture<Option<CallRouting>>;

    fn handle(&mut self, msg: GetCallRouting, _ctx: &mut Self::Context) -> Self::Result {
        let addr = self.calls.get(&msg.0).map(|c| c.addr.clone());
        Box::pin(async move {
            let (phase, routing) = addr?.send(GetRouting).await.ok()?;
            Some(CallRouting {
                call_id: msg.0,
                phase,
                routing,
            })
        })
    }
}
