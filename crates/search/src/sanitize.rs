//! Turning hostile provider output into plain, bounded text and safe links.

use crate::SearchResult;
use std::collections::HashSet;

/// Titles are cut to this many characters (an ellipsis included).
pub const MAX_TITLE_CHARS: usize = 200;
/// Snippets are cut to this many characters (an ellipsis included).
pub const MAX_SNIPPET_CHARS: usize = 500;
/// Links longer than this are dropped rather than cut (a cut URL is a wrong URL).
pub const MAX_LINK_CHARS: usize = 2048;

/// Elements whose tags are removed without leaving a word break (`foo<b>bar</b>` → `foobar`).
const INLINE_TAGS: &[&str] = &[
    "a", "abbr", "b", "bdi", "bdo", "cite", "code", "em", "font", "i", "kbd", "mark", "q", "s",
    "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var", "wbr",
];
/// Elements whose content is dropped along with the tags.
const OPAQUE_TAGS: &[&str] = &["script", "style", "template", "noscript"];

/// Plain text from an HTML-ish fragment: tags (and `<script>`/`<style>` contents) and
/// comments removed, basic entities decoded once, control and invisible/bidi characters
/// removed, whitespace collapsed to single spaces and trimmed. Not length-capped.
pub fn sanitize_text(input: &str) -> String {
    let stripped = strip_tags(input);
    let decoded = decode_entities(&stripped);
    let mut out = String::with_capacity(decoded.len());
    let mut pending_space = false;
    for c in decoded.chars() {
        if is_invisible(c) {
            continue;
        }
        if c.is_whitespace() || c.is_control() {
            pending_space = true;
            continue;
        }
        if pending_space && !out.is_empty() {
            out.push(' ');
        }
        pending_space = false;
        out.push(c);
    }
    out
}

/// Keeps `link` only if it is an absolute `http`/`https` URL with a host, at most
/// [`MAX_LINK_CHARS`] long; returns it normalised with any user:password removed.
pub fn sanitize_link(link: &str) -> Option<String> {
    let link = link.trim();
    if link.is_empty() || link.len() > MAX_LINK_CHARS {
        return None;
    }
    let mut url = url::Url::parse(link).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    if url.host_str().is_none_or(str::is_empty) {
        return None;
    }
    // Both only fail for URLs that cannot have credentials, which http(s) ones can.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let out = String::from(url);
    (out.len() <= MAX_LINK_CHARS).then_some(out)
}

/// At most `max` characters of `s`; a cut string ends in `…` (counted in `max`).
pub fn truncate_chars(s: &str, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some(_) => {
            // Cut at the boundary of the (max-1)th char, leaving room for the ellipsis.
            let end = s.char_indices().nth(max - 1).map_or(s.len(), |(i, _)| i);
            let mut out = s[..end].trim_end().to_string();
            out.push('…');
            out
        }
    }
}

/// Builds the final result list from raw `(title, link, snippet)` triples: bad links
/// dropped, duplicates (by link) dropped, text sanitised and capped, at most `max` kept.
pub(crate) fn build_results<'a>(
    raw: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    max: usize,
) -> Vec<SearchResult> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (title, link, snippet) in raw {
        if out.len() >= max {
            break;
        }
        let Some(link) = sanitize_link(link) else {
            continue;
        };
        if !seen.insert(link.clone()) {
            continue;
        }
        let mut title = truncate_chars(&sanitize_text(title), MAX_TITLE_CHARS);
        if title.is_empty() {
            title = truncate_chars(&link, MAX_TITLE_CHARS);
        }
        let snippet = truncate_chars(&sanitize_text(snippet), MAX_SNIPPET_CHARS);
        out.push(SearchResult {
            title,
            link,
            snippet,
        });
    }
    out
}

/// `v[key]` if it is a string, else `""` (missing or mistyped fields count as empty).
pub(crate) fn json_str<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v.get(key).and_then(serde_json::Value::as_str).unwrap_or("")
}

fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                  // soft hyphen
        | '\u{034F}'                // combining grapheme joiner
        | '\u{061C}'                // arabic letter mark
        | '\u{180E}'                // mongolian vowel separator
        | '\u{200B}'..='\u{200F}'   // zero-width chars, LRM/RLM
        | '\u{202A}'..='\u{202E}'   // bidi embeddings/overrides
        | '\u{2060}'..='\u{2064}'   // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}'   // bidi isolates
        | '\u{FEFF}'                // BOM / zero-width no-break space
        | '\u{FFF9}'..='\u{FFFB}'   // interlinear annotations
        | '\u{E0000}'..='\u{E007F}' // tag characters
    )
}

