//! A fake Stripe API for tests of `ironhand-stripe` and of the billing flow: a real HTTP
//! server, so the real client runs unchanged against it (point its API base at
//! [`FakeStripe::base_url`]).
//!
//! Endpoints (all answer Stripe-shaped JSON and a `Request-Id` header):
//!
//! - `POST /v1/customers` — creates `cus_...`; honours `Idempotency-Key` like Stripe: the same
//!   key replays the first answer (header `Idempotent-Replayed: true`), the same key with
//!   other parameters or on another endpoint is a 400 `idempotency_error`. Only successful
//!   answers are kept, so a retry after an injected failure really executes.
//! - `POST /v1/checkout/sessions` — subscription mode only, one line item with a known price
//!   ([`FakeStripe::add_price`]; [`PRICE_BASIC`] and [`PRICE_PRO`] from the start), an
//!   existing customer, `success_url` and `cancel_url`; answers `cs_test_...` with
//!   `url = <base>/checkout/<id>` and keeps the session.
//! - `POST /v1/billing_portal/sessions` — an existing customer; answers `url = <base>/portal/<id>`.
//! - `GET /v1/subscriptions/{id}`, `GET /v1/customers/{id}`, `GET /v1/checkout/sessions/{id}`.
//! - `GET /checkout/{id}`, `GET /portal/{id}` — tiny HTML pages, no key needed, so a browser
//!   sent there lands somewhere.
//!
//! Every `/v1` call needs `Authorization: Bearer <`[`FakeStripe::secret_key`]`>` (401 with a
//! Stripe error otherwise) and POST bodies must be form-encoded; bracket notation
//! (`line_items[0][price]`) is decoded into nested JSON, as Stripe does.
//!
//! Tests drive the rest: [`FakeStripe::complete_checkout`] plays the customer paying,
//! the `*_event` / [`FakeStripe::update_subscription`] / [`FakeStripe::delete_subscription`]
//! helpers build webhook events exactly as Stripe renders them, and
//! [`FakeStripe::sign_webhook`] signs them as Stripe does. Objects come in the current API
//! shape (`2025-03-31.basil`: periods on subscription items, `invoice.parent`) or the legacy
//! one ([`FakeStripe::set_api_shape`]). [`FakeStripe::fail_next`],
//! [`FakeStripe::fail_next_raw`] and [`FakeStripe::set_delay`] make it misbehave, and
//! [`FakeStripe::requests`] lists what it received.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::serve::ListenerExt;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// The secret key the fake accepts.
pub const SECRET_KEY: &str = "sk_test_fakeIronhand51HqLyjWDarjtT1zdp7dc";
/// A webhook endpoint secret for tests (any string works with [`FakeStripe::sign_webhook`]).
pub const WEBHOOK_SECRET: &str = "whsec_fakeIronhand8c1e5b0f7a2d4c9e";
/// Prices the fake knows from the start.
pub const PRICE_BASIC: &str = "price_fake_basic";
pub const PRICE_PRO: &str = "price_fake_pro";
/// `api_version` of events in [`ApiShape::Current`].
pub const API_VERSION_CURRENT: &str = "2025-03-31.basil";
/// `api_version` of events in [`ApiShape::Legacy`].
pub const API_VERSION_LEGACY: &str = "2024-06-20";

/// Which Stripe API version's object shapes the fake renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiShape {
    /// Before `2025-03-31.basil`: `current_period_start/end` and `plan` on the subscription,
    /// `subscription` and `paid` on the invoice.
    Legacy,
    /// Since `2025-03-31.basil`: periods on `items.data[]`, the invoice's subscription under
    /// `parent.subscription_details`.
    #[default]
    Current,
}

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Decoded form fields (POST body, or query string of a GET), in order, keys as sent
    /// (`line_items[0][price]`).
    pub form: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
    pub authorization: Option<String>,
    pub stripe_version: Option<String>,
    pub content_type: Option<String>,
}

impl RecordedRequest {
    /// The first value of form field `name` (exact key, e.g. `metadata[user_id]`).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The form decoded into nested JSON, as Stripe reads it.
    pub fn form_json(&self) -> Value {
        form_to_json(&self.form)
    }
}

/// An answer queued by [`FakeStripe::fail_next`] / [`FakeStripe::fail_next_raw`].
#[derive(Debug, Clone)]
struct Injected {
    status: u16,
    content_type: String,
    body: String,
}

/// An answer kept for an idempotency key.
#[derive(Debug, Clone)]
struct Saved {
    endpoint: String,
    form: Vec<(String, String)>,
    status: u16,
    body: Value,
}

/// What the fake keeps about a session beyond its public JSON.
#[derive(Debug, Clone)]
struct SessionPlan {
    price: String,
    subscription_metadata: Value,
}

