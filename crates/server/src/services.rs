//! Builds the file and billing services from the settings: the blob store (local disk or
//! S3), the signing key of download URLs, the plans, and Stripe when it is configured.

use crate::config::Settings;
use crate::infra::payments::stripe::StripePayments;
use anyhow::Context;
use ironhand_core::billing::{BillingService, BillingSettings, Payments, PlanCatalog};
use ironhand_core::files::{FileService, FileSettings, Naming, UrlSigner};
use ironhand_core::ports::{BlobStore, EventBus, Store};
use ironhand_files::{LocalBlobStore, S3BlobStore, S3Config};
use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where uploads are staged while they stream in (always local, whatever the store).
pub fn staging_dir(settings: &Settings) -> PathBuf {
    settings.server.data_dir.join("tmp").join("uploads")
}

pub fn blob_store(settings: &Settings) -> anyhow::Result<Arc<dyn BlobStore>> {
    let f = &settings.files;
    if f.storage == "s3" {
        let s3 = &f.s3;
        let endpoint = s3.endpoint.as_deref().unwrap_or_default();
        let config = S3Config {
            endpoint: url::Url::parse(endpoint).context("files.s3.endpoint")?,
            region: s3.region.clone(),
            bucket: s3.bucket.clone().unwrap_or_default(),
            access_key_id: s3.access_key_id.clone().unwrap_or_default(),
            secret_access_key: s3
                .secret_access_key
                .clone()
                .unwrap_or_else(|| SecretString::from(String::new())),
            path_style: s3.path_style,
            prefix: s3.prefix.clone(),
        };
        let store = S3BlobStore::new(config).map_err(|e| anyhow::anyhow!("files.s3: {e}"))?;
        return Ok(Arc::new(store));
    }
    let dir = f
        .local_dir
        .clone()
        .unwrap_or_else(|| settings.server.data_dir.join("files"));
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    Ok(Arc::new(LocalBlobStore::new(dir)))
}

pub fn file_service(
    settings: &Settings,
    store: Arc<dyn Store>,
) -> anyhow::Result<Arc<FileService>> {
    let key = crate::secrets::files_signing_key(settings)?;
    let f = &settings.files;
    let files = FileService::new(
        store,
        blob_store(settings)?,
        UrlSigner::new(key.expose_secret().as_bytes()),
        FileSettings {
            max_upload_bytes: f.max_upload_bytes,
            quota_bytes: f.quota_bytes,
            max_agent_file_bytes: f.max_agent_file_bytes,
            url_ttl_secs: f.url_ttl_secs,
            path_prefix: "/api/v1/files".into(),
            public_origin: settings.public_origin(),
        },
        Naming {
            sanitize: ironhand_files::sanitize_filename,
            guess_type: ironhand_files::guess_type,
        },
    );
    std::fs::create_dir_all(staging_dir(settings))
        .with_context(|| format!("could not create {}", staging_dir(settings).display()))?;
    Ok(Arc::new(files))
}

pub fn payments(settings: &Settings) -> anyhow::Result<Option<Arc<dyn Payments>>> {
    let s = &settings.stripe;
    let Some(key) = s.secret_key.clone().filter(|_| s.configured()) else {
        return Ok(None);
    };
    let config = ironhand_stripe::StripeConfig::new(key)
        .with_api_base(s.api_base.clone())
        .with_timeout(Duration::from_secs(s.timeout_secs));
    let client =
        ironhand_stripe::StripeClient::new(config).map_err(|e| anyhow::anyhow!("stripe: {e}"))?;
    Ok(Some(Arc::new(StripePayments::new(
        client,
        s.webhook_secrets(),
        s.webhook_tolerance_secs,
    ))))
}

pub fn billing_service(
    settings: &Settings,
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
) -> anyhow::Result<Arc<BillingService>> {
    let catalog = PlanCatalog::new(settings.plans()).map_err(|e| anyhow::anyhow!(e))?;
    let payments = payments(settings)?;
    let b = &settings.billing;
    let billing = BillingService::new(
        store,
        catalog,
        BillingSettings {
            enforce_limits: b.enforce_limits || payments.is_some(),
            trial_days: b.trial_days,
            trial_runs: b.trial_runs,
            trial_plan: b.trial_plan.clone(),
            public_origin: settings.public_origin(),
            billing_path: "/billing".into(),
        },
        bus,
        payments,
    );
    Ok(Arc::new(billing))
}
