use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The environment a token belongs to, as in Stripe's `sk_live_` / `sk_test_`.
///
/// A registry accepts one environment (or both); a test token presented to a live
/// deployment is rejected with [`RejectCause::WrongEnv`](crate::registry::RejectCause::WrongEnv).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Env {
    /// Production traffic (`live`). The default.
    #[default]
    Live,
    /// Test traffic (`test`).
    Test,
}

impl Env {
    /// The name used on the wire and in storage: `"live"` or `"test"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Env::Live => "live",
            Env::Test => "test",
        }
    }
}

impl fmt::Display for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error returned when a string is neither `live` nor `test`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment must be `live` or `test`")]
pub struct ParseEnvError(());

impl FromStr for Env {
    type Err = ParseEnvError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "live" => Ok(Env::Live),
            "test" => Ok(Env::Test),
            _ => Err(ParseEnvError(())),
        }
    }
}