#[derive(Debug)]
struct Store {
    prices: BTreeSet<String>,
    customers: BTreeMap<String, Value>,
    sessions: BTreeMap<String, Value>,
    plans: HashMap<String, SessionPlan>,
    portal_sessions: BTreeMap<String, Value>,
    subscriptions: BTreeMap<String, Value>,
    idempotency: HashMap<String, Saved>,
    failures: VecDeque<Injected>,
    delay: Duration,
    shape: ApiShape,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            prices: [PRICE_BASIC, PRICE_PRO].map(str::to_string).into(),
            customers: BTreeMap::new(),
            sessions: BTreeMap::new(),
            plans: HashMap::new(),
            portal_sessions: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            idempotency: HashMap::new(),
            failures: VecDeque::new(),
            delay: Duration::ZERO,
            shape: ApiShape::default(),
        }
    }
}

struct Shared {
    base_url: String,
    store: Mutex<Store>,
    requests: Mutex<Vec<RecordedRequest>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A fresh id such as `cus_5f3a9c0001`: unique within the process, only `[A-Za-z0-9_]`.
fn new_id(prefix: &str) -> String {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let seed = SEED.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()) ^ d.as_secs())
            & 0xff_ffff
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{seed:06x}Fk{n:06}")
}

/// `ts` plus one calendar month (day clamped to the month's length), as Stripe bills.
fn add_month(ts: i64) -> i64 {
    use time::{Date, Month, OffsetDateTime};
    let fallback = ts + 30 * 86_400;
    let Ok(dt) = OffsetDateTime::from_unix_timestamp(ts) else {
        return fallback;
    };
    let (year, month) = match dt.month() {
        Month::December => (dt.year() + 1, Month::January),
        m => (dt.year(), m.next()),
    };
    let day = dt.day().min(month.length(year));
    Date::from_calendar_date(year, month, day)
        .map(|d| d.with_time(dt.time()).assume_utc().unix_timestamp())
        .unwrap_or(fallback)
}

