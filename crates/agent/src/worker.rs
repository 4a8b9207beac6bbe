//! The run worker: claims queued runs (a conditional update, so several workers can share
//! the queue), keeps their lease alive, hands each to the agent and records the outcome.
//! Stop requests and new runs arrive on the event bus; a poll catches anything missed.

use crate::flow::{Agent, RunControl, RunEnd, StopReason};
use ironhand_core::ids::RunId;
use ironhand_core::ports::Store;
use ironhand_core::ports::event_bus::topics;
use ironhand_core::ports::sessions::Claimant;
use ironhand_core::session::{AgentEvent, Run, RunStatus, SessionStatus};
use ironhand_core::workspace::WorkspaceSnapshots;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Unique per process: the lease owner.
    pub worker_id: String,
    /// Runs this worker executes at once.
    pub max_concurrent_runs: usize,
    /// How long a claim lasts without a heartbeat; another worker takes over after it.
    pub lease: Duration,
    /// How often the queue is checked when no wake-up arrives.
    pub poll_interval: Duration,
    /// A run claimed more often than this (crash after crash) is given up as interrupted.
    pub max_attempts: i32,
    /// How long a run of a session whose sandbox another instance holds is left to that
    /// instance before this one may claim it.
    pub affinity_wait: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            worker_id: format!("worker-{}", uuid::Uuid::new_v4()),
            max_concurrent_runs: 8,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(2),
            max_attempts: 3,
            affinity_wait: Duration::from_secs(2),
        }
    }
}

pub struct RunWorker {
    agent: Arc<Agent>,
    store: Arc<dyn Store>,
    /// Brings a session's workspace here before its run and saves it after (see
    /// `ironhand_core::workspace`). Its instance is this worker's id.
    workspaces: Option<Arc<WorkspaceSnapshots>>,
    config: WorkerConfig,
    running: Mutex<HashMap<RunId, Arc<RunControl>>>,
}

/// Told to the user when storage refused the run's progress (the cause is in the log).
const STORAGE_FAILED: &str = "This task stopped because the server could not save its progress (a storage error; the details are in the server log). Send a message to try again.";
/// Told to the user when the session's files could not be brought to this server.
const WORKSPACE_UNAVAILABLE: &str = "This task could not start: the session's files could not be brought to the server that took it (the details are in the server log). Send the message again in a moment.";

fn time_after(duration: Duration) -> OffsetDateTime {
    OffsetDateTime::now_utc() + duration
}

