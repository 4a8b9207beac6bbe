//! Workspace snapshots: a session's `/home/ubuntu` packed as tar + zstd, and unpacked again
//! on whichever instance runs the session next.
//!
//! **Packing** reads the workspace as the host while the sandbox may still be writing (a
//! command left running in the background), so, like the file tools, it never lets the
//! kernel resolve a path: it walks from a directory descriptor one component at a time with
//! `O_NOFOLLOW`, one open directory per level. Directories, regular files and symbolic links
//! (as links, never followed) are kept; sockets, FIFOs and devices are skipped. A file whose
//! size changes while it is read is stored at the size it had when opened (cut, or padded
//! with zeros), so the archive stays well formed. Over `max_bytes` of file content, the
//! newest files (by modification time) that fit are kept and the others are *left out*: the
//! report says how many, how large, and names the newest of them.
//!
//! **Unpacking** trusts nothing in the archive (a previous sandbox could have shaped the
//! workspace, and the store could hand back anything): entries are created one component at
//! a time under the workspace with `O_NOFOLLOW` and `O_EXCL`, so no link in the archive or
//! already on disk is ever followed; paths with `..`, absolute paths, hard links, devices,
//! FIFOs and anything else unusual are refused (skipped and counted); file content is bounded
//! by `max_bytes`, the entry count by [`MAX_ENTRIES`], GNU long names by 4 KiB and the
//! decompressed stream by the bound plus its headers. What is created belongs to the sandbox
//! user, with permission bits from the archive minus set-id and sticky bits.

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// Directory levels walked; deeper entries are left out (and one descriptor is held per level).
pub const MAX_DEPTH: usize = 128;
/// Entries (files, directories, links) one snapshot holds at most.
pub const MAX_ENTRIES: u64 = 1_000_000;
/// Paths named in a report, newest first.
pub const NAMED_PATHS: usize = 20;
/// Longest path or link target accepted from an archive.
const MAX_NAME: u64 = 4096;
/// zstd level: fast, and most of a workspace's bytes compress well anyway.
const ZSTD_LEVEL: i32 = 3;

/// What packing did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackReport {
    /// Regular files stored, and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// Files left out because of the bound (or too deep, or unreadable), and their bytes.
    pub left_out_files: u64,
    pub left_out_bytes: u64,
    /// Workspace paths of the newest files left out (at most [`NAMED_PATHS`]).
    pub left_out: Vec<String>,
    /// The workspace's state before it was read (see [`workspace_state`]).
    pub state: String,
}

/// What unpacking did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackReport {
    pub files: u64,
    pub bytes: u64,
    /// Entries refused (unsafe paths, links out of place, kinds not restored, over the bound).
    pub refused: u64,
    /// The first refused entries with why (at most [`NAMED_PATHS`]).
    pub refusals: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
}

#[derive(Debug)]
struct Item {
    /// Components below the workspace root.
    comps: Vec<OsString>,
    kind: Kind,
    size: u64,
    mtime: (i64, u64),
    mode: u32,
    target: Option<OsString>,
}

impl Item {
    fn shown(&self) -> String {
        let mut s = ironhand_core::ports::sandbox::SANDBOX_HOME.to_string();
        for c in &self.comps {
            s.push('/');
            s.push_str(&c.to_string_lossy());
        }
        s
    }

    fn rel(&self) -> PathBuf {
        self.comps.iter().collect()
    }
}