fn strip_tags(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let after = &rest[lt + 1..];
        let Some(first) = after.chars().next() else {
            out.push('<');
            rest = after;
            break;
        };
        if let Some(comment) = after.strip_prefix("!--") {
            // Comment: drop through `-->`, or everything if unterminated.
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        if !(first.is_ascii_alphabetic() || matches!(first, '/' | '!' | '?')) {
            // `a < b`: not a tag.
            out.push('<');
            rest = after;
            continue;
        }
        let Some(gt) = after.find('>') else {
            // An unterminated tag: drop the remainder rather than leak markup.
            rest = "";
            break;
        };
        let tag = &after[..gt];
        rest = &after[gt + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if !INLINE_TAGS.contains(&name.as_str()) {
            out.push(' ');
        }
        if !closing && OPAQUE_TAGS.contains(&name.as_str()) && !tag.ends_with('/') {
            // Skip the element's content up to its closing tag (or everything).
            let close = format!("</{name}");
            rest = match find_ascii_ci(rest, &close) {
                Some(i) => {
                    let tail = &rest[i..];
                    tail.find('>').map_or("", |g| &tail[g + 1..])
                }
                None => "",
            };
        }
    }
    out.push_str(rest);
    out
}

/// Byte offset of the first case-insensitive match of the ASCII `needle` in `hay`.
fn find_ascii_ci(hay: &str, needle: &str) -> Option<usize> {
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

fn decode_entities(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after
            .char_indices()
            .take(12)
            .find(|&(_, c)| c == ';')
            .map(|(i, _)| i);
        match semi.and_then(|s| decode_entity(&after[..s]).map(|c| (s, c))) {
            Some((s, c)) => {
                if let Some(c) = c {
                    out.push(c);
                }
                rest = &after[s + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `Some(Some(c))` for a known entity, `Some(None)` for a numeric one naming no usable
/// character (dropped), `None` when not an entity (kept literally).
fn decode_entity(name: &str) -> Option<Option<char>> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse::<u32>().ok()?,
        };
        return Some(char::from_u32(code).filter(|c| *c != '\0'));
    }
    let c = match name {
        "amp" | "AMP" => '&',
        "lt" | "LT" => '<',
        "gt" | "GT" => '>',
        "quot" | "QUOT" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "middot" => '·',
        "bull" => '•',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "deg" => '°',
        "times" => '×',
        _ => return None,
    };
    Some(Some(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_tags_and_decodes() {
        assert_eq!(
            sanitize_text("Learn <strong>Rust</strong>&#39;s   ownership &amp; <em>borrowing</em>"),
            "Learn Rust's ownership & borrowing"
        );
        assert_eq!(sanitize_text("a<br>b<p>c</p>d"), "a b c d");
        assert_eq!(sanitize_text("1 < 2 && 3 > 2"), "1 < 2 && 3 > 2");
        assert_eq!(
            sanitize_text("x<script>alert('<b>')</script>y<STYLE>p{}</style>z"),
            "x y z"
        );
        assert_eq!(sanitize_text("keep <!-- hidden --> this"), "keep this");
        assert_eq!(sanitize_text("cut <img src=x onerror=alert(1)"), "cut");
        assert_eq!(
            sanitize_text("&lt;b&gt;literal&lt;/b&gt;"),
            "<b>literal</b>"
        );
        assert_eq!(sanitize_text("&amp;lt;"), "&lt;");
        assert_eq!(sanitize_text("&#x41;&#66;&#0;&#xD800;&bogus;"), "AB&bogus;");
        assert_eq!(
            sanitize_text("a\u{202E}b\u{200B}c\t\n\r d\u{0007}e"),
            "abc d e"
        );
        assert_eq!(sanitize_text("  \n "), "");
        assert_eq!(sanitize_text("tail <"), "tail <");
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abcd", 3), "ab…");
        assert_eq!(truncate_chars("ééééé", 3), "éé…");
        assert_eq!(truncate_chars("🦀🦀🦀🦀", 2), "🦀…");
        assert_eq!(truncate_chars("ab cd", 4), "ab…");
        assert_eq!(truncate_chars("abc", 0), "");
        let long = "日本".repeat(300);
        let t = truncate_chars(&long, MAX_TITLE_CHARS);
        assert_eq!(t.chars().count(), MAX_TITLE_CHARS);
    }

    #[test]
    fn links() {
        assert_eq!(
            sanitize_link(" https://example.com/a?b=c#d ").as_deref(),
            Some("https://example.com/a?b=c#d")
        );
        assert_eq!(
            sanitize_link("http://user:pw@example.com").as_deref(),
            Some("http://example.com/")
        );
        for bad in [
            "javascript:alert(1)",
            " JavaScript:alert(1)",
            "data:text/html,<script>",
            "file:///etc/passwd",
            "ftp://example.com/",
            "/relative/path",
            "example.com",
            "",
            "http://",
        ] {
            assert_eq!(sanitize_link(bad), None, "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_LINK_CHARS));
        assert_eq!(sanitize_link(&long), None);
    }

    #[test]
    fn builds_results() {
        let raw = vec![
            ("<b>One</b>", "https://one.example/", "first"),
            ("dup", "https://one.example/", "dup"),
            ("bad", "javascript:alert(1)", "x"),
            ("", "https://two.example/x", "  "),
            ("three", "https://three.example/", "third"),
        ];
        let r = build_results(raw.clone(), 10);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].title, "One");
        assert_eq!(r[1].title, "https://two.example/x");
        assert_eq!(r[1].snippet, "");
        let r = build_results(raw, 2);
        assert_eq!(r.len(), 2);
    }
}
