//! The upload type check: what a file *is* comes from its bytes, never from the client's
//! `Content-Type`, and a name that claims another type than the bytes is refused. This stops
//! renamed executables and polyglots (a GIF header before HTML, named `.png` or `.html`).
//!
//! Rules, in order:
//! 1. A binary signature (`infer`) decides the type. Weak signatures that a plain text file
//!    can start with (`MZ`, `BM`, PEM armour, HTML/XML/shebang openings) give way to the text
//!    rule when the head is clean UTF-8 without NUL bytes: no real executable or bitmap is.
//! 2. Otherwise the file is text only if its head is UTF-8 (a BOM is fine, a character cut
//!    at the 8 KiB boundary is fine) without NUL bytes; its type then comes from the
//!    extension (`.md` → `text/markdown`, unknown → `text/plain`). Latin-1 and UTF-16 text
//!    is refused: downloads are served as UTF-8 and the agent's tools read UTF-8.
//! 3. The type must be on the allow-list, and the extension must not belong to another
//!    known type (a `.png` that is a GIF, a `.txt` that is binary, a `.jpg` that is a script).
//!    An unknown or missing extension is accepted with `extension_ok = false`.
//!
//! Zip-based office files: `infer` recognises docx/xlsx/pptx when the first entries show
//! it; a plain zip named `.docx`/`.xlsx`/`.pptx` is accepted as that format (the container
//! is the same and every such file is served as a download), and an OOXML file named `.zip`
//! is accepted as OOXML.

mod names;
mod types;

pub use names::sanitize_filename;
pub use types::{AllowList, preferred_extension};

use crate::staging::HEAD_LEN;
use types::{BINARY_TYPES, OOXML, TEXT_TYPES, describe, is_known_binary_ext};

/// The verdict on an accepted file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sniffed {
    pub content_type: String,
    /// The name's extension is a usual one for the type (false for none or an unknown one:
    /// the caller may append [`preferred_extension`]).
    pub extension_ok: bool,
}

impl Sniffed {
    /// Text of any kind is served as a download, never rendered inline.
    pub fn is_text(&self) -> bool {
        is_text_type(&self.content_type)
    }
}

/// Why a file was refused; `Display` is a sentence for the user naming what was detected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// The detected content type (`application/octet-stream` when nothing was recognised).
    pub detected: String,
    pub message: String,
}

/// True for the types the text rule produces (and any `text/*`).
pub fn is_text_type(content_type: &str) -> bool {
    content_type.starts_with("text/") || TEXT_TYPES.iter().any(|(_, ct)| *ct == content_type)
}

/// Only raster images are ever shown inline; everything else is an attachment.
pub fn may_render_inline(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    )
}

/// The lower-cased extension after the last `.` of the last path component, if any.
fn extension_of(filename: &str) -> Option<String> {
    let name = filename.rsplit(['/', '\\']).next().unwrap_or(filename);
    let (_, ext) = name.rsplit_once('.')?;
    (!ext.is_empty()).then(|| ext.trim_end().to_ascii_lowercase())
}

/// What the bytes are, before the allow-list is consulted.
enum Detected {
    Binary { mime: String, exts: Vec<String> },
    Text,
    Undecodable,
    Empty,
}

fn detect(head: &[u8]) -> Detected {
    if head.is_empty() {
        return Detected::Empty;
    }
    let text = is_utf8_text(head);
    if let Some(kind) = infer::get(head) {
        // infer's own text matchers (HTML, XML, shebang) always defer to the text rule.
        let text_like = kind.matcher_type() == infer::MatcherType::Text;
        let weak = matches!(kind.extension(), "exe" | "dll" | "bmp" | "pem");
        let defer_to_text = text_like || (weak && text);
        if !defer_to_text {
            let mime = kind.mime_type().to_string();
            let mut exts: Vec<String> = BINARY_TYPES
                .iter()
                .filter(|(_, ct, _)| *ct == mime)
                .flat_map(|(exts, _, _)| exts.iter().map(|e| e.to_string()))
                .collect();
            if exts.is_empty() {
                exts.push(kind.extension().to_ascii_lowercase());
            }
            return Detected::Binary { mime, exts };
        }
    }
    if text {
        Detected::Text
    } else {
        Detected::Undecodable
    }
}

/// UTF-8 (a BOM is just U+FEFF) without NUL; a sequence cut by the head limit is allowed.
fn is_utf8_text(head: &[u8]) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        // `error_len() == None`: the input ended inside a character, fine only at the cut.
        Err(e) => e.error_len().is_none() && head.len() >= HEAD_LEN,
    }
}