fn open_dir_at(dir: &OwnedFd, name: &OsStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn open_root(root: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        rustix::fs::CWD,
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn newest(st: &rustix::fs::Stat) -> i128 {
    let m = i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec);
    let c = i128::from(st.st_ctime) * 1_000_000_000 + i128::from(st.st_ctime_nsec);
    m.max(c)
}

/// The walk of a workspace: its entries in depth-first order (a directory before what it
/// holds, names sorted), what was too deep or too many, and its state.
struct Scan {
    items: Vec<Item>,
    skipped_files: u64,
    skipped_bytes: u64,
    skipped_paths: Vec<String>,
    state: String,
}

fn scan(root: &Path) -> io::Result<Scan> {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    let root_fd = open_root(root)?;
    // The root's own times are left out: the host sets its owner and mode whenever the
    // sandbox starts. What changes in it shows in its entries (count, sizes, their times).
    let mut latest = 0i128;
    let mut out = Scan {
        items: Vec::new(),
        skipped_files: 0,
        skipped_bytes: 0,
        skipped_paths: Vec::new(),
        state: String::new(),
    };
    let mut total: u64 = 0;
    // (directory, its components, its sorted names, next index)
    let mut stack: Vec<(OwnedFd, Vec<OsString>, Vec<OsString>, usize)> =
        vec![(root_fd.try_clone()?, Vec::new(), list(&root_fd)?, 0)];
    while let Some((dir, comps, names, next)) = stack.last_mut() {
        let Some(name) = names.get(*next).cloned() else {
            stack.pop();
            continue;
        };
        *next += 1;
        let Ok(st) = rustix::fs::statat(&*dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue; // gone meanwhile
        };
        latest = latest.max(newest(&st));
        let mut item_comps = comps.clone();
        item_comps.push(name.clone());
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => Kind::Dir,
            FileType::RegularFile => Kind::File,
            FileType::Symlink => Kind::Symlink,
            _ => continue, // sockets, FIFOs, devices
        };
        let size = if kind == Kind::File {
            st.st_size.max(0) as u64
        } else {
            0
        };
        total = total.saturating_add(size);
        let too_many = out.items.len() as u64 >= MAX_ENTRIES;
        let too_deep = kind == Kind::Dir && item_comps.len() >= MAX_DEPTH;
        if too_many || (too_deep && !dir_is_empty(&*dir, &name)) {
            let item = Item {
                comps: item_comps,
                kind,
                size,
                mtime: (st.st_mtime, st.st_mtime_nsec),
                mode: st.st_mode,
                target: None,
            };
            out.skipped_files += 1;
            out.skipped_bytes = out.skipped_bytes.saturating_add(size);
            if out.skipped_paths.len() < NAMED_PATHS {
                out.skipped_paths.push(item.shown());
            }
            continue;
        }
        let target = if kind == Kind::Symlink {
            match rustix::fs::readlinkat(&*dir, name.as_os_str(), Vec::new()) {
                Ok(t) => Some(OsString::from_vec(t.into_bytes())),
                Err(_) => continue,
            }
        } else {
            None
        };
        let child = if kind == Kind::Dir {
            match open_dir_at(dir, &name) {
                Ok(fd) => match list(&fd) {
                    Ok(names) => Some((fd, names)),
                    Err(_) => continue,
                },
                Err(_) => continue,
            }
        } else {
            None
        };
        out.items.push(Item {
            comps: item_comps.clone(),
            kind,
            size,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            mode: st.st_mode,
            target,
        });
        if let Some((fd, names)) = child {
            stack.push((fd, item_comps, names, 0));
        }
    }
    out.state = format!("{}:{}:{}", out.items.len(), total, latest);
    // Changed within the last second: the same timestamps could hide a later change (the
    // kernel's clock for file times is coarse), so the state is never taken as unchanged.
    if latest >= started - 1_000_000_000 {
        out.state
            .push_str(&format!(":settling-{}", uuid::Uuid::new_v4().simple()));
    }
    Ok(out)
}

fn dir_is_empty(parent: &OwnedFd, name: &OsStr) -> bool {
    open_dir_at(parent, name)
        .ok()
        .and_then(|fd| list(&fd).ok())
        .is_some_and(|names| names.is_empty())
}

/// The names in a directory (without `.` and `..`), sorted.
fn list(dir: &OwnedFd) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    let mut entries = rustix::fs::Dir::read_from(dir)?;
    while let Some(entry) = entries.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        names.push(OsString::from_vec(name.to_vec()));
    }
    names.sort();
    Ok(names)
}

