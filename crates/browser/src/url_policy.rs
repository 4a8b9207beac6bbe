//! Which URLs `browser_navigate` may open.

use std::path::{Component, Path, PathBuf};

use url::Url;

/// Why `browser_navigate` may not open a URL: the sentence the model reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InvalidUrl {
    #[error("the url is empty")]
    Empty,
    #[error("{raw:?} is not a valid URL ({source})")]
    Unparsable {
        raw: String,
        #[source]
        source: url::ParseError,
    },
    #[error("{0:?} has no host")]
    NoHost(String),
    #[error("{0:?}: file URLs on another host are not allowed")]
    FileOnOtherHost(String),
    #[error("{0:?} is not a valid file URL")]
    BadFileUrl(String),
    #[error("{raw:?}: only files under {} may be opened", .root.display())]
    OutsideFileRoot { raw: String, root: PathBuf },
    #[error(
        "{raw:?}: {scheme}: URLs are not allowed; use http://, https://, about:blank or file:// under {}",
        .root.display()
    )]
    Scheme {
        raw: String,
        scheme: String,
        root: PathBuf,
    },
}

/// A URL the browser may open, or the sentence saying why not.
pub(crate) fn check_url(raw: &str, file_root: &Path) -> Result<Url, InvalidUrl> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(InvalidUrl::Empty);
    }
    let unparsable = |source| InvalidUrl::Unparsable {
        raw: raw.to_owned(),
        source,
    };
    let url = match Url::parse(raw) {
        Ok(url) => url,
        // "example.com/page": a model often leaves out the scheme
        Err(url::ParseError::RelativeUrlWithoutBase) if looks_like_host(raw) => {
            Url::parse(&format!("https://{raw}")).map_err(unparsable)?
        }
        Err(e) => return Err(unparsable(e)),
    };
    match url.scheme() {
        "http" | "https" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(InvalidUrl::NoHost(raw.to_owned()));
            }
            Ok(url)
        }
        "about" if url.as_str() == "about:blank" => Ok(url),
        "file" => {
            if url
                .host_str()
                .is_some_and(|h| !h.is_empty() && h != "localhost")
            {
                return Err(InvalidUrl::FileOnOtherHost(raw.to_owned()));
            }
            let path = url
                .to_file_path()
                .map_err(|()| InvalidUrl::BadFileUrl(raw.to_owned()))?;
            let path = normalise(&path);
            if path.starts_with(file_root) {
                Ok(url)
            } else {
                Err(InvalidUrl::OutsideFileRoot {
                    raw: raw.to_owned(),
                    root: file_root.to_owned(),
                })
            }
        }
        scheme => Err(InvalidUrl::Scheme {
            raw: raw.to_owned(),
            scheme: scheme.to_owned(),
            root: file_root.to_owned(),
        }),
    }
}

fn looks_like_host(raw: &str) -> bool {
    let host = raw.split(['/', '?', '#']).next().unwrap_or_default();
    !raw.contains(char::is_whitespace)
        && host.contains('.')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
}

/// `..` and `.` resolved without touching the disk (the path is inside the sandbox).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> bool {
        check_url(raw, Path::new("/home/ubuntu")).is_ok()
    }

    #[test]
    fn web_pages_blank_and_the_users_files_are_allowed() {
        assert!(ok("https://example.com/a?b#c"));
        assert!(ok("http://127.0.0.1:8080/"));
        assert!(ok("about:blank"));
        assert!(ok("file:///home/ubuntu/report.html"));
        assert!(ok("file:///home/ubuntu/a/../b.html"));
        assert_eq!(
            check_url("example.com/x", Path::new("/home/ubuntu"))
                .map(|u| u.to_string())
                .ok()
                .as_deref(),
            Some("https://example.com/x")
        );
    }

    #[test]
    fn everything_else_is_refused_with_a_reason() {
        for bad in [
            "javascript:alert(1)",
            "data:text/html,<h1>x</h1>",
            "chrome://settings",
            "about:config",
            "ftp://example.com/",
            "file:///etc/passwd",
            "file:///home/ubuntu/../../etc/passwd",
            "file:///home/ubuntu/..%2F..%2Fetc/passwd",
            "file:///home/ubuntuevil/x",
            "file://otherhost/home/ubuntu/x",
            "not a url",
            "",
            "http://",
            "view-source:https://example.com",
        ] {
            assert!(!ok(bad), "{bad} should be refused");
        }
    }

    #[test]
    fn refusals_say_why() {
        let text = |raw: &str| {
            check_url(raw, Path::new("/home/ubuntu"))
                .expect_err(raw)
                .to_string()
        };
        assert_eq!(text(""), "the url is empty");
        assert_eq!(
            text("not a url"),
            "\"not a url\" is not a valid URL (relative URL without a base)"
        );
        assert_eq!(
            text("http://"),
            "\"http://\" is not a valid URL (empty host)"
        );
        assert_eq!(
            text("file://otherhost/x"),
            "\"file://otherhost/x\": file URLs on another host are not allowed"
        );
        assert_eq!(
            text("file:///etc/passwd"),
            "\"file:///etc/passwd\": only files under /home/ubuntu may be opened"
        );
        assert_eq!(
            text("ftp://example.com/"),
            "\"ftp://example.com/\": ftp: URLs are not allowed; use http://, https://, about:blank or file:// under /home/ubuntu"
        );
    }
}
