//! What sandboxes may reach on the network. slirp4netns re-makes every connection a sandbox
//! opens from the host, as the sandbox's host user (`run_as_uid`). A root server installs
//! a packet filter for that user (iptables' `owner` match in the `OUTPUT` chain, IPv4 and
//! IPv6, in a chain of its own, `IH-EGRESS-<uid>`, replaced atomically at every start):
//!
//! 1. `sandbox.egress_allow` entries (`CIDR`, `address`, either with `:port`; IPv6 in
//!    brackets) are let through;
//! 2. the host's DNS resolvers (from `/etc/resolv.conf`, port 53 only), which
//!    slirp4netns's forwarder `10.0.2.3` asks;
//! 3. refused: the host's own addresses (every address of the machine), loopback,
//!    link-local (cloud metadata `169.254.169.254` included), private and shared ranges
//!    (`10/8`, `172.16/12`, `192.168/16`, `100.64/10`, `fc00::/7`, `fe80::/10`), and the
//!    other special-purpose ranges (`0/8`, `192.0.0/24`, `198.18/15`, multicast, reserved,
//!    IPv4-mapped IPv6);
//! 4. everything else (the internet) is let through.
//!
//! A refusal answers at once (TCP reset, ICMP port unreachable), so the sandbox sees
//! "Connection refused" and does not wait for a timeout.
//!
//! A server that is not root cannot tell the sandboxes' traffic from its own (they run as
//! its user); it says so at start and the operator must firewall the host.

use crate::config::LocalSandboxConfig;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const DENY_V4: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
];
const DENY_V6: &[&str] = &[
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "64:ff9b::/96",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// The state of the egress filter.
#[derive(Debug, Clone)]
pub(crate) enum Egress {
    /// `network = false`: nothing leaves a sandbox.
    NotNeeded,
    /// Installed for the sandboxes' host user.
    Filtered { chain: String },
    /// Not installed, by configuration or because the server is not root (the reason).
    Unfiltered(String),
    /// A root server could not install it: no sandbox starts (fail closed).
    Failed(String),
}

/// One `sandbox.egress_allow` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    net: String,
    v6: bool,
    port: Option<u16>,
}

/// An `egress_allow` entry that is not an address or CIDR with an optional `:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("egress_allow entry {0:?} is not an address or CIDR with an optional :port")]
pub struct InvalidAllowEntry(pub String);

/// Why `iptables` (or `ip6tables`) did not take the filter.
#[derive(Debug, thiserror::Error)]
enum IptablesError {
    #[error("cannot run {}: {source}", .program.display())]
    Run {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write to {}: {source}", .program.display())]
    Write {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} failed: {source}", .program.display())]
    Wait {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} refused the rules: {stderr}", .program.display())]
    Refused { program: PathBuf, stderr: String },
    #[error("{} could not add the OUTPUT rule: {stderr}", .program.display())]
    NoJump { program: PathBuf, stderr: String },
}

/// Parses `10.1.2.0/24`, `10.1.2.3`, `10.1.2.3:8080`, `10.0.0.0/8:443`, `[fd00::1]:80`,
/// `fd00::/8`.
pub fn parse_allow(entry: &str) -> Result<AllowRule, InvalidAllowEntry> {
    let entry = entry.trim();
    let bad = || InvalidAllowEntry(entry.to_owned());
    let (addr, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad())?),
            None if after.is_empty() => None,
            None => return Err(bad()),
        };
        (inside.to_string(), port)
    } else if entry.matches(':').count() == 1 {
        let (a, p) = entry.split_once(':').ok_or_else(bad)?;
        (a.to_string(), Some(p.parse::<u16>().map_err(|_| bad())?))
    } else {
        (entry.to_string(), None)
    };
    let (ip, prefix) = match addr.split_once('/') {
        Some((ip, prefix)) => (ip, Some(prefix.parse::<u8>().map_err(|_| bad())?)),
        None => (addr.as_str(), None),
    };
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if prefix.is_some_and(|p| p > max) || port == Some(0) {
        return Err(bad());
    }
    Ok(AllowRule {
        net: format!("{ip}/{}", prefix.unwrap_or(max)),
        v6: ip.is_ipv6(),
        port,
    })
}

