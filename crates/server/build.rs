//! Points the embedded web app (`src/web_app.rs`) at `web/dist`, or, when the web app has
//! not been built (a backend-only checkout), at a placeholder page that says how to build it.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dist = manifest.join("../../web/dist");
    println!("cargo:rerun-if-changed=build.rs");
    let folder = if dist.join("index.html").is_file() {
        println!("cargo:rerun-if-changed={}", dist.display());
        dist.canonicalize().unwrap_or(dist)
    } else {
        // Watching a path that does not exist would rerun this script (and rebuild the
        // server) on every cargo command; `make web` touches this file once it has built
        // the app, which brings the real build in.
        let out =
            PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("web-placeholder");
        write_placeholder(&out);
        out
    };
    println!("cargo:rustc-env=IRONHAND_WEB_DIST={}", folder.display());
}

fn write_placeholder(dir: &Path) {
    std::fs::create_dir_all(dir).expect("create the placeholder directory");
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Ironhand</title>\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"></head>\
<body style=\"font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem\">\
<h1>Ironhand</h1><p>The API is running at <a href=\"/api/v1/docs/\">/api/v1/docs/</a>.</p>\
<p>This binary was built without the web app: <code>make build</code> (or <code>make run</code>) \
builds the app and then the server with it.</p>\
</body></html>\n",
    )
    .expect("write the placeholder page");
}
