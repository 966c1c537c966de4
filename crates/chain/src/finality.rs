//! Which block of a chain counts as final: the node's `finalized` tag, or a number of
//! confirmations on development chains that have no finality gadget.

use std::str::FromStr;

/// Which block counts as final.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finality {
    /// The node's `finalized` block (production chains).
    Tag,
    /// `n` blocks below the head (development chains without finality).
    Confirmations(u64),
}

impl FromStr for Finality {
    type Err = String;
    /// `finalized` (or `tag`), or a number of confirmations.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "finalized" | "tag" => Ok(Self::Tag),
            n => n.parse::<u64>().map(Self::Confirmations).map_err(|_| {
                format!("finality must be `finalized` or a number of confirmations, got `{s}`")
            }),
        }
    }
}

impl std::fmt::Display for Finality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tag => f.write_str("finalized"),
            Self::Confirmations(n) => write!(f, "{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_tag_and_confirmations_and_nothing_else() {
        assert_eq!("finalized".parse(), Ok(Finality::Tag));
        assert_eq!(" 12 ".parse(), Ok(Finality::Confirmations(12)));
        assert!("latest".parse::<Finality>().is_err());
        assert!("-1".parse::<Finality>().is_err());
        assert_eq!(Finality::Confirmations(3).to_string(), "3");
    }
}
