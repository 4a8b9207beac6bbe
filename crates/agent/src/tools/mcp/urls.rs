//! Where users' remote connectors may point: http(s) only, never at loopback, private,
//! link-local (cloud metadata) or other non-public addresses, checked on the URL as written
//! and on what its name resolves to now. A name that does not resolve is accepted:
//! connections check every address again when they are made, so a name that later
//! resolves to a private address is refused then.

use async_trait::async_trait;
use ironhand_core::mcp::{UrlPolicy, UrlRefused};

#[derive(Debug, Clone, Copy, Default)]
pub struct PublicUrlPolicy;

#[async_trait]
impl UrlPolicy for PublicUrlPolicy {
    async fn check(&self, url: &str) -> Result<(), UrlRefused> {
        let parsed = ironhand_mcp::check_url(url, false).map_err(UrlRefused::new)?;
        if let Some(url::Host::Domain(host)) = parsed.host() {
            let port = parsed.port_or_known_default().unwrap_or(443);
            // A name that does not resolve now may later (DNS down, not yet created): only a
            // name pointing at non-public addresses is refused here.
            if let Err(refused @ ironhand_mcp::McpError::Refused(_)) =
                ironhand_mcp::policy::resolve_public(host, port).await
            {
                return Err(UrlRefused::new(refused));
            }
        }
        Ok(())
    }
}
