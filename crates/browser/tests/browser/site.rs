//! The web the tests browse: a tiny HTTP server on a loopback port, no outside network.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Site {
    pub base: String,
    task: JoinHandle<()>,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Site {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

pub async fn serve() -> Site {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((socket, _)) = listener.accept().await {
            connections.spawn(answer(socket));
        }
    });
    Site { base, task }
}

async fn answer(mut socket: TcpStream) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&request);
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let body = match path {
        "/" => INDEX.to_owned(),
        "/second" => page(
            "Second page",
            "<h1>The second page</h1><p>second-page-marker</p>",
        ),
        "/search" => {
            let q = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("q="))
                .map(decode)
                .unwrap_or_default();
            page("Results", &format!("<h1>Results for: {q}</h1>"))
        }
        "/long" => long_page(),
        "/widgets" => WIDGETS.to_owned(),
        "/huge" => huge_page(),
        "/hang" => page(
            "Still loading",
            "<p>partial-marker: the text is here</p><img src=\"/never\" alt=\"never\">",
        ),
        "/never" => {
            // accept, then never answer: the page's load event never comes
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        _ => {
            let _ = socket
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
            return;
        }
    };
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = socket.write_all(response.as_bytes()).await;
    let _ = socket.shutdown().await;
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).replace('<', "&lt;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{title}</title></head><body>{body}</body></html>"
    )
}

const INDEX: &str = r#"<!doctype html><html><head><meta charset=utf-8><title>Ironhand test page</title>
<style>body{font-family:sans-serif;margin:16px} .hover{width:240px;height:40px;background:#eee}</style></head><body>
<h1>Marker: purple-elephant-42</h1>
<p id="status">Nothing clicked yet</p>
<button id="press" onclick="document.getElementById('status').textContent='The button was pressed'">Press me</button>
<a href="/second">Go to the second page</a>
<form action="/search" method="get"><input name="q" placeholder="Search terms"><button type="submit">Search</button></form>
<select id="colour" onchange="document.getElementById('chosen').textContent='Chosen colour: '+this.value">
<option value="red">Red</option><option value="green">Green</option><option value="blue">Blue</option></select>
<p id="chosen">Chosen colour: none</p>
<button id="alerter" onclick="alert('Hello from the alert'); document.getElementById('status').textContent='after the alert'">Alert me</button>
<a href="/second" target="_blank">Open in a new tab</a>
<div id="hover" class="hover" onmouseover="this.textContent='The mouse is over me'">Hover here</div>
<ul><li>first item</li><li>second item</li></ul>
<script>console.log('page loaded', 42); console.error('an error line')</script>
</body></html>"#;

const WIDGETS: &str = r#"<!doctype html><html><head><meta charset=utf-8><title>Widgets</title></head><body>
<h1>Widgets</h1>
<div id="host"></div>
<script>
const root = document.getElementById('host').attachShadow({mode: 'open'});
root.innerHTML = '<button id="sb">Shadow button</button><p id="sp">shadow text untouched</p>';
root.getElementById('sb').onclick = () => { root.getElementById('sp').textContent = 'shadow button clicked'; };
</script>
<label><input type="checkbox" id="agree" style="opacity:0;position:absolute;width:1px;height:1px"> I agree to the terms</label>
<p id="agreed">not agreed</p>
<script>document.getElementById('agree').onchange = (e) => { document.getElementById('agreed').textContent = e.target.checked ? 'agreed now' : 'not agreed'; };</script>
<button onclick="document.getElementById('cf').textContent = confirm('Sure?') ? 'confirmed' : 'cancelled'">Confirm something</button>
<p id="cf">no answer</p>
<button onclick="document.getElementById('pr').textContent = 'prompt gave ' + prompt('Your name?', 'x')">Prompt me</button>
<p id="pr">no prompt</p>
<button style="position:fixed;left:10px;bottom:20px">Hidden behind the overlay</button>
<div style="position:fixed;left:0;bottom:0;width:400px;height:90px;background:#fff;z-index:10"><button>Overlay button</button></div>
</body></html>"#;

fn long_page() -> String {
    let mut body = String::new();
    for i in 0..30 {
        body.push_str(&format!(
            "<section style=\"height:600px\"><h2>Section {i}</h2><p>Text of section {i}.</p><button>Button {i}</button></section>"
        ));
    }
    page("Long page", &body)
}

fn huge_page() -> String {
    let mut body = String::from("<h1>Huge page</h1>");
    for i in 0..20000 {
        body.push_str(&format!(
            "<p>Paragraph {i} with \"quotes\" and \\backslashes\\ and <a href=\"/p/{i}\">link {i}</a> <button>b{i}</button></p>"
        ));
    }
    page("Huge page", &body)
}
