//! The tables behind the type check: which extensions belong to which content type, how a
//! type is named to a user, and which types are accepted by default.

use std::collections::BTreeSet;

const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const PPTX: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";

/// Zip-based office formats, by extension.
pub(super) const OOXML: &[(&str, &str)] = &[("docx", DOCX), ("xlsx", XLSX), ("pptx", PPTX)];

/// Binary formats: their usual extensions (first = preferred), content type, and name.
/// An extension listed here is "known": text or another format under it is refused.
pub(super) const BINARY_TYPES: &[(&[&str], &str, &str)] = &[
    (&["png"], "image/png", "a PNG image"),
    (
        &["jpg", "jpeg", "jpe", "jfif"],
        "image/jpeg",
        "a JPEG image",
    ),
    (&["gif"], "image/gif", "a GIF image"),
    (&["webp"], "image/webp", "a WebP image"),
    (&["bmp"], "image/bmp", "a BMP image"),
    (&["tif", "tiff"], "image/tiff", "a TIFF image"),
    (&["ico"], "image/vnd.microsoft.icon", "an icon"),
    (&["heic", "heif"], "image/heif", "a HEIF image"),
    (&["avif"], "image/avif", "an AVIF image"),
    (&["psd"], "image/vnd.adobe.photoshop", "a Photoshop image"),
    (&["pdf"], "application/pdf", "a PDF document"),
    (&["zip"], "application/zip", "a zip archive"),
    (&["docx"], DOCX, "a Word document"),
    (&["xlsx"], XLSX, "an Excel spreadsheet"),
    (&["pptx"], PPTX, "a PowerPoint presentation"),
    (&["doc"], "application/msword", "a Word 97-2003 document"),
    (
        &["xls"],
        "application/vnd.ms-excel",
        "an Excel 97-2003 spreadsheet",
    ),
    (
        &["ppt"],
        "application/vnd.ms-powerpoint",
        "a PowerPoint 97-2003 presentation",
    ),
    (
        &["odt"],
        "application/vnd.oasis.opendocument.text",
        "an OpenDocument text",
    ),
    (
        &["ods"],
        "application/vnd.oasis.opendocument.spreadsheet",
        "an OpenDocument spreadsheet",
    ),
    (
        &["odp"],
        "application/vnd.oasis.opendocument.presentation",
        "an OpenDocument presentation",
    ),
    (&["epub"], "application/epub+zip", "an EPUB e-book"),
    (&["rtf"], "application/rtf", "an RTF document"),
    (&["gz", "tgz"], "application/gzip", "a gzip archive"),
    (&["tar"], "application/x-tar", "a tar archive"),
    (&["bz2"], "application/x-bzip2", "a bzip2 archive"),
    (&["xz"], "application/x-xz", "an xz archive"),
    (&["7z"], "application/x-7z-compressed", "a 7-Zip archive"),
    (&["rar"], "application/vnd.rar", "a RAR archive"),
    (&["zst"], "application/zstd", "a Zstandard archive"),
    (
        &["exe", "dll", "msi", "scr", "com"],
        "application/vnd.microsoft.portable-executable",
        "a Windows executable",
    ),
    (
        &["elf", "so", "o"],
        "application/x-executable",
        "a Linux executable",
    ),
    (
        &["dylib"],
        "application/x-mach-binary",
        "a macOS executable",
    ),
    (&["class"], "application/java", "Java bytecode"),
    (&["wasm"], "application/wasm", "a WebAssembly module"),
    (
        &["sqlite", "sqlite3", "db"],
        "application/vnd.sqlite3",
        "an SQLite database",
    ),
    (&["mp3"], "audio/mpeg", "an MP3 audio file"),
    (&["wav"], "audio/x-wav", "a WAV audio file"),
    (&["ogg", "oga"], "audio/ogg", "an Ogg audio file"),
    (&["flac"], "audio/x-flac", "a FLAC audio file"),
    (&["m4a"], "audio/m4a", "an M4A audio file"),
    (&["mp4"], "video/mp4", "an MP4 video"),
    (&["m4v"], "video/x-m4v", "an M4V video"),
    (&["webm"], "video/webm", "a WebM video"),
    (&["mov"], "video/quicktime", "a QuickTime video"),
    (&["avi"], "video/x-msvideo", "an AVI video"),
    (&["mkv"], "video/x-matroska", "a Matroska video"),
    (&["woff", "woff2"], "application/font-woff", "a web font"),
    (&["ttf", "otf"], "application/font-sfnt", "a font"),
];

