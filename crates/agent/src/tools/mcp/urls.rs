//! Where users' remote connectors may point: http(s) only, never at loopback, private,
//! link-local (cloud metadata) or other non-public addresses, checked on the URL as written
//! and on what its name resolves to now. (Connections check again when they are made, so a
//! name that later resolves elsewhere is refused then.)

use async_trait::async_trait;
use ironhand_core::mcp::UrlPolicy;

#[derive(Debug, Clone, Copy, Default)]
pub struct PublicUrlPolicy;

#[async_trait]
impl UrlPolicy for PublicUrlPolicy {
    async fn check(&self, url: &str) -> Result<(), String> {
        let parsed = ironhand_mcp::check_url(url, false).map_err(|e| e.to_string())?;
        if let Some(url::Host::Domain(host)) = parsed.host() {
            let port = parsed.port_or_known_default().unwrap_or(443);
            ironhand_mcp::policy::resolve_public(host, port)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