/// A cheap summary of the workspace under `root` (entries, bytes, newest modification or
/// change time): it differs after any write, creation, removal, rename or permission change
/// below it. Compared with the state kept when a snapshot was made, it says whether the
/// workspace changed since.
pub fn workspace_state(root: &Path) -> io::Result<String> {
    scan(root).map(|s| s.state)
}

/// [`workspace_state`] of a workspace nothing writes to (no sandbox runs): recent changes
/// do not make it unique, so an untouched workspace compares equal later.
pub fn quiet_workspace_state(root: &Path) -> io::Result<String> {
    workspace_state(root).map(|state| quiet(&state).to_string())
}

fn quiet(state: &str) -> &str {
    state
        .split_once(":settling-")
        .map_or(state, |(quiet, _)| quiet)
}

/// Gives a directory just created to the sandbox user.
type Own<'a> = &'a dyn Fn(&OwnedFd) -> io::Result<()>;

/// Descriptors of the directories above the entry being handled, reused from one entry to
/// the next (entries come in walk order, so most share their parent with the previous one).
struct Cursor {
    root: OwnedFd,
    open: Vec<(OsString, OwnedFd)>,
}

impl Cursor {
    fn new(root: OwnedFd) -> Self {
        Self {
            root,
            open: Vec::new(),
        }
    }

    /// The directory `parents` names under the root, opened without following links;
    /// missing ones are created (as the sandbox user) when `create` says how.
    fn dir(&mut self, parents: &[OsString], create: Option<Own<'_>>) -> io::Result<&OwnedFd> {
        let keep = self
            .open
            .iter()
            .zip(parents)
            .take_while(|((have, _), want)| have == *want)
            .count();
        self.open.truncate(keep);
        for name in &parents[keep..] {
            let parent = self.open.last().map_or(&self.root, |(_, fd)| fd);
            let fd = match open_dir_at(parent, name) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create.is_some() => {
                    match rustix::fs::mkdirat(parent, name.as_os_str(), Mode::from_raw_mode(0o755))
                    {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    let fd = open_dir_at(parent, name)?;
                    if let Some(own) = create {
                        own(&fd)?;
                    }
                    fd
                }
                Err(e) => return Err(e.into()),
            };
            self.open.push((name.clone(), fd));
        }
        Ok(self.open.last().map_or(&self.root, |(_, fd)| fd))
    }
}

/// Reads exactly `size` bytes of `inner`: a file that shrank is padded with zeros, one that
/// grew is cut, so the tar entry matches its header.
struct Exact<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(0) => {
                buf[..want].fill(0);
                want
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(_) => {
                // Unreadable now: the rest is zeros (the entry must stay well formed).
                buf[..want].fill(0);
                want
            }
        };
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn to_secs(mtime: (i64, u64)) -> u64 {
    mtime.0.max(0) as u64
}

/// Packs the workspace under `root` into `out` as tar + zstd. With `max_bytes` > 0, at most
/// that many bytes of file content: the newest files that fit, the others left out (see the
/// report). Directories and links always go in.
pub fn pack(root: &Path, out: impl Write, max_bytes: u64) -> io::Result<PackReport> {
    pack_scanned(root, scan(root)?, out, max_bytes)
}

/// Like [`pack`], unless the workspace is still in state `unchanged_from` (then `None`, and
/// `out` is never opened).
pub fn pack_if_changed<W: Write>(
    root: &Path,
    unchanged_from: Option<&str>,
    out: impl FnOnce() -> io::Result<W>,
    max_bytes: u64,
) -> io::Result<Option<PackReport>> {
    let scan = scan(root)?;
    // A state taken while the workspace was settling never compares equal; one taken when
    // it had settled (or of a quiet workspace) compares with this one settled or not: any
    // change since would show in a later time.
    if unchanged_from == Some(quiet(&scan.state)) {
        return Ok(None);
    }
    pack_scanned(root, scan, out()?, max_bytes).map(Some)
}

