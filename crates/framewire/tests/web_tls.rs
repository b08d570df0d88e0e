//! HTTPS for the web UI with the deployment CA's files: `framewire cert
//! init` and `issue` make them, a controller serves its page and API over
//! TLS 1.3 with them, and a client that trusts another CA, or speaks plain
//! HTTP, gets nothing.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn cli_ok(args: &[&str]) -> String {
    let o = run_cli(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "framewire {args:?}: {err}");
    err
}

/// One GET over TLS trusting `ca`; the whole answer, or the error.
async fn https_get(port: u16, ca: &Path, path: &str) -> Result<String, String> {
    let config = framewire_tls::client_config(ca, None).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = framewire_tls::server_name("127.0.0.1").unwrap();
    let mut tls = framewire_tls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_serves_https_with_the_deployment_cas_certificate() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = temp_dir("web-tls");
        let ca = dir.join("ca");
        let d = ca.to_str().unwrap();
        let said = cli_ok(&["cert", "init", "--dir", d]);
        assert!(said.contains("made the CA"), "{said}");
        let said = cli_ok(&[
            "cert",
            "issue",
            "lab:web",
            "--dir",
            d,
            "--host",
            "127.0.0.1",
            "--host",
            "localhost",
        ]);
        assert!(said.contains("issued `lab:web` for 127.0.0.1, localhost"), "{said}");
        for key in ["ca.key", "lab_web.key"] {
            let mode = std::fs::metadata(ca.join(key)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{key}");
        }
        let o = run_cli(&["cert", "init", "--dir", d]);
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("give --force"), "{o:?}");

        // A certificate that does not load: the node does not start, and says why.
        let o = run_cli(&[
            "node",
            "--discovery",
            "off",
            "--controller",
            "--web",
            "127.0.0.1:0",
            "--web-tls-cert",
            "/nonexistent.pem",
            "--web-tls-key",
            "/nonexistent.key",
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("--web-tls-cert") && err.contains("cannot read /nonexistent.pem"),
            "{err}"
        );

        let port = free_port();
        let web = format!("127.0.0.1:{port}");
        let (cert, key) = (ca.join("lab_web.pem"), ca.join("lab_web.key"));
        let state = dir.join("state");
        let node = spawn_node(&[
            "--name",
            "lab:web",
            "--discovery",
            "off",
            "--controller",
            "--web",
            &web,
            "--web-tls-cert",
            cert.to_str().unwrap(),
            "--web-tls-key",
            key.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ]);
        assert!(
            node.wait_log(&format!("web UI on https://{web}/"), Duration::from_secs(20)),
            "{}",
            node.log()
        );

        let page = https_get(port, &ca.join("ca.pem"), "/").await.unwrap();
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.contains("<title>framewire controller</title>"), "{page}");
        let session = https_get(port, &ca.join("ca.pem"), "/api/session").await.unwrap();
        assert!(
            session.starts_with("HTTP/1.1 200") && session.contains("\"open\":true"),
            "{session}"
        );

        // A client of another CA refuses the server, with the reason.
        let other = dir.join("other");
        cli_ok(&["cert", "init", "--dir", other.to_str().unwrap()]);
        let e = https_get(port, &other.join("ca.pem"), "/").await.unwrap_err();
        assert!(e.contains("UnknownIssuer"), "{e}");
        // Plain HTTP gets no HTTP answer (the server waits for a TLS hello, then closes).
        let started = Instant::now();
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        tcp.write_all(format!("GET / HTTP/1.1\r\nHost: {web}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut out)).await;
        assert!(!String::from_utf8_lossy(&out).contains("HTTP/1.1"), "{out:?}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the plain connection was not closed"
        );
        // The page still works afterwards.
        assert!(
            https_get(port, &ca.join("ca.pem"), "/api/session")
                .await
                .unwrap()
                .starts_with("HTTP/1.1 200")
        );
    })
    .await
    .expect("within 60 s");
}
