//! Switch and port names: `valeN` switches and `SWITCH:PORT` ports.
//!
//! A switch name is `vale` followed by one or more of `[A-Za-z0-9_]`; a port
//! name is `SWITCH:PORT` with `PORT` made of `[A-Za-z0-9_.-]`. Both are limited
//! in length so that they fit in logs, interface-like listings and messages.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest switch name accepted, in bytes.
pub const MAX_SWITCH_NAME: usize = 32;
/// Longest port part (after the colon) accepted, in bytes.
pub const MAX_PORT_NAME: usize = 32;

/// Why a name was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NameError {
    /// The switch part does not start with `vale` plus a suffix.
    #[error("bad switch name {0:?}: a switch is named `vale` followed by letters, digits or `_` (e.g. vale0), at most {MAX_SWITCH_NAME} bytes")]
    BadSwitch(String),
    /// The port name has no `SWITCH:` prefix or a bad port part.
    #[error("bad port name {0:?}: a port is named SWITCH:PORT (e.g. vale0:vm1), PORT made of letters, digits, `_`, `.` or `-`, at most {MAX_PORT_NAME} bytes")]
    BadPort(String),
}

/// A validated switch name such as `vale0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SwitchName(String);

/// A validated port name such as `vale0:vm1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PortName {
    full: String,
    colon: usize,
}

impl SwitchName {
    /// Parses and validates a switch name.
    pub fn parse(name: &str) -> Result<SwitchName, NameError> {
        let suffix = name.strip_prefix("vale");
        let valid = match suffix {
            Some(s) => {
                !s.is_empty()
                    && name.len() <= MAX_SWITCH_NAME
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            }
            None => false,
        };
        if valid {
            Ok(SwitchName(name.to_owned()))
        } else {
            Err(NameError::BadSwitch(name.to_owned()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PortName {
    /// Parses and validates a `SWITCH:PORT` name.
    pub fn parse(name: &str) -> Result<PortName, NameError> {
        let Some(colon) = name.find(':') else {
            return Err(NameError::BadPort(name.to_owned()));
        };
        SwitchName::parse(&name[..colon]).map_err(|_| NameError::BadPort(name.to_owned()))?;
        let port = &name[colon + 1..];
        let valid = !port.is_empty()
            && port.len() <= MAX_PORT_NAME
            && port
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
        if valid {
            Ok(PortName {
                full: name.to_owned(),
                colon,
            })
        } else {
            Err(NameError::BadPort(name.to_owned()))
        }
    }

    /// Builds `switch:port` from a switch and a port part.
    pub fn join(switch: &SwitchName, port: &str) -> Result<PortName, NameError> {
        PortName::parse(&format!("{}:{port}", switch.as_str()))
    }

    /// The switch this port belongs to.
    pub fn switch(&self) -> SwitchName {
        SwitchName(self.full[..self.colon].to_owned())
    }

    /// The part after the colon.
    pub fn port(&self) -> &str {
        &self.full[self.colon + 1..]
    }

    /// The full name as text.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl fmt::Display for SwitchName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for PortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl TryFrom<String> for SwitchName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        SwitchName::parse(&value)
    }
}

impl From<SwitchName> for String {
    fn from(value: SwitchName) -> String {
        value.0
    }
}

impl TryFrom<String> for PortName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        PortName::parse(&value)
    }
}

impl From<PortName> for String {
    fn from(value: PortName) -> String {
        value.full
    }
}

impl std::str::FromStr for PortName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PortName::parse(s)
    }
}

impl std::str::FromStr for SwitchName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SwitchName::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        assert_eq!(SwitchName::parse("vale0").unwrap().as_str(), "vale0");
        assert_eq!(SwitchName::parse("vale_lab").unwrap().as_str(), "vale_lab");
        let p = PortName::parse("vale0:vm-1.a").unwrap();
        assert_eq!(p.switch().as_str(), "vale0");
        assert_eq!(p.port(), "vm-1.a");
    }

    #[test]
    fn invalid_names() {
        for bad in ["vale", "val0", "VALE0", "vale0-x", "vale0 ", ""] {
            assert!(SwitchName::parse(bad).is_err(), "{bad}");
        }
        for bad in [
            "vale0",
            "vale0:",
            ":p",
            "vale0:p:q",
            "vale0:p/x",
            "x0:p",
            "vale0:p q",
        ] {
            assert!(PortName::parse(bad).is_err(), "{bad}");
        }
        let long = format!("vale0:{}", "a".repeat(MAX_PORT_NAME + 1));
        assert!(PortName::parse(&long).is_err());
    }
}
