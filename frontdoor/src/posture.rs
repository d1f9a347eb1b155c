//! The process's posture on its machine: files it makes are its account's
//! alone, the data directory is closed to other accounts, and it may open
//! as many descriptors as the machine lets it (with a reserve the HTTP
//! listener cannot take, for Postgres, the journal and the QUIC sockets).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::fs::Mode;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors the HTTP listener leaves for everything else: Postgres
/// connections, the journal and its checkpoint, QUIC and replication
/// sockets, the HSM module, logs.
pub const DESCRIPTOR_RESERVE: u64 = 256;

/// The fewest HTTP connections the cap allows, however low the limit.
const MIN_HTTP_CONNECTIONS: u64 = 16;

/// Files and directories this process creates are readable by its account
/// only (umask 077); inherited by what it starts (Postgres, sigil-perf).
pub fn restrict_new_files() {
    let _previous = rustix::process::umask(Mode::from_raw_mode(0o077));
}

/// The descriptor limits after [`raise_file_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    /// The soft limit now in force (`None`: unlimited).
    pub soft: Option<u64>,
    /// The hard limit.
    pub hard: Option<u64>,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (capped by the kernel's
/// `fs.nr_open` when the hard limit is unlimited). A refusal leaves the
/// soft limit as it was; the returned limits say what holds.
pub fn raise_file_limit() -> FileLimit {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let target = maximum.or_else(|| {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|text| text.trim().parse().ok())
    });
    if let Some(target) = target {
        if current.is_some_and(|c| c < target) {
            let raised = Rlimit {
                current: Some(target),
                maximum,
            };
            if let Err(e) = setrlimit(Resource::Nofile, raised) {
                tracing::warn!(error = %e, "cannot raise the open-files limit");
            }
        }
    }
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    FileLimit {
        soft: current,
        hard: maximum,
    }
}

/// The HTTP connections a node keeps open at once: the configured number,
/// but never so many that the descriptor reserve is eaten.
pub fn http_connection_cap(configured: usize, limit: FileLimit) -> usize {
    let room = limit.soft.map_or(u64::MAX, |soft| {
        soft.saturating_sub(DESCRIPTOR_RESERVE)
            .max(MIN_HTTP_CONNECTIONS)
    });
    usize::try_from(room.min(configured as u64)).unwrap_or(configured)
}

/// Closes the data directory to other accounts, including what older
/// versions left readable: every directory 0700 and every file without
/// group or other bits. `root` itself and `root/postgres` keep the search
/// bit when Postgres runs as its own account (it must pass through to its
/// data; it cannot list or read them). The cluster's own data and socket
/// directories are Postgres's and left to it.
///
/// # Errors
/// When a mode cannot be read or set.
pub fn close_data_dir(root: &Path, postgres_passes_through: bool) -> std::io::Result<()> {
    let search = if postgres_passes_through {
        0o711
    } else {
        0o700
    };
    set_mode(root, search)?;
    let postgres = root.join("postgres");
    for entry in std::fs::read_dir(root)? {
        let path = entry?.path();
        if path == postgres {
            close_postgres_dir(&path, search)?;
        } else {
            close_tree(&path)?;
        }
    }
    Ok(())
}

fn close_postgres_dir(dir: &Path, search: u32) -> std::io::Result<()> {
    set_mode(dir, search)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if matches!(name, "data" | "run") {
            continue; // Postgres's own, 0700 by initdb and by the cluster.
        }
        close_tree(&path)?;
    }
    Ok(())
}

fn close_tree(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    if meta.is_dir() {
        set_mode(path, 0o700)?;
        for entry in std::fs::read_dir(path)? {
            close_tree(&entry?.path())?;
        }
    } else {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            set_mode(path, mode & 0o700)?;
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_cap_keeps_the_reserve() {
        let limit = |soft| FileLimit {
            soft: Some(soft),
            hard: Some(soft),
        };
        assert_eq!(http_connection_cap(4096, limit(1024)), 768);
        assert_eq!(http_connection_cap(500, limit(1 << 20)), 500);
        assert_eq!(http_connection_cap(4096, limit(100)), 16);
        let unlimited = FileLimit {
            soft: None,
            hard: None,
        };
        assert_eq!(http_connection_cap(4096, unlimited), 4096);
    }

    #[test]
    fn an_old_data_dir_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("var");
        std::fs::create_dir_all(root.join("audit")).unwrap();
        std::fs::create_dir_all(root.join("postgres/data")).unwrap();
        std::fs::write(root.join("audit/node-1.journal"), b"x").unwrap();
        std::fs::write(root.join("postgres/postgres.log"), b"x").unwrap();
        for path in ["audit", "audit/node-1.journal", "postgres/postgres.log"] {
            set_mode(&root.join(path), 0o755).unwrap();
        }
        set_mode(&root.join("postgres/data"), 0o750).unwrap();
        close_data_dir(&root, true).unwrap();
        let mode = |p: &str| {
            std::fs::metadata(root.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(""), 0o711);
        assert_eq!(mode("postgres"), 0o711);
        assert_eq!(mode("audit"), 0o700);
        assert_eq!(mode("audit/node-1.journal"), 0o700);
        assert_eq!(mode("postgres/postgres.log"), 0o700);
        assert_eq!(mode("postgres/data"), 0o750, "Postgres's own");
    }
}
