//! The file scenarios, on a server of their own: upload throughput of 1 MiB text files,
//! downloads of them (whole and one range), and one oversized upload streamed without a
//! declared length over a raw connection, with the server's memory sampled while it refuses.

use crate::agent::report::{errors_note, mib, ms};
use crate::agent::{Driven, Sample, drive, percentiles};
use crate::sse::truncate;
use crate::{Args, Server, procs};
use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Every uploaded file: text, so it is in the default allow-list.
pub const FILE_BYTES: usize = 1024 * 1024;
/// The upload limit of the scenario's server (the default, set explicitly).
pub const LIMIT_BYTES: u64 = 10 * 1024 * 1024;
/// Each user's storage quota: far more than the scenario uploads.
const QUOTA_BYTES: u64 = 1 << 40;
/// The range read in the ranged downloads: 64 KiB from the middle of the file.
const RANGE: (usize, usize) = (FILE_BYTES / 2, FILE_BYTES / 2 + 64 * 1024 - 1);
const BOUNDARY: &str = "ironhand-bench-7d1c9e";
/// Payload bytes per chunk of the oversized upload.
const CHUNK: usize = 256 * 1024;

/// What the scenario's server is started with besides the backend's settings. The rate
/// limiter stays on, with budgets far above what the clients send, so its cost is counted.
pub fn env() -> Vec<(&'static str, String)> {
    vec![
        ("IRONHAND__RATE_LIMITS__ENABLED", "true".into()),
        ("IRONHAND__RATE_LIMITS__REGISTER", "100000/minute".into()),
        ("IRONHAND__RATE_LIMITS__UPLOAD", "100000/minute".into()),
        ("IRONHAND__FILES__MAX_UPLOAD_BYTES", LIMIT_BYTES.to_string()),
        ("IRONHAND__FILES__QUOTA_BYTES", QUOTA_BYTES.to_string()),
    ]
}

/// The intro's bullets for these scenarios.
pub fn intro(args: &Args) -> String {
    format!(
        "- **File uploads and downloads** (`bench/src/files.rs`): {clients} clients (one account \
each) for {secs} s upload 1 MiB text files (`POST /files`, multipart with a `file` part and a \
`Content-Length`), then for {secs} s each download them back whole \
(`GET /files/{{id}}/download`) and as one 64 KiB `Range`. Uploads are staged to disk, hashed, \
sniffed and stored under the data dir (`files.storage = \"local\"`); every byte is checked \
on the way back.
- **Oversized upload**: one client streams a {big} MiB multipart upload, chunked with no \
`Content-Length`, over a raw connection to the same server (limit {limit} MiB) and reads the \
answer while it sends. *Sent when it arrived* counts the file bytes the client had handed to \
its socket (kernel buffers on both sides hold a few MiB of them); *server wrote to disk* is \
what the server process wrote to files meanwhile (`wchar` of `/proc/PID/io`: the staging \
file); its RSS is sampled every 2 ms from before the connection until it is over.
",
        clients = args.clients,
        secs = args.seconds,
        big = args.oversized_mib,
        limit = LIMIT_BYTES / 1024 / 1024,
    )
}

pub struct Report {
    clients: usize,
    idle_rss_kib: u64,
    upload: Option<(Driven, u64)>,
    downloads: Vec<(String, Driven, u64)>,
    oversized: Option<Oversized>,
    /// Scenarios that could not be measured, with why.
    pub failures: Vec<String>,
}

struct Oversized {
    total: u64,
    status: Option<u16>,
    message: String,
    sent_at_answer: u64,
    time_to_answer: Duration,
    sent_in_all: u64,
    /// How the sending ended, and when (from the first byte).
    writer_end: String,
    /// How the server's side of the connection ended.
    reader_end: String,
    rss_before_kib: u64,
    rss_peak_kib: u64,
    rss_after_kib: u64,
    /// What the server wrote to files meanwhile (the staging file), from `/proc/PID/io`.
    server_wrote: Option<u64>,
    staged_left: usize,
}