/// A running fake Stripe API; stops when dropped.
pub struct FakeStripe {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeStripe {
    /// Starts the server on `127.0.0.1:<free port>`.
    ///
    /// # Panics
    /// If no loopback port can be bound (a broken test environment).
    pub async fn start() -> Self {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("FakeStripe: cannot bind 127.0.0.1:0: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("FakeStripe: no local address: {e}"),
        };
        let shared = Arc::new(Shared {
            base_url: format!("http://{addr}"),
            store: Mutex::new(Store::default()),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(1024 * 1024))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(
                listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                }),
                app,
            )
            .await
            {
                tracing::warn!("FakeStripe stopped: {e}");
            }
        });
        Self { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT`, without `/v1`: the client's API base.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The secret key the fake accepts ([`SECRET_KEY`]).
    pub fn secret_key(&self) -> &'static str {
        SECRET_KEY
    }

    /// A webhook secret to configure the server with ([`WEBHOOK_SECRET`]).
    pub fn webhook_secret(&self) -> &'static str {
        WEBHOOK_SECRET
    }

    /// Makes `price` acceptable in Checkout Sessions.
    pub fn add_price(&self, price: &str) {
        lock(&self.shared.store).prices.insert(price.to_string());
    }

    /// Replaces the known prices.
    pub fn set_prices(&self, prices: &[&str]) {
        lock(&self.shared.store).prices = prices.iter().map(|p| p.to_string()).collect();
    }

    /// The shape of subscriptions and invoices built from now on.
    pub fn set_api_shape(&self, shape: ApiShape) {
        lock(&self.shared.store).shape = shape;
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The requests to `path` (e.g. `/v1/customers`).
    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Makes the next `n` requests (any path, before the key check) answer `status` with a
    /// Stripe `api_error` body. Failed answers are not kept for idempotency keys.
    pub fn fail_next(&self, n: usize, status: u16) {
        let body = json!({"error": {
            "type": "api_error",
            "message": "Something went wrong on Stripe's end. (fake failure)",
        }})
        .to_string();
        let mut store = lock(&self.shared.store);
        for _ in 0..n {
            store.failures.push_back(Injected {
                status,
                content_type: "application/json".to_string(),
                body: body.clone(),
            });
        }
    }

    /// Makes the next request answer exactly this (e.g. a proxy's HTML 502 page).
    pub fn fail_next_raw(&self, status: u16, content_type: &str, body: impl Into<String>) {
        lock(&self.shared.store).failures.push_back(Injected {
            status,
            content_type: content_type.to_string(),
            body: body.into(),
        });
    }

    /// Makes every answer wait `delay` first (for timeouts).
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.shared.store).delay = delay;
    }

    /// Drops queued failures and the delay (objects and recorded requests are kept).
    pub fn reset_faults(&self) {
        let mut store = lock(&self.shared.store);
        store.failures.clear();
        store.delay = Duration::ZERO;
    }

    pub fn customers(&self) -> Vec<Value> {
        lock(&self.shared.store)
            .customers
            .values()
            .cloned()
            .collect()
    }

    pub fn customer(&self, id: &str) -> Option<Value> {
        lock(&self.shared.store).customers.get(id).cloned()
    }

    /// Adds a customer directly (as if created earlier), returning it.
    pub fn insert_customer(&self, id: &str, email: &str) -> Value {
        let c = json!({
            "id": id, "object": "customer", "email": email, "name": null,
            "metadata": {}, "created": now(), "livemode": false,
        });
        lock(&self.shared.store)
            .customers
            .insert(id.to_string(), c.clone());
        c
    }

    pub fn checkout_sessions(&self) -> Vec<Value> {
        lock(&self.shared.store)
            .sessions
            .values()
            .cloned()
            .collect()
    }

    pub fn checkout_session(&self, id: &str) -> Option<Value> {
        lock(&self.shared.store).sessions.get(id).cloned()
    }

    pub fn portal_sessions(&self) -> Vec<Value> {
        lock(&self.shared.store)
            .portal_sessions
            .values()
            .cloned()
            .collect()
    }

    pub fn subscription(&self, id: &str) -> Option<Value> {
        lock(&self.shared.store).subscriptions.get(id).cloned()
    }

    /// Registers (or replaces) a subscription object as is; it needs a string `id`.
    pub fn insert_subscription(&self, subscription: Value) {
        if let Some(id) = subscription.get("id").and_then(Value::as_str) {
            let id = id.to_string();
            lock(&self.shared.store)
                .subscriptions
                .insert(id, subscription);
        }
    }

    /// Creates and keeps an active subscription of `customer` to `price` for the month
    /// starting now, in the current [`ApiShape`].
    pub fn create_subscription(
        &self,
        customer: &str,
        price: &str,
        metadata: &[(&str, &str)],
    ) -> Value {
        let metadata: Map<String, Value> = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let mut store = lock(&self.shared.store);
        let start = now();
        let sub = build_subscription(
            store.shape,
            customer,
            price,
            Value::Object(metadata),
            start,
            add_month(start),
        );
        if let Some(id) = sub["id"].as_str() {
            store.subscriptions.insert(id.to_string(), sub.clone());
        }
        sub
    }

    /// Plays the customer paying for Checkout Session `session_id`: creates an active
    /// subscription (current period now .. now + 1 month, the session's price, metadata from
    /// `subscription_data[metadata]` as Stripe does), marks the session `complete`/`paid`,
    /// and returns the `checkout.session.completed` event and the subscription.
    /// `None` when the session is unknown or not `open` any more.
    pub fn complete_checkout(&self, session_id: &str) -> Option<(Value, Value)> {
        let (session, subscription) = {
            let mut store = lock(&self.shared.store);
            let plan = store.plans.get(session_id)?.clone();
            let shape = store.shape;
            let session = store.sessions.get(session_id)?;
            if session["status"] != "open" {
                return None;
            }
            let customer = session["customer"].as_str().unwrap_or_default().to_string();
            let start = now();
            let sub = build_subscription(
                shape,
                &customer,
                &plan.price,
                plan.subscription_metadata,
                start,
                add_month(start),
            );
            let sub_id = sub["id"].as_str().unwrap_or_default().to_string();
            store.subscriptions.insert(sub_id.clone(), sub.clone());
            let session = store.sessions.get_mut(session_id)?;
            session["status"] = json!("complete");
            session["payment_status"] = json!("paid");
            session["subscription"] = json!(sub_id);
            session["invoice"] = sub["latest_invoice"].clone();
            (session.clone(), sub)
        };
        Some((
            self.event("checkout.session.completed", session, None),
            subscription,
        ))
    }

    /// A Stripe event envelope around `object`, as delivered to webhook endpoints.
    pub fn event(&self, type_: &str, object: Value, previous_attributes: Option<Value>) -> Value {
        let shape = lock(&self.shared.store).shape;
        let mut data = json!({ "object": object });
        if let Some(prev) = previous_attributes {
            data["previous_attributes"] = prev;
        }
        json!({
            "id": new_id("evt"),
            "object": "event",
            "api_version": match shape {
                ApiShape::Current => API_VERSION_CURRENT,
                ApiShape::Legacy => API_VERSION_LEGACY,
            },
            "created": now(),
            "data": data,
            "livemode": false,
            "pending_webhooks": 1,
            "request": { "id": null, "idempotency_key": null },
            "type": type_,
        })
    }

    /// `customer.subscription.created` for a kept subscription.
    pub fn subscription_created_event(&self, subscription_id: &str) -> Option<Value> {
        let sub = self.subscription(subscription_id)?;
        Some(self.event("customer.subscription.created", sub, None))
    }

    /// Changes a kept subscription with `change` and returns the
    /// `customer.subscription.updated` event, with `previous_attributes` holding the old
    /// value of every top-level field that changed (as Stripe does).
    pub fn update_subscription(
        &self,
        subscription_id: &str,
        change: impl FnOnce(&mut Value),
    ) -> Option<Value> {
        let (sub, previous) = {
            let mut store = lock(&self.shared.store);
            let sub = store.subscriptions.get_mut(subscription_id)?;
            let before = sub.clone();
            change(sub);
            let mut previous = Map::new();
            if let (Some(old), Some(new)) = (before.as_object(), sub.as_object()) {
                for (k, v) in old {
                    if new.get(k) != Some(v) {
                        previous.insert(k.clone(), v.clone());
                    }
                }
                for k in new.keys() {
                    if !old.contains_key(k) {
                        previous.insert(k.clone(), Value::Null);
                    }
                }
            }
            (sub.clone(), Value::Object(previous))
        };
        Some(self.event("customer.subscription.updated", sub, Some(previous)))
    }

    /// Sets a kept subscription's `status` (e.g. `past_due`); the updated event.
    pub fn set_subscription_status(&self, subscription_id: &str, status: &str) -> Option<Value> {
        self.update_subscription(subscription_id, |s| s["status"] = json!(status))
    }

    /// Sets `cancel_at_period_end` (and `cancel_at` to the period end); the updated event.
    pub fn set_cancel_at_period_end(&self, subscription_id: &str, cancel: bool) -> Option<Value> {
        self.update_subscription(subscription_id, |s| {
            let end = period_of(s).map(|(_, e)| json!(e)).unwrap_or(Value::Null);
            s["cancel_at_period_end"] = json!(cancel);
            s["cancel_at"] = if cancel { end } else { Value::Null };
        })
    }

    /// Moves a kept subscription to its next monthly period (a renewal); the updated event.
    /// Follow with [`FakeStripe::invoice_paid_event`] for the renewal's invoice.
    pub fn renew_subscription(&self, subscription_id: &str) -> Option<Value> {
        self.update_subscription(subscription_id, |s| {
            if let Some((_, end)) = period_of(s) {
                set_period(s, end, add_month(end));
            }
        })
    }

    /// Switches a kept subscription to `price`; the updated event.
    pub fn change_price(&self, subscription_id: &str, price: &str) -> Option<Value> {
        self.update_subscription(subscription_id, |s| {
            if let Some(item) = s.pointer_mut("/items/data/0") {
                item["price"] = price_object(price);
                if item.get("plan").is_some() {
                    item["plan"] = plan_object(price);
                }
            }
            if s.get("plan").is_some() {
                s["plan"] = plan_object(price);
            }
        })
    }

    /// Cancels a kept subscription now (`status: canceled`, `ended_at`); the
    /// `customer.subscription.deleted` event.
    pub fn delete_subscription(&self, subscription_id: &str) -> Option<Value> {
        let sub = {
            let mut store = lock(&self.shared.store);
            let sub = store.subscriptions.get_mut(subscription_id)?;
            let t = now();
            sub["status"] = json!("canceled");
            sub["canceled_at"] = json!(t);
            sub["ended_at"] = json!(t);
            sub.clone()
        };
        Some(self.event("customer.subscription.deleted", sub, None))
    }

    /// `invoice.paid` for the current period of a kept subscription.
    pub fn invoice_paid_event(&self, subscription_id: &str) -> Option<Value> {
        let invoice = self.invoice(subscription_id, true)?;
        Some(self.event("invoice.paid", invoice, None))
    }

    /// `invoice.payment_succeeded` (Stripe sends it alongside `invoice.paid`).
    pub fn invoice_payment_succeeded_event(&self, subscription_id: &str) -> Option<Value> {
        let invoice = self.invoice(subscription_id, true)?;
        Some(self.event("invoice.payment_succeeded", invoice, None))
    }

    /// `invoice.payment_failed` for the current period of a kept subscription. Does not
    /// change the subscription: follow with `set_subscription_status(id, "past_due")` to
    /// play what Stripe does next.
    pub fn invoice_payment_failed_event(&self, subscription_id: &str) -> Option<Value> {
        let invoice = self.invoice(subscription_id, false)?;
        Some(self.event("invoice.payment_failed", invoice, None))
    }

    /// An invoice for the current period of a kept subscription, in the current shape. Its
    /// own `period_start/end` are zero-length at the period start, as on Stripe's
    /// first invoice; the service period is on the line, where clients must read it.
    pub fn invoice(&self, subscription_id: &str, paid: bool) -> Option<Value> {
        let store = lock(&self.shared.store);
        let sub = store.subscriptions.get(subscription_id)?;
        Some(build_invoice(store.shape, sub, paid))
    }

    /// The `Stripe-Signature` header value Stripe sends for `payload` signed at `timestamp`
    /// with endpoint secret `secret`: `t=<timestamp>,v1=<hex HMAC-SHA256 of
    /// "<timestamp>.<payload>" keyed with the whole secret string>`.
    pub fn sign_webhook(payload: &str, secret: &str, timestamp: i64) -> String {
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) {
            Ok(m) => m,
            // HMAC takes keys of any length; this branch cannot happen.
            Err(_) => return format!("t={timestamp}"),
        };
        mac.update(format!("{timestamp}.{payload}").as_bytes());
        format!(
            "t={timestamp},v1={}",
            hex::encode(mac.finalize().into_bytes())
        )
    }

    /// `event` serialised and signed now with [`WEBHOOK_SECRET`]: `(body, header)`.
    pub fn signed(&self, event: &Value) -> (String, String) {
        let body = event.to_string();
        let header = Self::sign_webhook(&body, WEBHOOK_SECRET, now());
        (body, header)
    }
}

