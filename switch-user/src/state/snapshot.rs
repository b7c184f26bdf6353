//! What the state file holds (format version 1, or 2 with VLAN modes,
//! mirrors or tunnels; see
//! `docs/state.md`): the
//! configuration that outlives clients, i.e. persistent ports with their
//! sizes, port-security settings and owners, and NIC attachments with
//! their options and owners. It is changed by the requests that change
//! that configuration, and turned back into requests (to restore it) and
//! into `vswitch` commands (`show-config`).

use serde::{Deserialize, Serialize};
use switch_port::mac::MacAddr;
use switch_port::names::{PortName, SwitchName};
use switch_port::protocol::{Request, TapDirection, TunnelSpec, VlanMode};

use crate::access::Owner;

/// The newest version of the format, which this vswitch reads and writes
/// when a VLAN mode, a mirror or a tunnel is saved (version 2 is the first
/// that announces them).
pub const FORMAT_VERSION: u64 = 2;
/// The version written when none of those is saved, so that a vswitch
/// from before them still reads the file.
pub const BASE_VERSION: u64 = 1;

/// Who made a saved port or attachment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedOwner {
    /// The uid.
    pub uid: u32,
    /// Its user name when it was saved, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl From<&Owner> for SavedOwner {
    fn from(o: &Owner) -> SavedOwner {
        SavedOwner {
            uid: o.uid,
            name: o.name.as_deref().map(str::to_owned),
        }
    }
}

/// A persistent port (`vswitch create`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPort {
    /// The port.
    pub name: PortName,
    /// Slots per ring, if asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_size: Option<u32>,
    /// Bytes per buffer, if asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buf_size: Option<u32>,
    /// The source address the port is locked to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// Its own address limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_macs: Option<u32>,
    /// Its own flood cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_pps: Option<u64>,
    /// Its VLAN mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<VlanMode>,
    /// Who created it.
    pub owner: SavedOwner,
}

/// A NIC attached to a switch (`vswitch attach`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedAttachment {
    /// The switch.
    pub switch: SwitchName,
    /// The network interface.
    pub iface: String,
    /// Queues with a socket, if asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<u32>,
    /// Zero-copy forced on or off, if asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_copy: Option<bool>,
    /// Whether the host stack has a port.
    #[serde(default)]
    pub host: bool,
    /// The host port's TAP name, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    /// EtherTypes and MACs passed to the kernel stack.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass: Vec<String>,
    /// The checksum mode, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// The NIC port's VLAN mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<VlanMode>,
    /// The host port's VLAN mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_vlan: Option<VlanMode>,
    /// The busy-poll budget (`--busy-poll`; absent: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_poll: Option<u32>,
    /// Who attached it.
    pub owner: SavedOwner,
}

/// A mirror (`vswitch mirror add`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedMirror {
    /// The switch.
    pub switch: SwitchName,
    /// The mirror's name.
    pub name: String,
    /// The mirrored ports.
    pub src: Vec<PortName>,
    /// Which of their frames.
    pub dir: TapDirection,
    /// Where the copies go.
    pub dst: PortName,
    /// Who added it.
    pub owner: SavedOwner,
}

/// A VXLAN tunnel port (`vswitch tunnel add`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedTunnel {
    /// The port, `SWITCH:NAME`.
    pub port: PortName,
    /// Its settings.
    pub tunnel: TunnelSpec,
    /// Who added it.
    pub owner: SavedOwner,
}

/// The whole saved configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedState {
    /// [`BASE_VERSION`], or [`FORMAT_VERSION`] when a VLAN mode, a mirror
    /// or a tunnel is saved.
    pub version: u64,
    /// Persistent ports, by name.
    #[serde(default)]
    pub ports: Vec<SavedPort>,
    /// NIC attachments, by interface.
    #[serde(default)]
    pub attachments: Vec<SavedAttachment>,
    /// Mirrors, by switch and name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<SavedMirror>,
    /// VXLAN tunnel ports, by name (absent when there are none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tunnels: Vec<SavedTunnel>,
}

