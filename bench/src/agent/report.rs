//! The agent scenarios' part of docs/benchmarks.md.

use super::{Driven, HISTORY_CALLS_PER_STEP, HISTORY_STEPS, Report, percentiles};
use crate::scenarios::{FANOUT_CALLS_PER_STEP, FANOUT_PACE_MS, FANOUT_STEPS};
use std::fmt::Write as _;
use std::time::Duration;

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

pub(crate) fn errors_note(out: &mut String, what: &str, d: &Driven) -> std::fmt::Result {
    for (kind, n) in d.error_kinds.iter().take(5) {
        writeln!(out, "- {what}: {n} × `{}`", kind.replace('`', "'"))?;
    }
    Ok(())
}

impl Report {
    pub fn write(&self, out: &mut String) -> std::fmt::Result {
        let events = self
            .runs
            .iter()
            .find_map(|row| row.runs.samples.first())
            .map_or(0, |s| s.events);
        writeln!(
            out,
            "### Agent runs, end to end ({events} events per run)\n"
        )?;
        writeln!(
            out,
            "| clients | runs | errors | runs/s | run p50 | run p99 | first event p50 | first event p99 | first agent event p50 | first agent event p99 | server RSS after | sandboxes alive | their processes (RSS) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        )?;
        for row in &self.runs {
            let r = &row.runs;
            let (run50, run99) = percentiles(&r.samples, |s| s.total);
            let (first50, first99) = percentiles(&r.samples, |s| s.first_event);
            let (agent50, agent99) = percentiles(&r.samples, |s| s.first_agent_event);
            writeln!(
                out,
                "| {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) |",
                row.clients,
                r.samples.len(),
                r.errors,
                r.samples.len() as f64 / r.elapsed,
                ms(run50),
                ms(run99),
                ms(first50),
                ms(first99),
                ms(agent50),
                ms(agent99),
                mib(row.rss_kib),
                row.sandboxes.count,
                row.sandboxes.processes,
                mib(row.sandboxes.rss_kib)
            )?;
        }
        writeln!(out)?;
        for row in &self.runs {
            errors_note(
                out,
                &format!("run errors, {} clients", row.clients),
                &row.runs,
            )?;
        }
        // Explained only when seen, so a fixed server does not keep a stale explanation.
        if let Some(row) = self.runs.iter().find(|r| r.clients == 1) {
            let (first50, _) = percentiles(&row.runs.samples, |s| s.first_event);
            if (35.0..55.0).contains(&(first50.as_secs_f64() * 1000.0)) {
                writeln!(
                    out,
                    "- One client alone waits {} for its first event, which the server stored before \
                     the stream opened: the mark of Nagle's algorithm (no `TCP_NODELAY` on the \
                     listener) meeting the client's delayed ACK (40 ms) on a reused keep-alive \
                     connection, as browsers use. A new connection starts in quick-ACK mode and \
                     gets it in about 2 ms.",
                    ms(first50)
                )?;
            }
        }
        if let Some(h) = &self.history {
            writeln!(
                out,
                "\n### History replay ({} clients; one session of {} events, {} tool calls, built in {:.1} s)\n",
                h.clients,
                h.events,
                HISTORY_STEPS * HISTORY_CALLS_PER_STEP,
                h.build.as_secs_f64()
            )?;
            writeln!(
                out,
                "| request | events per request | bytes per request | requests | errors | req/s | events/s | p50 | p99 | server RSS after |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            )?;
            for (name, d, rss) in [
                (
                    "POST /sessions/{id}/chat `{}` (replay to the end)",
                    &h.replay,
                    h.replay_rss_kib,
                ),
                ("GET /sessions/{id}", &h.get, h.get_rss_kib),
            ] {
                let (p50, p99) = percentiles(&d.samples, |s| s.total);
                let per_sec = d.samples.len() as f64 / d.elapsed;
                writeln!(
                    out,
                    "| {name} | {} | {} | {} | {} | {:.0} | {:.0} | {} | {} | {} |",
                    h.events,
                    d.samples.first().map_or(0, |s| s.bytes),
                    d.samples.len(),
                    d.errors,
                    per_sec,
                    per_sec * h.events as f64,
                    ms(p50),
                    ms(p99),
                    mib(rss)
                )?;
            }
            writeln!(out)?;
            errors_note(out, "replay errors", &h.replay)?;
            errors_note(out, "GET errors", &h.get)?;
            let per_call =
                h.build.as_secs_f64() * 1000.0 / (HISTORY_STEPS * HISTORY_CALLS_PER_STEP) as f64;
            if per_call > 30.0 {
                writeln!(
                    out,
                    "- Building the history took {per_call:.0} ms per tool call although a sandboxed \
                     `echo` takes about 1 ms: the fake model's streamed answers stall about 40 ms \
                     when they are long enough to need several packets (Nagle and delayed ACK again, \
                     in `fake-llm`), so the run times above carry that stall too."
                )?;
            }
        }
        if let Some(f) = &self.fanout {
            writeln!(
                out,
                "\n### SSE fan-out ({} streams on one run: the owner's and {} attached; {} events, {} × {} notifications {} ms apart)\n",
                f.subscribers,
                f.subscribers - 1,
                f.events,
                FANOUT_STEPS,
                FANOUT_CALLS_PER_STEP,
                FANOUT_PACE_MS
            )?;
            writeln!(
                out,
                "| run | events missing | attached late | lag behind first receiver p50 | p99 | max | spread per event p50 | p99 | server RSS after |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            )?;
            writeln!(
                out,
                "| {:.2} s | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                f.run.as_secs_f64(),
                f.missing,
                f.late_attach,
                ms(f.lag_p50),
                ms(f.lag_p99),
                ms(f.lag_max),
                ms(f.spread_p50),
                ms(f.spread_p99),
                mib(f.rss_kib)
            )?;
        }
        if !self.failures.is_empty() && !out.ends_with("\n\n") {
            writeln!(out)?;
        }
        for failure in &self.failures {
            writeln!(out, "- Not measured: {failure}")?;
        }
        // What follows starts a new paragraph, whichever part came last.
        if !out.ends_with("\n\n") {
            writeln!(out)?;
        }
        Ok(())
    }
}