/// Accounts `{prefix}{i}@example.com`, registered concurrently; their access tokens.
pub async fn register(
    client: &reqwest::Client,
    base: &str,
    prefix: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let (client, url, email) = (
            client.clone(),
            format!("{base}/api/v1/auth/register"),
            format!("{prefix}{i}@example.com"),
        );
        tasks.push(tokio::spawn(async move {
            let r = crate::post(
                &client,
                &url,
                json!({"fullname": "Bench User", "email": email, "password": "bench password"}),
                None,
            )
            .await?;
            r["data"]["access_token"]
                .as_str()
                .map(str::to_string)
                .context("no access token")
        }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await??);
    }
    Ok(tokens)
}

/// `len` bytes of text lines.
fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 80);
    let mut n = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!("line {n:08}: the quick brown fox jumps over the lazy dog\n").as_bytes(),
        );
        n += 1;
    }
    out.truncate(len);
    out
}

/// One `file` part holding `content` (its first line made unique by `tag`).
fn multipart(filename: &str, tag: &str, content: &[u8]) -> Vec<u8> {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: text/plain\r\n\r\n"
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let mut body = Vec::with_capacity(head.len() + content.len() + tail.len());
    body.extend_from_slice(head.as_bytes());
    let start = body.len();
    body.extend_from_slice(content);
    let tag = tag.as_bytes();
    let n = tag.len().min(content.len());
    body[start..start + n].copy_from_slice(&tag[..n]);
    body.extend_from_slice(tail.as_bytes());
    body
}

