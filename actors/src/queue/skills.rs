//! Skills-based choice of an agent, pure: the skill levels of the queue's
//! members (1..=5, from the config), a per-skill index of the Ready ones,
//! the requirements of a waiting call (the queue's and the call's own, from
//! its attached data) and the best match among the eligible agents.
//!
//! # Best match
//!
//! An agent is eligible for a call when it has every required skill at the
//! required minimum level or above. Among eligible agents the best match
//! has the highest *surplus*: the sum, over the required skills, of its
//! level minus the minimum (a level-5 agent for a skill asked at level 2
//! scores 3). Equal surpluses are settled by the queue's strategy (its
//! order of the Ready agents: longest idle, fewest calls, ...).
//!
//! # Staying fast
//!
//! Nothing scans every Ready agent per call. Each skill keeps its Ready
//! holders ordered by (level descending, strategy key), so for a call
//! needing one skill the first holder at or above the minimum is the best
//! match. For several skills the holders of the rarest required skill
//! (fewest Ready holders) are read in that order, at most
//! [`SKILL_SCAN_AGENTS_MAX`] of them beyond the agents the call tried, and
//! the best surplus among those wins: exact for one skill, the best of a
//! bounded sample for more. A call with no required skill takes the
//! strategy's order as before.
//!
//! Agents whose offer of the call failed are not left out: as for any call
//! ([`super::placement::pick`]), the untried eligible agents come first in
//! best-match order, then the tried ones, the one tried longest ago first.

use super::placement;
use super::AgentKey;
use crate::config::{SkillLevel, SkillRequirement, SKILL_LEVEL_MAX, SKILL_LEVEL_MIN};
use crate::ids::AgentId;
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

/// The attached-data key whose value lists a call's own required skills:
/// `english:3,billing` or `english:3/billing` (a `/` fits a Stasis()
/// argument, where a comma would end it); a skill without a level asks for
/// level 1.
pub const CALL_SKILLS_KEY: &str = "skills";
/// Most skills a call may require of its own (the rest are ignored).
pub const CALL_SKILLS_MAX: usize = 8;
/// Longest skill name taken from attached data.
pub const SKILL_NAME_LEN_MAX: usize = 64;
/// Most holders of the rarest required skill read for one call, beyond the
/// agents it tried.
pub const SKILL_SCAN_AGENTS_MAX: usize = 64;

/// One index entry of a skill: level (highest first), the queue's key of
/// the agent (strategy, then score), agent.
type SkillEntry = (Reverse<u8>, AgentKey, AgentId);

/// A call's own requirements read from its attached data, and what was
/// refused in it (for a log line by the caller).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallSkills {
    /// The requirements taken (at most [`CALL_SKILLS_MAX`]).
    pub required: Vec<SkillRequirement>,
    /// Entries ignored: empty or too long a name, a level outside 1..=5,
    /// or past [`CALL_SKILLS_MAX`].
    pub ignored: usize,
}

/// Reads `english:3, billing/french:2` (the value of [`CALL_SKILLS_KEY`]). Never
/// fails: what cannot be read is counted in [`CallSkills::ignored`].
pub fn parse_call_skills(value: &str) -> CallSkills {
    let mut out = CallSkills::default();
    let items = value.split([',', '/']).map(str::trim);
    for item in items.filter(|s| !s.is_empty()) {
        let (name, level) = match item.split_once(':') {
            Some((n, l)) => (n.trim(), l.trim().parse::<u8>().ok()),
            None => (item, Some(SKILL_LEVEL_MIN)),
        };
        let ok_name = !name.is_empty() && name.chars().count() <= SKILL_NAME_LEN_MAX;
        match level {
            Some(l)
                if ok_name
                    && (SKILL_LEVEL_MIN..=SKILL_LEVEL_MAX).contains(&l)
                    && out.required.len() < CALL_SKILLS_MAX =>
            {
                out.required.push(SkillRequirement {
                    skill: name.to_owned(),
                    level_min: l,
                });
            }
            _ => out.ignored += 1,
        }
    }
    out
}