// ---------------------------------------------------------------------------------------
// Object builders

fn price_object(price: &str) -> Value {
    json!({
        "id": price, "object": "price", "active": true, "currency": "usd",
        "recurring": { "interval": "month", "interval_count": 1, "usage_type": "licensed" },
        "type": "recurring", "unit_amount": 1900, "livemode": false,
    })
}

fn plan_object(price: &str) -> Value {
    json!({
        "id": price, "object": "plan", "active": true, "amount": 1900, "currency": "usd",
        "interval": "month", "interval_count": 1, "livemode": false,
    })
}

fn build_subscription(
    shape: ApiShape,
    customer: &str,
    price: &str,
    metadata: Value,
    start: i64,
    end: i64,
) -> Value {
    let id = new_id("sub");
    let mut item = json!({
        "id": new_id("si"), "object": "subscription_item", "created": start,
        "metadata": {}, "price": price_object(price), "quantity": 1, "subscription": id,
    });
    let mut sub = json!({
        "id": id, "object": "subscription", "customer": customer, "status": "active",
        "cancel_at_period_end": false, "cancel_at": null, "canceled_at": null,
        "ended_at": null, "created": start, "start_date": start, "billing_cycle_anchor": start,
        "collection_method": "charge_automatically", "currency": "usd",
        "trial_start": null, "trial_end": null, "metadata": metadata,
        "latest_invoice": new_id("in"), "livemode": false,
    });
    match shape {
        ApiShape::Current => {
            item["current_period_start"] = json!(start);
            item["current_period_end"] = json!(end);
        }
        ApiShape::Legacy => {
            item["plan"] = plan_object(price);
            sub["current_period_start"] = json!(start);
            sub["current_period_end"] = json!(end);
            sub["plan"] = plan_object(price);
            sub["quantity"] = json!(1);
        }
    }
    sub["items"] = json!({
        "object": "list", "data": [item], "has_more": false, "total_count": 1,
        "url": format!("/v1/subscription_items?subscription={id}"),
    });
    sub
}

