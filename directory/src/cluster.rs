//! A private Postgres cluster for development, tests and the embedded
//! default: created under a directory with the installed binaries
//! (`initdb`, `pg_ctl`), listening only on a Unix socket in that directory,
//! started and stopped by Sigil. As root it runs the server as the
//! `postgres` system user (Postgres refuses to run as root).
//!
//! It accepts Sigil alone: every role authenticates with SCRAM-SHA-256
//! (`pg_hba.conf` has one line, for the socket), passwords are generated
//! and kept in 0600 files beside the data (`{role}.password`), the socket
//! directory can be entered by the server's account only, and the log is
//! 0600. Other local accounts get neither to the socket nor past the
//! password. A cluster made by an older Sigil with `trust` is converted
//! at its next start.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// The only client authentication the cluster accepts.
const HBA: &str = "# Written by Sigil: the Unix socket only, SCRAM for every role.\nlocal all all scram-sha-256\n";

fn cluster_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Cluster(format!("{}: {e}", path.display()))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), Error> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(cluster_error(path))
}

/// A new random password: 32 bytes as hex (no quoting issues in SQL or URLs).
fn new_password() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| Error::Cluster("random generator failed".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Reads the secret in `path`, or makes one there (mode 0600, created
/// exclusively) when `create` is set. A file others can read is refused.
fn secret(path: &Path, create: bool) -> Result<Option<String>, Error> {
    match std::fs::metadata(path) {
        Ok(meta) => {
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(Error::Cluster(format!(
                    "{}: readable by others; chmod 600 it",
                    path.display()
                )));
            }
            let text = std::fs::read_to_string(path).map_err(cluster_error(path))?;
            Ok(Some(text.trim().to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let password = new_password()?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(cluster_error(path))?;
            file.write_all(password.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(cluster_error(path))?;
            Ok(Some(password))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(cluster_error(path)(e)),
    }
}

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

/// Whether this process runs as root (then the server runs as `postgres`).
pub fn running_as_root() -> bool {
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
        // Only the server's account needs to pass through (search, not read).
        set_mode(&root, if run_as.is_some() { 0o711 } else { 0o700 })?;
        let port_file = root.join("port");
        let port = match std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            Some(port) => port,
            None => {
                let port = free_port()?;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&port_file)
                    .and_then(|mut f| f.write_all(port.to_string().as_bytes()))
                    .map_err(cluster_error(&port_file))?;
                port
            }
        };
        set_mode(&port_file, 0o600)?;
        let mut cluster = PrivateCluster {
            root,
            bin,
            port,
            run_as,
            started_here: false,
        };
        cluster.init()?;
        cluster.started_here = cluster.ensure_running()?;
        cluster.require_passwords()?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn password_file(&self, role: &str) -> PathBuf {
        self.root.join(format!("{role}.password"))
    }

    /// The password of `role` in this cluster: made on first use and kept
    /// in `{root}/{role}.password` (0600, readable by this account only).
    /// Setting it in Postgres is the caller's (e.g. `ALTER ROLE`).
    ///
    /// # Errors
    /// [`Error::Cluster`] when the file cannot be read or written, or
    /// others can read it.
    pub fn role_password(&self, role: &str) -> Result<String, Error> {
        secret(&self.password_file(role), true)?
            .ok_or_else(|| Error::Cluster(format!("no password for {role}")))
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
        // Only the server's account enters the socket directory.
        set_mode(&self.socket_dir(), 0o700)?;
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
        // The superuser's password goes to initdb in a file only the
        // server's account can read, inside its own socket directory.
        let password = secret(&self.password_file(SUPERUSER), true)?.unwrap_or_default();
        let pwfile = self.socket_dir().join("initdb.pw");
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&pwfile)
            .and_then(|mut f| f.write_all(password.as_bytes()))
            .map_err(cluster_error(&pwfile))?;
        self.chown(&pwfile)?;
        let mut initdb = self.command("initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                SUPERUSER,
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()));
        let made = self.run(initdb, "initdb");
        let _ = std::fs::remove_file(&pwfile);
        made?;
        self.write_hba()
    }

    fn write_hba(&self) -> Result<(), Error> {
        let hba = self.data().join("pg_hba.conf");
        // Rewritten in place: the file keeps the server account's ownership.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&hba)
            .and_then(|mut f| f.write_all(HBA.as_bytes()))
            .map_err(cluster_error(&hba))
    }

    /// Makes sure the running server takes passwords only. A cluster made
    /// by an older Sigil (`trust`, no password file) gets a superuser
    /// password through the still-trusting socket, then SCRAM, then a
    /// reload.
    fn require_passwords(&self) -> Result<(), Error> {
        let hba = self.data().join("pg_hba.conf");
        let current = std::fs::read_to_string(&hba).map_err(cluster_error(&hba))?;
        if current == HBA {
            return Ok(());
        }
        let file = self.password_file(SUPERUSER);
        if secret(&file, false)?.is_none() {
            let password = secret(&file, true)?.unwrap_or_default();
            // On stdin, never in the process list.
            let mut psql = self.command("psql");
            psql.arg("-h")
                .arg(self.socket_dir())
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    SUPERUSER,
                    "-d",
                    "postgres",
                ])
                .args(["-v", "ON_ERROR_STOP=1", "-q", "-f", "-"]);
            let sql = format!("ALTER ROLE {SUPERUSER} WITH PASSWORD '{password}';\n");
            if let Err(e) =
                self.run_with_input(psql, sql.as_bytes(), "setting the superuser password")
            {
                let _ = std::fs::remove_file(&file);
                return Err(e);
            }
        }
        self.write_hba()?;
        let mut reload = self.command("pg_ctl");
        reload.arg("-D").arg(self.data()).arg("reload");
        self.run(reload, "pg_ctl reload")
    }

    fn run_with_input(&self, mut command: Command, input: &[u8], what: &str) -> Result<(), Error> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Cluster(format!("{what}: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input)
                .map_err(|e| Error::Cluster(format!("{what}: {e}")))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|e| Error::Cluster(format!("{what}: {e}")))?;
        if !output.status.success() {
            return Err(Error::Cluster(format!(
                "{what} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(())
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
        // The log names users and queries: the server's account only.
        let log = self.root.join("postgres.log");
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&log)
            .map_err(cluster_error(&log))?;
        set_mode(&log, 0o600)?;
        self.chown(&log)?;
        let options = format!(
            "-k {} -p {} -c listen_addresses='' -c unix_socket_permissions=0700 -c max_connections=200 -c fsync=on -c shared_buffers=128MB",
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

    /// A connection configuration for database `dbname` as the superuser
    /// (with its password).
    pub fn config(&self, dbname: &str) -> tokio_postgres::Config {
        let password = secret(&self.password_file(SUPERUSER), false)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.config_as(SUPERUSER, &password, dbname)
    }

    /// A connection configuration for database `dbname` as `role` with
    /// `password`.
    pub fn config_as(&self, role: &str, password: &str, dbname: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(self.socket_dir())
            .port(self.port)
            .user(role)
            .password(password)
            .dbname(dbname);
        config
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
        // Its connections now end with "terminating connection due to
        // administrator command": expected, not worth a warning.
        crate::db::STOPPING_PRIVATE_CLUSTER.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"]);
        self.run(stop, "pg_ctl stop")
    }
}