/// The queue's requirements joined with the call's own: a skill both ask
/// for keeps the higher minimum.
pub fn merge(queue: &[SkillRequirement], call: &[SkillRequirement]) -> Vec<SkillRequirement> {
    let mut out: Vec<SkillRequirement> = Vec::with_capacity(queue.len() + call.len());
    for r in queue.iter().chain(call) {
        match out.iter_mut().find(|o| o.skill == r.skill) {
            Some(o) => o.level_min = o.level_min.max(r.level_min),
            None => out.push(r.clone()),
        }
    }
    out
}

/// The surplus of an agent with `levels` for `needs`, or `None` when it
/// lacks a skill or a level (see the module doc).
pub fn surplus(levels: &[(String, u8)], needs: &[SkillRequirement]) -> Option<u32> {
    let mut total = 0u32;
    for need in needs {
        let level = levels
            .iter()
            .find(|(s, _)| *s == need.skill)
            .map_or(0, |(_, l)| *l);
        if level < need.level_min {
            return None;
        }
        total += u32::from(level - need.level_min);
    }
    Some(total)
}

/// The members' skill levels and the per-skill index of the Ready ones.
#[derive(Debug, Default)]
pub struct SkillIndex {
    /// Each member's skills and levels, from the config (the index needs
    /// them when the member becomes Ready or leaves).
    levels: HashMap<AgentId, Vec<(String, u8)>>,
    /// Ready holders of each skill, best level first, then the strategy.
    by_skill: HashMap<String, BTreeSet<SkillEntry>>,
}