/// The subscription's current period, wherever its shape keeps it.
fn period_of(sub: &Value) -> Option<(i64, i64)> {
    let read =
        |start: Option<&Value>, end: Option<&Value>| Some((start?.as_i64()?, end?.as_i64()?));
    read(
        sub.get("current_period_start"),
        sub.get("current_period_end"),
    )
    .or_else(|| {
        read(
            sub.pointer("/items/data/0/current_period_start"),
            sub.pointer("/items/data/0/current_period_end"),
        )
    })
}

fn set_period(sub: &mut Value, start: i64, end: i64) {
    if sub.get("current_period_start").is_some() {
        sub["current_period_start"] = json!(start);
        sub["current_period_end"] = json!(end);
    }
    if let Some(item) = sub.pointer_mut("/items/data/0")
        && item.get("current_period_start").is_some()
    {
        item["current_period_start"] = json!(start);
        item["current_period_end"] = json!(end);
    }
}

fn build_invoice(shape: ApiShape, sub: &Value, paid: bool) -> Value {
    let sub_id = sub["id"].clone();
    let (start, end) = period_of(sub).unwrap_or((now(), add_month(now())));
    let price = sub
        .pointer("/items/data/0/price/id")
        .cloned()
        .unwrap_or(Value::Null);
    let item_id = sub
        .pointer("/items/data/0/id")
        .cloned()
        .unwrap_or(Value::Null);
    let amount = 1900;
    let mut line = json!({
        "id": new_id("il"), "object": "line_item", "amount": amount, "currency": "usd",
        "description": "1 × Ironhand plan (at $19.00 / month)",
        "period": { "start": start, "end": end }, "quantity": 1,
    });
    let mut invoice = json!({
        "id": new_id("in"), "object": "invoice", "customer": sub["customer"].clone(),
        "status": if paid { "paid" } else { "open" },
        "billing_reason": "subscription_cycle", "collection_method": "charge_automatically",
        "currency": "usd", "amount_due": amount, "amount_paid": if paid { amount } else { 0 },
        "amount_remaining": if paid { 0 } else { amount }, "attempt_count": 1,
        "attempted": true, "created": start, "period_start": start, "period_end": start,
        "livemode": false,
    });
    if !paid {
        invoice["next_payment_attempt"] = json!(start + 3 * 86_400);
    }
    match shape {
        ApiShape::Current => {
            line["pricing"] = json!({
                "type": "price_details",
                "price_details": { "price": price, "product": "prod_fake" },
            });
            line["parent"] = json!({
                "type": "subscription_item_details",
                "subscription_item_details": {
                    "subscription": sub_id, "subscription_item": item_id,
                },
            });
            invoice["parent"] = json!({
                "type": "subscription_details",
                "subscription_details": {
                    "subscription": sub_id, "metadata": sub["metadata"].clone(),
                },
                "quote_details": null,
            });
        }
        ApiShape::Legacy => {
            line["price"] = price_object(price.as_str().unwrap_or_default());
            line["subscription"] = sub_id.clone();
            line["subscription_item"] = item_id;
            invoice["subscription"] = sub_id;
            invoice["paid"] = json!(paid);
        }
    }
    invoice["lines"] = json!({
        "object": "list", "data": [line], "has_more": false, "total_count": 1,
    });
    invoice
}

// ---------------------------------------------------------------------------------------
// Forms