/// The resolvers slirp4netns forwards DNS to.
fn resolvers() -> Vec<IpAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().split('%').next()?.parse().ok())
        .collect()
}

/// The rules of the chain, in `iptables-restore` form.
fn ruleset(chain: &str, v6: bool, allow: &[AllowRule], dns: &[IpAddr]) -> String {
    let mut s = format!("*filter\n:{chain} - [0:0]\n");
    for rule in allow.iter().filter(|r| r.v6 == v6) {
        match rule.port {
            Some(port) => {
                for proto in ["tcp", "udp"] {
                    s.push_str(&format!(
                        "-A {chain} -d {} -p {proto} --dport {port} -j RETURN\n",
                        rule.net
                    ));
                }
            }
            None => s.push_str(&format!("-A {chain} -d {} -j RETURN\n", rule.net)),
        }
    }
    for ip in dns.iter().filter(|ip| ip.is_ipv6() == v6) {
        for proto in ["udp", "tcp"] {
            s.push_str(&format!(
                "-A {chain} -d {ip} -p {proto} --dport 53 -j RETURN\n"
            ));
        }
    }
    let unreachable = if v6 {
        "icmp6-port-unreachable"
    } else {
        "icmp-port-unreachable"
    };
    let mut deny = |matcher: String| {
        s.push_str(&format!(
            "-A {chain} {matcher} -p tcp -j REJECT --reject-with tcp-reset\n"
        ));
        s.push_str(&format!(
            "-A {chain} {matcher} -j REJECT --reject-with {unreachable}\n"
        ));
    };
    deny("-m addrtype --dst-type LOCAL".to_string());
    for net in if v6 { DENY_V6 } else { DENY_V4 } {
        deny(format!("-d {net}"));
    }
    s.push_str("COMMIT\n");
    s
}