fn pack_scanned(
    root: &Path,
    scan: Scan,
    out: impl Write,
    max_bytes: u64,
) -> io::Result<PackReport> {
    let mut report = PackReport {
        left_out_files: scan.skipped_files,
        left_out_bytes: scan.skipped_bytes,
        left_out: scan.skipped_paths,
        state: scan.state,
        ..PackReport::default()
    };
    let mut keep = vec![true; scan.items.len()];
    let total: u64 = scan.items.iter().map(|i| i.size).sum();
    let budget = if max_bytes == 0 { u64::MAX } else { max_bytes };
    if total > budget {
        let mut files: Vec<usize> = (0..scan.items.len())
            .filter(|i| scan.items[*i].kind == Kind::File)
            .collect();
        // Newest first; among equals, the path decides (stable across runs).
        files.sort_by(|a, b| {
            let (x, y) = (&scan.items[*a], &scan.items[*b]);
            y.mtime.cmp(&x.mtime).then_with(|| x.comps.cmp(&y.comps))
        });
        let mut used = 0u64;
        let mut dropped = Vec::new();
        for i in files {
            let size = scan.items[i].size;
            if used.saturating_add(size) <= budget {
                used += size;
            } else {
                keep[i] = false;
                dropped.push(i);
            }
        }
        for i in dropped {
            report.left_out_files += 1;
            report.left_out_bytes = report.left_out_bytes.saturating_add(scan.items[i].size);
            if report.left_out.len() < NAMED_PATHS {
                report.left_out.push(scan.items[i].shown());
            }
        }
    }

    let encoder = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
    let mut tar = tar::Builder::new(encoder);
    let mut cursor = Cursor::new(open_root(root)?);
    let mut written = 0u64;
    for (item, keep) in scan.items.iter().zip(keep) {
        if !keep {
            continue;
        }
        let Some((name, parents)) = item.comps.split_last() else {
            continue;
        };
        let mut header = tar::Header::new_gnu();
        header.set_mtime(to_secs(item.mtime));
        header.set_mode(item.mode & 0o777);
        match item.kind {
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                tar.append_data(&mut header, item.rel(), io::empty())?;
            }
            Kind::Symlink => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                let target = item.target.clone().unwrap_or_default();
                tar.append_link(&mut header, item.rel(), PathBuf::from(target))?;
            }
            Kind::File => {
                let Ok(dir) = cursor.dir(parents, None) else {
                    continue; // its directory went away or was replaced
                };
                let Ok(fd) = rustix::fs::openat(
                    dir,
                    name.as_os_str(),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                    Mode::empty(),
                ) else {
                    continue;
                };
                let Ok(st) = rustix::fs::fstat(&fd) else {
                    continue;
                };
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    continue;
                }
                let size = st.st_size.max(0) as u64;
                if written.saturating_add(size) > budget {
                    // It grew past what is left of the bound since the walk.
                    report.left_out_files += 1;
                    report.left_out_bytes = report.left_out_bytes.saturating_add(size);
                    if report.left_out.len() < NAMED_PATHS {
                        report.left_out.push(item.shown());
                    }
                    continue;
                }
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(st.st_mode & 0o777);
                header.set_mtime(st.st_mtime.max(0) as u64);
                header.set_size(size);
                let data = Exact {
                    inner: File::from(fd),
                    remaining: size,
                };
                tar.append_data(&mut header, item.rel(), data)?;
                written += size;
                report.files += 1;
                report.bytes += size;
            }
        }
    }
    let encoder = tar.into_inner()?;
    let mut out = encoder.finish()?;
    out.flush()?;
    Ok(report)
}

/// Bounds unpacking.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    /// Bytes of file content at most (0 = no bound).
    pub max_bytes: u64,
    /// The host uid/gid of the sandbox user, given everything created (`None`: as the
    /// server).
    pub owner: Option<(u32, u32)>,
}

