//! The box's role in an HA pair (README, "A pair of boxes"): read once at
//! start from `$EDGECC_HA_ROLE`, which the cluster resource sets
//! (deploy/ha/), and reported by `/readyz` (`ha_role`), the `STATUS=`
//! line (`role=`) and `/metrics` (`edgecc_ha_role`).
//!
//! In a pair, Pacemaker starts edgecc only on the active box, so a running
//! edgecc is either `standalone` (no cluster) or `active`. The role never
//! makes edgecc take the ARI application back: another owner is reported
//! (`pbx: "taken_over"`) and left alone, whatever the role says.

use std::sync::OnceLock;

/// The environment variable the cluster resource sets.
pub const ENV: &str = "EDGECC_HA_ROLE";

/// Where this process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HaRole {
    /// One box, no cluster (the variable is unset or empty).
    Standalone,
    /// Started by the cluster on the box that holds the VIP and the data
    /// directory.
    Active,
}

impl HaRole {
    /// The role named by the variable's value; an unknown value is refused,
    /// so a typo in the resource does not pass for a box without a cluster.
    pub fn parse(value: Option<&str>) -> Result<HaRole, String> {
        match value.map(str::trim) {
            None | Some("") | Some("standalone") => Ok(HaRole::Standalone),
            Some("active") => Ok(HaRole::Active),
            Some(other) => Err(format!(
                "{ENV}={other:?} is not a role: use \"active\" (set by the cluster) or leave it unset"
            )),
        }
    }

    /// The word `/readyz`, the status line and the metric use.
    pub fn as_str(self) -> &'static str {
        match self {
            HaRole::Standalone => "standalone",
            HaRole::Active => "active",
        }
    }
}

/// The role read at start; `standalone` until [`init`] ran.
static ROLE: OnceLock<HaRole> = OnceLock::new();

/// Reads `$EDGECC_HA_ROLE` once (`edgecc run` calls it before anything
/// else starts); a value that is not a role is a start-up error.
pub fn init() -> Result<HaRole, String> {
    let value = std::env::var(ENV).ok();
    let role = HaRole::parse(value.as_deref())?;
    Ok(*ROLE.get_or_init(|| role))
}

/// This process's role.
pub fn current() -> HaRole {
    ROLE.get().copied().unwrap_or(HaRole::Standalone)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unset, empty and `standalone` mean no cluster; `active` is the
    /// cluster's word; anything else is refused with the variable's name.
    #[test]
    fn parses_roles() {
        assert_eq!(HaRole::parse(None), Ok(HaRole::Standalone));
        assert_eq!(HaRole::parse(Some("")), Ok(HaRole::Standalone));
        assert_eq!(HaRole::parse(Some("standalone")), Ok(HaRole::Standalone));
        assert_eq!(HaRole::parse(Some("active")), Ok(HaRole::Active));
        assert_eq!(HaRole::parse(Some(" active\n")), Ok(HaRole::Active));
        let e = HaRole::parse(Some("primary")).unwrap_err();
        assert!(e.contains(ENV) && e.contains("primary"), "{e}");
        assert_eq!(HaRole::Active.as_str(), "active");
        assert_eq!(HaRole::Standalone.as_str(), "standalone");
    }
}
