//! File tools, run on the host against the session's directories.
//!
//! The sandbox can put symbolic links anywhere in its files (to `/etc/shadow`, to another
//! session's workspace, …), and it runs while the host reads and writes, so paths are never
//! resolved by the host's kernel from a path string. Every lookup walks one component at a
//! time from a directory descriptor with `O_NOFOLLOW`; a symbolic link met on the way is
//! read and its target resolved again from the top as a *sandbox* path, which must stay
//! under `/home/ubuntu` or `/tmp`. Writes create a temporary file with `O_EXCL` in the
//! resolved parent directory and rename it over the target.

use crate::config::LocalSandboxConfig;
use crate::host::{Host, SessionDirs};
use crate::output::human_bytes;
use ironhand_core::ports::sandbox::{
    ContentMatch, FileText, SANDBOX_HOME, SandboxError, SandboxResult, WriteOptions,
};
use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::ops::ControlFlow;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// Symbolic links followed while resolving one path.
const MAX_LINK_HOPS: usize = 40;
/// `file_find_in_content` returns at most this many lines…
const MAX_CONTENT_MATCHES: usize = 200;
/// …each cut to this many characters.
const MAX_MATCH_CHARS: usize = 500;
/// `file_find_by_name` returns at most this many paths…
const MAX_NAME_MATCHES: usize = 1000;
/// …after looking at no more than this many entries…
const MAX_WALK_ENTRIES: usize = 200_000;
/// …no deeper than this (the walk holds one open directory per level).
const MAX_WALK_DEPTH: usize = 64;
/// `file_find_in_content` matches at most this many bytes of a line (its beginning).
const MAX_LINE_BYTES: usize = 64 * 1024;
/// Files are read in chunks of this size (never a whole line or file at once).
const CHUNK: usize = 64 * 1024;

fn invalid(msg: impl Into<String>) -> SandboxError {
    SandboxError::Invalid(msg.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    Home,
    Tmp,
}

impl Area {
    fn mount(self) -> &'static str {
        match self {
            Area::Home => SANDBOX_HOME,
            Area::Tmp => "/tmp",
        }
    }
}

/// A path inside the sandbox: one of the two areas plus plain components (no `.`/`..`).
#[derive(Debug, Clone)]
struct Logical {
    area: Area,
    comps: Vec<OsString>,
}

impl Logical {
    fn display(&self) -> String {
        let mut s = self.area.mount().to_string();
        for c in &self.comps {
            s.push('/');
            s.push_str(&c.to_string_lossy());
        }
        s
    }

    fn child(&self, name: &OsStr) -> Logical {
        let mut comps = self.comps.clone();
        comps.push(name.to_os_string());
        Logical {
            area: self.area,
            comps,
        }
    }
}

fn outside(path: &str) -> SandboxError {
    invalid(format!(
        "{path} is outside the sandbox's files: only paths under /home/ubuntu (or relative to it) and /tmp can be used"
    ))
}

/// Splits an absolute, already normalised component list into area + rest.
fn area_of(comps: &[OsString]) -> Option<(Area, Vec<OsString>)> {
    let s = |i: usize| comps.get(i).map(|c| c.as_bytes());
    if s(0) == Some(b"home") && s(1) == Some(b"ubuntu") {
        Some((Area::Home, comps[2..].to_vec()))
    } else if s(0) == Some(b"tmp") {
        Some((Area::Tmp, comps[1..].to_vec()))
    } else {
        None
    }
}

/// A path from the model: absolute (`/home/ubuntu/...`, `/tmp/...`), `~/...`, or relative
/// to the home. `..` is refused outright.
fn parse_user_path(path: &str) -> SandboxResult<Logical> {
    if path.is_empty() {
        return Err(invalid("the path is empty"));
    }
    if path.contains('\0') {
        return Err(invalid("the path contains a NUL character"));
    }
    let absolute = if let Some(rest) = path.strip_prefix('~') {
        if !(rest.is_empty() || rest.starts_with('/')) {
            return Err(outside(path));
        }
        format!("{SANDBOX_HOME}/{rest}")
    } else if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{SANDBOX_HOME}/{path}")
    };
    let mut comps = Vec::new();
    for c in absolute.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(invalid(format!(
                    "{path}: '..' is not allowed in paths; use an absolute path under /home/ubuntu or /tmp"
                )));
            }
            c => comps.push(OsString::from(c)),
        }
    }
    let (area, comps) = area_of(&comps).ok_or_else(|| outside(path))?;
    Ok(Logical { area, comps })
}

