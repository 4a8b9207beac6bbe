//! Settings of files and billing: upload limits, where file bytes live (local disk or an
//! S3-compatible store), plans, trial, and Stripe.

use ironhand_core::billing::{Plan, default_plans};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileSettings {
    /// Largest upload (bytes); enforced while the body streams.
    pub max_upload_bytes: u64,
    /// Bytes one user's files may take in all.
    pub quota_bytes: u64,
    /// Largest file copied out of a sandbox (an attachment of the agent's answer).
    pub max_agent_file_bytes: u64,
    /// Content types an upload may have (sniffed from its bytes). Empty = the built-in list.
    #[serde(deserialize_with = "super::list_or_csv")]
    pub allowed_types: Vec<String>,
    /// Key of signed download URLs (never the JWT key); generated into the data dir when
    /// unset (dev only).
    pub signing_key: Option<SecretString>,
    /// How long the signed URLs in `FileInfo.file_url` stay valid (seconds, at most 900).
    pub url_ttl_secs: i64,
    /// `local` (default) or `s3`.
    pub storage: String,
    /// For `local`: where file bytes go (default `<data dir>/files`).
    pub local_dir: Option<PathBuf>,
    pub s3: S3Settings,
}

impl Default for FileSettings {
    fn default() -> Self {
        Self {
            max_upload_bytes: 10 * 1024 * 1024,
            quota_bytes: 1024 * 1024 * 1024,
            max_agent_file_bytes: 50 * 1024 * 1024,
            allowed_types: Vec::new(),
            signing_key: None,
            url_ttl_secs: 900,
            storage: "local".into(),
            local_dir: None,
            s3: S3Settings::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000` (MinIO, Garage…).
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
    /// `true` for most self-hosted stores (`endpoint/bucket/key`).
    pub path_style: bool,
    /// Prefix of every key, so several deployments can share a bucket.
    pub prefix: Option<String>,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".into(),
            bucket: None,
            access_key_id: None,
            secret_access_key: None,
            path_style: true,
            prefix: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BillingSettings {
    /// Refuse runs past the plan's limit (402). Always on when Stripe is configured.
    pub enforce_limits: bool,
    pub trial_days: i64,
    pub trial_runs: i64,
    /// The plan a trial gives.
    pub trial_plan: String,
    /// The plans on offer (`default_plans()` when not set; docs/api.md, section Billing).
    pub plans: Vec<Plan>,
}

impl Default for BillingSettings {
    fn default() -> Self {
        Self {
            enforce_limits: false,
            trial_days: 14,
            trial_runs: 50,
            trial_plan: "basic".into(),
            plans: default_plans(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StripeSettings {
    /// `STRIPE_SECRET_KEY`; unset = payments off (checkout and portal answer 503).
    pub secret_key: Option<SecretString>,
    /// `STRIPE_WEBHOOK_SECRET`: one or more `whsec_…`, comma-separated (rotation).
    pub webhook_secret: Option<SecretString>,
    /// `STRIPE_API_BASE` (tests point it at a fake).
    pub api_base: String,
    /// `STRIPE_PRICE_BASIC`, `STRIPE_PRICE_PRO`: the prices that sell the plans.
    pub price_basic: Option<String>,
    pub price_pro: Option<String>,
    /// Oldest webhook timestamp accepted (seconds).
    pub webhook_tolerance_secs: i64,
    pub timeout_secs: u64,
}

impl Default for StripeSettings {
    fn default() -> Self {
        Self {
            secret_key: None,
            webhook_secret: None,
            api_base: "https://api.stripe.com".into(),
            price_basic: None,
            price_pro: None,
            webhook_tolerance_secs: 300,
            timeout_secs: 20,
        }
    }
}

impl StripeSettings {
    pub fn configured(&self) -> bool {
        self.secret_key
            .as_ref()
            .is_some_and(|k| !k.expose_secret().trim().is_empty())
    }

    /// The webhook secrets, split for rotation.
    pub fn webhook_secrets(&self) -> Vec<SecretString> {
        self.webhook_secret
            .as_ref()
            .map(|s| {
                s.expose_secret()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| SecretString::from(s.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl super::Settings {
    /// The plans with the configured Stripe prices (and the older `auth.free_monthly_runs`)
    /// filled in.
    pub fn plans(&self) -> Vec<Plan> {
        let mut plans = self.billing.plans.clone();
        for plan in &mut plans {
            if plan.id == "free"
                && let Some(runs) = self.auth.free_monthly_runs
            {
                plan.monthly_agent_runs_limit = runs;
            }
            let price = match plan.id.as_str() {
                "basic" => &self.stripe.price_basic,
                "pro" => &self.stripe.price_pro,
                _ => &None,
            };
            if let Some(price) = price.as_ref().filter(|p| !p.trim().is_empty()) {
                plan.stripe_price_id = Some(price.trim().to_string());
            }
        }
        plans
    }

    /// Problems of the files and billing settings, each naming its key.
    pub(super) fn billing_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let f = &self.files;
        if f.max_upload_bytes == 0 {
            problems.push("files.max_upload_bytes: must be at least 1".into());
        }
        if f.quota_bytes < f.max_upload_bytes {
            problems.push("files.quota_bytes: must be at least files.max_upload_bytes".into());
        }
        if !(60..=900).contains(&f.url_ttl_secs) {
            problems.push("files.url_ttl_secs: must be between 60 and 900".into());
        }
        if let Some(key) = &f.signing_key
            && key.expose_secret().len() < 32
        {
            problems.push("files.signing_key: must be at least 32 characters".into());
        }
        match f.storage.as_str() {
            "local" => {}
            "s3" => {
                let s3 = &f.s3;
                if s3
                    .endpoint
                    .as_deref()
                    .is_none_or(|e| url::Url::parse(e).is_err())
                {
                    problems.push("files.s3.endpoint: set it to the store's URL, e.g. https://s3.eu-west-1.amazonaws.com".into());
                }
                if s3.bucket.as_deref().is_none_or(str::is_empty) {
                    problems.push("files.s3.bucket: required with files.storage = \"s3\"".into());
                }
                if s3.access_key_id.is_none() || s3.secret_access_key.is_none() {
                    problems.push("files.s3.access_key_id and files.s3.secret_access_key: required with files.storage = \"s3\"".into());
                }
            }
            other => problems.push(format!("files.storage: `{other}` is not `local` or `s3`")),
        }
        let b = &self.billing;
        if b.trial_days < 1 || b.trial_runs < 0 {
            problems.push("billing.trial_days / billing.trial_runs: must be positive".into());
        }
        match ironhand_core::billing::PlanCatalog::new(b.plans.clone()) {
            Ok(catalog) => {
                if catalog.get(&b.trial_plan).is_none() {
                    problems.push(format!(
                        "billing.trial_plan: `{}` is not one of billing.plans",
                        b.trial_plan
                    ));
                }
            }
            Err(problem) => problems.push(problem.to_string()),
        }
        let s = &self.stripe;
        if url::Url::parse(&s.api_base).is_err() {
            problems.push("stripe.api_base (STRIPE_API_BASE): not a URL".into());
        }
        if !(10..=3600).contains(&s.webhook_tolerance_secs) {
            problems.push("stripe.webhook_tolerance_secs: must be between 10 and 3600".into());
        }
        if s.configured() && s.webhook_secrets().is_empty() {
            problems.push("stripe.webhook_secret (STRIPE_WEBHOOK_SECRET): required with STRIPE_SECRET_KEY, or plan changes are never received".into());
        }
        problems
    }
}
