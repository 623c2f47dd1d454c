//! The deployment files in `deploy/`: the systemd unit passes `systemd-analyze verify`, and
//! what the files assume of the server holds (the configuration the Kubernetes manifest
//! documents parses, its probe and drain hook use the server's health endpoint, port and
//! signal). The Docker image cannot be built here (no Docker engine on these machines).

use std::path::Path;
use std::process::Command;

use turn_server::config::ServerConfig;

fn deploy(file: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn the_systemd_unit_verifies() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing (Debian's systemd); CI must have it"
        );
        eprintln!("SKIPPED: no systemd-analyze");
        return;
    }
    // verify checks that ExecStart's program exists: point it at the one just built.
    let unit = deploy("turnserver.service").replace(
        "/usr/local/bin/turnserver",
        env!("CARGO_BIN_EXE_turnserver"),
    );
    for key in [
        "DynamicUser=yes",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "LimitNOFILE=",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.contains(key), "{key}");
    }
    let dir = std::env::temp_dir().join(format!("turn-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("turnserver.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_kubernetes_manifest_matches_the_server() {
    let m = deploy("kubernetes/turnserver.yaml");
    // The turnserver.conf it documents is one the server takes.
    let conf: String = m
        .lines()
        .skip_while(|l| !l.starts_with("# turnserver.conf for this manifest"))
        .skip(1)
        .take_while(|l| l.starts_with("#   "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect();
    let c = ServerConfig::parse(&conf).unwrap_or_else(|e| panic!("{e}\n{conf}"));
    assert!(c.psql_userdb.is_some() && c.prometheus && c.drain_timeout > 0);
    // Readiness from /healthz on the metrics port; the grace period outlasts the drain.
    assert!(m.contains("httpGet: { path: /healthz, port: 9641 }"));
    assert_eq!(ServerConfig::default().prometheus_port, 9641);
    let grace: u64 = m
        .lines()
        .find_map(|l| l.trim().strip_prefix("terminationGracePeriodSeconds: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        grace > c.drain_timeout,
        "the pod must outlive drain-timeout"
    );
    // The drain hook sends what the server drains on.
    assert!(m.contains("kill -USR1 1; while kill -0 1"));
    assert!(m.contains("hostNetwork: true"));
    // The image's user is the one the manifest runs as, and its entry point the binary.
    let d = deploy("Dockerfile");
    assert!(d.contains("--uid 10001") && m.contains("runAsUser: 10001"));
    assert!(d.contains(r#"ENTRYPOINT ["/usr/local/bin/turnserver"]"#));
}