/// Decodes `application/x-www-form-urlencoded` pairs.
fn parse_form(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

/// Bracket notation into nested JSON: `a[b][0][c]=v` → `{"a": {"b": [{"c": "v"}]}}`;
/// objects whose keys are all indices become arrays, `a[]` appends.
fn form_to_json(pairs: &[(String, String)]) -> Value {
    let mut root = Map::new();
    for (key, value) in pairs {
        let segments = split_key(key);
        insert(&mut root, &segments, value);
    }
    arrays(Value::Object(root))
}

fn split_key(key: &str) -> Vec<String> {
    let Some(open) = key.find('[') else {
        return vec![key.to_string()];
    };
    let mut segments = vec![key[..open].to_string()];
    let mut rest = &key[open..];
    while let Some(stripped) = rest.strip_prefix('[') {
        let Some(close) = stripped.find(']') else {
            // Not bracket notation after all: keep the key whole.
            return vec![key.to_string()];
        };
        segments.push(stripped[..close].to_string());
        rest = &stripped[close + 1..];
    }
    if !rest.is_empty() {
        return vec![key.to_string()];
    }
    segments
}

fn insert(map: &mut Map<String, Value>, segments: &[String], value: &str) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    let name = if first.is_empty() {
        map.len().to_string()
    } else {
        first.clone()
    };
    if rest.is_empty() {
        map.insert(name, json!(value));
        return;
    }
    let entry = map.entry(name).or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(inner) = entry {
        insert(inner, rest, value);
    }
}

fn arrays(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let numeric = !map.is_empty() && map.keys().all(|k| k.parse::<usize>().is_ok());
            if numeric {
                let mut items: Vec<(usize, Value)> = map
                    .into_iter()
                    .map(|(k, v)| (k.parse().unwrap_or(usize::MAX), arrays(v)))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(map.into_iter().map(|(k, v)| (k, arrays(v))).collect())
            }
        }
        other => other,
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

/// A Stripe-shaped answer: what a handler produced.
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn ok(body: Value) -> Self {
        Self { status: 200, body }
    }
}

fn stripe_error(
    status: u16,
    kind: &str,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Answer {
    let mut error = json!({ "type": kind, "message": message });
    if let Some(p) = param {
        error["param"] = json!(p);
    }
    if let Some(c) = code {
        error["code"] = json!(c);
        error["doc_url"] = json!(format!(
            "https://stripe.com/docs/error-codes/{}",
            c.replace('_', "-")
        ));
    }
    Answer {
        status,
        body: json!({ "error": error }),
    }
}

fn invalid(message: &str, param: &str) -> Answer {
    stripe_error(400, "invalid_request_error", message, Some(param), None)
}

fn missing_param(param: &str) -> Answer {
    stripe_error(
        400,
        "invalid_request_error",
        &format!("Missing required param: {param}."),
        Some(param),
        Some("parameter_missing"),
    )
}

fn no_such(what: &str, id: &str, param: &str, status: u16) -> Answer {
    stripe_error(
        status,
        "invalid_request_error",
        &format!("No such {what}: '{id}'"),
        Some(param),
        Some("resource_missing"),
    )
}

fn respond(answer: Answer, replayed: bool) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, axum::Json(answer.body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&new_id("req")) {
        resp.headers_mut().insert("request-id", v);
    }
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Everything goes through here so that recording, faults, the key check and idempotency
/// apply to every endpoint alike.
async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let form = if method == Method::GET {
        parse_form(uri.query().unwrap_or("").as_bytes())
    } else {
        parse_form(&body)
    };
    let request = RecordedRequest {
        method: method.to_string(),
        path: path.clone(),
        form: form.clone(),
        idempotency_key: header_str(&headers, "idempotency-key"),
        authorization: header_str(&headers, "authorization"),
        stripe_version: header_str(&headers, "stripe-version"),
        content_type: header_str(&headers, "content-type"),
    };
    lock(&shared.requests).push(request.clone());

    let delay = lock(&shared.store).delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let injected = lock(&shared.store).failures.pop_front();
    if let Some(f) = injected {
        let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, [(header::CONTENT_TYPE, f.content_type)], f.body).into_response();
    }

    if method == Method::GET
        && let Some(page) = hosted_page(&shared, &path)
    {
        return page;
    }

    if let Some(denied) = check_key(request.authorization.as_deref()) {
        return respond(denied, false);
    }
    if method == Method::POST
        && !body.is_empty()
        && !request
            .content_type
            .as_deref()
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"))
    {
        return respond(
            stripe_error(
                400,
                "invalid_request_error",
                "Invalid request: the body must be application/x-www-form-urlencoded.",
                None,
                None,
            ),
            false,
        );
    }

    let endpoint = format!("{method} {path}");
    let key = request.idempotency_key.filter(|_| method == Method::POST);
    let mut store = lock(&shared.store);
    if let Some(key) = &key
        && let Some(saved) = store.idempotency.get(key)
    {
        if saved.endpoint != endpoint {
            return respond(
                stripe_error(
                    400,
                    "idempotency_error",
                    &format!(
                        "Keys for idempotent requests can only be used for the same endpoint they were first used for ('{}' vs '{endpoint}').",
                        saved.endpoint
                    ),
                    None,
                    None,
                ),
                false,
            );
        }
        if saved.form != form {
            return respond(
                stripe_error(
                    400,
                    "idempotency_error",
                    &format!(
                        "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."
                    ),
                    None,
                    None,
                ),
                false,
            );
        }
        let replay = Answer {
            status: saved.status,
            body: saved.body.clone(),
        };
        return respond(replay, true);
    }

    let params = form_to_json(&form);
    let answer = route(&mut store, &shared.base_url, &method, &path, &params);
    if let Some(key) = key
        && (200..300).contains(&answer.status)
    {
        store.idempotency.insert(
            key,
            Saved {
                endpoint,
                form,
                status: answer.status,
                body: answer.body.clone(),
            },
        );
    }
    drop(store);
    respond(answer, false)
}

