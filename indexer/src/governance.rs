//! A proposal's state from the mirrored facts, following the Governor's own rules
//! (`Governor.state` with `GovernorTimelockControl`, `GovernorCountingSimple` and
//! `GovernorVotesQuorumFraction`), evaluated at a block's timestamp.

use std::str::FromStr;

use alloy::primitives::U256;

use covenant_mirror::read::{ProposalFacts, ProposalRow};

/// The Governor's proposal states (same order as the contract's enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProposalState {
    /// Voting has not started.
    Pending,
    /// Voting is open.
    Active,
    /// Cancelled (by the proposer, or the guardian through the timelock).
    Canceled,
    /// Voting ended without quorum or majority.
    Defeated,
    /// Voting passed; not queued yet.
    Succeeded,
    /// Waiting in the timelock.
    Queued,
    /// Not used by this Governor (no expiry).
    Expired,
    /// Executed.
    Executed,
}

impl ProposalState {
    /// The contract's numeric value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// The quorum at the proposal's snapshot: supply × numerator / 100.
pub fn quorum(facts: &ProposalFacts) -> U256 {
    let supply = U256::from_str(&facts.supply_at_snapshot).unwrap_or_default();
    let numerator = U256::from_str(&facts.quorum_numerator).unwrap_or_default();
    supply.saturating_mul(numerator) / U256::from(100u8)
}

/// The state of `p` at a block with timestamp `now`.
pub fn state(p: &ProposalRow, facts: &ProposalFacts, now: u64) -> ProposalState {
    if facts.executed {
        return ProposalState::Executed;
    }
    if facts.canceled {
        return ProposalState::Canceled;
    }
    if p.vote_start >= now {
        return ProposalState::Pending;
    }
    if p.vote_end >= now {
        return ProposalState::Active;
    }
    let [against, for_, abstain] = facts
        .tally
        .clone()
        .map(|t| U256::from_str(&t).unwrap_or_default());
    let quorum_reached = quorum(facts) <= for_.saturating_add(abstain);
    let vote_succeeded = for_ > against;
    if !quorum_reached || !vote_succeeded {
        return ProposalState::Defeated;
    }
    if facts.queued_eta.is_none() {
        return ProposalState::Succeeded;
    }
    // Queued in the Governor's view; the timelock has the last word.
    if facts.timelock_executed {
        ProposalState::Executed
    } else if facts.timelock_cancelled {
        ProposalState::Canceled
    } else {
        ProposalState::Queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{Address, B256};

    fn proposal() -> ProposalRow {
        ProposalRow {
            id: "1".into(),
            proposer: Address::ZERO,
            actions: serde_json::json!([]),
            vote_start: 100,
            vote_end: 200,
            description: String::new(),
            timelock_id: B256::ZERO,
            block: 1,
        }
    }

    fn facts(tally: [&str; 3]) -> ProposalFacts {
        ProposalFacts {
            tally: tally.map(str::to_owned),
            supply_at_snapshot: "1000".into(),
            quorum_numerator: "4".into(), // quorum 40
            ..ProposalFacts::default()
        }
    }

    #[test]
    fn follows_the_governor_state_machine() {
        use ProposalState::*;
        let p = proposal();
        let cases: Vec<(&str, ProposalFacts, u64, ProposalState)> = vec![
            ("before snapshot", facts(["0", "0", "0"]), 100, Pending),
            ("voting", facts(["0", "50", "0"]), 200, Active),
            ("no quorum", facts(["0", "39", "0"]), 201, Defeated),
            ("quorum exactly", facts(["0", "40", "0"]), 201, Succeeded),
            (
                "abstain counts for quorum",
                facts(["0", "1", "39"]),
                201,
                Succeeded,
            ),
            ("tie loses", facts(["50", "50", "0"]), 201, Defeated),
            (
                "queued",
                ProposalFacts {
                    queued_eta: Some(300),
                    ..facts(["0", "50", "0"])
                },
                250,
                Queued,
            ),
            (
                "executed",
                ProposalFacts {
                    executed: true,
                    ..facts(["0", "50", "0"])
                },
                400,
                Executed,
            ),
            (
                "canceled wins over votes",
                ProposalFacts {
                    canceled: true,
                    ..facts(["0", "50", "0"])
                },
                150,
                Canceled,
            ),
            (
                "guardian cancelled in the timelock",
                ProposalFacts {
                    queued_eta: Some(300),
                    timelock_cancelled: true,
                    ..facts(["0", "50", "0"])
                },
                250,
                Canceled,
            ),
            (
                "executed directly on the timelock",
                ProposalFacts {
                    queued_eta: Some(300),
                    timelock_executed: true,
                    ..facts(["0", "50", "0"])
                },
                350,
                Executed,
            ),
        ];
        for (what, f, now, expected) in cases {
            assert_eq!(state(&p, &f, now), expected, "{what}");
        }
    }
}
