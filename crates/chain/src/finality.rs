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

/// A number of confirmations, or the string `finalized` (or a number as a string): as
/// configuration files write it.
impl<'de> serde::Deserialize<'de> for Finality {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Self::Confirmations(n)),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
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

    #[test]
    fn deserializes_from_a_number_or_a_string() {
        let f = |json: &str| serde_json::from_str::<Finality>(json);
        assert_eq!(f("4").unwrap(), Finality::Confirmations(4));
        assert_eq!(f("\"finalized\"").unwrap(), Finality::Tag);
        assert_eq!(f("\"7\"").unwrap(), Finality::Confirmations(7));
        assert!(f("\"latest\"").is_err());
        assert!(f("-1").is_err());
    }
}
