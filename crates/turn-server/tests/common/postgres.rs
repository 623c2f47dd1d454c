//! A real PostgreSQL server for a test (Debian's `postgresql`): a fresh cluster in a
//! temporary directory, on a free loopback port, trust authentication, stopped and removed
//! when dropped. As root it runs as the `postgres` user (PostgreSQL refuses root). Without
//! PostgreSQL installed, [`Postgres::start`] returns `None`, except under `CI=true`, where it
//! fails the test: `.ci/run` installs it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster.
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    as_postgres: bool,
}

fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Postgres {
    /// Starts a cluster, or `None` (with a note) when PostgreSQL is not installed here.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = find_bin() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL is not installed (apt-get install postgresql); CI must have it"
            );
            eprintln!("SKIPPED: PostgreSQL is not installed (apt-get install postgresql)");
            return None;
        };
        let dir = std::env::temp_dir().join(format!(
            "turn-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let as_postgres = is_root();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown {}", dir.display());
        }
        let pg = Postgres {
            bin,
            port: super::free_port(),
            dir,
            as_postgres,
        };
        let data = pg.dir.join("data");
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off",
            pg.port,
            pg.dir.display()
        );
        pg.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                pg.dir.join("log").to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        Some(pg)
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}\n{}\nlog: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
    }

    /// The libpq connection string of database `postgres` (coturn's `psql-userdb` form).
    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} dbname=postgres user=postgres connect_timeout=5",
            self.port
        )
    }

    /// Runs an SQL file with psql (coturn's `schema.sql`, say).
    pub fn psql_file(&self, file: &Path) {
        let port = self.port.to_string();
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-f"])
            .arg(file)
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql -f {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server at once (as a crash would: no clean shutdown of clients).
    pub fn stop(&self) {
        let data = self.dir.join("data");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