impl Default for SavedState {
    fn default() -> Self {
        SavedState {
            version: BASE_VERSION,
            ports: Vec::new(),
            attachments: Vec::new(),
            mirrors: Vec::new(),
            tunnels: Vec::new(),
        }
    }
}

/// One saved item turned back into the request that makes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Replay {
    /// What it is, for the log: `port vale0:p1`, `attachment of eth0 to vale0`.
    pub what: String,
    /// The request.
    pub request: Request,
    /// On whose behalf.
    pub owner: SavedOwner,
}

/// Whether `request` may change the saved configuration.
pub fn is_change(request: &Request) -> bool {
    matches!(
        request,
        Request::CreatePort { .. }
            | Request::DeletePort { .. }
            | Request::Attach { .. }
            | Request::Detach { .. }
            | Request::MirrorAdd { .. }
            | Request::MirrorDel { .. }
            | Request::TunnelAdd { .. }
            | Request::TunnelDel { .. }
    )
}

impl SavedState {
    /// Records what the successful `request` of `owner` changed; whether
    /// anything did.
    pub fn apply(&mut self, request: &Request, owner: &Owner) -> bool {
        let changed = self.apply_request(request, owner);
        self.version = if self.needs_format_version() {
            FORMAT_VERSION
        } else {
            BASE_VERSION
        };
        changed
    }

    /// Whether the file holds anything a vswitch reading only version 1
    /// would not understand: a VLAN mode, a mirror or a tunnel (all came
    /// after version 1). Such a vswitch then refuses the file for its
    /// version, instead of calling it corrupt.
    fn needs_format_version(&self) -> bool {
        !self.mirrors.is_empty()
            || !self.tunnels.is_empty()
            || self.ports.iter().any(|p| p.vlan.is_some())
            || self
                .attachments
                .iter()
                .any(|a| a.vlan.is_some() || a.host_vlan.is_some())
    }

    fn apply_request(&mut self, request: &Request, owner: &Owner) -> bool {
        match request {
            Request::CreatePort {
                port,
                ring_size,
                buf_size,
                mac,
                max_macs,
                storm_pps,
                vlan,
            } => {
                self.ports.retain(|p| p.name != *port);
                self.ports.push(SavedPort {
                    name: port.clone(),
                    ring_size: *ring_size,
                    buf_size: *buf_size,
                    mac: *mac,
                    max_macs: *max_macs,
                    storm_pps: *storm_pps,
                    vlan: vlan.clone(),
                    owner: owner.into(),
                });
                self.ports.sort_by(|a, b| a.name.cmp(&b.name));
                true
            }
            Request::DeletePort { port } => {
                let before = self.ports.len();
                self.ports.retain(|p| p.name != *port);
                self.ports.len() != before
            }
            Request::Attach {
                switch,
                iface,
                queues,
                zero_copy,
                host,
                host_name,
                pass,
                checksum,
                vlan,
                host_vlan,
                busy_poll,
            } => {
                self.attachments.retain(|a| a.iface != *iface);
                self.attachments.push(SavedAttachment {
                    switch: switch.clone(),
                    iface: iface.clone(),
                    queues: *queues,
                    zero_copy: *zero_copy,
                    host: *host,
                    host_name: host_name.clone(),
                    pass: pass.clone(),
                    checksum: checksum.clone(),
                    vlan: vlan.clone(),
                    host_vlan: host_vlan.clone(),
                    busy_poll: *busy_poll,
                    owner: owner.into(),
                });
                self.attachments.sort_by(|a, b| a.iface.cmp(&b.iface));
                true
            }
            Request::Detach { switch, iface } => {
                let before = self.attachments.len();
                self.attachments
                    .retain(|a| !(a.iface == *iface && a.switch == *switch));
                self.attachments.len() != before
            }
            Request::MirrorAdd {
                switch,
                name,
                src,
                dir,
                dst,
            } => {
                self.mirrors
                    .retain(|m| !(m.switch == *switch && m.name == *name));
                self.mirrors.push(SavedMirror {
                    switch: switch.clone(),
                    name: name.clone(),
                    src: src.clone(),
                    dir: *dir,
                    dst: dst.clone(),
                    owner: owner.into(),
                });
                self.mirrors
                    .sort_by(|a, b| (&a.switch, &a.name).cmp(&(&b.switch, &b.name)));
                true
            }
            Request::MirrorDel { switch, name } => {
                let before = self.mirrors.len();
                self.mirrors
                    .retain(|m| !(m.switch == *switch && m.name == *name));
                self.mirrors.len() != before
            }
            Request::TunnelAdd { port, tunnel } => {
                self.tunnels.retain(|t| t.port != *port);
                self.tunnels.push(SavedTunnel {
                    port: port.clone(),
                    tunnel: tunnel.clone(),
                    owner: owner.into(),
                });
                self.tunnels.sort_by(|a, b| a.port.cmp(&b.port));
                true
            }
            Request::TunnelDel { port } => {
                let before = self.tunnels.len();
                self.tunnels.retain(|t| t.port != *port);
                self.tunnels.len() != before
            }
            Request::OpenPort { .. }
            | Request::Capture { .. }
            | Request::MirrorList {}
            | Request::TunnelList {}
            | Request::OffloadPort { .. }
            | Request::ReclaimPort { .. }
            | Request::List {}
            | Request::Stats { .. }
            | Request::Fdb { .. }
            | Request::Status {}
            | Request::ShowConfig {} => false,
        }
    }