pub async fn run(args: &Args, label: &str, env: &[(&str, String)]) -> anyhow::Result<Report> {
    let server = crate::start(args, env, None).await?;
    let base = server.base.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let tokens = Arc::new(register(&client, &base, "files", args.clients).await?);
    let mut report = Report {
        clients: args.clients,
        idle_rss_kib: server.rss_kib().unwrap_or(0),
        upload: None,
        downloads: Vec::new(),
        oversized: None,
        failures: Vec::new(),
    };
    eprintln!(
        "{label}: files server started, RSS {} KiB",
        report.idle_rss_kib
    );

    // First, on a server that has not stored a file yet: the strictest view of its memory.
    eprintln!("{label}: oversized upload");
    match oversized(&server, &tokens[0], args.oversized_mib * 1024 * 1024).await {
        Ok(o) => report.oversized = Some(o),
        Err(e) => {
            eprintln!("{label}: oversized upload failed: {e:#}");
            report.failures.push(format!("oversized upload: {e:#}"));
        }
    }

    eprintln!("{label}: uploads");
    let content = Arc::new(text(FILE_BYTES));
    let template = content.clone();
    let uploaded: Arc<Vec<Mutex<Vec<String>>>> =
        Arc::new((0..args.clients).map(|_| Mutex::new(Vec::new())).collect());
    let (c, b, t, u) = (
        client.clone(),
        base.clone(),
        tokens.clone(),
        uploaded.clone(),
    );
    let upload = drive(args.clients, args.seconds, move |i, n| {
        let (c, b, t, u, content) = (c.clone(), b.clone(), t.clone(), u.clone(), content.clone());
        async move {
            let body = multipart(
                &format!("bench-{i}-{n}.txt"),
                &format!("client {i:04} upload {n:08}\n"),
                &content,
            );
            let t0 = Instant::now();
            let response = c
                .post(format!("{b}/api/v1/files"))
                .bearer_auth(&t[i])
                .header(
                    reqwest::header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={BOUNDARY}"),
                )
                .body(body)
                .send()
                .await?;
            let status = response.status();
            let v: Value = response.json().await?;
            ensure!(
                status.is_success() && v["code"] == json!(0),
                "upload answered {status}: {}",
                truncate(&v.to_string(), 160)
            );
            ensure!(
                v["data"]["size"] == json!(FILE_BYTES),
                "stored {} bytes",
                v["data"]["size"]
            );
            let id = v["data"]["file_id"]
                .as_str()
                .context("no file_id")?
                .to_string();
            if let Ok(mut mine) = u[i].lock() {
                mine.push(id);
            }
            Ok(Sample {
                total: t0.elapsed(),
                bytes: FILE_BYTES,
                ..Sample::default()
            })
        }
    })
    .await;
    report.upload = Some((upload, server.rss_kib().unwrap_or(0)));

    let files: Arc<Vec<Vec<String>>> = Arc::new(
        uploaded
            .iter()
            .map(|m| m.lock().map(|v| v.clone()).unwrap_or_default())
            .collect(),
    );
    for range in [None, Some(RANGE)] {
        eprintln!(
            "{label}: downloads{}",
            if range.is_some() { ", ranged" } else { "" }
        );
        let (c, b, t, f, template) = (
            client.clone(),
            base.clone(),
            tokens.clone(),
            files.clone(),
            template.clone(),
        );
        let driven = drive(args.clients, args.seconds, move |i, n| {
            let (c, b, t, f, template) =
                (c.clone(), b.clone(), t.clone(), f.clone(), template.clone());
            async move {
                let Some(id) = f[i].get(n % f[i].len().max(1)) else {
                    bail!("this client uploaded nothing");
                };
                let t0 = Instant::now();
                let mut request = c
                    .get(format!("{b}/api/v1/files/{id}/download"))
                    .bearer_auth(&t[i]);
                if let Some((first, last)) = range {
                    request =
                        request.header(reqwest::header::RANGE, format!("bytes={first}-{last}"));
                }
                let response = request.send().await?;
                let status = response.status().as_u16();
                let body = response.bytes().await?;
                let (want_status, want_len) = match range {
                    Some((first, last)) => (206, last - first + 1),
                    None => (200, FILE_BYTES),
                };
                ensure!(
                    status == want_status && body.len() == want_len,
                    "download answered {status} with {} bytes: {}",
                    body.len(),
                    truncate(&String::from_utf8_lossy(&body[..body.len().min(200)]), 160)
                );
                // The bytes are the ones uploaded: past the unique first line, the template.
                let offset = range.map_or(0, |r| r.0);
                let skip = if offset == 0 { 64 } else { 0 };
                ensure!(
                    body[skip..] == template[offset + skip..offset + body.len()],
                    "the bytes downloaded differ from those uploaded"
                );
                Ok(Sample {
                    total: t0.elapsed(),
                    bytes: body.len(),
                    ..Sample::default()
                })
            }
        })
        .await;
        let name = match range {
            Some((first, last)) => format!(
                "GET /files/{{id}}/download, `Range: bytes={first}-{last}` ({} KiB)",
                (last - first + 1) / 1024
            ),
            None => "GET /files/{id}/download (1 MiB)".to_string(),
        };
        report
            .downloads
            .push((name, driven, server.rss_kib().unwrap_or(0)));
    }
    eprintln!("{label}: files done");
    Ok(report)
}

