//! Which remote MCP servers may be reached: the URL check ([`check_url`]) for literal hosts
//! and the DNS resolver ([`PublicOnlyResolver`]) that drops non-public addresses after
//! resolution, so a name that resolves (or rebinds) to 127.0.0.1 or the metadata address is
//! refused as well.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use std::sync::Arc;

use url::{Host, Url};

use crate::McpError;
use crate::error::Diagnostics;

/// Checks a remote MCP server's URL: `http` or `https` only, no credentials in it, a host.
/// Unless `allow_private`, a literal host must be a public address (not loopback, private,
/// link-local, CGNAT, unspecified, multicast or reserved, nor an IPv4-mapped/embedded form
/// of one) and the names `localhost` and `*.localhost` are refused. Names are checked again
/// after resolution by [`PublicOnlyResolver`].
pub fn check_url(url: &str, allow_private: bool) -> Result<Url, McpError> {
    let parsed =
        Url::parse(url.trim()).map_err(|e| McpError::Refused(format!("not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(McpError::Refused(format!(
            "scheme `{}` is not allowed: use http or https",
            parsed.scheme()
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(McpError::Refused(
            "credentials in the URL are not allowed: send them as a header".into(),
        ));
    }
    let host = parsed
        .host()
        .ok_or_else(|| McpError::Refused("the URL has no host".into()))?;
    if !allow_private {
        match host {
            Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name.is_empty() || name == "localhost" || name.ends_with(".localhost") {
                    return Err(McpError::Refused(format!(
                        "{} is a local address (private addresses are not allowed for this server)",
                        redact_url(&parsed)
                    )));
                }
            }
            Host::Ipv4(ip) => refuse_ip(&parsed, IpAddr::V4(ip))?,
            Host::Ipv6(ip) => refuse_ip(&parsed, IpAddr::V6(ip))?,
        }
    }
    Ok(parsed)
}

fn refuse_ip(url: &Url, ip: IpAddr) -> Result<(), McpError> {
    if is_blocked_ip(ip) {
        return Err(McpError::Refused(format!(
            "{} is a loopback, private, link-local or otherwise non-public address \
             (private addresses are not allowed for this server)",
            redact_url(url)
        )));
    }
    Ok(())
}

/// Whether an address is one a remote MCP server must not be reached at unless private
/// addresses are allowed: anything but a public unicast address.
pub fn is_blocked_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_blocked_v4(v4),
        IpAddr::V6(v6) => is_blocked_v6(v6),
    }
}

fn is_blocked_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || a == 0 // "this network" 0.0.0.0/8
        || ip.is_loopback() // 127.0.0.0/8
        || ip.is_private() // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local() // 169.254/16, the cloud metadata address among them
        || (a == 100 && (b & 0xc0) == 64) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0/24
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18/15
        || ip.is_multicast() // 224/4
        || a >= 240 // reserved 240/4 and broadcast
}