    /// Whether `iface` is saved as attached to `switch`.
    pub fn has_attachment(&self, switch: &SwitchName, iface: &str) -> bool {
        self.attachments
            .iter()
            .any(|a| a.iface == iface && a.switch == *switch)
    }

    /// The requests that recreate the configuration: ports first, then
    /// attachments, then mirrors.
    /// attachments, then tunnels.
    pub fn replays(&self) -> Vec<Replay> {
        let ports = self.ports.iter().map(|p| Replay {
            what: format!("port {}", p.name),
            request: Request::CreatePort {
                port: p.name.clone(),
                ring_size: p.ring_size,
                buf_size: p.buf_size,
                mac: p.mac,
                max_macs: p.max_macs,
                storm_pps: p.storm_pps,
                vlan: p.vlan.clone(),
            },
            owner: p.owner.clone(),
        });
        let attachments = self.attachments.iter().map(|a| Replay {
            what: format!("attachment of {} to {}", a.iface, a.switch),
            request: Request::Attach {
                switch: a.switch.clone(),
                iface: a.iface.clone(),
                queues: a.queues,
                zero_copy: a.zero_copy,
                host: a.host,
                host_name: a.host_name.clone(),
                pass: a.pass.clone(),
                checksum: a.checksum.clone(),
                vlan: a.vlan.clone(),
                host_vlan: a.host_vlan.clone(),
                busy_poll: a.busy_poll,
            },
            owner: a.owner.clone(),
        });
        let mirrors = self.mirrors.iter().map(|m| Replay {
            what: format!("mirror {} of {}", m.name, m.switch),
            request: Request::MirrorAdd {
                switch: m.switch.clone(),
                name: m.name.clone(),
                src: m.src.clone(),
                dir: m.dir,
                dst: m.dst.clone(),
            },
            owner: m.owner.clone(),
        });
        let tunnels = self.tunnels.iter().map(|t| Replay {
            what: format!("tunnel {}", t.port),
            request: Request::TunnelAdd {
                port: t.port.clone(),
                tunnel: t.tunnel.clone(),
            },
            owner: t.owner.clone(),
        });
        // Mirrors last: their ports (tunnels among them) exist by then.
        ports
            .chain(attachments)
            .chain(tunnels)
            .chain(mirrors)
            .collect()
    }

