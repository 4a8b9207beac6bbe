//! Display names: what a client sends as a filename is untrusted text that ends up in
//! `Content-Disposition`, in the UI and as a path in the sandbox
//! (`/home/ubuntu/upload/<name>`), so it is reduced to one safe path component.

/// Longest name kept, in bytes (the extension survives the cut).
const MAX_NAME_BYTES: usize = 200;
/// Longest tail after the last `.` still treated as an extension when shortening.
const MAX_EXT_BYTES: usize = 16;

/// Names Windows reserves for devices (as a stem, any case); files may travel there.
const RESERVED: &[&str] = &[
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// Characters that reorder or hide text (bidi overrides like U+202E make `gpj.exe` look
/// like `exe.jpg`) or that are invisible; removed outright.
fn is_invisible_or_bidi(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// Reduces a client-supplied name to a safe display and file name: the last path
/// component, without control, bidi or invisible characters, without `/ \ < > : " | ? *`,
/// without leading dots, with whitespace collapsed, not a reserved device name, at most
/// 200 bytes (cut at a character boundary, keeping the extension), never empty (`file`).
pub fn sanitize_filename(name: &str) -> String {
    let last = name
        .rsplit(['/', '\\'])
        .find(|part| !part.trim().is_empty())
        .unwrap_or("");

    let mut cleaned = String::with_capacity(last.len());
    let mut pending_space = false;
    for c in last.chars() {
        if c.is_control() || is_invisible_or_bidi(c) {
            continue;
        }
        if c.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space && !cleaned.is_empty() {
            cleaned.push(' ');
        }
        pending_space = false;
        cleaned.push(if matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') {
            '_'
        } else {
            c
        });
    }

    // Leading dots hide files (and `..` walks up); trailing dots and spaces vanish on Windows.
    let trimmed = cleaned
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    let mut out = trimmed.to_string();

    let stem = out
        .split('.')
        .next()
        .unwrap_or("")
        .trim_end()
        .to_ascii_lowercase();
    if RESERVED.contains(&stem.as_str()) {
        out.insert(0, '_');
    }

    let out = truncate_keeping_extension(&out, MAX_NAME_BYTES);
    if out.is_empty() {
        "file".to_string()
    } else {
        out
    }
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

fn truncate_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let ext = name
        .rfind('.')
        .filter(|&dot| dot > 0 && name.len() - dot <= MAX_EXT_BYTES + 1)
        .map_or("", |dot| &name[dot..]);
    let stem_room = max - ext.len();
    let stem = &name[..name.len() - ext.len()];
    let cut = floor_char_boundary(stem, stem_room);
    format!("{}{ext}", stem[..cut].trim_end())
}
