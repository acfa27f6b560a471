//! Wrap-up (disposition) codes per queue (`[queues.wrap_up_codes]`): the
//! list an agent picks from after a call of the queue, and whether a code
//! is required before the agent may finish its wrap-up. A queue without a
//! list takes free text. Serde structs with their defaults, [`validate`]
//! (naming the key path of a problem, `queues[0].wrap_up_codes.codes[2].code:
//! ...`), and [`WrapUpCodes::check`], the one rule of which codes a queue
//! accepts.

use serde::{Deserialize, Serialize};

/// Most codes one queue lists: a desktop select longer than this is a
/// list nobody reads to the end.
pub const WRAP_UP_CODES_MAX: usize = 100;
/// Longest code, bytes (the CRM's disposition fields are short).
pub const WRAP_UP_CODE_LEN_MAX: usize = 64;
/// Longest label, bytes.
pub const WRAP_UP_LABEL_LEN_MAX: usize = 128;

/// `[queues.wrap_up_codes]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WrapUpCodes {
    /// The codes agents choose from after a call of the queue; empty: free
    /// text (the code is what the agent types).
    pub codes: Vec<WrapUpCode>,
    /// Whether the agent must record a code before finishing the wrap-up
    /// (Finish and Ready are refused until then; the wrap-up's own timer
    /// still ends it, so an agent who walked away does not block routing).
    pub required: bool,
}

/// One wrap-up code of a queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrapUpCode {
    /// What the CRM record and the reports carry (`sale`, `no-sale`).
    pub code: String,
    /// What the desktop shows (the code itself when empty).
    #[serde(default)]
    pub label: String,
}

/// Why a queue does not take a code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WrapUpCodeRefused {
    /// The queue lists its codes and this is not one of them.
    #[error("{code:?} is not a wrap-up code of this queue; choose one of: {}", .codes.join(", "))]
    NotListed {
        /// The code given.
        code: String,
        /// The queue's codes.
        codes: Vec<String>,
    },
}

impl WrapUpCodes {
    /// Whether the queue takes `code`: one of its list, or any code when it
    /// lists none.
    pub fn check(&self, code: &str) -> Result<(), WrapUpCodeRefused> {
        if self.codes.is_empty() || self.codes.iter().any(|c| c.code == code) {
            return Ok(());
        }
        Err(WrapUpCodeRefused::NotListed {
            code: code.to_owned(),
            codes: self.codes.iter().map(|c| c.code.clone()).collect(),
        })
    }
}

/// Checks one queue's `wrap_up_codes` under key path `p` (`queues[0]`),
/// calling `err` for every problem.
pub fn validate(p: &str, w: &WrapUpCodes, err: &mut impl FnMut(String, String)) {
    if w.codes.len() > WRAP_UP_CODES_MAX {
        err(
            format!("{p}.wrap_up_codes.codes"),
            format!("at most {WRAP_UP_CODES_MAX} codes"),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, c) in w.codes.iter().enumerate() {
        let key = format!("{p}.wrap_up_codes.codes[{i}]");
        if c.code.trim().is_empty()
            || c.code.len() > WRAP_UP_CODE_LEN_MAX
            || c.code.chars().any(char::is_control)
        {
            err(
                format!("{key}.code"),
                format!(
                    "must be 1..={WRAP_UP_CODE_LEN_MAX} bytes, not blank, no control characters"
                ),
            );
        }
        if !seen.insert(c.code.as_str()) {
            err(
                format!("{key}.code"),
                format!("duplicate code {:?}", c.code),
            );
        }
        if c.label.len() > WRAP_UP_LABEL_LEN_MAX || c.label.chars().any(char::is_control) {
            err(
                format!("{key}.label"),
                format!("must be at most {WRAP_UP_LABEL_LEN_MAX} bytes, no control characters"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(list: &[&str], required: bool) -> WrapUpCodes {
        WrapUpCodes {
            codes: list
                .iter()
                .map(|c| WrapUpCode {
                    code: (*c).into(),
                    label: String::new(),
                })
                .collect(),
            required,
        }
    }

    /// A listed queue takes only its codes and says which it takes; an
    /// unlisted one takes free text.
    #[test]
    fn a_list_takes_only_its_codes() {
        let w = codes(&["sale", "no-sale"], true);
        assert!(w.check("sale").is_ok());
        let e = w.check("Sale").unwrap_err().to_string();
        assert_eq!(
            e,
            "\"Sale\" is not a wrap-up code of this queue; choose one of: sale, no-sale"
        );
        assert!(codes(&[], false).check("anything typed").is_ok());
    }

    /// Blank and duplicate codes are named by key path.
    #[test]
    fn bad_codes_are_named() {
        let w = codes(&["sale", " ", "sale"], false);
        let mut errors = Vec::new();
        validate("queues[1]", &w, &mut |k, m| {
            errors.push(format!("{k}: {m}"))
        });
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("queues[1].wrap_up_codes.codes[1].code: "));
        assert!(errors[1].starts_with("queues[1].wrap_up_codes.codes[2].code: duplicate"));
    }
}