    /// The `vswitch` commands that recreate the configuration, one a line;
    /// an owner other than root is noted in a comment (run the command as
    /// that user to give it the same owner).
    pub fn commands(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.ports {
            let mut c = vec!["vswitch".to_owned(), "create".into(), p.name.to_string()];
            opt(&mut c, "--ring-size", p.ring_size);
            opt(&mut c, "--buf-size", p.buf_size);
            opt(&mut c, "--mac", p.mac);
            opt(&mut c, "--max-macs", p.max_macs);
            opt(&mut c, "--storm-pps", p.storm_pps);
            c.extend(p.vlan.iter().map(|v| v.options("")));
            out.push(line(c, &p.owner));
        }
        for a in &self.attachments {
            let mut c = vec![
                "vswitch".to_owned(),
                "attach".into(),
                a.switch.to_string(),
                quote(&a.iface),
            ];
            opt(&mut c, "--queues", a.queues);
            match a.zero_copy {
                Some(true) => c.push("--zero-copy".into()),
                Some(false) => c.push("--copy".into()),
                None => {}
            }
            if a.host {
                c.push("--host".into());
            }
            opt(&mut c, "--host-name", a.host_name.as_deref().map(quote));
            for entry in &a.pass {
                c.push("--pass".into());
                c.push(quote(entry));
            }
            c.extend(a.vlan.iter().map(|v| v.options("")));
            c.extend(a.host_vlan.iter().map(|v| v.options("host-")));
            opt(&mut c, "--busy-poll", a.busy_poll);
            out.push(line(c, &a.owner));
        }
        for t in &self.tunnels {
            out.push(line(tunnel_command(&t.port, &t.tunnel), &t.owner));
        }
        for m in &self.mirrors {
            let src: Vec<&str> = m.src.iter().map(|p| p.as_str()).collect();
            let c = vec![
                "vswitch".to_owned(),
                "mirror".into(),
                "add".into(),
                m.switch.to_string(),
                quote(&m.name),
                "--src".into(),
                quote(&src.join(",")),
                "--dir".into(),
                m.dir.as_str().into(),
                "--dst".into(),
                m.dst.to_string(),
            ];
            out.push(line(c, &m.owner));
        }
        out
    }
}

/// The `vswitch tunnel add` command that makes tunnel `port` with `spec`.
pub fn tunnel_command(port: &PortName, spec: &TunnelSpec) -> Vec<String> {
    let mut c = vec![
        "vswitch".to_owned(),
        "tunnel".into(),
        "add".into(),
        port.switch().to_string(),
        quote(port.port()),
        "--vni".into(),
        spec.vni.to_string(),
        "--local".into(),
        spec.local.to_string(),
    ];
    for r in &spec.remotes {
        c.push("--remote".into());
        c.push(r.to_string());
    }
    opt(&mut c, "--group", spec.group);
    if spec.dst_port != switch_port::protocol::VXLAN_PORT {
        opt(&mut c, "--dst-port", Some(spec.dst_port));
    }
    if spec.underlay_mtu != switch_port::protocol::DEFAULT_UNDERLAY_MTU {
        opt(&mut c, "--underlay-mtu", Some(spec.underlay_mtu));
    }
    c.extend(spec.vlan.iter().map(|v| v.options("")));
    if spec.underlay_xdp {
        c.push("--underlay-xdp".into());
    }
    c
}

fn opt(command: &mut Vec<String>, flag: &str, value: Option<impl ToString>) {
    if let Some(v) = value {
        command.push(flag.to_owned());
        command.push(v.to_string());
    }
}

fn line(command: Vec<String>, owner: &SavedOwner) -> String {
    let mut line = command.join(" ");
    if owner.uid != 0 {
        line.push_str(&format!("  # owner uid {}", owner.uid));
        if let Some(name) = &owner.name {
            line.push_str(&format!(" ({})", quote(name)));
        }
    }
    line
}

