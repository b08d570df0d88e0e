//! Across sites with real `framewire` processes: control connections
//! through gateways (tunnels), a controller on one site wiring a stream
//! of another, an edge pulled for another site only while it is watched.
//!
//! Loopback tests give each site its own multicast group and port through
//! 127.0.0.1; `netns_*` tests build namespaces and a shaped link between
//! two gateways (docs/discovery.md, "Tests").

mod common;

use std::time::{Duration, Instant};

use common::demo::{add_user, framewire};
use common::netns::spawn_in;
use common::{group_args, private_group};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Polls `f` every 100 ms until it gives something, or fails after `t`
/// saying what it waited for.
fn wait_for<T>(what: &str, t: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + t;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "waited {t:?} for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET path` on the controller's API with a bearer token: the JSON.
fn api_get(web: &str, token: &str, path: &str) -> serde_json::Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let auth = format!("Bearer {}", token.trim());
    let r = rt
        .block_on(framewire_web::client::request(
            &format!("http://{web}"),
            "GET",
            path,
            &[("authorization", &auth)],
            b"",
            Duration::from_secs(5),
        ))
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn a_controller_sees_and_wires_another_sites_node_through_the_gateway() {
    let (ga, pa) = private_group();
    let (gb, pb) = private_group();
    let dir = common::temp_dir("sites-tunnel");
    let leg = |g, p, site: u16, label: &str| {
        format!(
            "[[discovery.gateway]]\ninterface = \"127.0.0.1\"\ngroup = \"{g}\"\nport = {p}\nsite = {site}\nlabel = \"{label}\"\n"
        )
    };
    let gw_file = common::config_file(
        &dir,
        &format!(
            "name = \"gw:ab\"\nlisten = \"127.0.0.1:0\"\n[limits]\ngateway_edge_idle_ms = 1000\n{}{}",
            leg(ga, pa, 1, "a"),
            leg(gb, pb, 2, "b")
        ),
    );
    let gw = spawn_in(None, &args(&["--config", &gw_file]));
    let _cam = spawn_in(
        None,
        &[
            args(&["--name", "lab:cam", "--source", "test-pattern:bars,size=160x120,fps=10"]),
            group_args(ga, pa),
        ]
        .concat(),
    );
    let view = spawn_in(None, &[args(&["--name", "home:view"]), group_args(gb, pb)].concat());
    let ds = dir.join("ctl");
    std::fs::create_dir_all(&ds).unwrap();
    add_user(&ds, "ada", "admin");
    let (code, token, err) = framewire(&["user", "token", "ada", "--state-dir", ds.to_str().unwrap()], "", &[]);
    assert_eq!(code, 0, "{err}");
    let web = format!("127.0.0.1:{}", common::free_port());
    let ctl = spawn_in(
        None,
        &[
            args(&[
                "--name",
                "home:ctl",
                "--controller",
                "--web",
                &web,
                "--state-dir",
                ds.to_str().unwrap(),
            ]),
            group_args(gb, pb),
        ]
        .concat(),
    );
    assert!(
        gw.wait_log(":lab:cam addr", Duration::from_secs(5)),
        "the gateway hears the camera node:\n{}",
        gw.log()
    );

    // A tool reaches the other site's node by SITE:NAME@GATEWAY...
    let through = format!("1:lab:cam@{}", gw.addr);
    let (code, out, err) = framewire(&["describe", &through], "", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("lab:cam"), "{out}");
    let (code, out, _) = framewire(&["ls", &through], "", &[]);
    assert_eq!(code, 0);
    assert!(out.contains("bars"), "{out}");
    // ...but a change does not cross a `read` gateway, and the node lives on.
    let (code, _, err) = framewire(&["shutdown", &through], "", &[]);
    assert_ne!(code, 0);
    assert!(err.contains("does not cross this gateway"), "{err}");
    let (code, _, err) = framewire(&["describe", &format!("1:no:such@{}", gw.addr)], "", &[]);
    assert_ne!(code, 0);
    assert!(err.contains("no node 1:no:such"), "{err}");

    // The controller on site B lists the camera as a node of site 1, online.
    let graph = wait_for("the controller to list 1/lab:cam", Duration::from_secs(15), || {
        let g = api_get(&web, &token, "/api/graph");
        let cam = g["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["name"] == "1/lab:cam")?
            .clone();
        (cam["online"] == true && !cam["streams"].as_array()?.is_empty()).then_some(g)
    });
    let cam = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "1/lab:cam")
        .unwrap();
    assert_eq!(cam["site_id"], 1, "{cam}");

    // It wires the camera's stream to a node of its own site.
    let file = dir.join("wanted.json.in");
    std::fs::write(
        &file,
        r#"{"edge": [{"from": "1/lab:cam", "stream": "bars", "to": "home:view"}]}"#,
    )
    .unwrap();
    let env = [
        ("FRAMEWIRE_URL", format!("http://{web}")),
        ("FRAMEWIRE_TOKEN", token.trim().to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, out, err) = framewire(&["graph", "apply", file.to_str().unwrap()], "", &env);
    assert_eq!(code, 0, "{out}{err}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let edge = wait_for("the edge to be live on home:view", Duration::from_secs(15), || {
        let r = rt.block_on(common::status_report(view.addr));
        r.edges
            .into_iter()
            .find(|e| e.local_name == "bars" && e.state.label() == "live")
    });
    assert_eq!(edge.stream, "bars@1:lab:cam");
    assert_eq!(edge.upstream, gw.addr.to_string());
    // The graph draws it from the camera, wanted and live.
    wait_for(
        "the graph to show the wanted edge live",
        Duration::from_secs(10),
        || {
            let g = api_get(&web, &token, "/api/graph");
            g["edges"]
                .as_array()?
                .iter()
                .find(|e| e["upstream"] == "1/lab:cam" && e["stream"] == "bars" && e["downstream"] == "home:view")
                .filter(|e| e["wanted"] == true && e["state"] == "live")
                .cloned()
        },
    );
    let pulled = rt.block_on(common::status_report(gw.addr));
    assert!(
        pulled.edges.iter().any(|e| e.local_name == "bars@1:lab:cam"),
        "{:?}",
        pulled.edges
    );

    // Unwired: the downstream lets go, and the gateway stops pulling after
    // its idle time (1 s here), so the site link carries nothing for it.
    std::fs::write(&file, r#"{"edge": []}"#).unwrap();
    let (code, out, err) = framewire(&["graph", "apply", file.to_str().unwrap()], "", &env);
    assert_eq!(code, 0, "{out}{err}");
    let t0 = Instant::now();
    wait_for("the gateway to stop its edge", Duration::from_secs(10), || {
        let r = rt.block_on(common::status_report(gw.addr));
        r.edges.is_empty().then_some(())
    });
    eprintln!("gateway edge stopped {:?} after the unwiring", t0.elapsed());
    assert!(ctl.log().contains("node connected"), "{}", ctl.log());
}
