//! `disk_usage`: what `df -hT` and `du -xh -d 3 | sort -rh | head` would have shown.

use std::collections::{HashSet, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::text::{human_bytes, table, Align};
use super::ProbeError;
use crate::collect::{filesystems, FsUsage};

/// The longest the directory walk may take, whatever the probe's timeout.
const WALK_BUDGET: Duration = Duration::from_secs(5);

/// Sizes of the directories under one root, as `du -x -d DEPTH` sums them.
#[derive(Debug)]
pub(crate) struct DirUsage {
    /// Directories down to the depth limit, largest first; each includes everything
    /// beneath it, however deep.
    pub dirs: Vec<(PathBuf, u64)>,
    pub total: u64,
    pub files: u64,
    pub dir_count: u64,
    /// Directories and entries that could not be read (permission denied, vanished).
    pub unreadable: u64,
    /// Mount points of other filesystems that were not entered.
    pub other_filesystems: u64,
    pub cut_short: bool,
    pub elapsed: Duration,
}

struct Node {
    path: PathBuf,
    parent: usize,
    size: u64,
}

/// Walks `root` breadth first without following symlinks or entering other filesystems,
/// counting allocated blocks (st_blocks × 512, so sparse files count what they use) and
/// hard-linked files once. Breadth first so that a walk stopped at `deadline` has seen
/// every top-level directory to some depth rather than a few of them completely.
pub(crate) fn walk(root: &Path, max_depth: usize, deadline: Instant) -> std::io::Result<DirUsage> {
    let started = Instant::now();
    let root_meta = std::fs::metadata(root)?;
    if !root_meta.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a directory",
        ));
    }
    let root_dev = root_meta.dev();
    // nodes[0] is the root; a node's parent always comes before it.
    let mut nodes = vec![Node {
        path: root.to_path_buf(),
        parent: 0,
        size: root_meta.blocks() * 512,
    }];
    let mut queue = VecDeque::from([(root.to_path_buf(), 0usize, 0usize)]);
    // Bind mounts can make a filesystem contain itself; hard links must count once.
    let mut seen_dirs = HashSet::from([(root_dev, root_meta.ino())]);
    let mut seen_links = HashSet::new();
    let mut usage = DirUsage {
        dirs: Vec::new(),
        total: 0,
        files: 0,
        dir_count: 0,
        unreadable: 0,
        other_filesystems: 0,
        cut_short: false,
        elapsed: Duration::ZERO,
    };

    'walk: while let Some((dir, depth, node)) = queue.pop_front() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            usage.unreadable += 1;
            continue;
        };
        for entry in entries {
            if Instant::now() >= deadline {
                usage.cut_short = true;
                break 'walk;
            }
            // DirEntry::metadata does not follow symlinks.
            let Ok((path, meta)) = entry.and_then(|e| Ok((e.path(), e.metadata()?))) else {
                usage.unreadable += 1;
                continue;
            };
            let size = meta.blocks() * 512;
            if meta.is_dir() {
                if meta.dev() != root_dev {
                    usage.other_filesystems += 1;
                    continue;
                }
                if !seen_dirs.insert((meta.dev(), meta.ino())) {
                    continue;
                }
                usage.dir_count += 1;
                let child_node = if depth < max_depth {
                    nodes.push(Node {
                        path: path.clone(),
                        parent: node,
                        size,
                    });
                    nodes.len() - 1
                } else {
                    nodes[node].size += size;
                    node
                };
                queue.push_back((path, depth + 1, child_node));
            } else {
                if meta.nlink() > 1 && !seen_links.insert((meta.dev(), meta.ino())) {
                    continue;
                }
                usage.files += 1;
                nodes[node].size += size;
            }
        }
    }
    if !queue.is_empty() {
        usage.cut_short = true;
    }

    for i in (1..nodes.len()).rev() {
        let (parent, size) = (nodes[i].parent, nodes[i].size);
        nodes[parent].size += size;
    }
    usage.total = nodes[0].size;
    usage.dirs = nodes
        .into_iter()
        .skip(1)
        .map(|n| (n.path, n.size))
        .collect();
    usage
        .dirs
        .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    usage.elapsed = started.elapsed();
    Ok(usage)
}

fn df_table(filesystems: &[FsUsage]) -> String {
    let rows: Vec<Vec<String>> = filesystems
        .iter()
        .map(|fs| {
            vec![
                fs.device.clone(),
                fs.fstype.clone(),
                human_bytes(fs.size_bytes),
                human_bytes(fs.used_bytes),
                human_bytes(fs.avail_bytes),
                // df rounds Use% up, so a nearly full disk never shows as less full.
                format!("{}%", fs.used_percent().ceil()),
                fs.mount_point.clone(),
            ]
        })
        .collect();
    table(
        &[
            ("Filesystem", Align::Left),
            ("Type", Align::Left),
            ("Size", Align::Right),
            ("Used", Align::Right),
            ("Avail", Align::Right),
            ("Use%", Align::Right),
            ("Mounted on", Align::Left),
        ],
        &rows,
    )
}

pub(crate) struct DiskArgs<'a> {
    pub path: Option<&'a str>,
    pub top: usize,
    pub depth: usize,
}