impl RunWorker {
    pub fn new(
        agent: Arc<Agent>,
        store: Arc<dyn Store>,
        workspaces: Option<Arc<WorkspaceSnapshots>>,
        config: WorkerConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            agent,
            store,
            workspaces,
            config,
            running: Mutex::new(HashMap::new()),
        })
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, Arc<RunControl>>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs until `shutdown`; then stops its runs and hands them back to the queue.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut wakeups = match self.agent.publisher().bus().subscribe(topics::RUNS).await {
            Ok(subscription) => Some(subscription.receiver),
            Err(error) => {
                tracing::warn!(%error, "run worker cannot subscribe to wake-ups; polling only");
                None
            }
        };
        let mut tasks = JoinSet::new();
        tracing::info!(worker = %self.config.worker_id, "run worker started");
        loop {
            while tasks.try_join_next().is_some() {}
            self.claim_available(&mut tasks).await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                message = async {
                    match wakeups.as_mut() {
                        Some(receiver) => receiver.recv().await.ok(),
                        None => std::future::pending().await,
                    }
                } => {
                    if let Some(message) = message {
                        self.on_message(&message);
                    }
                }
            }
        }
        let controls: Vec<_> = self.running().values().cloned().collect();
        for control in controls {
            control.stop(StopReason::Shutdown);
        }
        while tasks.join_next().await.is_some() {}
        // This instance's sandboxes stop with it: their sessions' runs need not wait for it.
        if let Some(workspaces) = &self.workspaces {
            workspaces.release_all().await;
        }
        tracing::info!(worker = %self.config.worker_id, "run worker stopped");
    }

    fn on_message(&self, message: &str) {
        if let Some(id) = message.strip_prefix("cancel:").and_then(RunId::parse)
            && let Some(control) = self.running().get(&id)
        {
            control.stop(StopReason::User);
        }
    }

    async fn claim_available(self: &Arc<Self>, tasks: &mut JoinSet<()>) {
        while self.running().len() < self.config.max_concurrent_runs {
            // A token per claim fences this execution: once the run is claimed again
            // (lease expired), this one's renewals and outcome are refused.
            let lease = format!(
                "{}/{}",
                self.config.worker_id,
                uuid::Uuid::new_v4().simple()
            );
            let now = OffsetDateTime::now_utc();
            let claimant = Claimant::new(&self.config.worker_id, now, self.config.affinity_wait);
            let claimed = self
                .store
                .claim_run(&lease, claimant, now, time_after(self.config.lease))
                .await;
            match claimed {
                Ok(Some(run)) => {
                    let control = Arc::new(RunControl::default());
                    if let Some(stale) = self.running().insert(run.id, control.clone()) {
                        // This process lost the lease on its own run (it stalled past the
                        // lease): the old execution must stop.
                        stale.stop(StopReason::LostLease);
                    }
                    let worker = self.clone();
                    tasks.spawn(async move {
                        let id = run.id;
                        worker.execute(run, lease, control.clone()).await;
                        let mut running = worker.running();
                        if running.get(&id).is_some_and(|c| Arc::ptr_eq(c, &control)) {
                            running.remove(&id);
                        }
                    });
                }
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(%error, "could not claim runs");
                    return;
                }
            }
        }
    }

    async fn execute(self: &Arc<Self>, run: Run, lease: String, control: Arc<RunControl>) {
        let started = std::time::Instant::now();
        tracing::info!(run_id = %run.id, session_id = %run.session_id, attempt = run.attempts, "run claimed");
        if run.cancel_requested {
            // Stopped while nobody was working on it (handed back, or its worker died).
            self.close_open_call(&run).await;
            self.record(
                &run,
                &lease,
                RunStatus::Cancelled,
                SessionStatus::Completed,
                None,
                Some(AgentEvent::Done),
            )
            .await;
            return;
        }
        if run.attempts > self.config.max_attempts {
            let sentence = format!(
                "This task was started {} times without finishing: each time, the server working on it stopped or lost its hold on it before the end. It was given up. Send a message to try again.",
                run.attempts - 1
            );
            self.close_open_call(&run).await;
            metrics::counter!("ironhand_runs_total", "outcome" => RunStatus::Interrupted.as_str())
                .increment(1);
            self.record(
                &run,
                &lease,
                RunStatus::Interrupted,
                SessionStatus::Failed,
                Some(AgentEvent::error(sentence)),
                Some(AgentEvent::Done),
            )
            .await;
            return;
        }
        let heartbeat = tokio::spawn(heartbeat(
            self.clone(),
            run.id,
            lease.clone(),
            control.clone(),
        ));
        if let Some(workspaces) = &self.workspaces
            && let Err(error) = workspaces.take_over(run.session_id).await
        {
            // Working in a stale or empty copy would lose the user's files for good (its
            // snapshot would become the latest): the run fails instead.
            tracing::error!(%error, run_id = %run.id, session_id = %run.session_id, "could not bring the session's workspace here");
            heartbeat.abort();
            self.fail(&run, &lease, WORKSPACE_UNAVAILABLE).await;
            return;
        }
        let end = self.agent.execute(&run, &control).await;
        // The run ended, or is handed back at shutdown: its workspace is saved first, so
        // whichever instance takes the session next finds its files (the lease is still
        // renewed meanwhile).
        let hand_over = match end {
            RunEnd::Released => control.reason() == Some(StopReason::Shutdown),
            _ => true,
        };
        if hand_over {
            self.save_workspace(&run).await;
        }
        heartbeat.abort();
        let (status, session_status, last) = match end {
            RunEnd::Completed => (
                RunStatus::Completed,
                SessionStatus::Completed,
                Some(AgentEvent::Done),
            ),
            RunEnd::Waiting => (
                RunStatus::Waiting,
                SessionStatus::Waiting,
                Some(AgentEvent::Wait),
            ),
            RunEnd::Failed => (
                RunStatus::Failed,
                SessionStatus::Failed,
                Some(AgentEvent::Done),
            ),
            RunEnd::Cancelled => (
                RunStatus::Cancelled,
                SessionStatus::Completed,
                Some(AgentEvent::Done),
            ),
            RunEnd::StorageFailed => {
                self.fail(&run, &lease, STORAGE_FAILED).await;
                return;
            }
            RunEnd::Released => {
                if control.reason() == Some(StopReason::Shutdown) {
                    // Hand it back: the next worker to start continues it from memory.
                    let _ = self
                        .store
                        .finish_run(
                            run.id,
                            Some(&lease),
                            RunStatus::Queued,
                            SessionStatus::Running,
                            OffsetDateTime::now_utc(),
                        )
                        .await;
                }
                tracing::info!(run_id = %run.id, "run released");
                return;
            }
        };
        metrics::counter!("ironhand_runs_total", "outcome" => status.as_str()).increment(1);
        metrics::histogram!("ironhand_run_seconds").record(started.elapsed().as_secs_f64());
        self.record(&run, &lease, status, session_status, None, last)
            .await;
    }

    /// Ends a run that could not go on, telling the user `message`.
    async fn fail(&self, run: &Run, lease: &str, message: &str) {
        metrics::counter!("ironhand_runs_total", "outcome" => RunStatus::Failed.as_str())
            .increment(1);
        self.record(
            run,
            lease,
            RunStatus::Failed,
            SessionStatus::Failed,
            Some(AgentEvent::error(message)),
            Some(AgentEvent::Done),
        )
        .await;
    }

    /// Saves the session's workspace as its latest snapshot; files left out over the
    /// workspace limit are told to the user.
    async fn save_workspace(&self, run: &Run) {
        let Some(workspaces) = &self.workspaces else {
            return;
        };
        match workspaces.save(run.session_id).await {
            Ok(Some(saved)) => {
                if let Some(note) = saved.note() {
                    let _ = self
                        .agent
                        .publisher()
                        .publish(
                            run.session_id,
                            run.user_id,
                            &AgentEvent::assistant_message(&note),
                        )
                        .await;
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, run_id = %run.id, session_id = %run.session_id, "could not save the session's workspace; another server taking the session next would not find this run's changes")
            }
        }
    }

    /// Closes a tool call a previous attempt left at `calling`.
    async fn close_open_call(&self, run: &Run) {
        if let Err(error) = self
            .agent
            .close_open_call(run, crate::flow::CALL_INTERRUPTED)
            .await
        {
            tracing::warn!(%error, run_id = %run.id, "could not close an interrupted tool call");
        }
    }

    /// Records the outcome, then stores the closing events, so a client that sees `done`
    /// finds the session already in its final state.
    async fn record(
        &self,
        run: &Run,
        lease: &str,
        status: RunStatus,
        session_status: SessionStatus,
        first: Option<AgentEvent>,
        last: Option<AgentEvent>,
    ) {
        let publisher = self.agent.publisher();
        if let Some(event) = first {
            let _ = publisher.publish(run.session_id, run.user_id, &event).await;
        }
        match self
            .store
            .finish_run(
                run.id,
                Some(lease),
                status,
                session_status,
                OffsetDateTime::now_utc(),
            )
            .await
        {
            Ok(true) => {
                if let Some(event) = last {
                    let _ = publisher.publish(run.session_id, run.user_id, &event).await;
                }
                publisher
                    .sessions_changed(run.user_id, run.session_id)
                    .await;
                tracing::info!(run_id = %run.id, status = status.as_str(), "run finished");
            }
            Ok(false) => {
                tracing::info!(run_id = %run.id, "run was taken over or removed before it finished here")
            }
            Err(error) => {
                tracing::warn!(%error, run_id = %run.id, "could not record the run's outcome")
            }
        }
    }
}

/// Renews the lease every third of its length; stops the run when the lease is lost, when
/// no renewal succeeded for a whole lease (measured on the monotonic clock: another worker
/// may have taken over), or when a stop was requested (a second path besides the bus
/// message, for other instances).
async fn heartbeat(worker: Arc<RunWorker>, run_id: RunId, lease: String, control: Arc<RunControl>) {
    let every = worker.config.lease / 3;
    let mut renewed = std::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match worker
            .store
            .renew_lease(run_id, &lease, time_after(worker.config.lease))
            .await
        {
            Ok(state) if !state.held => {
                tracing::warn!(run_id = %run_id, "lease lost; stopping here");
                control.stop(StopReason::LostLease);
                return;
            }
            Ok(state) => {
                renewed = std::time::Instant::now();
                if state.cancel_requested {
                    control.stop(StopReason::User);
                }
            }
            Err(error) => {
                tracing::warn!(%error, run_id = %run_id, "lease renewal failed");
                if renewed.elapsed() >= worker.config.lease {
                    tracing::warn!(run_id = %run_id, "no lease renewal for a whole lease; stopping here");
                    control.stop(StopReason::LostLease);
                    return;
                }
            }
        }
    }
}
