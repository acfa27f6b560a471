//! The REST work that follows from events ([`Effect`]s the pure
//! [`super::state::AriState`] asks for): hanging up leftovers, handing
//! channels back to the dialplan, joining a barge or a monitor to its
//! bridge, destroying bridges, dialling the customer of an outbound call,
//! and the orphan check after a reconcile.

use std::rc::Rc;

use awc::http::Method;
use edgecc_actors::ports::{PbxError, PbxEvent};
use edgecc_actors::HangupCause;
use tracing::{debug, info, warn};

use super::calls::Calls;
use super::commands::q850_of;
use super::rest::encode_segment;
use super::state::{Effect, OnAnswer};

impl Calls {
    /// Hangs up (edgecc's legs) or hands back (anything else) the
    /// channels, and destroys the bridges, a reconcile found in the
    /// application but that no StasisStart claimed since.
    pub(super) async fn check_orphans(self: Rc<Self>, channels: Vec<String>, bridges: Vec<String>) {
        for ch in channels {
            if self.state.borrow().legs.contains_key(&ch) {
                continue;
            }
            let path = format!("/channels/{}", encode_segment(&ch));
            if ch.contains(edgecc_actors::ids::LEG_ID_SEPARATOR) {
                warn!(channel = %ch, "Orphan leg of edgecc's found after a reconnect; hanging it up.");
                let _ = self.rest.call(Method::DELETE, &path, &[], None).await;
            } else {
                warn!(channel = %ch, "Unknown call in the application after a reconnect; handed back to the dialplan.");
                let _ = self
                    .rest
                    .call(Method::POST, &format!("{path}/continue"), &[], None)
                    .await;
            }
        }
        for b in bridges {
            if self.state.borrow().bridges.contains_key(&b) {
                continue;
            }
            info!(bridge_id = %b, "Orphan bridge of edgecc's destroyed after a reconnect.");
            let _ = self
                .rest
                .call(
                    Method::DELETE,
                    &format!("/bridges/{}", encode_segment(&b)),
                    &[],
                    None,
                )
                .await;
        }
    }

    /// Runs one effect's REST work.
    pub(super) async fn effect(self: &Rc<Self>, fx: Effect) {
        match fx {
            Effect::HangupChannel { channel, cause } => {
                let code = q850_of(cause).to_string();
                let path = format!("/channels/{}", encode_segment(&channel));
                if let Err(e) = self
                    .rest
                    .call(Method::DELETE, &path, &[("reason_code", &code)], None)
                    .await
                {
                    debug!(channel = %channel, error = %e, "Hang-up of a leftover channel failed.");
                    if e.status() == Some(404) {
                        let mut out = Vec::new();
                        self.state.borrow_mut().end_leg(&channel, cause, &mut out);
                        Calls::apply(self, out);
                    }
                }
            }
            Effect::ContinueChannel { channel } => {
                let path = format!("/channels/{}/continue", encode_segment(&channel));
                if let Err(e) = self.rest.call(Method::POST, &path, &[], None).await {
                    warn!(channel = %channel, error = %e, "Handing a channel back to the dialplan failed.");
                }
            }
            Effect::JoinBridge { bridge, channel } => {
                if let Err(e) = self.add_to_bridge(&bridge, &channel).await {
                    warn!(bridge_id = %bridge, leg_id = %channel, error = %e, "Barge: joining the bridge failed; hanging up.");
                    self.hangup_leg(&channel, HangupCause::Normal).await.ok();
                }
            }
            Effect::BridgeSpy {
                bridge,
                spy,
                supervisor,
            } => {
                let r = async {
                    self.add_to_bridge(&bridge, &spy).await?;
                    self.add_to_bridge(&bridge, &supervisor).await
                }
                .await;
                if let Err(e) = r {
                    warn!(leg_id = %supervisor, error = %e, "Monitor: bridging with the snoop channel failed; hanging up.");
                    self.hangup_leg(&supervisor, HangupCause::Normal).await.ok();
                }
            }
            Effect::DestroyBridge { bridge } => {
                let path = format!("/bridges/{}", encode_segment(&bridge));
                let _ = self.rest.call(Method::DELETE, &path, &[], None).await;
                self.state.borrow_mut().bridges.remove(&bridge);
            }
            Effect::RestoreHoldMedia { channel } => self.restore_hold_media(&channel).await,
            Effect::DialCustomer {
                customer,
                endpoint,
                caller_id,
                timeout_ms,
            } => {
                if let Err(e) = self
                    .originate(
                        &customer,
                        &endpoint,
                        &caller_id,
                        timeout_ms,
                        false,
                        OnAnswer::Nothing,
                    )
                    .await
                {
                    warn!(leg_id = %customer, error = %e, "Outbound dial of the customer failed.");
                    let cause = match e {
                        PbxError::Unreachable(_) => HangupCause::Unreachable,
                        _ => HangupCause::Congestion,
                    };
                    self.emit(PbxEvent::LegHungUp {
                        leg_id: customer.as_str().into(),
                        cause,
                    });
                }
            }
            Effect::Emit(_) | Effect::Replaced | Effect::CheckOrphans { .. } => {}
        }
    }
}