impl SkillIndex {
    /// An index knowing each member's skills.
    pub fn new<'a>(members: impl IntoIterator<Item = (AgentId, &'a [SkillLevel])>) -> Self {
        let levels = members
            .into_iter()
            .map(|(agent, skills)| {
                let skills = skills.iter().map(|s| (s.skill.clone(), s.level)).collect();
                (agent, skills)
            })
            .collect();
        Self {
            levels,
            by_skill: HashMap::new(),
        }
    }

    /// The skills of `agent` (none if the config gave it none).
    pub fn levels_of(&self, agent: &AgentId) -> &[(String, u8)] {
        self.levels.get(agent).map_or(&[], Vec::as_slice)
    }

    /// `agent` is Ready with the queue's key `key`.
    pub fn insert(&mut self, agent: &AgentId, key: AgentKey) {
        let Some(levels) = self.levels.get(agent) else {
            return;
        };
        for (skill, level) in levels {
            self.by_skill.entry(skill.clone()).or_default().insert((
                Reverse(*level),
                key,
                agent.clone(),
            ));
        }
    }

    /// `agent` (Ready with `key`) left the Ready set.
    pub fn remove(&mut self, agent: &AgentId, key: AgentKey) {
        let Some(levels) = self.levels.get(agent) else {
            return;
        };
        for (skill, level) in levels {
            if let Some(set) = self.by_skill.get_mut(skill) {
                set.remove(&(Reverse(*level), key, agent.clone()));
            }
        }
    }

    /// Up to `want` Ready agents for `needs` (every need with a minimum of
    /// 1 or more), best match first, the agents in `tried` (oldest try
    /// first) after every untried one; each with its queue key. Reads at
    /// most [`SKILL_SCAN_AGENTS_MAX`] index entries beyond `tried`.
    pub fn best(
        &self,
        needs: &[SkillRequirement],
        tried: &[AgentId],
        want: usize,
    ) -> Vec<(AgentKey, AgentId)> {
        let rarest = needs
            .iter()
            .map(|n| (self.by_skill.get(&n.skill).map_or(0, BTreeSet::len), n))
            .min_by_key(|(len, _)| *len);
        let Some((_, lead)) = rarest else {
            return Vec::new();
        };
        let Some(holders) = self.by_skill.get(&lead.skill) else {
            return Vec::new();
        };
        // Highest surplus first, then the strategy's order (its key). For
        // one skill the index order already is this order.
        let mut found: Vec<((Reverse<u32>, AgentKey), AgentId)> = holders
            .iter()
            .take_while(|(Reverse(level), _, _)| *level >= lead.level_min)
            .take(SKILL_SCAN_AGENTS_MAX.saturating_add(tried.len()))
            .filter_map(|(_, key, a)| {
                surplus(self.levels_of(a), needs).map(|s| ((Reverse(s), *key), a.clone()))
            })
            .collect();
        if needs.len() > 1 {
            found.sort();
        }
        placement::pick(found.iter(), tried, want)
            .into_iter()
            .map(|((_, key), a)| (key, a))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(skill: &str, level_min: u8) -> SkillRequirement {
        SkillRequirement {
            skill: skill.into(),
            level_min,
        }
    }

    fn lvl(skill: &str, level: u8) -> SkillLevel {
        SkillLevel {
            skill: skill.into(),
            level,
        }
    }

    /// Attached data is read leniently: bad entries are counted, not fatal.
    #[test]
    fn call_skills_from_attached_data() {
        let got = parse_call_skills(" english:3, billing ,x:9,:2,fr:zz,,/de:2");
        assert_eq!(
            got.required,
            vec![req("english", 3), req("billing", 1), req("de", 2)]
        );
        assert_eq!(got.ignored, 3);
        let many: Vec<String> = (0..12).map(|i| format!("s{i}:2")).collect();
        let got = parse_call_skills(&many.join(","));
        assert_eq!(got.required.len(), CALL_SKILLS_MAX);
        assert_eq!(got.ignored, 12 - CALL_SKILLS_MAX);
    }

    /// A skill the queue and the call both ask for keeps the higher minimum.
    #[test]
    fn merge_keeps_the_higher_minimum() {
        let m = merge(&[req("en", 2)], &[req("en", 4), req("fr", 1)]);
        assert_eq!(m, vec![req("en", 4), req("fr", 1)]);
    }

    /// The best match is the highest surplus; equal surpluses go by the
    /// strategy key; a missing skill or level makes an agent ineligible.
    #[test]
    fn best_match_then_strategy() {
        let (a, b, c, d) = (
            AgentId::new("a"),
            AgentId::new("b"),
            AgentId::new("c"),
            AgentId::new("d"),
        );
        let skills = [
            vec![lvl("en", 3), lvl("fr", 3)],
            vec![lvl("en", 5), lvl("fr", 2)],
            vec![lvl("en", 4), lvl("fr", 3)],
            vec![lvl("en", 5)],
        ];
        let mut idx = SkillIndex::new(
            [&a, &b, &c, &d]
                .into_iter()
                .cloned()
                .zip(skills.iter().map(Vec::as_slice)),
        );
        for (agent, key) in [(&a, 1), (&b, 2), (&c, 3), (&d, 4)] {
            idx.insert(agent, (key, 0));
        }
        // One skill: level first, then the strategy key (b before d).
        let one = idx.best(&[req("en", 3)], &[], 4);
        assert_eq!(
            one.iter().map(|(_, x)| x.clone()).collect::<Vec<_>>(),
            vec![b.clone(), d.clone(), c.clone(), a.clone()]
        );
        // Two skills (en>=2, fr>=2): d lacks fr; b scores 3+0, c 2+1,
        // a 1+1.
        let two = idx.best(&[req("en", 2), req("fr", 2)], &[], 3);
        assert_eq!(
            two,
            vec![
                ((2, 0), b.clone()),
                ((3, 0), c.clone()),
                ((1, 0), a.clone())
            ],
            "b and c tie at 3 and go by strategy key; a scores 2"
        );
        // An agent the call tried goes after the untried ones, not never;
        // removal and a skill nobody has.
        let tried_b = std::slice::from_ref(&b);
        assert_eq!(
            idx.best(&[req("en", 5)], tried_b, 1),
            vec![((4, 0), d.clone())]
        );
        assert_eq!(
            idx.best(&[req("en", 5)], tried_b, 2),
            vec![((4, 0), d.clone()), ((2, 0), b.clone())]
        );
        idx.remove(&d, (4, 0));
        assert_eq!(
            idx.best(&[req("en", 5)], tried_b, 1),
            vec![((2, 0), b.clone())]
        );
        idx.remove(&b, (2, 0));
        assert!(idx.best(&[req("en", 5)], &[], 1).is_empty());
        assert!(idx.best(&[req("de", 1)], &[], 1).is_empty());
    }
}
