//! The PBX's start-up time, kept durable for the PBX adapter: the adapter
//! tells the registry each start-up time it reads ([`PbxStarted`]), and the
//! registry hands it to the actors' state port as a
//! [`StateRecord::PbxStartup`], in the same ordered writer as every call's
//! state. A restarted edgecc finds it in its [`StateSnapshot`] and the
//! adapter compares it with what the PBX says on the first connect: a
//! different value means the PBX restarted while edgecc was down too, and
//! the calls it dropped end `pbx_lost` rather than as ordinary hang-ups.
//!
//! [`StateSnapshot`]: crate::durable::StateSnapshot

use super::Registry;
use crate::durable::StateRecord;
use actix::prelude::*;

/// The PBX adapter read this start-up time from the PBX (on a connect,
/// after the calls it found dropped were told so).
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct PbxStarted {
    /// The start-up time, as the PBX wrote it.
    pub startup_time: String,
}

impl Handler<PbxStarted> for Registry {
    type Result = ();

    fn handle(&mut self, msg: PbxStarted, _ctx: &mut Self::Context) {
        self.env().state.persist(StateRecord::PbxStartup {
            startup_time: msg.startup_time,
        });
    }
}
