//! A small hand-rolled client for the few Stripe endpoints Ironhand calls: customers,
//! Checkout Sessions (subscription mode), Customer Portal sessions and subscription
//! retrieval.
//!
//! Bodies are form-encoded with Stripe's bracket notation (`line_items[0][price]=...`).
//! Answers are read as JSON values and turned into small lenient types, so an API version
//! bump cannot break deserialisation. Requests that are safe to repeat (GETs and POSTs with
//! an `Idempotency-Key`) are retried on connection errors and 5xx answers, unless Stripe
//! says `Stripe-Should-Retry: false`.
//!
//! The secret key only ever goes into the `Authorization` header (marked sensitive); it is
//! not in `Debug` output, and is scrubbed from any text Stripe or a proxy echoes back
//! before that text becomes a [`StripeError`].

use crate::error::StripeError;
use crate::objects::{
    CheckoutSession, Customer, PortalSession, SubscriptionObject, answer_id, answer_str,
};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::time::Duration;

/// Stripe's production API.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";

/// How the client reaches Stripe.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// Without `/v1`; tests point it at a local fake (`http://127.0.0.1:PORT`).
    pub api_base: String,
    pub secret_key: SecretString,
    /// For the whole request, answer body included.
    pub timeout: Duration,
    /// Sent as `Stripe-Version` when set; otherwise the account's default version applies.
    pub stripe_version: Option<String>,
    /// How many times a repeatable request is retried (0 disables retries).
    pub max_retries: u32,
    /// The pause before each retry.
    pub retry_backoff: Duration,
}

impl StripeConfig {
    /// The production API base, a 20 s timeout and one retry after 300 ms.
    pub fn new(secret_key: SecretString) -> Self {
        Self {
            api_base: DEFAULT_API_BASE.to_string(),
            secret_key,
            timeout: Duration::from_secs(20),
            stripe_version: None,
            max_retries: 1,
            retry_backoff: Duration::from_millis(300),
        }
    }

    pub fn with_api_base(mut self, api_base: impl Into<String>) -> Self {
        self.api_base = api_base.into();
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// What [`StripeClient::create_checkout_session`] needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckoutParams {
    /// `cus_...`: the user's Stripe customer.
    pub customer: String,
    /// `price_...`: the plan's recurring price.
    pub price: String,
    pub success_url: String,
    pub cancel_url: String,
    /// The Ironhand user id, echoed back in `checkout.session.completed`.
    pub client_reference_id: String,
    /// Put both on the session and on the subscription it creates
    /// (`subscription_data[metadata]`), so subscription events carry it too.
    pub metadata: Vec<(String, String)>,
    /// Makes a retried creation return the first session instead of a second one.
    pub idempotency_key: Option<String>,
}

/// A Stripe API client; cheap to clone.
#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    base: String,
    key: SecretString,
    version: Option<String>,
    max_retries: u32,
    retry_backoff: Duration,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient")
            .field("api_base", &self.base)
            .field("secret_key", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// A failed attempt and whether repeating it may help.
struct Failure {
    error: StripeError,
    retry: bool,
}

impl StripeClient {
    pub fn new(config: StripeConfig) -> Result<Self, StripeError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("ironhand-stripe/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StripeError::Network(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: config.api_base.trim_end_matches('/').to_string(),
            key: config.secret_key,
            version: config.stripe_version,
            max_retries: config.max_retries,
            retry_backoff: config.retry_backoff,
        })
    }

