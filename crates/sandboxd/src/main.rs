//! `ironhand-sandboxd [sandboxd] [--listen ADDR]`: the daemon alone (the tests mount it into
//! containers; the sandbox image runs the same code as `ironhand sandboxd`).

fn main() -> anyhow::Result<()> {
    let mut listen = format!("0.0.0.0:{}", ironhand_sandboxd::wire::PORT);
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("sandboxd") {
        args.next();
    }
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                listen = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--listen needs an address"))?
            }
            other => anyhow::bail!(
                "unknown argument {other}: usage: ironhand-sandboxd [sandboxd] [--listen ADDR]"
            ),
        }
    }
    ironhand_sandboxd::daemon::run(listen.parse()?)
}
