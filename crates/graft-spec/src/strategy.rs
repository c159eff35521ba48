//! The four strategies as data: which block groups are frozen, which train, and whether the
//! weights start fresh. Pure functions, tested without tensors.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A strategy that does not parse, or does not fit the backbone it is applied to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StrategyError {
    #[error("unknown strategy {0:?}: use pretrained, head, partial:N (N >= 1) or scratch")]
    Unknown(String),
    #[error(
        "partial:{asked} asks for {asked} block groups but this model has {available}: {groups}"
    )]
    TooManyGroups {
        asked: usize,
        available: usize,
        groups: String,
    },
}

/// Written and read as its text form (`partial:2`), as on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Strategy {
    /// The ImageNet model as it is.
    Pretrained,
    /// Every block group frozen; a new classifier trained.
    Head,
    /// The top N block groups and a new classifier trained; the rest frozen.
    Partial(usize),
    /// Same architecture, fresh weights, everything trained.
    Scratch,
}

impl TryFrom<String> for Strategy {
    type Error = StrategyError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Strategy> for String {
    fn from(s: Strategy) -> Self {
        s.to_string()
    }
}

impl FromStr for Strategy {
    type Err = StrategyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "pretrained" => Ok(Self::Pretrained),
            "head" => Ok(Self::Head),
            "scratch" => Ok(Self::Scratch),
            _ => match s.strip_prefix("partial:").map(str::parse::<usize>) {
                Some(Ok(n)) if n >= 1 => Ok(Self::Partial(n)),
                _ => Err(StrategyError::Unknown(s)),
            },
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pretrained => write!(f, "pretrained"),
            Self::Head => write!(f, "head"),
            Self::Partial(n) => write!(f, "partial:{n}"),
            Self::Scratch => write!(f, "scratch"),
        }
    }
}

/// What a strategy means for one backbone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezePlan {
    pub frozen: Vec<String>,
    pub trainable: Vec<String>,
    /// Groups `0..freeze_point` are frozen (run once, cached); the rest train.
    pub freeze_point: usize,
    /// Backbone weights start fresh (scratch) instead of pretrained.
    pub fresh_weights: bool,
    /// A new classifier is trained (false only for `pretrained`).
    pub new_head: bool,
}

impl Strategy {
    pub fn plan(self, groups: &[String]) -> Result<FreezePlan, StrategyError> {
        let n = groups.len();
        let (freeze_point, fresh_weights, new_head) = match self {
            Self::Pretrained => (n, false, false),
            Self::Head => (n, false, true),
            Self::Partial(k) if k <= n => (n - k, false, true),
            Self::Partial(k) => {
                return Err(StrategyError::TooManyGroups {
                    asked: k,
                    available: n,
                    groups: groups.join(", "),
                });
            }
            Self::Scratch => (0, true, true),
        };
        Ok(FreezePlan {
            frozen: groups[..freeze_point].to_vec(),
            trainable: groups[freeze_point..].to_vec(),
            freeze_point,
            fresh_weights,
            new_head,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> Vec<String> {
        ["stem", "layer1", "layer2", "layer3", "layer4"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn strategies_parse_and_print_round_trip() {
        for s in ["pretrained", "head", "partial:2", "scratch"] {
            assert_eq!(
                s.parse::<Strategy>().map(|x| x.to_string()),
                Ok(s.to_string())
            );
            let json = s
                .parse::<Strategy>()
                .map(|x| serde_json::to_string(&x).ok());
            assert_eq!(json, Ok(Some(format!("{s:?}"))));
        }
        assert!("partial:0".parse::<Strategy>().is_err());
        assert!("partial".parse::<Strategy>().is_err());
        assert!("fine".parse::<Strategy>().is_err());
    }

    #[test]
    fn head_freezes_every_group() {
        let p = Strategy::Head
            .plan(&groups())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (p.freeze_point, p.trainable.len(), p.new_head),
            (5, 0, true)
        );
    }

    #[test]
    fn partial_trains_the_top_groups() {
        let p = Strategy::Partial(2)
            .plan(&groups())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.trainable, vec!["layer3", "layer4"]);
        assert_eq!(p.frozen, vec!["stem", "layer1", "layer2"]);
        assert!(
            Strategy::Partial(6)
                .plan(&groups())
                .is_err_and(|e| e.to_string().contains("has 5"))
        );
        assert_eq!(
            Strategy::Partial(5).plan(&groups()).map(|p| p.freeze_point),
            Ok(0)
        );
    }

    #[test]
    fn scratch_trains_everything_from_fresh_weights() {
        let p = Strategy::Scratch
            .plan(&groups())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(p.frozen.is_empty() && p.fresh_weights);
    }
}