/// `None` when the header carries the fake's key; else Stripe's 401.
fn check_key(authorization: Option<&str>) -> Option<Answer> {
    let Some(auth) = authorization else {
        return Some(stripe_error(
            401,
            "invalid_request_error",
            "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            None,
            None,
        ));
    };
    let given = auth.strip_prefix("Bearer ").unwrap_or("").trim();
    if given == SECRET_KEY {
        return None;
    }
    // Like Stripe, only the last four characters are echoed back.
    let tail: String = given
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Some(stripe_error(
        401,
        "invalid_request_error",
        &format!("Invalid API Key provided: sk_****{tail}"),
        None,
        Some("api_key_invalid"),
    ))
}

/// The pages a browser is sent to: `Some` for every `/checkout/…` and `/portal/…` path
/// (404 when the session is unknown), `None` for API paths.
fn hosted_page(shared: &Shared, path: &str) -> Option<Response> {
    let store = lock(&shared.store);
    let html = if let Some(id) = path.strip_prefix("/checkout/") {
        store.sessions.get(id).map(|session| {
            let price = store.plans.get(id).map_or("?", |p| p.price.as_str());
            format!(
                "<!DOCTYPE html><html><head><title>Fake Stripe Checkout</title></head><body>\
                 <h1>Fake Stripe Checkout</h1><p id=\"session\">{id}</p>\
                 <p id=\"price\">{price}</p><p id=\"status\">{}</p></body></html>",
                session["status"].as_str().unwrap_or("")
            )
        })
    } else if let Some(id) = path.strip_prefix("/portal/") {
        store.portal_sessions.get(id).map(|portal| {
            format!(
                "<!DOCTYPE html><html><head><title>Fake Stripe Portal</title></head><body>\
                 <h1>Fake Stripe Customer Portal</h1><p id=\"customer\">{}</p></body></html>",
                portal["customer"].as_str().unwrap_or("")
            )
        })
    } else {
        return None;
    };
    Some(match html {
        Some(page) => Html(page).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Html("<h1>Not found</h1>".to_string()),
        )
            .into_response(),
    })
}

fn route(store: &mut Store, base: &str, method: &Method, path: &str, params: &Value) -> Answer {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "customers"]) => create_customer(store, params),
        ("GET", ["v1", "customers", id]) => match store.customers.get(*id) {
            Some(c) => Answer::ok(c.clone()),
            None => no_such("customer", id, "id", 404),
        },
        ("POST", ["v1", "checkout", "sessions"]) => create_checkout(store, base, params),
        ("GET", ["v1", "checkout", "sessions", id]) => match store.sessions.get(*id) {
            Some(s) => Answer::ok(s.clone()),
            None => no_such("checkout.session", id, "session", 404),
        },
        ("POST", ["v1", "billing_portal", "sessions"]) => create_portal(store, base, params),
        ("GET", ["v1", "subscriptions", id]) => match store.subscriptions.get(*id) {
            Some(s) => Answer::ok(s.clone()),
            None => no_such("subscription", id, "id", 404),
        },
        _ => stripe_error(
            404,
            "invalid_request_error",
            &format!(
                "Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."
            ),
            None,
            None,
        ),
    }
}

fn text<'a>(params: &'a Value, key: &str) -> Option<&'a str> {
    params
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn is_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// `metadata` as Stripe stores it: an object of strings (`{}` when absent).
fn metadata(params: &Value, param: &str) -> Result<Value, Answer> {
    match params.get("metadata") {
        None => Ok(json!({})),
        Some(Value::Object(m)) if m.values().all(Value::is_string) => Ok(Value::Object(m.clone())),
        Some(_) => Err(invalid(
            "Invalid metadata: must be a hash of strings.",
            param,
        )),
    }
}

fn create_customer(store: &mut Store, params: &Value) -> Answer {
    let metadata = match metadata(params, "metadata") {
        Ok(m) => m,
        Err(e) => return e,
    };
    let id = new_id("cus");
    let customer = json!({
        "id": id, "object": "customer",
        "email": text(params, "email"), "name": text(params, "name"),
        "metadata": metadata, "created": now(), "livemode": false,
    });
    store.customers.insert(id, customer.clone());
    Answer::ok(customer)
}