    /// Creates a customer with `metadata[user_id]`. Pass a stable `idempotency_key` (e.g.
    /// `customer-<user id>`) so a retry or a double click cannot create two customers.
    pub async fn create_customer(
        &self,
        email: &str,
        name: Option<&str>,
        user_id: &str,
        idempotency_key: &str,
    ) -> Result<Customer, StripeError> {
        let mut form = vec![
            ("email".to_string(), email.to_string()),
            ("metadata[user_id]".to_string(), user_id.to_string()),
        ];
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            form.push(("name".to_string(), name.to_string()));
        }
        let key = Some(idempotency_key).filter(|k| !k.is_empty());
        let (status, v) = self
            .send(Method::POST, "/v1/customers", Some(&form), key)
            .await?;
        let id = answer_id(&v).ok_or_else(|| missing(status, "customer id"))?;
        Ok(Customer { id })
    }

    /// Creates a subscription-mode Checkout Session for one unit of `price`.
    pub async fn create_checkout_session(
        &self,
        params: &CheckoutParams,
    ) -> Result<CheckoutSession, StripeError> {
        let mut form = vec![
            ("mode".to_string(), "subscription".to_string()),
            ("customer".to_string(), params.customer.clone()),
            ("line_items[0][price]".to_string(), params.price.clone()),
            ("line_items[0][quantity]".to_string(), "1".to_string()),
            ("success_url".to_string(), params.success_url.clone()),
            ("cancel_url".to_string(), params.cancel_url.clone()),
            (
                "client_reference_id".to_string(),
                params.client_reference_id.clone(),
            ),
        ];
        for (k, v) in &params.metadata {
            check_metadata_key(k)?;
            form.push((format!("metadata[{k}]"), v.clone()));
        }
        for (k, v) in &params.metadata {
            form.push((format!("subscription_data[metadata][{k}]"), v.clone()));
        }
        let key = params.idempotency_key.as_deref().filter(|k| !k.is_empty());
        let (status, v) = self
            .send(Method::POST, "/v1/checkout/sessions", Some(&form), key)
            .await?;
        let id = answer_id(&v).ok_or_else(|| missing(status, "checkout session id"))?;
        let url = answer_str(&v, "url").ok_or_else(|| missing(status, "checkout session url"))?;
        Ok(CheckoutSession { id, url })
    }

    /// Creates a Customer Portal session returning to `return_url`.
    pub async fn create_portal_session(
        &self,
        customer: &str,
        return_url: &str,
    ) -> Result<PortalSession, StripeError> {
        let form = vec![
            ("customer".to_string(), customer.to_string()),
            ("return_url".to_string(), return_url.to_string()),
        ];
        let (status, v) = self
            .send(
                Method::POST,
                "/v1/billing_portal/sessions",
                Some(&form),
                None,
            )
            .await?;
        let url = answer_str(&v, "url").ok_or_else(|| missing(status, "portal session url"))?;
        Ok(PortalSession {
            id: answer_id(&v),
            url,
        })
    }

    /// Reads a subscription (`GET /v1/subscriptions/{id}`).
    pub async fn retrieve_subscription(&self, id: &str) -> Result<SubscriptionObject, StripeError> {
        check_id(id)?;
        let (status, v) = self
            .send(Method::GET, &format!("/v1/subscriptions/{id}"), None, None)
            .await?;
        SubscriptionObject::from_value(&v).ok_or_else(|| missing(status, "subscription"))
    }

    /// Sends one call, retrying it when that is safe and may help. Returns the status and
    /// the JSON answer of a 2xx.
    async fn send(
        &self,
        method: Method,
        path: &str,
        form: Option<&[(String, String)]>,
        idempotency_key: Option<&str>,
    ) -> Result<(u16, Value), StripeError> {
        let url = format!("{}{path}", self.base);
        let repeatable = method == Method::GET || idempotency_key.is_some();
        let mut attempt = 0;
        loop {
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.key.expose_secret());
            if let Some(v) = &self.version {
                req = req.header("Stripe-Version", v);
            }
            if let Some(k) = idempotency_key {
                req = req.header("Idempotency-Key", k);
            }
            if let Some(form) = form {
                req = req.form(form);
            }
            let failure = match req.send().await {
                Ok(resp) => match self.read(resp).await {
                    Ok(ok) => return Ok(ok),
                    Err(f) => f,
                },
                Err(e) => self.transport_failure(&e),
            };
            if !(repeatable && failure.retry && attempt < self.max_retries) {
                return Err(failure.error);
            }
            attempt += 1;
            tracing::warn!(path, attempt, error = %failure.error, "retrying stripe request");
            tokio::time::sleep(self.retry_backoff).await;
        }
    }

    async fn read(&self, resp: reqwest::Response) -> Result<(u16, Value), Failure> {
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let request_id = header("request-id");
        let should_retry = header("stripe-should-retry");
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Err(self.transport_failure(&e)),
        };
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        if (200..300).contains(&status) {
            return match json {
                Some(v) => Ok((status, v)),
                None => Err(Failure {
                    error: StripeError::InvalidResponse {
                        status,
                        detail: "the body is not JSON".to_string(),
                    },
                    retry: false,
                }),
            };
        }
        let retry = match should_retry.as_deref() {
            Some("true") => true,
            Some("false") => false,
            _ => status >= 500 || status == 409,
        };
        let error = match json
            .as_ref()
            .and_then(|v| v.get("error"))
            .filter(|e| e.is_object())
        {
            Some(e) => {
                let text = |k: &str| e.get(k).and_then(Value::as_str).map(|s| self.scrub(s));
                StripeError::Api {
                    status,
                    kind: text("type").unwrap_or_else(|| "unknown".to_string()),
                    code: text("code"),
                    param: text("param"),
                    message: text("message").unwrap_or_else(|| format!("HTTP {status}")),
                    request_id,
                }
            }
            None => StripeError::InvalidResponse {
                status,
                detail: format!(
                    "error without a Stripe error object: {}",
                    self.scrub(&snippet(&body))
                ),
            },
        };
        Err(Failure { error, retry })
    }

    fn transport_failure(&self, e: &reqwest::Error) -> Failure {
        if e.is_timeout() {
            return Failure {
                error: StripeError::Timeout,
                retry: false,
            };
        }
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        Failure {
            error: StripeError::Network(self.scrub(&text)),
            retry: true,
        }
    }

    /// Removes the secret key from text that came from the outside.
    fn scrub(&self, text: &str) -> String {
        let key = self.key.expose_secret();
        if key.is_empty() {
            text.to_string()
        } else {
            text.replace(key, "[REDACTED]")
        }
    }
}