fn is_blocked_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        // ::ffff:a.b.c.d
        return is_blocked_v4(v4);
    }
    if segments[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_unspecified() && !ip.is_loopback() {
        // the deprecated IPv4-compatible form ::a.b.c.d
        return is_blocked_v4(embedded_v4(segments[6], segments[7]));
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64 64:ff9b::/96 reaches the embedded IPv4 address
        return is_blocked_v4(embedded_v4(segments[6], segments[7]));
    }
    if segments[0] == 0x2002 {
        // 6to4 2002:a.b.c.d::/48
        return is_blocked_v4(embedded_v4(segments[1], segments[2]));
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (segments[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (segments[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        || ip.is_multicast() // ff00::/8
}

fn embedded_v4(high: u16, low: u16) -> Ipv4Addr {
    let [a, b] = high.to_be_bytes();
    let [c, d] = low.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// A URL fit for logs and error messages: scheme, host, port and path, without the query
/// (which may carry a key) or the fragment.
pub fn redact_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    // `check_url` refuses credentials; a URL that got here another way loses them too.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// Resolves `host` (a DNS name) and keeps only its public addresses; refuses the name when
/// none is left. This is what [`PublicOnlyResolver`] does for every connection the HTTP
/// client makes when private addresses are not allowed.
pub async fn resolve_public(host: &str, port: u16) -> Result<Vec<SocketAddr>, McpError> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| McpError::Http(format!("cannot resolve {host}: {e}")))?
        .collect();
    let public: Vec<SocketAddr> = resolved
        .iter()
        .copied()
        .filter(|addr| !is_blocked_ip(addr.ip()))
        .collect();
    if public.is_empty() {
        return Err(McpError::Refused(
            BlockedAddress::new(host, resolved.len()).0,
        ));
    }
    if public.len() < resolved.len() {
        tracing::warn!(
            host,
            dropped = resolved.len() - public.len(),
            "mcp: dropped non-public addresses a remote server's name resolved to"
        );
    }
    Ok(public)
}

/// The error [`PublicOnlyResolver`] fails a connection with; found again in the error's
/// source chain to answer [`McpError::Refused`].
#[derive(Debug)]
pub(crate) struct BlockedAddress(pub(crate) String);

impl BlockedAddress {
    fn new(host: &str, resolved: usize) -> Self {
        Self(if resolved == 0 {
            format!("{host} resolves to no address")
        } else {
            format!(
                "{host} resolves only to loopback, private, link-local or otherwise non-public \
                 addresses (private addresses are not allowed for this server)"
            )
        })
    }
}

impl std::fmt::Display for BlockedAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BlockedAddress {}

/// reqwest's DNS resolver for remote servers when private addresses are not allowed: the
/// system resolver, minus every non-public address (DNS rebinding to 127.0.0.1 fails).
#[derive(Debug, Clone, Default)]
pub struct PublicOnlyResolver {
    /// Where a refusal is noted for the client's errors.
    diagnostics: Option<Arc<Diagnostics>>,
}

impl PublicOnlyResolver {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn noting_refusals(diagnostics: Arc<Diagnostics>) -> Self {
        Self {
            diagnostics: Some(diagnostics),
        }
    }
}

impl reqwest_013::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest_013::dns::Name) -> reqwest_013::dns::Resolving {
        let host = name.as_str().to_owned();
        let diagnostics = self.diagnostics.clone();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|addr| !is_blocked_ip(addr.ip()))
                .collect();
            if public.is_empty() {
                let blocked = BlockedAddress::new(&host, resolved.len());
                if let Some(diagnostics) = diagnostics {
                    diagnostics.refused(&blocked.0);
                }
                let error: Box<dyn std::error::Error + Send + Sync> = Box::new(blocked);
                return Err(error);
            }
            let addrs: reqwest_013::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> bool {
        matches!(check_url(url, false), Err(McpError::Refused(_)))
    }

    #[test]
    fn literal_private_hosts_are_refused() {
        for url in [
            "http://127.0.0.1:8080/mcp",
            "http://127.1.2.3/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fc00::1]/",
            "http://[fd12:3456::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:10.0.0.1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[2002:7f00:1::]/",
            "http://2130706433/", // 127.0.0.1 as one number
            "http://0x7f.1/",
            "http://localhost/",
            "http://LOCALHOST:3000/",
            "http://localhost./",
            "http://api.localhost/",
        ] {
            assert!(refused(url), "{url} should be refused");
            assert!(
                check_url(url, true).is_ok(),
                "{url} should pass with allow_private"
            );
        }
    }

    #[test]
    fn schemes_and_credentials() {
        assert!(refused("ftp://example.com/"));
        assert!(refused("file:///etc/passwd"));
        assert!(refused("ws://example.com/"));
        assert!(matches!(
            check_url("ftp://example.com/", true),
            Err(McpError::Refused(_))
        ));
        assert!(matches!(
            check_url("https://user:pw@example.com/mcp", true),
            Err(McpError::Refused(_))
        ));
        assert!(matches!(
            check_url("https://user@example.com/", true),
            Err(McpError::Refused(_))
        ));
        assert!(matches!(
            check_url("not a url", true),
            Err(McpError::Refused(_))
        ));
    }

    #[test]
    fn public_hosts_pass() {
        for url in [
            "https://example.com/mcp",
            "http://93.184.216.34:8080/sse",
            "https://[2606:4700::1111]/mcp",
            "https://localhost.example.com/",
            "https://100.128.0.1/", // just outside CGNAT
            "https://172.32.0.1/",  // just outside 172.16/12
        ] {
            assert!(check_url(url, false).is_ok(), "{url} should pass");
        }
    }

    #[test]
    fn redaction_drops_query_and_fragment() {
        let url = check_url("https://example.com/mcp?key=secret#frag", false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(redact_url(&url), "https://example.com/mcp");
    }

    #[tokio::test]
    async fn resolver_drops_loopback() {
        // `localhost` resolves to loopback only: nothing is left.
        match resolve_public("localhost", 80).await {
            Err(McpError::Refused(message)) => assert!(message.contains("localhost"), "{message}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        let resolved = reqwest_013::dns::Resolve::resolve(
            &PublicOnlyResolver::new(),
            "localhost".parse().unwrap_or_else(|_| panic!("name")),
        )
        .await;
        let error = resolved
            .err()
            .unwrap_or_else(|| panic!("localhost must not resolve"));
        assert!(error.downcast_ref::<BlockedAddress>().is_some(), "{error}");
    }
}