fn create_checkout(store: &mut Store, base: &str, params: &Value) -> Answer {
    match text(params, "mode") {
        None => return missing_param("mode"),
        Some("subscription") => {}
        Some(other) => {
            return invalid(
                &format!("The fake only supports mode=subscription, not '{other}'."),
                "mode",
            );
        }
    }
    let Some(items) = params.get("line_items").and_then(Value::as_array) else {
        return missing_param("line_items");
    };
    if items.len() != 1 {
        return invalid("The fake expects exactly one line item.", "line_items");
    }
    let Some(price) = text(&items[0], "price") else {
        return missing_param("line_items[0][price]");
    };
    if !store.prices.contains(price) {
        return no_such("price", price, "line_items[0][price]", 400);
    }
    let quantity = text(&items[0], "quantity").and_then(|q| q.parse::<u32>().ok());
    if quantity.is_none_or(|q| q < 1) {
        return invalid(
            "Quantity is required and must be a positive integer.",
            "line_items[0][quantity]",
        );
    }
    let Some(customer) = text(params, "customer") else {
        return missing_param("customer");
    };
    if !store.customers.contains_key(customer) {
        return no_such("customer", customer, "customer", 400);
    }
    for param in ["success_url", "cancel_url"] {
        match text(params, param) {
            None => return missing_param(param),
            Some(u) if !is_url(u) => return invalid("Not a valid URL", param),
            Some(_) => {}
        }
    }
    let session_metadata = match metadata(params, "metadata") {
        Ok(m) => m,
        Err(e) => return e,
    };
    let subscription_metadata = match params.get("subscription_data") {
        Some(sd) => match metadata(sd, "subscription_data[metadata]") {
            Ok(m) => m,
            Err(e) => return e,
        },
        None => json!({}),
    };
    let id = new_id("cs_test");
    let created = now();
    let session = json!({
        "id": id, "object": "checkout.session", "mode": "subscription",
        "url": format!("{base}/checkout/{id}"),
        "customer": customer, "client_reference_id": text(params, "client_reference_id"),
        "metadata": session_metadata,
        "success_url": text(params, "success_url"), "cancel_url": text(params, "cancel_url"),
        "status": "open", "payment_status": "unpaid", "subscription": null, "invoice": null,
        "currency": "usd", "amount_total": 1900, "created": created,
        "expires_at": created + 86_400, "livemode": false,
    });
    store.plans.insert(
        id.clone(),
        SessionPlan {
            price: price.to_string(),
            subscription_metadata,
        },
    );
    store.sessions.insert(id, session.clone());
    Answer::ok(session)
}

fn create_portal(store: &mut Store, base: &str, params: &Value) -> Answer {
    let Some(customer) = text(params, "customer") else {
        return missing_param("customer");
    };
    if !store.customers.contains_key(customer) {
        return no_such("customer", customer, "customer", 400);
    }
    let return_url = text(params, "return_url");
    if return_url.is_some_and(|u| !is_url(u)) {
        return invalid("Not a valid URL", "return_url");
    }
    let id = new_id("bps");
    let session = json!({
        "id": id, "object": "billing_portal.session", "customer": customer,
        "return_url": return_url, "url": format!("{base}/portal/{id}"),
        "created": now(), "livemode": false,
    });
    store.portal_sessions.insert(id, session.clone());
    Answer::ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracket_notation_becomes_nested_json() {
        let pairs: Vec<(String, String)> = [
            ("mode", "subscription"),
            ("line_items[0][price]", "price_1"),
            ("line_items[0][quantity]", "1"),
            ("metadata[user_id]", "u1"),
            ("subscription_data[metadata][user_id]", "u1"),
            ("expand[]", "a"),
            ("expand[]", "b"),
            ("weird[", "x"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            form_to_json(&pairs),
            json!({
                "mode": "subscription",
                "line_items": [{"price": "price_1", "quantity": "1"}],
                "metadata": {"user_id": "u1"},
                "subscription_data": {"metadata": {"user_id": "u1"}},
                "expand": ["a", "b"],
                "weird[": "x",
            })
        );
    }

    #[test]
    fn signature_matches_an_independent_hmac() {
        // Python: hmac.new(b"whsec_test_secret", b'1700000000.{"id":"evt_1"}',
        // hashlib.sha256).hexdigest()
        assert_eq!(
            FakeStripe::sign_webhook(r#"{"id":"evt_1"}"#, "whsec_test_secret", 1_700_000_000),
            "t=1700000000,v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a"
        );
    }

    #[test]
    fn months_are_calendar_months() {
        // 2024-01-31T12:00:00Z → 2024-02-29T12:00:00Z (leap year, day clamped).
        assert_eq!(add_month(1_706_702_400), 1_709_208_000);
        // 2024-12-15T00:00:00Z → 2025-01-15T00:00:00Z.
        assert_eq!(add_month(1_734_220_800), 1_736_899_200);
    }

    #[test]
    fn ids_use_the_stripe_alphabet() {
        let id = new_id("cs_test");
        assert!(id.starts_with("cs_test_"));
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        assert_ne!(new_id("cus"), new_id("cus"));
    }
}