/// The target of a symbolic link found at `dir/<name>`, as a sandbox path. `..` in link
/// targets is resolved lexically; the result must still be inside an area.
fn link_target(dir: &Logical, link_name: &OsStr, target: &[u8]) -> SandboxResult<Logical> {
    let mut comps: Vec<OsString> = if target.first() == Some(&b'/') {
        Vec::new()
    } else {
        let mut base: Vec<OsString> = dir
            .area
            .mount()
            .split('/')
            .filter(|c| !c.is_empty())
            .map(OsString::from)
            .collect();
        base.extend(dir.comps.iter().cloned());
        base
    };
    for c in target.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                comps.pop();
            }
            c => comps.push(OsString::from_vec(c.to_vec())),
        }
    }
    let (area, comps) = area_of(&comps).ok_or_else(|| {
        invalid(format!(
            "{} is a symbolic link to {}, which is outside the sandbox's files (/home/ubuntu, /tmp)",
            dir.child(link_name).display(),
            String::from_utf8_lossy(target)
        ))
    })?;
    Ok(Logical { area, comps })
}

fn errno_msg(path: &str, e: Errno) -> SandboxError {
    match e {
        Errno::NOENT => invalid(format!("{path}: no such file or directory")),
        Errno::NOTDIR => invalid(format!("{path}: not a directory")),
        Errno::ISDIR => invalid(format!("{path} is a directory")),
        Errno::ACCESS | Errno::PERM => invalid(format!("{path}: permission denied")),
        Errno::LOOP => invalid(format!("{path}: symbolic link changed while in use")),
        Errno::NOSPC | Errno::DQUOT => invalid(format!("{path}: no space left on the disk")),
        e => invalid(format!("{path}: {}", std::io::Error::from(e))),
    }
}

fn io_msg(path: &str, e: std::io::Error) -> SandboxError {
    invalid(format!("{path}: {e}"))
}

/// The parent directory (open) and final name of a resolved path.
struct Resolved {
    dir: OwnedFd,
    /// `None` when the path is an area's root itself.
    name: Option<OsString>,
    logical: Logical,
}

impl Resolved {
    fn parent_logical(&self) -> Logical {
        let mut l = self.logical.clone();
        if self.name.is_some() {
            l.comps.pop();
        }
        l
    }
}

/// File operations of one session.
pub(crate) struct SessionFiles<'a> {
    pub(crate) host: &'a Host,
    pub(crate) config: &'a LocalSandboxConfig,
    pub(crate) dirs: &'a SessionDirs,
}

