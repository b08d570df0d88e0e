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
use common::{eventually_every, group_args, private_group};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Polls `f` every 100 ms until it gives something, or fails after `t`
/// saying what it waited for.
fn wait_for<T>(what: &str, t: Duration, f: impl FnMut() -> Option<T>) -> T {
    eventually_every(t, Duration::from_millis(100), f).unwrap_or_else(|| panic!("waited {t:?} for {what}"))
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
    let graph = wait_for(
        "the controller to list 1/lab:cam and home:view",
        Duration::from_secs(15),
        || {
            let g = api_get(&web, &token, "/api/graph");
            let node = |name: &str| g["nodes"].as_array()?.iter().find(|n| n["name"] == name).cloned();
            let (cam, view) = (node("1/lab:cam")?, node("home:view")?);
            let ready = cam["online"] == true && view["online"] == true && !cam["streams"].as_array()?.is_empty();
            ready.then_some(g.clone())
        },
    );
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

/// Two sites, each with its gateway, joined by a link the test owns: rates
/// capped with `tbf` (20 Mbit/s each way) and 25 ms added each way by a
/// proxy on the link (this kernel has no netem; gateway B's traffic to
/// gateway A is sent through it by a DNAT), which also records every byte
/// it carries. Each site has its own deployment key; the gateways hold
/// certificates of one CA and speak TLS on the link only (`--tls-dial
/// links`). A client on site B opens site A's stream on demand (timed);
/// the controller on site B lists and wires site A's camera through the
/// tunnel; nothing readable crosses the link.
#[test]
fn netns_two_sites_over_a_shaped_encrypted_link() {
    use common::delay::{Record, delay_proxy_at};
    use common::netns::{Netns, in_netns};

    let mut ns = Netns::new();
    let [sw, ha, gwa, wan, gwb, hb] = ["sw", "ha", "gwa", "wan", "gwb", "hb"].map(|r| ns.add(r).expect("a namespace"));
    for br in ["bra", "brb", "brl"] {
        ns.bridge(&sw, br);
    }
    ns.plug(&sw, "bra", "pa", &ha, "eth0", "10.78.1.1/24");
    ns.plug(&sw, "bra", "pga", &gwa, "eth0", "10.78.1.254/24");
    ns.plug(&sw, "brl", "pla", &gwa, "eth1", "10.78.9.1/24");
    ns.plug(&sw, "brl", "plw", &wan, "eth0", "10.78.9.3/24");
    ns.plug(&sw, "brl", "plb", &gwb, "eth0", "10.78.9.2/24");
    ns.plug(&sw, "brb", "pgb", &gwb, "eth1", "10.78.2.254/24");
    ns.plug(&sw, "brb", "pb", &hb, "eth0", "10.78.2.1/24");
    ns.shape(&gwa, "eth1", "20mbit");
    ns.shape(&gwb, "eth0", "20mbit");
    // Gateway B reaches gateway A through the delaying proxy in `wan`.
    ns.redirect(&gwb, "10.78.9.1", "10.78.9.3:7400");
    let link: Record = Default::default();
    let rec = link.clone();
    in_netns(&wan, move || {
        delay_proxy_at(
            "10.78.9.3:7400".parse().unwrap(),
            "10.78.9.1:7400".parse().unwrap(),
            Duration::from_millis(25),
            Some(rec),
        )
    });

    // One CA for the gateways; a key per site.
    let dir = common::temp_dir("netns-sites");
    let ca_dir = dir.join("ca");
    framewire_tls::ca::init(&ca_dir, "test CA", 30, false).unwrap();
    let gw_a = framewire_tls::ca::issue(&ca_dir, "gw:a", &["10.78.9.1".into()], 30, false).unwrap();
    let gw_b = framewire_tls::ca::issue(&ca_dir, "gw:b", &["10.78.9.2".into()], 30, false).unwrap();
    let ca = ca_dir.join(framewire_tls::ca::CA_CERT);
    let (key_a, key_b) = (dir.join("a.key"), dir.join("b.key"));
    for k in [&key_a, &key_b] {
        let (code, _, err) = framewire(&["key", "gen", k.to_str().unwrap()], "", &[]);
        assert_eq!(code, 0, "{err}");
    }
    let s = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let tls = |me: &framewire_tls::ca::Issued| {
        vec![
            "--tls-ca".into(),
            s(&ca),
            "--tls-cert".into(),
            s(&me.cert),
            "--tls-key".into(),
            s(&me.key),
            "--tls-dial".into(),
            "links".into(),
        ]
    };
    let _cam = spawn_in(
        Some(&ha),
        &args(&[
            "--key-file",
            &s(&key_a),
            "--name",
            "lab:cam",
            "--listen",
            "10.78.1.1:7400",
            "--source",
            "test-pattern:bars,size=320x240,fps=25",
        ]),
    );
    let gate_a = spawn_in(
        Some(&gwa),
        &[
            args(&[
                "--key-file",
                &s(&key_a),
                "--name",
                "gw:a",
                "--listen",
                "0.0.0.0:7400",
                "--gateway-leg",
                "interface=10.78.1.254,site=1,label=lab",
                "--gateway-leg",
                "interface=10.78.9.1,link=true",
            ]),
            tls(&gw_a),
        ]
        .concat(),
    );
    let gw_b_file = common::config_file(&dir, "[limits]\ngateway_edge_idle_ms = 1000\n");
    let gate_b = spawn_in(
        Some(&gwb),
        &[
            args(&[
                "--config",
                &gw_b_file,
                "--key-file",
                &s(&key_b),
                "--name",
                "gw:b",
                "--listen",
                "0.0.0.0:7400",
                "--gateway-leg",
                "interface=10.78.9.2,link=true",
                "--gateway-leg",
                "interface=10.78.2.254,site=2,label=home",
            ]),
            tls(&gw_b),
        ]
        .concat(),
    );
    let view = spawn_in(
        Some(&hb),
        &args(&[
            "--key-file",
            &s(&key_b),
            "--name",
            "home:view",
            "--listen",
            "10.78.2.1:7400",
        ]),
    );
    let ds = dir.join("ctl");
    std::fs::create_dir_all(&ds).unwrap();
    add_user(&ds, "ada", "admin");
    let (code, token, err) = framewire(&["user", "token", "ada", "--state-dir", &s(&ds)], "", &[]);
    assert_eq!(code, 0, "{err}");
    let token_file = dir.join("token");
    std::fs::write(&token_file, token.trim()).unwrap();
    let ctl = spawn_in(
        Some(&hb),
        &args(&[
            "--key-file",
            &s(&key_b),
            "--name",
            "home:ctl",
            "--listen",
            "10.78.2.1:7401",
            "--controller",
            "--web",
            "10.78.2.1:7480",
            "--state-dir",
            &s(&ds),
        ]),
    );
    assert!(
        gate_b.wait_log("peer=1:lab:cam", Duration::from_secs(10)),
        "gateway B hears site A's camera across the link\n--- A\n{}\n--- B\n{}",
        gate_a.log(),
        gate_b.log()
    );

    // The link's round trip, as a request sees it (TLS from gateway B).
    let (ca2, cert, key) = (ca.clone(), gw_b.cert.clone(), gw_b.key.clone());
    let rtt = in_netns(&gwb, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let tls = framewire_tls::client_config(&ca2, Some((&cert, &key))).unwrap();
            let who = framewire_net::ClientIdentity::tool("test:rtt").with_tls(Some(tls));
            let mut c = framewire_net::Client::connect("10.78.9.1:7400", &who, Duration::from_secs(5))
                .await
                .unwrap();
            let t = Instant::now();
            c.request(framewire_proto::Request::Describe).await.unwrap();
            t.elapsed()
        })
    });
    assert!(
        rtt >= Duration::from_millis(50),
        "the link adds 50 ms per round trip, measured {rtt:?}"
    );

    // A viewer on site B opens site A's stream: nothing was pulled before.
    let key = framewire_net::DeploymentKey::load(&key_b).unwrap();
    let (opened, jpeg) = in_netns(&hb, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let who = framewire_net::ClientIdentity::tool("home:viewer").with_key(Some(key));
            let mut c = framewire_net::Client::connect("10.78.2.254:7400", &who, Duration::from_secs(5))
                .await
                .unwrap();
            let t = Instant::now();
            let ch = c
                .subscribe("bars@1:lab:cam", framewire_proto::SubscribeParams::default())
                .await
                .expect("site A's stream through both gateways");
            loop {
                if let Some(framewire_proto::Message::VideoFrame(f)) =
                    common::next(&mut c, Duration::from_secs(5)).await
                    && f.channel == ch
                {
                    return (t.elapsed(), f.data[..3].to_vec());
                }
            }
        })
    });
    eprintln!("link round trip {rtt:?}; site A's stream opened on demand on site B in {opened:?} (first picture)");
    assert_eq!(jpeg, [0xff, 0xd8, 0xff]);
    assert!(opened < Duration::from_secs(2), "opened in {opened:?}");

    // The controller on site B lists the camera through both gateways and wires it.
    let web = "10.78.2.1:7480".to_owned();
    let tok = token.trim().to_owned();
    let (w, t) = (web.clone(), tok.clone());
    in_netns(&hb, move || {
        wait_for(
            "the controller to list 1/lab:cam and home:view",
            Duration::from_secs(20),
            || {
                let g = api_get(&w, &t, "/api/graph");
                let online = |name: &str| {
                    g["nodes"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|n| n["name"] == name && n["online"] == true))
                };
                (online("1/lab:cam") && online("home:view")).then_some(())
            },
        )
    });
    let file = dir.join("wanted.json.in");
    std::fs::write(
        &file,
        r#"{"edge": [{"from": "1/lab:cam", "stream": "bars", "to": "home:view"}]}"#,
    )
    .unwrap();
    let apply = |f: &std::path::Path| {
        ns.framewire(
            &hb,
            &[
                "graph",
                "apply",
                f.to_str().unwrap(),
                "--url",
                &format!("http://{web}"),
                "--token-file",
                token_file.to_str().unwrap(),
            ],
        )
    };
    apply(&file);
    let (w, t) = (web.clone(), tok.clone());
    in_netns(&hb, move || {
        wait_for("the wired edge live", Duration::from_secs(20), || {
            let g = api_get(&w, &t, "/api/graph");
            g["edges"]
                .as_array()?
                .iter()
                .find(|e| e["upstream"] == "1/lab:cam" && e["downstream"] == "home:view" && e["state"] == "live")
                .map(|_| ())
        })
    });
    let got = ns.framewire(&hb, &["--key-file", &s(&key_b), "stats", "10.78.2.1:7400"]);
    assert!(got.contains("bars"), "{got}");

    // What crossed the link: TLS records only.
    let seen = link.lock().unwrap().clone();
    assert!(seen.len() > 100_000, "only {} bytes crossed the link", seen.len());
    let count = |needle: &[u8]| seen.windows(needle.len()).filter(|w| *w == needle).count();
    assert_eq!(
        count(&[0xff, 0xd8, 0xff]),
        0,
        "a JPEG start marker in the clear on the link"
    );
    assert_eq!(count(b"bars"), 0, "the stream's name in the clear on the link");
    assert_eq!(count(b"lab:cam"), 0, "a node's name in the clear on the link");

    // Unwired, and the viewer gone: gateway B stops pulling within its idle time.
    std::fs::write(&file, r#"{"edge": []}"#).unwrap();
    apply(&file);
    let t0 = Instant::now();
    let mut out = String::new();
    let stopped = eventually_every(Duration::from_secs(15), Duration::from_millis(200), || {
        out = ns.framewire(&gwb, &["--key-file", &s(&key_b), "stats", "127.0.0.1:7400"]);
        (!out.contains("bars@1:lab:cam")).then_some(())
    });
    assert!(stopped.is_some(), "gateway B still pulls:\n{out}");
    eprintln!("gateway B stopped its edge {:?} after the unwiring", t0.elapsed());
    assert!(ctl.log().contains("node connected"), "{}", ctl.log());
    drop(view);
}