fn refuse(detected: &str, message: String) -> Refusal {
    Refusal {
        detected: detected.to_string(),
        message,
    }
}

const NOT_RECOGNISED: &str =
    "The file's type is not recognised: it is neither an accepted format nor UTF-8 text.";

/// Decides what an upload is from its name and its first (up to [`HEAD_LEN`]) bytes.
pub fn classify(filename: &str, head: &[u8], allow: &AllowList) -> Result<Sniffed, Refusal> {
    let ext = extension_of(filename);
    let ext_ref = ext.as_deref();
    match detect(head) {
        Detected::Empty => {
            if let Some(e) = ext_ref.filter(|e| is_known_binary_ext(e)) {
                return Err(refuse(
                    "application/x-empty",
                    format!("The file is empty, but a .{e} file cannot be."),
                ));
            }
            classify_text(ext_ref, allow)
        }
        Detected::Text => {
            if let Some(e) = ext_ref.filter(|e| is_known_binary_ext(e)) {
                return Err(refuse(
                    "text/plain",
                    format!(
                        "The file is named .{e} but its content is text, not {what}.",
                        what = describe_ext(e)
                    ),
                ));
            }
            classify_text(ext_ref, allow)
        }
        Detected::Undecodable => Err(refuse(
            "application/octet-stream",
            match ext_ref {
                Some(e) if is_known_binary_ext(e) => {
                    let what = describe_ext(e);
                    format!("The file is named .{e} but its content is not {what}.")
                }
                _ => NOT_RECOGNISED.to_string(),
            },
        )),
        Detected::Binary { mime, exts } => classify_binary(ext_ref, &mime, &exts, allow),
    }
}

fn describe_ext(ext: &str) -> String {
    BINARY_TYPES
        .iter()
        .find(|(exts, _, _)| exts.contains(&ext))
        .map(|(_, _, name)| (*name).to_string())
        .unwrap_or_else(|| format!("a .{ext} file"))
}

fn classify_text(ext: Option<&str>, allow: &AllowList) -> Result<Sniffed, Refusal> {
    let mapped = ext.and_then(|e| TEXT_TYPES.iter().find(|(exts, _)| exts.contains(&e)));
    let content_type = mapped.map_or("text/plain", |(_, ct)| *ct);
    if !allow.contains(content_type) {
        return Err(refuse(
            content_type,
            format!(
                "This file is {}, which cannot be uploaded here.",
                describe(content_type)
            ),
        ));
    }
    Ok(Sniffed {
        content_type: content_type.to_string(),
        extension_ok: mapped.is_some(),
    })
}

fn classify_binary(
    ext: Option<&str>,
    mime: &str,
    exts: &[String],
    allow: &AllowList,
) -> Result<Sniffed, Refusal> {
    let mut content_type = mime.to_string();
    let mut extension_ok = ext.is_some_and(|e| exts.iter().any(|x| x == e));
    if !extension_ok {
        // Zip containers: the name picks among zip-based office formats (see module doc).
        match ext.and_then(|e| OOXML.iter().find(|(x, _)| *x == e)) {
            Some((_, ooxml)) if mime == "application/zip" => {
                content_type = (*ooxml).to_string();
                extension_ok = true;
            }
            _ if ext == Some("zip") && OOXML.iter().any(|(_, ct)| *ct == mime) => {
                extension_ok = true;
            }
            _ => {}
        }
    }
    if !allow.contains(&content_type) {
        return Err(refuse(
            &content_type,
            format!(
                "This file is {}, which cannot be uploaded here.",
                describe(&content_type)
            ),
        ));
    }
    if let Some(e) = ext.filter(|e| !extension_ok && (is_known_binary_ext(e) || is_text_ext(e))) {
        return Err(refuse(
            mime,
            format!(
                "The file is named .{e} but its content is {}.",
                describe(mime)
            ),
        ));
    }
    Ok(Sniffed {
        content_type,
        extension_ok,
    })
}

fn is_text_ext(ext: &str) -> bool {
    TEXT_TYPES.iter().any(|(exts, _)| exts.contains(&ext))
}

/// A lenient guess for files the agent produced (never refused, only labelled): the sniffed
/// type when the checks pass with every type allowed, else `application/octet-stream`.
pub fn guess_type(filename: &str, head: &[u8]) -> String {
    classify(filename, head, &AllowList::any())
        .map(|s| s.content_type)
        .unwrap_or_else(|_| "application/octet-stream".to_string())
}

#[cfg(test)]
mod tests;