pub(crate) fn disk_usage(args: DiskArgs<'_>, deadline: Instant) -> Result<String, ProbeError> {
    let filesystems = filesystems()?;
    let mut out = df_table(&filesystems);

    let root = match args.path {
        Some(path) => {
            if !Path::new(path).is_absolute() {
                return Err(ProbeError::Failed(format!(
                    "argument `path` must be an absolute path, got `{path}`"
                )));
            }
            PathBuf::from(path)
        }
        // The fullest filesystem is the likeliest reason a disk alarm fired.
        None => filesystems
            .iter()
            .max_by(|a, b| a.used_percent().total_cmp(&b.used_percent()))
            .map_or_else(|| PathBuf::from("/"), |fs| PathBuf::from(&fs.mount_point)),
    };
    // Leave a quarter of the time left for the rest of the output.
    let left = deadline.saturating_duration_since(Instant::now());
    let budget = WALK_BUDGET.min(left * 3 / 4);
    let usage = walk(&root, args.depth, Instant::now() + budget).map_err(|e| {
        ProbeError::Failed(format!(
            "cannot walk {}: {e}; give an existing directory as `path`",
            root.display()
        ))
    })?;

    out.push_str(&format!(
        "\nlargest directories under {} (this filesystem only, up to {} levels deep):\n",
        root.display(),
        args.depth
    ));
    let rows: Vec<Vec<String>> = usage
        .dirs
        .iter()
        .take(args.top)
        .map(|(path, size)| vec![human_bytes(*size), path.display().to_string()])
        .collect();
    out.push_str(&table(
        &[("SIZE", Align::Right), ("PATH", Align::Left)],
        &rows,
    ));
    out.push_str(&format!(
        "total {} in {} files and {} directories, walked in {:.1} s\n",
        human_bytes(usage.total),
        usage.files,
        usage.dir_count,
        usage.elapsed.as_secs_f64()
    ));
    if usage.cut_short {
        out.push_str(&format!(
            "walk cut short by its {:.1} s time budget: sizes are lower bounds; pass a deeper `path` to look closer\n",
            budget.as_secs_f64()
        ));
    }
    if usage.unreadable > 0 {
        out.push_str(&format!(
            "entries that could not be read (permission denied or vanished): {}; sizes may be low\n",
            usage.unreadable
        ));
    }
    if usage.other_filesystems > 0 {
        out.push_str(&format!(
            "mount points of other filesystems not entered: {}\n",
            usage.other_filesystems
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_file(path: &Path, bytes: usize) {
        let mut f = std::fs::File::create(path).unwrap();
        // Non-zero data so no filesystem can store it sparsely.
        f.write_all(&vec![0x5a; bytes]).unwrap();
        f.sync_all().unwrap();
    }

    fn tree(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("vigil-disk-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("big/a/b/c")).unwrap();
        std::fs::create_dir_all(root.join("small")).unwrap();
        write_file(&root.join("big/a/b/c/deep.bin"), 3 << 20);
        write_file(&root.join("big/top.bin"), 1 << 20);
        write_file(&root.join("small/s.bin"), 64 << 10);
        std::os::unix::fs::symlink(root.join("big"), root.join("link")).unwrap();
        // Deeper than top.bin, so the breadth-first walk always meets top.bin first.
        std::fs::hard_link(root.join("big/top.bin"), root.join("big/a/b/c/hard.bin")).unwrap();
        root
    }

    #[test]
    fn walk_sums_sizes_up_to_the_depth_limit() {
        let root = tree("sums");
        let far = Instant::now() + Duration::from_secs(30);
        let usage = walk(&root, 2, far).unwrap();
        std::fs::remove_dir_all(&root).unwrap();

        let size = |rel: &str| {
            usage
                .dirs
                .iter()
                .find(|(p, _)| p == &root.join(rel))
                .map(|(_, s)| *s)
        };
        let big = size("big").unwrap();
        let a = size("big/a").unwrap();
        let small = size("small").unwrap();
        // Files deeper than the limit still count towards their listed ancestors.
        assert!(a >= 3 << 20, "big/a {a}");
        assert!(big >= a + (1 << 20), "big {big}, big/a {a}");
        assert!(((64 << 10)..(1 << 20)).contains(&small), "small {small}");
        assert_eq!(size("big/a/b"), None, "deeper than 2 levels");
        assert_eq!(size("link"), None, "symlinks are not followed");
        assert_eq!(usage.dirs[0].0, root.join("big"), "largest first");
        // The hard link is counted once.
        assert!(usage.total >= big + small);
        assert!(
            a < (3 << 20) + (64 << 10),
            "big/a {a} counts the hard link again"
        );
        assert!(usage.total < big + small + (64 << 10), "{}", usage.total);
        assert_eq!(usage.files, 4, "deep, top, s and the link itself");
        assert_eq!(usage.dir_count, 5);
        assert!(!usage.cut_short);
        assert_eq!(usage.unreadable, 0);
    }

    #[test]
    fn walk_reports_being_cut_short() {
        let root = tree("cut");
        let usage = walk(&root, 3, Instant::now()).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert!(usage.cut_short);
    }

    #[test]
    fn walk_refuses_files_and_missing_paths() {
        assert!(walk(Path::new("/proc/self/stat"), 3, Instant::now()).is_err());
        assert!(walk(Path::new("/nonexistent/vigil"), 3, Instant::now()).is_err());
    }

    #[test]
    fn df_table_rounds_use_up() {
        let out = df_table(&[FsUsage {
            device: "/dev/vda".into(),
            fstype: "ext4".into(),
            mount_point: "/".into(),
            size_bytes: 100 << 30,
            used_bytes: (40 << 30) + 1,
            avail_bytes: 55 << 30,
        }]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "Filesystem Type Size Used Avail Use% Mounted on");
        assert_eq!(lines[1], "/dev/vda   ext4 100G  41G   55G  43% /");
    }
}