fn restore(program: &Path, rules: &str) -> Result<(), IptablesError> {
    let mut child = Command::new(program)
        .args(["-w", "5", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| IptablesError::Run {
            program: program.to_owned(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(rules.as_bytes())
            .map_err(|source| IptablesError::Write {
                program: program.to_owned(),
                source,
            })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|source| IptablesError::Wait {
            program: program.to_owned(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(IptablesError::Refused {
            program: program.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Makes sure `OUTPUT` sends the user's packets through the chain (once).
fn ensure_jump(program: &Path, chain: &str, uid: u32) -> Result<(), IptablesError> {
    let rule = |op: &str| {
        let mut cmd = Command::new(program);
        cmd.args(["-w", "5", op, "OUTPUT"]);
        if op == "-I" {
            cmd.arg("1");
        }
        cmd.args(["-m", "owner", "--uid-owner", &uid.to_string(), "-j", chain])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    };
    if rule("-C").status().is_ok_and(|s| s.success()) {
        return Ok(());
    }
    let out = rule("-I").output().map_err(|source| IptablesError::Run {
        program: program.to_owned(),
        source,
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(IptablesError::NoJump {
            program: program.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

impl Egress {
    /// In words, for the log and readiness.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::NotNeeded => "no network".into(),
            Self::Filtered { chain } => format!("filtered (iptables chain {chain})"),
            Self::Unfiltered(why) | Self::Failed(why) => format!("not filtered: {why}"),
        }
    }

    /// Installs the filter for the sandboxes' host user (root servers only).
    pub(crate) fn install(config: &LocalSandboxConfig, run_as: Option<(u32, u32)>) -> Self {
        if !config.egress_filter {
            let why = "the egress filter is turned off (sandbox egress_filter = false)";
            tracing::warn!("{why}: sandboxes reach private networks and the host's addresses");
            return Self::Unfiltered(why.into());
        }
        let Some((uid, _)) = run_as else {
            let why = "the server does not run as root, so sandboxes run as its own user and \
                       their connections cannot be told apart from the server's: firewall \
                       private ranges and the metadata address for this user yourself";
            tracing::warn!("sandbox egress is not filtered: {why}");
            return Self::Unfiltered(why.into());
        };
        let mut allow = Vec::new();
        for entry in &config.egress_allow {
            match parse_allow(entry) {
                Ok(rule) => allow.push(rule),
                Err(e) => return Self::Failed(e.to_string()),
            }
        }
        let chain = format!("IH-EGRESS-{uid}");
        let dns = resolvers();
        let (Some(v4), Some(v4_restore)) = (
            crate::host::find_program("iptables"),
            crate::host::find_program("iptables-restore"),
        ) else {
            return Self::Failed(
                "iptables is not installed: the sandboxes' egress filter needs it \
                 (apt-get install -y iptables, or run scripts/install-sandbox-deps.sh)"
                    .into(),
            );
        };
        let v4_done = restore(&v4_restore, &ruleset(&chain, false, &allow, &dns))
            .and_then(|()| ensure_jump(&v4, &chain, uid));
        if let Err(e) = v4_done {
            return Self::Failed(format!(
                "the sandboxes' egress filter could not be installed: {e}"
            ));
        }
        // IPv6: slirp4netns gives sandboxes no IPv6, but a name may resolve to an IPv6
        // address slirp4netns connects to; filter it the same way where ip6tables works.
        if let (Some(v6), Some(v6_restore)) = (
            crate::host::find_program("ip6tables"),
            crate::host::find_program("ip6tables-restore"),
        ) {
            let done = restore(&v6_restore, &ruleset(&chain, true, &allow, &dns))
                .and_then(|()| ensure_jump(&v6, &chain, uid));
            if let Err(e) = done {
                tracing::warn!(error = %e, "the IPv6 egress filter could not be installed");
            }
        }
        tracing::info!(%chain, allowed = allow.len(), "sandbox egress filter installed");
        Self::Filtered { chain }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_entries_parse() {
        let r = parse_allow("10.1.2.0/24").expect("cidr");
        assert_eq!((r.net.as_str(), r.v6, r.port), ("10.1.2.0/24", false, None));
        let r = parse_allow("10.1.2.3:8080").expect("host:port");
        assert_eq!((r.net.as_str(), r.port), ("10.1.2.3/32", Some(8080)));
        let r = parse_allow("[fd00::1]:80").expect("v6");
        assert_eq!(
            (r.net.as_str(), r.v6, r.port),
            ("fd00::1/128", true, Some(80))
        );
        assert_eq!(parse_allow("fd00::/8").expect("v6 cidr").net, "fd00::/8");
        for bad in [
            "",
            "example.com",
            "10.0.0.0/33",
            "10.0.0.1:0",
            "10.0.0.1:x",
            "[::1",
        ] {
            assert!(parse_allow(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rules_allow_first_then_refuse_private_ranges() {
        let allow = vec![parse_allow("10.9.0.0/16:5432").expect("rule")];
        let dns: Vec<IpAddr> = vec!["10.255.255.53".parse().expect("ip")];
        let rules = ruleset("IH-EGRESS-1", false, &allow, &dns);
        let allow_at = rules
            .find("-d 10.9.0.0/16 -p tcp --dport 5432 -j RETURN")
            .expect("allow");
        let dns_at = rules
            .find("-d 10.255.255.53 -p udp --dport 53 -j RETURN")
            .expect("dns");
        let deny_at = rules.find("-d 10.0.0.0/8 -p tcp -j REJECT").expect("deny");
        assert!(allow_at < deny_at && dns_at < deny_at);
        assert!(rules.contains("-d 169.254.0.0/16"));
        assert!(rules.contains("--dst-type LOCAL"));
        assert!(rules.ends_with("COMMIT\n"));
        assert!(!ruleset("C", true, &allow, &dns).contains("10.9.0.0"));
    }

    #[test]
    fn refusals_quote_the_entry() {
        assert_eq!(
            parse_allow(" 10.0.0.0/33 ")
                .expect_err("prefix")
                .to_string(),
            "egress_allow entry \"10.0.0.0/33\" is not an address or CIDR with an optional :port"
        );
        let refused = IptablesError::Refused {
            program: "/usr/sbin/iptables-restore".into(),
            stderr: "line 3 failed".into(),
        };
        assert_eq!(
            refused.to_string(),
            "/usr/sbin/iptables-restore refused the rules: line 3 failed"
        );
    }
}