/// `s` as one shell word.
fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-:+,/@=".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn name(s: &str) -> PortName {
        s.parse().unwrap()
    }

    fn alice() -> Owner {
        Owner {
            uid: 1000,
            name: Some("alice".into()),
        }
    }

    /// A state with a port of each kind of setting and an attachment.
    pub(crate) fn sample() -> SavedState {
        let mut s = SavedState::default();
        s.apply(
            &Request::CreatePort {
                port: name("vale0:p1"),
                ring_size: Some(256),
                buf_size: None,
                mac: Some("02:00:00:00:00:01".parse().unwrap()),
                max_macs: Some(4),
                storm_pps: Some(100),
                vlan: Some(VlanMode::Trunk {
                    vlans: vec![10, 20],
                    native: Some(1),
                }),
            },
            &alice(),
        );
        s.apply(
            &Request::Attach {
                switch: "vale0".parse().unwrap(),
                iface: "eth0".into(),
                queues: Some(1),
                zero_copy: Some(false),
                host: true,
                host_name: Some("h0".into()),
                pass: vec!["0x0806".into()],
                checksum: None,
                vlan: Some(VlanMode::Access { vlan: 10 }),
                host_vlan: Some(VlanMode::Access { vlan: 20 }),
                busy_poll: Some(64),
            },
            &Owner::root(),
        );
        s
    }

    #[test]
    fn requests_change_the_state_and_replay_it() {
        let mut s = sample();
        assert_eq!(s.ports.len(), 1);
        assert_eq!(s.ports[0].owner.uid, 1000);
        assert!(s.has_attachment(&"vale0".parse().unwrap(), "eth0"));
        let replays = s.replays();
        assert_eq!(replays.len(), 2);
        assert_eq!(replays[0].what, "port vale0:p1");
        assert!(matches!(
            &replays[0].request,
            Request::CreatePort {
                ring_size: Some(256),
                max_macs: Some(4),
                ..
            }
        ));
        assert_eq!(replays[1].what, "attachment of eth0 to vale0");
        assert!(!s.apply(&Request::List {}, &alice()));
        assert!(!is_change(&Request::List {}));
        assert!(s.apply(
            &Request::DeletePort {
                port: name("vale0:p1")
            },
            &alice()
        ));
        assert!(!s.apply(
            &Request::DeletePort {
                port: name("vale0:p1")
            },
            &alice()
        ));
        // Another switch's detach leaves it.
        assert!(!s.apply(
            &Request::Detach {
                switch: "vale1".parse().unwrap(),
                iface: "eth0".into()
            },
            &alice()
        ));
        assert!(s.apply(
            &Request::Detach {
                switch: "vale0".parse().unwrap(),
                iface: "eth0".into()
            },
            &alice()
        ));
        assert_eq!(s, SavedState::default());
        assert!(is_change(&Request::DeletePort {
            port: name("vale0:p1")
        }));
    }

    #[test]
    fn mirrors_are_saved_replayed_and_shown() {
        let mut s = SavedState::default();
        let add = Request::MirrorAdd {
            switch: "vale0".parse().unwrap(),
            name: "m1".into(),
            src: vec![name("vale0:a"), name("vale0:b")],
            dir: TapDirection::Rx,
            dst: name("vale0:eth0"),
        };
        assert!(is_change(&add));
        assert!(s.apply(&add, &Owner::root()));
        assert_eq!(
            s.version, FORMAT_VERSION,
            "a mirror is announced by version 2"
        );
        assert_eq!(
            s.commands(),
            ["vswitch mirror add vale0 m1 --src vale0:a,vale0:b --dir rx --dst vale0:eth0"]
        );
        assert_eq!(s.replays()[0].request, add);
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<SavedState>(&text).unwrap(), s);
        assert!(s.apply(
            &Request::MirrorDel {
                switch: "vale0".parse().unwrap(),
                name: "m1".into()
            },
            &Owner::root()
        ));
        assert_eq!(s, SavedState::default());
    }

    #[test]
    fn the_format_is_stable() {
        let text = serde_json::to_string_pretty(&sample()).unwrap();
        let expected = r#"{
  "version": 2,
  "ports": [
    {
      "name": "vale0:p1",
      "ring_size": 256,
      "mac": "02:00:00:00:00:01",
      "max_macs": 4,
      "storm_pps": 100,
      "vlan": {
        "mode": "trunk",
        "vlans": [
          10,
          20
        ],
        "native": 1
      },
      "owner": {
        "uid": 1000,
        "name": "alice"
      }
    }
  ],
  "attachments": [
    {
      "switch": "vale0",
      "iface": "eth0",
      "queues": 1,
      "zero_copy": false,
      "host": true,
      "host_name": "h0",
      "pass": [
        "0x0806"
      ],
      "vlan": {
        "mode": "access",
        "vlan": 10
      },
      "host_vlan": {
        "mode": "access",
        "vlan": 20
      },
      "busy_poll": 64,
      "owner": {
        "uid": 0,
        "name": "root"
      }
    }
  ]
}"#;
        assert_eq!(text, expected);
    }

    #[test]
    fn tunnels_are_saved_replayed_and_printed() {
        let mut s = SavedState::default();
        let spec = TunnelSpec {
            vni: 42,
            local: "10.0.0.1".parse().unwrap(),
            remotes: vec!["10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap()],
            group: None,
            dst_port: 4789,
            underlay_mtu: 9000,
            vlan: None,
            underlay_xdp: true,
        };
        let add = Request::TunnelAdd {
            port: name("vale0:vx"),
            tunnel: spec.clone(),
        };
        assert!(is_change(&add));
        assert!(s.apply(&add, &Owner::root()));
        assert_eq!(
            s.version, FORMAT_VERSION,
            "a tunnel is announced by version 2"
        );
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<SavedState>(&text).unwrap(), s);
        assert_eq!(s.replays()[0].request, add);
        assert_eq!(
            s.commands(),
            ["vswitch tunnel add vale0 vx --vni 42 --local 10.0.0.1 --remote 10.0.0.2 --remote 10.0.0.3 --underlay-mtu 9000 --underlay-xdp"]
        );
        assert!(s.apply(
            &Request::TunnelDel {
                port: name("vale0:vx")
            },
            &Owner::root()
        ));
        assert_eq!(s, SavedState::default());
        // A file without tunnels has no `tunnels` field (as before them).
        assert!(!serde_json::to_string(&s).unwrap().contains("tunnels"));
    }

    #[test]
    fn a_tunnel_in_a_vlan_is_saved_in_version_2() {
        let mut s = SavedState::default();
        let add = Request::TunnelAdd {
            port: name("vale0:t10"),
            tunnel: TunnelSpec {
                vni: 10,
                local: "10.0.0.1".parse().unwrap(),
                remotes: vec!["10.0.0.2".parse().unwrap()],
                group: None,
                dst_port: 4789,
                underlay_mtu: 1500,
                vlan: Some(VlanMode::Access { vlan: 10 }),
                underlay_xdp: false,
            },
        };
        assert!(s.apply(&add, &Owner::root()));
        assert_eq!(s.version, FORMAT_VERSION);
        let text = serde_json::to_string(&s).unwrap();
        assert!(
            text.contains(r#""vlan":{"mode":"access","vlan":10}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<SavedState>(&text).unwrap(), s);
        assert_eq!(s.replays()[0].request, add);
        assert_eq!(
            s.commands(),
            ["vswitch tunnel add vale0 t10 --vni 10 --local 10.0.0.1 --remote 10.0.0.2 --vlan 10"]
        );
        assert!(s.apply(
            &Request::TunnelDel {
                port: name("vale0:t10")
            },
            &Owner::root()
        ));
        assert_eq!(s.version, BASE_VERSION);
    }

    #[test]
    fn commands_recreate_the_configuration() {
        let mut s = sample();
        s.attachments[0].pass.push("it's".into());
        assert_eq!(
            s.commands(),
            [
                "vswitch create vale0:p1 --ring-size 256 --mac 02:00:00:00:00:01 --max-macs 4 --storm-pps 100 --trunk 10,20,native=1  # owner uid 1000 (alice)",
                "vswitch attach vale0 eth0 --queues 1 --copy --host --host-name h0 --pass 0x0806 --pass 'it'\\''s' --vlan 10 --host-vlan 20 --busy-poll 64",
            ]
        );
    }
}