/// Text formats by extension (first = preferred). Extensions not listed map to `text/plain`.
pub(super) const TEXT_TYPES: &[(&[&str], &str)] = &[
    (
        &[
            "txt", "text", "log", "ini", "cfg", "conf", "rst", "tex", "rs", "go", "c", "h", "cc",
            "cpp", "hpp", "java", "kt", "rb", "php", "pl", "lua", "r", "sql", "swift", "env",
        ],
        "text/plain",
    ),
    (&["md", "markdown"], "text/markdown"),
    (&["csv"], "text/csv"),
    (&["tsv"], "text/tab-separated-values"),
    (&["json"], "application/json"),
    (&["py"], "text/x-python"),
    (&["js", "mjs", "cjs", "jsx"], "text/javascript"),
    (&["ts", "tsx"], "text/x-typescript"),
    (&["html", "htm"], "text/html"),
    (&["css"], "text/css"),
    (&["xml"], "application/xml"),
    (&["yaml", "yml"], "application/yaml"),
    (&["toml"], "application/toml"),
    (&["sh", "bash"], "text/x-shellscript"),
    // Never in the default allow-list: an SVG can carry script.
    (&["svg"], "image/svg+xml"),
];

/// Accepted when the configuration names no list.
const DEFAULT_ALLOWED: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "application/zip",
    DOCX,
    XLSX,
    PPTX,
    "text/plain",
    "text/markdown",
    "text/csv",
    "text/tab-separated-values",
    "application/json",
    "text/x-python",
    "text/javascript",
    "text/x-typescript",
    "text/html",
    "text/css",
    "application/xml",
    "application/yaml",
    "application/toml",
    "text/x-shellscript",
];

pub(super) fn is_known_binary_ext(ext: &str) -> bool {
    BINARY_TYPES.iter().any(|(exts, _, _)| exts.contains(&ext))
}

/// "a GIF image (image/gif)", or "a file of type X" for types without a name.
pub(super) fn describe(content_type: &str) -> String {
    let name = BINARY_TYPES
        .iter()
        .find(|(_, ct, _)| *ct == content_type)
        .map(|(_, _, name)| *name);
    match name {
        Some(name) => format!("{name} ({content_type})"),
        None if content_type == "image/svg+xml" => format!("an SVG image ({content_type})"),
        None if super::is_text_type(content_type) => format!("text ({content_type})"),
        None => format!("a file of type {content_type}"),
    }
}

/// The usual extension for a content type, to name a file that has none.
pub fn preferred_extension(content_type: &str) -> Option<&'static str> {
    BINARY_TYPES
        .iter()
        .find(|(_, ct, _)| *ct == content_type)
        .map(|(exts, _, _)| exts[0])
        .or_else(|| {
            TEXT_TYPES
                .iter()
                .find(|(_, ct)| *ct == content_type)
                .map(|(exts, _)| exts[0])
        })
}

/// The content types uploads may have (from configuration; lower-case, exact match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    types: BTreeSet<String>,
    any: bool,
}

impl AllowList {
    pub fn new<I, S>(types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let types = types
            .into_iter()
            .map(|t| t.as_ref().trim().to_ascii_lowercase())
            .collect();
        Self { types, any: false }
    }

    /// Every type: for labelling files that are not uploads (the agent's outputs).
    pub fn any() -> Self {
        Self {
            types: BTreeSet::new(),
            any: true,
        }
    }

    pub fn contains(&self, content_type: &str) -> bool {
        self.any || self.types.contains(content_type)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.types.iter().map(String::as_str)
    }
}

impl Default for AllowList {
    /// Images, PDF, zip and office documents, and common text formats (text is always
    /// served as a download).
    fn default() -> Self {
        Self::new(DEFAULT_ALLOWED)
    }
}