/// `payload` as one frame of a chunked body.
fn chunk(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Streams `total` bytes as one chunked multipart upload and reads the answer meanwhile.
async fn oversized(server: &Server, token: &str, total: u64) -> anyhow::Result<Oversized> {
    let addr = server
        .base
        .strip_prefix("http://")
        .context("base URL")?
        .to_string();
    let pid = server.child.id();
    let staging = server._dir.path().join("tmp").join("uploads");
    let rss_before_kib = procs::rss_kib(pid).unwrap_or(0);
    let wrote_before = procs::written_bytes(pid);
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(procs::rss_kib(pid).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            peak.max(procs::rss_kib(pid).unwrap_or(0))
        })
    };

    let stream = tokio::net::TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let sent = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let writer = {
        let (sent, token) = (sent.clone(), token.to_string());
        tokio::spawn(async move {
            let head = format!(
                "POST /api/v1/files HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            let part = format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"huge.txt\"\r\nContent-Type: text/plain\r\n\r\n"
            );
            let frame = chunk(&text(CHUNK));
            let result: std::io::Result<()> = async {
                wr.write_all(head.as_bytes()).await?;
                wr.write_all(&chunk(part.as_bytes())).await?;
                while sent.load(Ordering::Relaxed) < total {
                    wr.write_all(&frame).await?;
                    sent.fetch_add(CHUNK as u64, Ordering::Relaxed);
                }
                wr.write_all(&chunk(format!("\r\n--{BOUNDARY}--\r\n").as_bytes()))
                    .await?;
                wr.write_all(b"0\r\n\r\n").await
            }
            .await;
            let at = t0.elapsed();
            match result {
                Ok(()) => format!("all sent in {}", ms(at)),
                Err(e) => format!("write failed after {}: {}", ms(at), e.kind()),
            }
        })
    };

    // The answer's head, then its body (it declares its length).
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut reader_end = None;
    let head_end = loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            break Some(end + 4);
        }
        match tokio::time::timeout_at(deadline.into(), rd.read(&mut tmp)).await {
            Err(_) => bail!("no answer within 120 s"),
            Ok(Ok(0)) => {
                reader_end = Some(format!("closed with no answer after {}", ms(t0.elapsed())));
                break None;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&tmp[..n]),
            Ok(Err(e)) => {
                reader_end = Some(format!(
                    "{} with no answer after {}",
                    e.kind(),
                    ms(t0.elapsed())
                ));
                break None;
            }
        }
    };
    let time_to_answer = t0.elapsed();
    let sent_at_answer = sent.load(Ordering::Relaxed);
    let (mut status, mut message) = (None, String::new());
    if let Some(head_end) = head_end {
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok());
        let length = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        // The rest of the body, then whatever the server does with the connection.
        while buf.len() < head_end + length {
            match tokio::time::timeout(Duration::from_secs(5), rd.read(&mut tmp)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&tmp[..n]),
                _ => break,
            }
        }
        let body = &buf[head_end..buf.len().min(head_end + length)];
        message = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["msg"].as_str().map(str::to_string))
            .unwrap_or_else(|| truncate(&String::from_utf8_lossy(body), 160));
        reader_end = Some(
            match tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    match rd.read(&mut tmp).await {
                        Ok(0) => return "closed (EOF)".to_string(),
                        Ok(_) => continue,
                        Err(e) => return e.kind().to_string(),
                    }
                }
            })
            .await
            {
                Ok(how) => format!("{how} after {}", ms(t0.elapsed())),
                Err(_) => "still open 5 s after the answer".to_string(),
            },
        );
    }
    // The sending ends by itself when the server closes; if it still goes on, stop it.
    let writer_end = match tokio::time::timeout(Duration::from_secs(5), writer).await {
        Ok(Ok(end)) => end,
        Ok(Err(e)) => format!("writer failed: {e}"),
        Err(_) => {
            let before = sent.load(Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(500)).await;
            if sent.load(Ordering::Relaxed) > before {
                "the server was still reading 5 s after the answer (stopped by the bench)".into()
            } else {
                "the server stopped reading but kept the connection open (stopped by the bench)"
                    .into()
            }
        }
    };
    let sent_in_all = sent.load(Ordering::Relaxed);
    drop(rd);
    tokio::time::sleep(Duration::from_millis(300)).await;
    sampling.store(false, Ordering::Relaxed);
    let rss_peak_kib = sampler.await.unwrap_or(0);
    let staged_left = std::fs::read_dir(&staging).map_or(0, |d| d.count());
    let server_wrote = procs::written_bytes(pid)
        .zip(wrote_before)
        .map(|(after, before)| after.saturating_sub(before));
    Ok(Oversized {
        total,
        status,
        message,
        sent_at_answer,
        time_to_answer,
        sent_in_all,
        writer_end,
        reader_end: reader_end.unwrap_or_default(),
        rss_before_kib,
        rss_peak_kib,
        rss_after_kib: procs::rss_kib(pid).unwrap_or(0),
        server_wrote,
        staged_left,
    })
}

fn mib_of(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1024.0 / 1024.0)
}

