//! The cluster over a real `nats-server` (feature `nats`): the server helper, the transport and
//! the shared state in JetStream KV.

#![cfg(feature = "nats")]
#![allow(clippy::unwrap_used)]

use hibernating_ws::cluster::NatsServer;

/// A server, or `None` with a loud message when `nats-server` is missing (CI installs it and
/// sets `CI=true`, where a missing server fails instead).
fn server(dir: &std::path::Path) -> Option<NatsServer> {
    if !NatsServer::available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nats-server is missing (apt-get install nats-server)"
        );
        eprintln!("SKIPPED: nats-server is not installed (apt-get install nats-server)");
        return None;
    }
    Some(NatsServer::start(dir).unwrap())
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hws-cluster-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn the_server_starts_stops_and_restarts_on_the_same_port() {
    let dir = scratch("server");
    let Some(mut s) = server(&dir) else {
        return;
    };
    let addr = s.addr();
    assert!(std::net::TcpStream::connect(addr).is_ok());
    s.stop();
    assert!(!s.running());
    assert!(std::net::TcpStream::connect(addr).is_err());
    s.restart().unwrap();
    assert_eq!(s.addr(), addr);
    assert!(std::net::TcpStream::connect(addr).is_ok());
    assert!(dir.join("jetstream").exists());
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