/// Stops the decompressed stream past a limit (headers, padding and skipped data count).
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::other(
                "the snapshot unpacks to more than the workspace limit allows",
            ));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// A path from an archive as plain components, or why it is refused.
fn safe_components(raw: &[u8]) -> Result<Vec<OsString>, &'static str> {
    if raw.is_empty() {
        return Err("empty path");
    }
    if raw.contains(&0) {
        return Err("NUL in path");
    }
    let path = Path::new(OsStr::from_bytes(raw));
    let mut comps = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => comps.push(n.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir => return Err("`..` in path"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
        }
    }
    if comps.is_empty() {
        return Err("empty path");
    }
    Ok(comps)
}

/// Reads a GNU long name or link entry (bounded), without its trailing NULs.
fn read_long_name(entry: &mut impl Read, size: u64) -> io::Result<Option<Vec<u8>>> {
    if size > MAX_NAME {
        io::copy(entry, &mut io::sink())?;
        return Ok(None);
    }
    let mut buf = Vec::new();
    entry.take(MAX_NAME).read_to_end(&mut buf)?;
    while buf.last() == Some(&0) {
        buf.pop();
    }
    Ok(Some(buf))
}

fn timestamps(secs: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: i64::try_from(secs).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn chown_fd(fd: &OwnedFd, owner: Option<(u32, u32)>) -> io::Result<()> {
    match owner {
        Some((uid, gid)) => std::os::unix::fs::fchown(fd, Some(uid), Some(gid)),
        None => Ok(()),
    }
}

/// Unpacks a tar + zstd stream made by [`pack`] into the workspace under `root` (which
/// should be empty; existing entries of the same name are replaced, except directories).
/// Unsafe or unexpected entries are refused and counted (see the module docs); a stream that
/// is not a snapshot at all, or is cut short, is an error (what came before it stays).
pub fn unpack(root: &Path, input: impl Read, limits: UnpackLimits) -> io::Result<UnpackReport> {
    let stream_cap = if limits.max_bytes == 0 {
        u64::MAX
    } else {
        // Content, plus headers and padding of every entry allowed.
        limits
            .max_bytes
            .saturating_add(limits.max_bytes / 8)
            .saturating_add(MAX_ENTRIES.saturating_mul(1024).min(1 << 30))
    };
    let decoder = zstd::stream::read::Decoder::new(input)?;
    let mut archive = tar::Archive::new(Capped {
        inner: decoder,
        left: stream_cap,
    });
    let mut cursor = Cursor::new(open_root(root)?);
    let mut report = UnpackReport::default();
    let mut entries_seen = 0u64;
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    let own = move |fd: &OwnedFd| chown_fd(fd, limits.owner);
    let refuse = |report: &mut UnpackReport, path: &[u8], why: &str| {
        report.refused += 1;
        if report.refusals.len() < NAMED_PATHS {
            report
                .refusals
                .push(format!("{}: {why}", String::from_utf8_lossy(path)));
        }
    };
    for entry in archive.entries()?.raw(true) {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        let size = entry.header().size()?;
        match kind {
            tar::EntryType::GNULongName => {
                long_name = read_long_name(&mut entry, size)?;
                if long_name.is_none() {
                    refuse(&mut report, b"(long name)", "name longer than 4 KiB");
                    long_name = Some(Vec::new()); // makes the next entry refused
                }
                continue;
            }
            tar::EntryType::GNULongLink => {
                long_link = read_long_name(&mut entry, size)?;
                if long_link.is_none() {
                    long_link = Some(Vec::new());
                }
                continue;
            }
            // Extended headers are not written by `pack`: their data is skipped.
            tar::EntryType::XHeader | tar::EntryType::XGlobalHeader => continue,
            _ => {}
        }
        let raw_path = long_name
            .take()
            .unwrap_or_else(|| entry.header().path_bytes().into_owned());
        let raw_link = long_link
            .take()
            .or_else(|| entry.header().link_name_bytes().map(|l| l.into_owned()));
        entries_seen += 1;
        if entries_seen > MAX_ENTRIES {
            refuse(&mut report, &raw_path, "too many entries");
            continue;
        }
        let comps = match safe_components(&raw_path) {
            Ok(c) => c,
            Err(why) => {
                refuse(&mut report, &raw_path, why);
                continue;
            }
        };
        let Some((name, parents)) = comps.split_last() else {
            continue;
        };
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        let mtime = entry.header().mtime().unwrap_or(0);
        let dir = match cursor.dir(parents, Some(&own)) {
            Ok(dir) => dir,
            Err(e) => {
                // A parent is a link or a file (or cannot be made): never gone through.
                refuse(
                    &mut report,
                    &raw_path,
                    &format!("parent directory unusable: {e}"),
                );
                continue;
            }
        };
        let result = match kind {
            tar::EntryType::Directory => make_dir(dir, name, mode, &own),
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if limits.max_bytes != 0 && report.bytes.saturating_add(size) > limits.max_bytes {
                    refuse(&mut report, &raw_path, "over the workspace limit");
                    continue;
                }
                make_file(dir, name, mode, mtime, size, &mut entry, &own).map(|()| {
                    report.files += 1;
                    report.bytes += size;
                })
            }
            tar::EntryType::Symlink => match raw_link {
                Some(target) if !target.is_empty() && !target.contains(&0) => {
                    make_symlink(dir, name, &target, mtime, limits.owner)
                }
                _ => Err(io::Error::other("link without a target")),
            },
            tar::EntryType::Link => Err(io::Error::other("hard links are not restored")),
            _ => Err(io::Error::other("kind of entry not restored")),
        };
        if let Err(e) = result {
            // The entry's unread data is skipped by the archive reader.
            refuse(&mut report, &raw_path, &e.to_string());
        }
    }
    Ok(report)
}

