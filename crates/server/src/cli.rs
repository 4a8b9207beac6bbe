//! `ironhand serve | worker | migrate | user create | openapi | check-config | sandboxd`.

use crate::app::{self, AppState};
use crate::config::{Overrides, Settings};
use crate::telemetry;
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::BufRead;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "ironhand",
    version,
    about = "A self-hostable, multi-user AI agent platform"
)]
pub struct Cli {
    /// A TOML config file (defaults → this file → environment).
    #[arg(long, short, env = "IRONHAND_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Where the SQLite file and generated secrets live (overrides IRONHAND_DATA_DIR).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API and web app (the default).
    Serve {
        /// Listen address (overrides IRONHAND_BIND).
        #[arg(long)]
        bind: Option<String>,
    },
    /// Run agent runs from the queue without serving HTTP (pair with
    /// `agent.embedded_worker = false` on the serving instances, or run both).
    Worker,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage accounts.
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
    /// Print the OpenAPI document as JSON.
    Openapi,
    /// Validate the configuration and print the effective settings (secrets hidden).
    CheckConfig,
    /// Serve one session's sandbox inside its container (the `docker` provider starts it;
    /// needs IRONHAND_SANDBOXD_TOKEN). Reads no config file.
    Sandboxd {
        /// Listen address.
        #[arg(long, default_value = "0.0.0.0:7070")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account. The password is read from IRONHAND_USER_PASSWORD or, if unset,
    /// from the first line of standard input (never from the command line).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Administrator")]
        fullname: String,
        /// Make the account an administrator.
        #[arg(long)]
        admin: bool,
    },
}

pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bind = match &cli.command {
        Some(Command::Serve { bind }) => bind.clone(),
        _ => None,
    };
    if let Some(Command::Sandboxd { listen }) = cli.command {
        ironhand_sandboxd::daemon::init_logging();
        return ironhand_sandboxd::daemon::serve(
            ironhand_sandboxd::daemon::DaemonOptions::from_env(listen)?,
        )
        .await;
    }
    if let Some(Command::Openapi) = cli.command {
        println!(
            "{}",
            app::openapi()
                .to_pretty_json()
                .context("could not render the OpenAPI document")?
        );
        return Ok(());
    }
    let overrides = Overrides {
        bind,
        data_dir: cli.data_dir.clone(),
    };
    let settings = Settings::load(cli.config.as_deref(), &overrides).map_err(anyhow::Error::msg)?;
    telemetry::init_logging(&settings);
    match cli.command {
        None | Some(Command::Serve { .. }) => serve(settings).await,
        Some(Command::Worker) => worker(settings).await,
        Some(Command::CheckConfig) => {
            println!("{settings:#?}");
            println!("configuration is valid");
            Ok(())
        }
        Some(Command::Migrate) => {
            std::fs::create_dir_all(&settings.server.data_dir)?;
            let store = ironhand_db::connect(&settings.database_url(), true).await?;
            println!("migrations applied ({})", store.backend());
            Ok(())
        }
        Some(Command::User {
            action:
                UserCommand::Create {
                    email,
                    fullname,
                    admin,
                },
        }) => {
            let password = match std::env::var("IRONHAND_USER_PASSWORD") {
                Ok(p) if !p.is_empty() => p,
                _ => {
                    eprintln!("password (one line on standard input):");
                    let mut line = String::new();
                    std::io::stdin()
                        .lock()
                        .read_line(&mut line)
                        .context("could not read the password")?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let state = AppState::build(settings).await?;
            let user = state
                .auth
                .create_user(&fullname, &email, &password, admin)
                .await
                .map_err(|e| match e {
                    ironhand_core::DomainError::Validation(fields) => anyhow::anyhow!(
                        "{}",
                        fields
                            .iter()
                            .map(|f| format!("{}: {}", f.field, f.message))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    other => anyhow::anyhow!("{other}"),
                })?;
            println!(
                "created {} ({}) role={}",
                user.email,
                user.id,
                user.role.as_str()
            );
            Ok(())
        }
        Some(Command::Openapi | Command::Sandboxd { .. }) => Ok(()),
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&settings.server.bind)
        .await
        .with_context(|| {
            format!(
                "could not listen on {} (server.bind / IRONHAND_BIND)",
                settings.server.bind
            )
        })?;
    let admin = if settings.server.admin_bind.is_empty() {
        None
    } else {
        Some(
            tokio::net::TcpListener::bind(&settings.server.admin_bind)
                .await
                .with_context(|| {
                    format!(
                        "could not listen on {} (server.admin_bind / IRONHAND_ADMIN_BIND)",
                        settings.server.admin_bind
                    )
                })?,
        )
    };
    let state = AppState::build(settings).await?;
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; finishing open requests");
        signal.cancel();
    });
    tracing::info!(
        bind = %listener.local_addr()?,
        admin = ?admin.as_ref().and_then(|a| a.local_addr().ok()),
        public_url = %state.settings.server.public_url,
        "ironhand is serving"
    );
    app::serve(state, listener, admin, shutdown).await
}

/// A dedicated worker: the same state as `serve`, no listener. On SIGTERM its runs go back
/// to the queue for another worker.
async fn worker(settings: Settings) -> anyhow::Result<()> {
    let state = AppState::build(settings).await?;
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; handing running runs back to the queue");
        signal.cancel();
    });
    let config = crate::agent_setup::worker_config(&state.settings, &state.instance_id);
    tokio::spawn(crate::jobs::session_upkeep(
        state.clone(),
        config.worker_id.clone(),
        shutdown.clone(),
    ));
    tracing::info!(worker = %config.worker_id, "ironhand worker is running");
    ironhand_agent::RunWorker::new(
        state.agent.clone(),
        state.store.clone(),
        Some(state.workspaces.clone()),
        config,
    )
    .run(shutdown)
    .await;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