impl SessionFiles<'_> {
    fn open_area(&self, area: Area) -> SandboxResult<OwnedFd> {
        let host_path: &Path = match area {
            Area::Home => &self.dirs.home,
            Area::Tmp => &self.dirs.tmp,
        };
        rustix::fs::openat(
            CWD,
            host_path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            SandboxError::Unavailable(format!(
                "sandbox directory {} unusable: {e}",
                host_path.display()
            ))
        })
    }

    fn open_dir_at(&self, dir: &OwnedFd, name: &OsStr) -> Result<OwnedFd, Errno> {
        rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    }

    /// Walks `logical` from its area's root without ever letting the kernel follow a link.
    fn resolve(
        &self,
        logical: Logical,
        create_parents: bool,
        follow_final: bool,
    ) -> SandboxResult<Resolved> {
        let mut cur = logical;
        let mut hops = 0usize;
        'restart: loop {
            let mut dir = self.open_area(cur.area)?;
            let Some((last, parents)) = cur.comps.split_last() else {
                return Ok(Resolved {
                    dir,
                    name: None,
                    logical: cur,
                });
            };
            for (i, comp) in parents.iter().enumerate() {
                let here = || Logical {
                    area: cur.area,
                    comps: cur.comps[..=i].to_vec(),
                };
                match self.open_dir_at(&dir, comp) {
                    Ok(fd) => dir = fd,
                    Err(Errno::NOENT) if create_parents => {
                        match rustix::fs::mkdirat(
                            &dir,
                            comp.as_os_str(),
                            Mode::from_raw_mode(0o755),
                        ) {
                            Ok(()) | Err(Errno::EXIST) => {}
                            Err(e) => return Err(errno_msg(&here().display(), e)),
                        }
                        let fd = self
                            .open_dir_at(&dir, comp)
                            .map_err(|e| errno_msg(&here().display(), e))?;
                        self.host
                            .chown_fd(&fd)
                            .map_err(|e| io_msg(&here().display(), e))?;
                        dir = fd;
                    }
                    Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                        let st =
                            rustix::fs::statat(&dir, comp.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                                .map_err(|e| errno_msg(&here().display(), e))?;
                        if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                            return Err(invalid(format!("{}: not a directory", here().display())));
                        }
                        hops += 1;
                        if hops > MAX_LINK_HOPS {
                            return Err(invalid(format!(
                                "{}: too many levels of symbolic links",
                                cur.display()
                            )));
                        }
                        let target = rustix::fs::readlinkat(&dir, comp.as_os_str(), Vec::new())
                            .map_err(|e| errno_msg(&here().display(), e))?;
                        let parent = Logical {
                            area: cur.area,
                            comps: cur.comps[..i].to_vec(),
                        };
                        let mut next = link_target(&parent, comp, target.as_bytes())?;
                        next.comps.extend(cur.comps[i + 1..].iter().cloned());
                        cur = next;
                        continue 'restart;
                    }
                    Err(e) => return Err(errno_msg(&here().display(), e)),
                }
            }
            if follow_final
                && let Ok(st) =
                    rustix::fs::statat(&dir, last.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                && FileType::from_raw_mode(st.st_mode) == FileType::Symlink
            {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return Err(invalid(format!(
                        "{}: too many levels of symbolic links",
                        cur.display()
                    )));
                }
                let target = rustix::fs::readlinkat(&dir, last.as_os_str(), Vec::new())
                    .map_err(|e| errno_msg(&cur.display(), e))?;
                let parent = Logical {
                    area: cur.area,
                    comps: parents.to_vec(),
                };
                cur = link_target(&parent, last, target.as_bytes())?;
                continue 'restart;
            }
            let name = last.clone();
            return Ok(Resolved {
                dir,
                name: Some(name),
                logical: cur,
            });
        }
    }

    /// Opens a regular file for reading (never through a link, never blocking on a FIFO).
    fn open_regular(&self, path: &str) -> SandboxResult<(File, u64, String)> {
        let r = self.resolve(parse_user_path(path)?, false, true)?;
        let shown = r.logical.display();
        let Some(name) = r.name.as_ref() else {
            return Err(invalid(format!("{shown} is a directory")));
        };
        let fd = rustix::fs::openat(
            &r.dir,
            name.as_os_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| errno_msg(&shown, e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| errno_msg(&shown, e))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {}
            FileType::Directory => return Err(invalid(format!("{shown} is a directory"))),
            _ => return Err(invalid(format!("{shown} is not a regular file"))),
        }
        Ok((File::from(fd), st.st_size.max(0) as u64, shown))
    }

    pub(crate) fn read_text(
        &self,
        path: &str,
        start_line: Option<i64>,
        end_line: Option<i64>,
        cap: usize,
    ) -> SandboxResult<FileText> {
        let (mut file, _, shown) = self.open_regular(path)?;
        let budget = self.config.max_scan_bytes;
        let negative = start_line.is_some_and(|s| s < 0) || end_line.is_some_and(|e| e < 0);
        let mut known_total = None;
        if negative {
            let scan = scan_lines(&mut file, budget, |_, _| ControlFlow::Continue(()))
                .map_err(|e| io_msg(&shown, e))?;
            if !scan.eof {
                return Err(invalid(format!(
                    "{shown} is larger than {}, too large to count its lines from the end: \
                     use non-negative line numbers, or `tail` in the shell",
                    human_bytes(budget)
                )));
            }
            known_total = Some(scan.lines);
            file.rewind().map_err(|e| io_msg(&shown, e))?;
        }
        let resolve_index = |v: Option<i64>, default: usize, total: Option<usize>| -> usize {
            match v {
                None => default,
                Some(v) if v >= 0 => usize::try_from(v).unwrap_or(usize::MAX),
                Some(v) => {
                    let total = total.unwrap_or(0) as i64;
                    usize::try_from((total + v).max(0)).unwrap_or(0)
                }
            }
        };
        let start = resolve_index(start_line, 0, known_total);
        let end = resolve_index(end_line, usize::MAX, known_total);

        // The file is read in chunks; lines outside the range are only counted, and at most
        // `cap` bytes are kept. Counting stops after `max_scan_bytes` (then `total_lines`
        // is the number of lines seen so far).
        let mut content: Vec<u8> = Vec::new();
        let mut truncated = false;
        let scan = scan_lines(&mut file, budget, |line, piece| {
            if line >= start && line < end && !truncated {
                if content.len() + piece.len() > cap {
                    let room = cap - content.len();
                    content.extend_from_slice(&piece[..room]);
                    let cut = crate::output::incomplete_suffix_len(&content);
                    content.truncate(content.len() - cut);
                    truncated = true;
                } else {
                    content.extend_from_slice(piece);
                }
            }
            ControlFlow::Continue(())
        })
        .map_err(|e| io_msg(&shown, e))?;
        Ok(FileText {
            path: shown,
            content: String::from_utf8_lossy(&content).into_owned(),
            truncated,
            total_lines: scan.lines,
        })
    }

    /// Reads a whole regular file (for appends and replacements), refusing files larger
    /// than `max_edit_bytes`.
    fn read_all(&self, path: &str, what: &str) -> SandboxResult<Vec<u8>> {
        let (file, size, shown) = self.open_regular(path)?;
        let max = self.config.max_edit_bytes;
        let too_large = |size: &str| {
            invalid(format!(
                "{shown} is {size}, larger than the {} {what} can handle (the whole file is \
                 loaded): edit it in the shell instead (sed, awk, python, `>>`)",
                human_bytes(max)
            ))
        };
        if size > max {
            return Err(too_large(&human_bytes(size)));
        }
        let mut buf = Vec::new();
        file.take(max.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| io_msg(&shown, e))?;
        if buf.len() as u64 > max {
            return Err(too_large("growing"));
        }
        Ok(buf)
    }

    /// Atomic write: a temporary file in the resolved parent directory, renamed over the
    /// target. Parents are created; an existing file keeps its permission bits.
    fn write_atomic(&self, path: &str, content: &[u8]) -> SandboxResult<String> {
        let r = self.resolve(parse_user_path(path)?, true, true)?;
        let shown = r.logical.display();
        let Some(name) = r.name.as_ref() else {
            return Err(invalid(format!("{shown} is a directory")));
        };
        let mode = match rustix::fs::statat(&r.dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => st.st_mode & 0o7777,
                FileType::Directory => return Err(invalid(format!("{shown} is a directory"))),
                _ => return Err(invalid(format!("{shown} is not a regular file"))),
            },
            Err(Errno::NOENT) => 0o644,
            Err(e) => return Err(errno_msg(&shown, e)),
        };
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
        let fd = rustix::fs::openat(
            &r.dir,
            tmp_name.as_os_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| errno_msg(&r.parent_logical().display(), e))?;
        let written = (|| -> std::io::Result<()> {
            self.host.chown_fd(&fd)?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
            let mut f = File::from(fd);
            f.write_all(content)?;
            f.flush()?;
            rustix::fs::renameat(&r.dir, tmp_name.as_os_str(), &r.dir, name.as_os_str())?;
            Ok(())
        })();
        if let Err(e) = written {
            let _ = rustix::fs::unlinkat(&r.dir, tmp_name.as_os_str(), AtFlags::empty());
            return Err(io_msg(&shown, e));
        }
        Ok(shown)
    }

    pub(crate) fn write_text(
        &self,
        path: &str,
        content: &str,
        options: &WriteOptions,
    ) -> SandboxResult<()> {
        let mut data: Vec<u8> = Vec::new();
        if options.append {
            match self.read_all(path, "file_write with append") {
                Ok(existing) => data = existing,
                Err(SandboxError::Invalid(msg)) if msg.ends_with("no such file or directory") => {}
                Err(e) => return Err(e),
            }
        }
        if options.leading_newline {
            data.push(b'\n');
        }
        data.extend_from_slice(content.as_bytes());
        if options.trailing_newline {
            data.push(b'\n');
        }
        self.write_atomic(path, &data).map(|_| ())
    }

    pub(crate) fn str_replace(&self, path: &str, old: &str, new: &str) -> SandboxResult<usize> {
        if old.is_empty() {
            return Err(invalid("old_str is empty"));
        }
        let data = self.read_all(path, "file_str_replace")?;
        let finder = memchr::memmem::Finder::new(old.as_bytes());
        let mut out = Vec::with_capacity(data.len());
        let mut last = 0usize;
        let mut count = 0usize;
        for pos in finder.find_iter(&data) {
            out.extend_from_slice(&data[last..pos]);
            out.extend_from_slice(new.as_bytes());
            last = pos + old.len();
            count += 1;
        }
        if count == 0 {
            return Err(invalid(format!("old_str not found in {path}")));
        }
        out.extend_from_slice(&data[last..]);
        self.write_atomic(path, &out)?;
        Ok(count)
    }

    pub(crate) fn find_in_content(
        &self,
        path: &str,
        regex: &str,
    ) -> SandboxResult<Vec<ContentMatch>> {
        let re = regex::RegexBuilder::new(regex)
            .size_limit(10 * 1024 * 1024)
            .build()
            .map_err(|e| invalid(format!("invalid regex: {e}")))?;
        let (mut file, _, shown) = self.open_regular(path)?;
        // Lines are collected in chunks, each cut to its first MAX_LINE_BYTES (the rest of a
        // longer line is not searched); the search stops after `max_scan_bytes`.
        let mut line = Vec::new();
        let mut out = Vec::new();
        let mut current = 0usize;
        let check_line = |number: usize, line: &mut Vec<u8>, out: &mut Vec<ContentMatch>| {
            while matches!(line.last(), Some(b'\n') | Some(b'\r')) {
                line.pop();
            }
            let text = String::from_utf8_lossy(line);
            if re.is_match(&text) {
                let text: String = if text.chars().count() > MAX_MATCH_CHARS {
                    let mut t: String = text.chars().take(MAX_MATCH_CHARS).collect();
                    t.push('…');
                    t
                } else {
                    text.into_owned()
                };
                out.push(ContentMatch {
                    line: number + 1,
                    text,
                });
            }
            line.clear();
            if out.len() >= MAX_CONTENT_MATCHES {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        let budget = self.config.max_scan_bytes;
        let mut stopped = false;
        scan_lines(&mut file, budget, |number, piece| {
            if number != current {
                // A new line began: the previous one is complete.
                if check_line(current, &mut line, &mut out).is_break() {
                    stopped = true;
                    return ControlFlow::Break(());
                }
                current = number;
            }
            let room = MAX_LINE_BYTES.saturating_sub(line.len());
            line.extend_from_slice(&piece[..piece.len().min(room)]);
            ControlFlow::Continue(())
        })
        .map_err(|e| io_msg(&shown, e))?;
        if !stopped && !line.is_empty() {
            let _ = check_line(current, &mut line, &mut out);
        }
        Ok(out)
    }

    pub(crate) fn find_by_name(&self, dir: &str, glob: &str) -> SandboxResult<Vec<String>> {
        let matcher = globset::GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .map_err(|e| invalid(format!("invalid glob: {e}")))?
            .compile_matcher();
        let by_path = glob.contains('/');
        let r = self.resolve(parse_user_path(dir)?, false, true)?;
        let root_fd = match r.name.as_ref() {
            None => r.dir,
            Some(name) => self
                .open_dir_at(&r.dir, name)
                .map_err(|e| errno_msg(&r.logical.display(), e))?,
        };
        let base = r.logical;
        let mut results = Vec::new();
        let mut visited = 0usize;
        // Depth first, one open directory per level: a directory is opened (relative to
        // its parent's descriptor) only when the walk enters it, so a tree of many
        // subdirectories never holds more than MAX_WALK_DEPTH + 1 descriptors.
        struct Frame {
            dir: rustix::fs::Dir,
            rel: Vec<OsString>,
        }
        let root = rustix::fs::Dir::new(root_fd).map_err(|e| errno_msg(&base.display(), e))?;
        let mut stack: Vec<Frame> = vec![Frame {
            dir: root,
            rel: Vec::new(),
        }];
        'walk: loop {
            let depth = stack.len();
            let Some(frame) = stack.last_mut() else {
                break;
            };
            let Some(entry) = frame.dir.read() else {
                stack.pop();
                continue;
            };
            let Ok(entry) = entry else {
                stack.pop();
                continue;
            };
            let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_os_string();
            if name.as_bytes() == b"." || name.as_bytes() == b".." {
                continue;
            }
            visited += 1;
            if visited > MAX_WALK_ENTRIES || results.len() >= MAX_NAME_MATCHES {
                break 'walk;
            }
            let Ok(fd) = frame.dir.fd() else {
                stack.pop();
                continue;
            };
            let mut file_type = entry.file_type();
            if file_type == FileType::Unknown {
                file_type = rustix::fs::statat(fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .map(|st| FileType::from_raw_mode(st.st_mode))
                    .unwrap_or(FileType::Unknown);
            }
            let mut rel_path = frame.rel.clone();
            rel_path.push(name.clone());
            let candidate: std::path::PathBuf = if by_path {
                rel_path.iter().collect()
            } else {
                std::path::PathBuf::from(&name)
            };
            if matcher.is_match(&candidate) {
                let mut l = base.clone();
                l.comps.extend(rel_path.iter().cloned());
                results.push(l.display());
            }
            if file_type == FileType::Directory
                && depth <= MAX_WALK_DEPTH
                && let Ok(sub) = rustix::fs::openat(
                    fd,
                    name.as_os_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                && let Ok(dir) = rustix::fs::Dir::new(sub)
            {
                stack.push(Frame { dir, rel: rel_path });
            }
        }
        results.sort();
        Ok(results)
    }

    pub(crate) fn get_bytes(&self, path: &str, max_bytes: u64) -> SandboxResult<Vec<u8>> {
        let (file, size, shown) = self.open_regular(path)?;
        if size > max_bytes {
            return Err(invalid(format!(
                "{shown} is {size} bytes, more than the limit of {max_bytes} bytes"
            )));
        }
        // No allocation from the file's size: it may change, and `max_bytes` may be large.
        let mut buf = Vec::new();
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| io_msg(&shown, e))?;
        if buf.len() as u64 > max_bytes {
            return Err(invalid(format!(
                "{shown} is more than the limit of {max_bytes} bytes"
            )));
        }
        Ok(buf)
    }

    pub(crate) fn put_bytes(&self, path: &str, bytes: &[u8]) -> SandboxResult<()> {
        self.write_atomic(path, bytes).map(|_| ())
    }
}

/// What [`scan_lines`] saw.
struct Scan {
    /// Lines seen (a last line without a newline counts).
    lines: usize,
    /// Whether the end of the file was reached (not the byte budget or a `Break`).
    eof: bool,
}

/// Reads `file` in chunks of [`CHUNK`] bytes, no more than `budget` bytes, calling
/// `f(line, piece)` for every piece of a line (`line` 0-based; a line longer than a chunk
/// comes in several pieces; the newline is part of the line's last piece). Memory use is one
/// chunk, whatever the lines' lengths.
fn scan_lines(
    file: &mut File,
    budget: u64,
    mut f: impl FnMut(usize, &[u8]) -> ControlFlow<()>,
) -> std::io::Result<Scan> {
    let mut buf = vec![0u8; CHUNK];
    let mut line = 0usize;
    let mut in_line = false;
    let mut read = 0u64;
    loop {
        if read >= budget {
            return Ok(Scan {
                lines: line + usize::from(in_line),
                eof: false,
            });
        }
        let want = usize::try_from((budget - read).min(CHUNK as u64)).unwrap_or(CHUNK);
        let n = match file.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(Scan {
                lines: line + usize::from(in_line),
                eof: true,
            });
        }
        read += n as u64;
        let chunk = &buf[..n];
        let mut from = 0usize;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            let stop = f(line, &chunk[from..=nl]).is_break();
            line += 1;
            in_line = false;
            from = nl + 1;
            if stop {
                return Ok(Scan {
                    lines: line,
                    eof: false,
                });
            }
        }
        if from < n {
            in_line = true;
            if f(line, &chunk[from..]).is_break() {
                return Ok(Scan {
                    lines: line + 1,
                    eof: false,
                });
            }
        }
    }
}