/// Removes what is at `name` unless it is a directory (a link is removed, never followed).
fn clear_name(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            Err(io::Error::other("a directory is in the way"))
        }
        Ok(_) => Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?),
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn make_dir(dir: &OwnedFd, name: &OsStr, mode: u32, own: Own<'_>) -> io::Result<()> {
    match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    // An existing link or file of that name is not a directory: refused by O_DIRECTORY.
    let fd = open_dir_at(dir, name)?;
    own(&fd)?;
    // The sandbox user keeps the right to manage its own directories.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode | 0o700))?;
    Ok(())
}

fn make_file(
    dir: &OwnedFd,
    name: &OsStr,
    mode: u32,
    mtime: u64,
    size: u64,
    data: &mut impl Read,
    own: Own<'_>,
) -> io::Result<()> {
    clear_name(dir, name)?;
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    own(&fd)?;
    let mut file = File::from(fd);
    let copied = io::copy(&mut data.take(size), &mut file)?;
    if copied != size {
        return Err(io::Error::other("the snapshot ends inside this file"));
    }
    rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))?;
    rustix::fs::futimens(&file, &timestamps(mtime))?;
    Ok(())
}

fn make_symlink(
    dir: &OwnedFd,
    name: &OsStr,
    target: &[u8],
    mtime: u64,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    clear_name(dir, name)?;
    rustix::fs::symlinkat(OsStr::from_bytes(target), dir, name)?;
    if let Some((uid, gid)) = owner {
        rustix::fs::chownat(
            dir,
            name,
            Some(rustix::fs::Uid::from_raw_unchecked(uid)),
            Some(rustix::fs::Gid::from_raw_unchecked(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
    }
    let _ = rustix::fs::utimensat(dir, name, &timestamps(mtime), AtFlags::SYMLINK_NOFOLLOW);
    Ok(())
}

/// Empties the workspace under `root` (its entries go; the root stays), never following a
/// link.
pub fn clear(root: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let path = entry.path();
        // `file_type` does not follow links; `remove_dir_all` does not either.
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}
