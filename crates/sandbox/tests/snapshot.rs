//! Packing and unpacking workspaces (`ironhand_sandbox::snapshot`): round trips, the bound
//! that keeps the newest files, and archives shaped to escape the workspace.

use ironhand_sandbox::snapshot::{UnpackLimits, pack, unpack, workspace_state};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime};

fn set_mtime(path: &Path, ago_secs: u64) {
    let when = SystemTime::now() - Duration::from_secs(ago_secs);
    fs::File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(when)
        .expect("set mtime");
}

fn no_limits() -> UnpackLimits {
    UnpackLimits {
        max_bytes: 0,
        owner: None,
    }
}

fn packed(root: &Path, max_bytes: u64) -> (Vec<u8>, ironhand_sandbox::snapshot::PackReport) {
    let mut out = Vec::new();
    let report = pack(root, &mut out, max_bytes).expect("pack");
    (out, report)
}

#[test]
fn a_round_trip_keeps_files_directories_links_modes_and_times() {
    let src = tempfile::tempdir().expect("tempdir");
    let root = src.path();
    fs::write(root.join("notes.txt"), "hello from the first instance\n").expect("write");
    fs::create_dir_all(root.join("project/src")).expect("mkdir");
    let binary: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(root.join("project/src/data.bin"), &binary).expect("write");
    fs::write(root.join("project/run.sh"), "#!/bin/sh\necho hi\n").expect("write");
    fs::set_permissions(
        root.join("project/run.sh"),
        fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    fs::create_dir(root.join("empty")).expect("mkdir");
    symlink("notes.txt", root.join("link-inside")).expect("symlink");
    symlink("/etc/passwd", root.join("link-outside")).expect("symlink");
    let long_dir = "d".repeat(120);
    fs::create_dir(root.join(&long_dir)).expect("mkdir");
    fs::write(root.join(&long_dir).join("f".repeat(150)), "long names").expect("write");
    symlink("t".repeat(300), root.join("long-link")).expect("symlink");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .expect("mkfifo");
    set_mtime(&root.join("notes.txt"), 3600);

    let (archive, report) = packed(root, 0);
    assert_eq!(report.files, 4, "{report:?}");
    assert_eq!(report.left_out_files, 0);
    assert!(archive.len() < binary.len(), "compressed");

    let dst = tempfile::tempdir().expect("tempdir");
    let back = unpack(dst.path(), archive.as_slice(), no_limits()).expect("unpack");
    assert_eq!(back.refused, 0, "{back:?}");
    assert_eq!(back.files, 4);
    let d = dst.path();
    assert_eq!(
        fs::read_to_string(d.join("notes.txt")).expect("read"),
        "hello from the first instance\n"
    );
    assert_eq!(
        fs::read(d.join("project/src/data.bin")).expect("read"),
        binary
    );
    assert_eq!(
        fs::metadata(d.join("project/run.sh"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    assert!(d.join("empty").is_dir());
    // Links come back as links, with their targets as they were (never followed).
    assert_eq!(
        fs::read_link(d.join("link-inside")).expect("link"),
        Path::new("notes.txt")
    );
    assert_eq!(
        fs::read_link(d.join("link-outside")).expect("link"),
        Path::new("/etc/passwd")
    );
    assert_eq!(
        fs::read_link(d.join("long-link")).expect("link"),
        Path::new(&"t".repeat(300))
    );
    assert_eq!(
        fs::read_to_string(d.join(&long_dir).join("f".repeat(150))).expect("read"),
        "long names"
    );
    assert!(!d.join("pipe").exists(), "FIFOs are not kept");
    let (before, after) = (
        fs::metadata(root.join("notes.txt")).expect("meta").mtime(),
        fs::metadata(d.join("notes.txt")).expect("meta").mtime(),
    );
    assert_eq!(before, after, "modification times survive");
}

#[test]
fn over_the_bound_the_newest_files_are_kept_and_the_rest_reported() {
    let src = tempfile::tempdir().expect("tempdir");
    let root = src.path();
    for (name, ago) in [("oldest", 300), ("older", 200), ("newest", 100)] {
        fs::write(root.join(name), vec![b'x'; 10_000]).expect("write");
        set_mtime(&root.join(name), ago);
    }
    fs::write(root.join("small-but-old"), b"tiny").expect("write");
    set_mtime(&root.join("small-but-old"), 1000);
    let (archive, report) = packed(root, 24_000);
    assert_eq!(report.files, 3, "{report:?}");
    assert_eq!((report.left_out_files, report.left_out_bytes), (1, 10_000));
    assert_eq!(report.left_out, ["/home/ubuntu/oldest"]);

    let dst = tempfile::tempdir().expect("tempdir");
    unpack(dst.path(), archive.as_slice(), no_limits()).expect("unpack");
    assert!(dst.path().join("newest").exists());
    assert!(dst.path().join("older").exists());
    // Older and smaller still fits after a bigger, newer one did not.
    assert!(dst.path().join("small-but-old").exists());
    assert!(!dst.path().join("oldest").exists());
}

#[test]
fn the_state_changes_with_the_files_and_only_then() {
    let src = tempfile::tempdir().expect("tempdir");
    let root = src.path();
    fs::create_dir(root.join("a")).expect("mkdir");
    fs::write(root.join("a/f"), "1").expect("write");
    // Within a second of a change the state never repeats (file times are coarse).
    assert_ne!(
        workspace_state(root).expect("state"),
        workspace_state(root).expect("state")
    );
    std::thread::sleep(Duration::from_millis(1100));
    let settled = workspace_state(root).expect("state");
    assert_eq!(settled, workspace_state(root).expect("state"));
    fs::remove_file(root.join("a/f")).expect("rm");
    std::thread::sleep(Duration::from_millis(1100));
    assert_ne!(settled, workspace_state(root).expect("state"));
}

/// A raw tar header: any name, no checks (what a hostile archive can hold).
fn raw_header(name: &[u8], kind: tar::EntryType, size: u64, link: &[u8]) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    h
}

/// `(path, kind, link target, content)` of one raw entry.
type RawEntry<'a> = (&'a [u8], tar::EntryType, &'a [u8], &'a [u8]);

fn hostile_archive(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        let h = raw_header(name, *kind, data.len() as u64, link);
        tar.append(&h, *data).expect("append");
    }
    let raw = tar.into_inner().expect("tar");
    let mut z = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd");
    z.write_all(&raw).expect("compress");
    z.finish().expect("finish")
}

#[test]
fn hostile_entries_are_refused_and_nothing_outside_is_touched() {
    let outside = tempfile::tempdir().expect("tempdir");
    fs::write(outside.path().join("target"), "untouched").expect("write");
    let out = outside.path().to_string_lossy().into_owned();
    let out_target = format!("{out}/target");
    let parent_write = format!(
        "../{}/escaped",
        outside.path().file_name().expect("name").to_string_lossy()
    );
    let work = tempfile::tempdir().expect("tempdir");
    let root = work.path().join("home");
    fs::create_dir(&root).expect("mkdir");
    use tar::EntryType as T;
    let archive = hostile_archive(&[
        (b"../x", T::Regular, b"", b"up"),
        (parent_write.as_bytes(), T::Regular, b"", b"up"),
        (b"/abs-file", T::Regular, b"", b"abs"),
        // A link to a directory outside, then a write through it.
        (b"d", T::Symlink, out.as_bytes(), b""),
        (b"d/planted", T::Regular, b"", b"through the link"),
        (b"d/sub/deeper", T::Regular, b"", b"through the link"),
        // A link to a file outside, then a regular entry of the same name: the link is
        // replaced, the file outside is not written.
        (b"f", T::Symlink, out_target.as_bytes(), b""),
        (b"f", T::Regular, b"", b"inside"),
        (b"hard", T::Link, b"f", b""),
        (b"dev", T::Char, b"", b""),
        (b"ok.txt", T::Regular, b"", b"fine"),
    ]);
    let report = unpack(&root, archive.as_slice(), no_limits()).expect("unpack");
    assert_eq!(report.refused, 7, "{report:?}");
    assert_eq!(
        fs::read_to_string(outside.path().join("target")).expect("read"),
        "untouched"
    );
    assert!(!outside.path().join("planted").exists());
    assert!(!outside.path().join("sub").exists());
    assert!(!outside.path().join("escaped").exists());
    assert!(!work.path().join("x").exists());
    assert!(!Path::new("/abs-file").exists());
    assert_eq!(fs::read_to_string(root.join("f")).expect("read"), "inside");
    assert!(
        !fs::symlink_metadata(root.join("f"))
            .expect("meta")
            .file_type()
            .is_symlink()
    );
    assert!(
        fs::symlink_metadata(root.join("d"))
            .expect("meta")
            .file_type()
            .is_symlink()
    );
    assert!(!root.join("hard").exists() && !root.join("dev").exists());
    assert_eq!(
        fs::read_to_string(root.join("ok.txt")).expect("read"),
        "fine"
    );
}

#[test]
fn unpacking_stays_within_the_bound_and_refuses_what_is_not_a_snapshot() {
    let src = tempfile::tempdir().expect("tempdir");
    fs::write(src.path().join("a"), vec![1u8; 4000]).expect("write");
    fs::write(src.path().join("b"), vec![2u8; 4000]).expect("write");
    let (archive, _) = packed(src.path(), 0);
    let dst = tempfile::tempdir().expect("tempdir");
    let report = unpack(
        dst.path(),
        archive.as_slice(),
        UnpackLimits {
            max_bytes: 5000,
            owner: None,
        },
    )
    .expect("unpack");
    assert_eq!((report.files, report.refused), (1, 1), "{report:?}");
    assert!(dst.path().join("a").exists() && !dst.path().join("b").exists());

    let garbage = tempfile::tempdir().expect("tempdir");
    assert!(unpack(garbage.path(), &b"not zstd at all"[..], no_limits()).is_err());
    // Cut short: an error, never a hang or a panic.
    let cut = &archive[..archive.len() / 2];
    assert!(unpack(garbage.path(), cut, no_limits()).is_err());
}