/// Maps a shell's working directory to a prompt path (`~`, `~/dir`, `/tmp`).
pub(crate) fn prompt_dir(cwd: &str) -> String {
    if cwd == SANDBOX_HOME {
        "~".to_string()
    } else if let Some(rest) = cwd
        .strip_prefix(SANDBOX_HOME)
        .and_then(|r| r.strip_prefix('/'))
    {
        format!("~/{rest}")
    } else {
        cwd.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_paths() {
        let l = parse_user_path("a/b.txt").map(|l| l.display()).ok();
        assert_eq!(l.as_deref(), Some("/home/ubuntu/a/b.txt"));
        let l = parse_user_path("/tmp/./x").map(|l| l.display()).ok();
        assert_eq!(l.as_deref(), Some("/tmp/x"));
        let l = parse_user_path("~/x").map(|l| l.display()).ok();
        assert_eq!(l.as_deref(), Some("/home/ubuntu/x"));
        let l = parse_user_path("/home/ubuntu").map(|l| l.display()).ok();
        assert_eq!(l.as_deref(), Some("/home/ubuntu"));
        assert!(parse_user_path("../x").is_err());
        assert!(parse_user_path("/home/ubuntu/../../etc/passwd").is_err());
        assert!(parse_user_path("/etc/passwd").is_err());
        assert!(parse_user_path("/home/other").is_err());
        assert!(parse_user_path("~root/x").is_err());
        assert!(parse_user_path("").is_err());
    }

    #[test]
    fn link_targets() {
        let dir = parse_user_path("a/b").ok();
        let Some(dir) = dir else { return };
        let t = link_target(&dir, OsStr::new("l"), b"../c")
            .map(|l| l.display())
            .ok();
        assert_eq!(t.as_deref(), Some("/home/ubuntu/a/c"));
        assert!(link_target(&dir, OsStr::new("l"), b"../../../etc").is_err());
        assert!(link_target(&dir, OsStr::new("l"), b"/etc/shadow").is_err());
        let t = link_target(&dir, OsStr::new("l"), b"/tmp/x")
            .map(|l| l.display())
            .ok();
        assert_eq!(t.as_deref(), Some("/tmp/x"));
    }

    #[test]
    fn prompts() {
        assert_eq!(prompt_dir("/home/ubuntu"), "~");
        assert_eq!(prompt_dir("/home/ubuntu/p"), "~/p");
        assert_eq!(prompt_dir("/home/ubuntux"), "/home/ubuntux");
        assert_eq!(prompt_dir("/tmp"), "/tmp");
    }
}
