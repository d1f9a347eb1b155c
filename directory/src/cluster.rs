//! A private Postgres cluster for development, tests and the embedded
//! default: created under a directory with the installed binaries
//! (`initdb`, `pg_ctl`), listening only on a Unix socket in that directory,
//! started and stopped by Sigil. As root it runs the server as the
//! `postgres` system user (Postgres refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// A running private cluster.
#[derive(Debug)]
pub struct PrivateCluster {
    root: PathBuf,
    bin: PathBuf,
    port: u16,
    run_as: Option<String>,
    started_here: bool,
}

const SUPERUSER: &str = "postgres";

/// Finds the newest installed Postgres binaries.
///
/// # Errors
/// [`Error::MissingBinary`] naming the package to install.
pub fn find_binaries() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os("SIGIL_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    Some((
                        e.file_name().to_str()?.parse::<u32>().ok()?,
                        e.path().join("bin"),
                    ))
                })
                .filter(|(_, bin)| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| Error::MissingBinary("initdb and pg_ctl not found under /usr/lib/postgresql/*/bin: install the `postgresql` package (apt-get install postgresql) or set SIGIL_PG_BIN".into()))
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn free_port() -> Result<u16, Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::Cluster(format!("finding a free port: {e}")))?;
    Ok(listener
        .local_addr()
        .map_err(|e| Error::Cluster(e.to_string()))?
        .port())
}

impl PrivateCluster {
    /// Starts the cluster under `root` (creating it on first use; reusing
    /// it, and its port, afterwards). Idempotent: a cluster already running
    /// there is adopted.
    ///
    /// # Errors
    /// [`Error::MissingBinary`] without Postgres; [`Error::Cluster`] when
    /// `initdb` or `pg_ctl` fail (their output is in the message).
    pub fn start(root: &Path) -> Result<PrivateCluster, Error> {
        let bin = find_binaries()?;
        std::fs::create_dir_all(root)
            .map_err(|e| Error::Cluster(format!("{}: {e}", root.display())))?;
        let root = root
            .canonicalize()
            .map_err(|e| Error::Cluster(format!("{}: {e}", root.display())))?;
        let run_as = running_as_root().then(|| SUPERUSER.to_owned());
        let port_file = root.join("port");
        let port = match std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            Some(port) => port,
            None => {
                let port = free_port()?;
                std::fs::write(&port_file, port.to_string())
                    .map_err(|e| Error::Cluster(format!("{}: {e}", port_file.display())))?;
                port
            }
        };
        let mut cluster = PrivateCluster {
            root,
            bin,
            port,
            run_as,
            started_here: false,
        };
        cluster.init()?;
        cluster.started_here = cluster.ensure_running()?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    /// The port (it names the socket file).
    pub fn port(&self) -> u16 {
        self.port
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.arg("-u").arg(user).arg("--").arg(path);
                command
            }
            None => Command::new(path),
        }
    }

    fn run(&self, mut command: Command, what: &str) -> Result<(), Error> {
        let output = command
            .output()
            .map_err(|e| Error::Cluster(format!("{what}: {e}")))?;
        if !output.status.success() {
            return Err(Error::Cluster(format!(
                "{what} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(())
    }

    fn chown(&self, path: &Path) -> Result<(), Error> {
        if let Some(user) = &self.run_as {
            let status = Command::new("chown")
                .arg("-R")
                .arg(format!("{user}:"))
                .arg(path)
                .status()
                .map_err(|e| Error::Cluster(format!("chown: {e}")))?;
            if !status.success() {
                return Err(Error::Cluster(format!("chown {} failed", path.display())));
            }
        }
        Ok(())
    }

    fn init(&self) -> Result<(), Error> {
        let data = self.data();
        std::fs::create_dir_all(self.socket_dir()).map_err(|e| Error::Cluster(e.to_string()))?;
        self.chown(&self.socket_dir())?;
        if data.join("PG_VERSION").exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&data).map_err(|e| Error::Cluster(e.to_string()))?;
        self.chown(&data)?;
        if self.run_as.is_some() {
            // The server user must be able to reach its directories.
            let mut dir = self.root.clone();
            loop {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(meta) = std::fs::metadata(&dir) {
                    let mode = meta.permissions().mode();
                    if mode & 0o001 == 0 {
                        let _ = std::fs::set_permissions(
                            &dir,
                            std::fs::Permissions::from_mode(mode | 0o001),
                        );
                    }
                }
                if !dir.pop() {
                    break;
                }
            }
        }
        let mut initdb = self.command("initdb");
        initdb.arg("-D").arg(&data).args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        self.run(initdb, "initdb")
    }

    fn is_running(&self) -> bool {
        let mut status = self.command("pg_ctl");
        status.arg("-D").arg(self.data()).arg("status");
        status.output().map(|o| o.status.success()).unwrap_or(false)
    }

    /// Starts the server unless it runs; returns whether it started it.
    fn ensure_running(&self) -> Result<bool, Error> {
        if self.is_running() {
            return Ok(false);
        }
        let log = self.root.join("postgres.log");
        if self.run_as.is_some() && !log.exists() {
            std::fs::write(&log, b"").map_err(|e| Error::Cluster(e.to_string()))?;
            self.chown(&log)?;
        }
        let options = format!(
            "-k {} -p {} -c listen_addresses='' -c max_connections=200 -c fsync=on -c shared_buffers=128MB",
            self.socket_dir().display(),
            self.port
        );
        let mut start = self.command("pg_ctl");
        start
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(options)
            .args(["-w", "-t", "60", "start"]);
        self.run(start, "pg_ctl start").map(|()| true).map_err(|e| {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: String = tail
                .lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            Error::Cluster(format!("{e}\n{}:\n{tail}", log.display()))
        })
    }

    /// A connection configuration for database `dbname` as the superuser.
    pub fn config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(self.socket_dir())
            .port(self.port)
            .user(SUPERUSER)
            .dbname(dbname);
        config
    }

    /// The same as a `postgres://` URL (socket directory as `host`).
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgresql://{SUPERUSER}@/{dbname}?host={}&port={}",
            self.socket_dir().display(),
            self.port
        )
    }

    /// Whether this handle started the server (rather than adopting one
    /// already running, e.g. another node's of the same machine).
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// Stops the server (fast shutdown: connections are closed).
    ///
    /// # Errors
    /// [`Error::Cluster`] when `pg_ctl stop` fails.
    pub fn stop(&self) -> Result<(), Error> {
        if !self.is_running() {
            return Ok(());
        }
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"]);
        self.run(stop, "pg_ctl stop")
    }
}