impl Report {
    /// Problems the lead must look at: a wrong answer to the oversized upload, memory that
    /// grew with it, or staged bytes left behind.
    pub fn problems(&self, label: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(o) = &self.oversized {
            if o.status != Some(413) {
                problems.push(format!(
                    "{label}: the oversized upload was answered {:?} ({}), not 413",
                    o.status, o.reader_end
                ));
            }
            // Generous: a 2 GiB body must not move memory by more than a few buffers.
            if o.rss_peak_kib > o.rss_before_kib + 32 * 1024 {
                problems.push(format!(
                    "{label}: the server's RSS grew from {} to {} during the oversized upload",
                    mib(o.rss_before_kib),
                    mib(o.rss_peak_kib)
                ));
            }
            if o.staged_left > 0 {
                problems.push(format!(
                    "{label}: {} staged upload file(s) left in <data_dir>/tmp/uploads after the refused upload",
                    o.staged_left
                ));
            }
        }
        problems
    }

    pub fn write(&self, out: &mut String) -> std::fmt::Result {
        writeln!(
            out,
            "### File uploads and downloads ({} clients, 1 MiB text files; a server of its own, {} once its {} accounts were registered)\n",
            self.clients,
            mib(self.idle_rss_kib),
            self.clients
        )?;
        writeln!(
            out,
            "| request | requests | errors | req/s | MiB/s | p50 | p99 | server RSS after |\n|---|---:|---:|---:|---:|---:|---:|---:|"
        )?;
        let upload = self
            .upload
            .iter()
            .map(|(d, rss)| ("POST /files (1 MiB, multipart)", d, *rss));
        let downloads = self.downloads.iter().map(|(n, d, r)| (n.as_str(), d, *r));
        for (name, d, rss) in upload.chain(downloads) {
            let (p50, p99) = percentiles(&d.samples, |s| s.total);
            let bytes: usize = d.samples.iter().map(|s| s.bytes).sum();
            writeln!(
                out,
                "| {name} | {} | {} | {:.0} | {:.0} | {} | {} | {} |",
                d.samples.len(),
                d.errors,
                d.samples.len() as f64 / d.elapsed,
                bytes as f64 / 1024.0 / 1024.0 / d.elapsed,
                ms(p50),
                ms(p99),
                mib(rss)
            )?;
        }
        writeln!(out)?;
        if let Some((d, _)) = &self.upload {
            errors_note(out, "upload errors", d)?;
        }
        for (name, d, _) in &self.downloads {
            errors_note(out, &format!("errors of {name}"), d)?;
        }
        if let Some(o) = &self.oversized {
            if !out.ends_with("\n\n") {
                writeln!(out)?;
            }
            writeln!(
                out,
                "### Oversized upload ({} chunked, no `Content-Length`, limit {})\n",
                mib_of(o.total),
                mib_of(LIMIT_BYTES)
            )?;
            writeln!(
                out,
                "| answer | sent when it arrived | time to it | sent in all | the sending | the server's side | server wrote to disk | server RSS before | peak during | after | staged files left |\n|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|"
            )?;
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} (+{}) | {} | {} |\n",
                match o.status {
                    Some(s) => format!("{s} “{}”", o.message.replace('|', "/")),
                    None => "none".into(),
                },
                mib_of(o.sent_at_answer),
                ms(o.time_to_answer),
                mib_of(o.sent_in_all),
                o.writer_end,
                o.reader_end,
                o.server_wrote.map_or("?".into(), mib_of),
                mib(o.rss_before_kib),
                mib(o.rss_peak_kib),
                mib(o.rss_peak_kib.saturating_sub(o.rss_before_kib)),
                mib(o.rss_after_kib),
                o.staged_left
            )?;
        }
        if !self.failures.is_empty() && !out.ends_with("\n\n") {
            writeln!(out)?;
        }
        for failure in &self.failures {
            writeln!(out, "- Not measured: {failure}")?;
        }
        if !out.ends_with("\n\n") {
            writeln!(out)?;
        }
        Ok(())
    }
}