fn missing(status: u16, what: &str) -> StripeError {
    StripeError::InvalidResponse {
        status,
        detail: format!("no {what} in the answer"),
    }
}

/// The first 200 characters of a body, on one line.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(200).collect();
    if text.chars().nth(200).is_some() {
        s.push('…');
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Ids go into URL paths, so only Stripe's id alphabet is let through.
fn check_id(id: &str) -> Result<(), StripeError> {
    let ok = !id.is_empty()
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StripeError::InvalidInput("not a Stripe id".to_string()))
    }
}

/// Brackets would change the meaning of the form field; Stripe caps keys at 40 characters.
fn check_metadata_key(k: &str) -> Result<(), StripeError> {
    if k.is_empty() || k.chars().count() > 40 || k.contains(['[', ']']) {
        return Err(StripeError::InvalidInput(format!(
            "invalid metadata key {k:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_going_into_paths() {
        assert!(check_id("sub_1Nabc").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("sub_1/../customers").is_err());
        assert!(check_id("sub 1").is_err());
        assert!(check_metadata_key("user_id").is_ok());
        assert!(check_metadata_key("a[b]").is_err());
        assert!(check_metadata_key(&"k".repeat(41)).is_err());
    }

    #[test]
    fn debug_hides_the_key() {
        let client = StripeClient::new(StripeConfig::new(SecretString::from(
            "sk_test_supersecret".to_string(),
        )))
        .expect("client");
        let dbg = format!("{client:?}");
        assert!(!dbg.contains("supersecret"), "{dbg}");
        assert_eq!(
            client.scrub("Invalid API Key provided: sk_test_supersecret"),
            "Invalid API Key provided: [REDACTED]"
        );
        let config = StripeConfig::new(SecretString::from("sk_test_supersecret".to_string()));
        assert!(!format!("{config:?}").contains("supersecret"));
    }
}
