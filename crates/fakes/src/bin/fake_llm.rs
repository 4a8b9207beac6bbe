//! `fake-llm`: the scenario-driven fake OpenAI-compatible server, standalone.
//!
//! `fake-llm [--bind 127.0.0.1:0] [--scenarios DIR] [--default NAME] [--api-key KEY]`
//! prints `listening on http://ADDR/v1` and serves until interrupted.

use ironhand_fakes::llm::{FakeLlm, FakeLlmScenarios};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "usage: fake-llm [--bind 127.0.0.1:0] [--scenarios DIR] [--default NAME] [--api-key KEY]";

struct Args {
    bind: SocketAddr,
    scenarios: PathBuf,
    default: Option<String>,
    api_key: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        scenarios: FakeLlmScenarios::bundled_dir(),
        default: None,
        api_key: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (flag, None),
        };
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_string());
        }
        if !matches!(
            flag.as_str(),
            "--bind" | "--scenarios" | "--default" | "--api-key"
        ) {
            return Err(format!("unknown option {flag}\n{USAGE}"));
        }
        let value = inline
            .or_else(|| it.next())
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--bind" => {
                args.bind = value
                    .parse()
                    .map_err(|_| format!("--bind wants HOST:PORT, got {value}"))?;
            }
            "--scenarios" => args.scenarios = PathBuf::from(value),
            "--default" => args.default = Some(value),
            "--api-key" => args.api_key = Some(value),
            _ => {}
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let mut scenarios = match FakeLlmScenarios::from_dir(&args.scenarios) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fake-llm: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(name) = &args.default {
        if scenarios.get(name).is_none() {
            eprintln!(
                "fake-llm: no scenario {name} in {}",
                args.scenarios.display()
            );
            return ExitCode::FAILURE;
        }
        scenarios = scenarios.with_default(name.clone());
    }
    let mut server = match FakeLlm::bind(args.bind, scenarios).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fake-llm: cannot listen on {}: {e}", args.bind);
            return ExitCode::FAILURE;
        }
    };
    if let Some(key) = args.api_key {
        server = server.require_api_key(key);
    }
    println!("listening on {}", server.url());
    let _ = std::io::stdout().flush();
    let _ = tokio::signal::ctrl_c().await;
    drop(server);
    ExitCode::SUCCESS
}
