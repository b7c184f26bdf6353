//! A port's 802.1Q VLAN mode, as control messages carry it and as the
//! command line writes it (`--vlan 10`, `--trunk 10,20,native=1`).
//!
//! VLAN ids are 12 bits; 1..=4094 are valid (0 means "priority tag only"
//! and 4095 is reserved). A port without a mode is in no VLAN: it forwards
//! untagged frames among the other such ports, as before VLANs existed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Lowest valid VLAN id.
pub const MIN_VID: u16 = 1;
/// Highest valid VLAN id.
pub const MAX_VID: u16 = 4094;

/// A port's VLAN mode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum VlanMode {
    /// Untagged frames on the port belong to VLAN `vlan` inside the switch;
    /// tagged frames from the port are dropped.
    Access {
        /// The VLAN id.
        vlan: u16,
    },
    /// Tagged frames of the listed VLANs pass with their tag; untagged ones
    /// belong to `native` (and leave untagged), or are dropped without one.
    Trunk {
        /// The VLANs the port carries tagged.
        vlans: Vec<u16>,
        /// The VLAN of untagged frames, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        native: Option<u16>,
    },
}

/// A VLAN mode is not valid.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum VlanError {
    /// A VLAN id outside 1..=4094.
    #[error("VLAN id {0} is out of range (1..=4094)")]
    BadVid(u32),
    /// Text that is not a VLAN id.
    #[error("{0:?} is not a VLAN id")]
    NotANumber(String),
    /// A trunk that carries no VLAN at all.
    #[error("a trunk must carry at least one VLAN")]
    EmptyTrunk,
}

/// Checks that `vid` is a usable VLAN id.
pub fn check_vid(vid: u32) -> Result<u16, VlanError> {
    if (u32::from(MIN_VID)..=u32::from(MAX_VID)).contains(&vid) {
        Ok(vid as u16)
    } else {
        Err(VlanError::BadVid(vid))
    }
}

fn parse_vid(s: &str) -> Result<u16, VlanError> {
    let n: u32 = s
        .trim()
        .parse()
        .map_err(|_| VlanError::NotANumber(s.to_owned()))?;
    check_vid(n)
}

impl VlanMode {
    /// Checks every VLAN id (a message from a client is untrusted).
    pub fn validate(&self) -> Result<(), VlanError> {
        match self {
            VlanMode::Access { vlan } => check_vid(u32::from(*vlan)).map(drop),
            VlanMode::Trunk { vlans, native } => {
                if vlans.is_empty() && native.is_none() {
                    return Err(VlanError::EmptyTrunk);
                }
                for v in vlans.iter().chain(native) {
                    check_vid(u32::from(*v))?;
                }
                Ok(())
            }
        }
    }

    /// Parses a trunk list: `10,20` or `10,20,native=1`.
    pub fn parse_trunk(s: &str) -> Result<VlanMode, VlanError> {
        let mut vlans = Vec::new();
        let mut native = None;
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            match part.trim().strip_prefix("native=") {
                Some(n) => native = Some(parse_vid(n)?),
                None => vlans.push(parse_vid(part)?),
            }
        }
        vlans.sort_unstable();
        vlans.dedup();
        let mode = VlanMode::Trunk { vlans, native };
        mode.validate()?;
        Ok(mode)
    }

    /// The command-line options that set this mode (`--vlan 10`,
    /// `--trunk 10,20,native=1`), with `prefix` before the option names
    /// (`""`, or `"host-"` for a NIC's host port).
    pub fn options(&self, prefix: &str) -> String {
        match self {
            VlanMode::Access { vlan } => format!("--{prefix}vlan {vlan}"),
            VlanMode::Trunk { .. } => format!("--{prefix}trunk {self}"),
        }
    }
}

/// `10` for an access port, `10,20,native=1` for a trunk.
impl fmt::Display for VlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VlanMode::Access { vlan } => write!(f, "{vlan}"),
            VlanMode::Trunk { vlans, native } => {
                let mut parts: Vec<String> = vlans.iter().map(u16::to_string).collect();
                if let Some(n) = native {
                    parts.push(format!("native={n}"));
                }
                f.write_str(&parts.join(","))
            }
        }
    }
}

/// An access VLAN id, as `--vlan` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vid(pub u16);

impl FromStr for Vid {
    type Err = VlanError;
    fn from_str(s: &str) -> Result<Vid, VlanError> {
        parse_vid(s).map(Vid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunks_parse_print_and_check_ids() {
        let t = VlanMode::parse_trunk("20,10,native=1").unwrap();
        assert_eq!(
            t,
            VlanMode::Trunk {
                vlans: vec![10, 20],
                native: Some(1)
            }
        );
        assert_eq!(t.to_string(), "10,20,native=1");
        assert_eq!(t.options("host-"), "--host-trunk 10,20,native=1");
        assert_eq!(VlanMode::parse_trunk("0"), Err(VlanError::BadVid(0)));
        assert_eq!(VlanMode::parse_trunk("4095"), Err(VlanError::BadVid(4095)));
        assert!(VlanMode::parse_trunk("ten").is_err());
        assert_eq!(VlanMode::parse_trunk(""), Err(VlanError::EmptyTrunk));
        assert_eq!("4094".parse::<Vid>(), Ok(Vid(4094)));
        assert!("4095".parse::<Vid>().is_err());
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"mode":"trunk","vlans":[10,20],"native":1}"#);
        let a: VlanMode = serde_json::from_str(r#"{"mode":"access","vlan":10}"#).unwrap();
        assert_eq!(a.options(""), "--vlan 10");
        let bad: VlanMode = serde_json::from_str(r#"{"mode":"access","vlan":5000}"#).unwrap();
        assert!(bad.validate().is_err());
    }
}
