use std::path::PathBuf;

use framewire_media::testpattern::TestPatternConfig;
use framewire_net::{ArchiveSink, FileSink, SourceConfig, V4l2SourceConfig, X11SourceConfig};
use framewire_proto::{DeliveryMode, PixelFormat};

use super::*;

/// A source from a compact spec, as `--source` makes it.
fn source(spec: &str) -> anyhow::Result<SourceConfig> {
    Ok(framewire_net::sources::from_table(parse_source(spec)?)?)
}

fn kind_of<T: framewire_net::api::SourceSpec + Clone>(s: &SourceConfig) -> T {
    s.downcast_ref::<T>().expect("the expected kind").clone()
}

#[test]
fn a_full_file_parses() {
    let f: NodeFile = toml::from_str(
        r#"
        name = "lab:relay"
        listen = "127.0.0.1:7401"
        [defaults]
        max_frames = 32
        [[source]]
        kind = "test-pattern"
        name = "bars"
        size = "640x480"
        fps = 25
        format = "qoi"
        [[upstream]]
        addr = "127.0.0.1:7400"
        stream = "cam"
        as = "cam-relay"
        mode = "completeness"
        max_frames = 10
        [[sink]]
        stream = "cam-relay"
        kind = "file"
        path = "/tmp/x.mjpeg"
        [[opaque]]
        stream = "cam-relay"
        listen = "127.0.0.1:7500"
        "#,
    )
    .unwrap();
    let cfg = f.into_config().unwrap();
    assert_eq!(cfg.name, "lab:relay");
    assert_eq!(cfg.relay.default_max_frames, 32);
    assert_eq!(cfg.edges[0].local_name(), "cam-relay");
    assert_eq!(cfg.edges[0].params.mode, DeliveryMode::Completeness);
    assert_eq!(
        cfg.sinks[0].kind.downcast_ref::<FileSink>().map(|f| f.path.clone()),
        Some(PathBuf::from("/tmp/x.mjpeg"))
    );
    assert_eq!(cfg.opaque_ports[0].params.mode, DeliveryMode::LowLatency);
}

#[test]
fn the_documented_example_parses() {
    let doc = include_str!("../../../../docs/config.md");
    let start = doc.find("```toml\n").expect("a toml block") + 8;
    let end = start + doc[start..].find("```").expect("closed");
    let f: NodeFile = toml::from_str(&doc[start..end]).expect("docs/config.md example parses");
    assert_eq!(f.sources.len(), 9);
    // The file source opens its file when parsed; the others parse as documented.
    for i in [0, 2, 3, 4, 7, 8] {
        framewire_net::sources::from_table(f.sources[i].clone()).unwrap_or_else(|e| panic!("source {i}: {e}"));
    }
    let v: V4l2SourceConfig = kind_of(&framewire_net::sources::from_table(f.sources[5].clone()).expect("v4l2 source"));
    let x: X11SourceConfig = kind_of(&framewire_net::sources::from_table(f.sources[6].clone()).expect("x11 source"));
    assert_eq!((x.monitor.as_deref(), x.inject), (Some("HDMI-1"), false));
    assert_eq!((v.size, v.fps, v.on_demand), (Some((640, 480)), Some(25.0), true));
    assert_eq!(v.controls, vec![("brightness".to_owned(), 128)]);
    assert_eq!(f.upstreams[0].local_name, "cam");
    assert_eq!(f.sinks[0]["kind"].as_str(), Some("file"));
    // Every documented sink parses as its kind says.
    for t in &f.sinks {
        framewire_net::sinks::from_table(t.clone()).unwrap_or_else(|e| panic!("sink {t:?}: {e}"));
    }
    let kinds: Vec<_> = f.sinks.iter().filter_map(|t| t["kind"].as_str()).collect();
    assert!(kinds.ends_with(&["srt", "hls", "push"]), "{kinds:?}");
    assert_eq!(f.opaque[0].listen.port(), 7500);
    assert_eq!(f.rtsp, Some("127.0.0.1:8554".parse().unwrap()));
    let link = f.links[0].rule().expect("the documented link rule");
    assert_eq!(link.link.max_rate, Some(2_500_000));
    assert_eq!(f.upstreams[0].weight, Some(1));
    let tls = f.tls.as_ref().expect("the documented [tls]");
    assert!(tls.ca.is_some() && !tls.require && tls.dial.as_deref() == Some("all"));
    assert_eq!(f.discovery.as_ref().and_then(|d| d.tunnel.as_deref()), Some("read"));
}

#[test]
fn key_file_metrics_and_unauthenticated_opaque_ports() {
    let dir = std::env::temp_dir().join(format!("fw-config-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key");
    let _ = std::fs::remove_file(&key);
    framewire_net::DeploymentKey::generate()
        .unwrap()
        .write_new(&key, false)
        .unwrap();
    let text = format!(
        "name = \"a:b\"\nkey_file = {:?}\nmetrics = \"127.0.0.1:9400\"\n\
         [[opaque]]\nstream = \"s\"\nlisten = \"127.0.0.1:7500\"\nallow_unauthenticated = true\n",
        key.display().to_string()
    );
    let cfg = toml::from_str::<NodeFile>(&text).unwrap().into_config().unwrap();
    assert!(cfg.key.is_some());
    assert_eq!(cfg.metrics, Some("127.0.0.1:9400".parse().unwrap()));
    assert!(cfg.opaque_ports[0].allow_unauthenticated);
    let o = parse_opaque("cam=127.0.0.1:7500,allow-unauthenticated=true").unwrap();
    assert!(o.allow_unauthenticated);
    assert!(!parse_opaque("cam=127.0.0.1:7500").unwrap().allow_unauthenticated);
    // A missing key file is an error that names it.
    let missing = toml::from_str::<NodeFile>("key_file = \"/nonexistent/fw-key\"").unwrap();
    let e = missing.into_config().unwrap_err();
    assert!(format!("{e:#}").contains("/nonexistent/fw-key"), "{e:#}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_fields_are_refused() {
    let e = toml::from_str::<NodeFile>("name = \"a:b\"\nlisten_addr = \"x\"").unwrap_err();
    assert!(e.to_string().contains("listen_addr"), "{e}");
    let e = source("test-pattern:bars,colour=red").unwrap_err();
    assert!(format!("{e:#}").contains("colour"), "{e:#}");
}

#[test]
fn compact_specs() {
    let tp: TestPatternConfig =
        kind_of(&source("test-pattern:bars,size=320x240,fps=10,format=raw,pixel-format=yuv420p").unwrap());
    assert_eq!((tp.width, tp.height, tp.fps_num, tp.fps_den), (320, 240, 10_000, 1000));
    assert_eq!(tp.encode.pixel_format, PixelFormat::Yuv420p);
    let u = parse_upstream("127.0.0.1:7400/cam,as=c2,mode=completeness,max-frames=5").unwrap();
    assert_eq!(
        (u.addr.as_str(), u.stream.as_str(), u.local_name.as_str()),
        ("127.0.0.1:7400", "cam", "c2")
    );
    assert_eq!(u.delivery.max_frames, Some(5));
    let k = framewire_net::sinks::from_table(parse_sink("file:cam,path=out.mjpeg").unwrap()).unwrap();
    assert_eq!(
        k.kind.downcast_ref::<FileSink>().map(|f| f.path.clone()),
        Some(PathBuf::from("out.mjpeg"))
    );
    let o = parse_opaque("cam=127.0.0.1:7500").unwrap();
    assert_eq!(o.listen.port(), 7500);
    assert!(parse_upstream("no-stream-here").is_err());
    assert_eq!(parse_sink("bogus:cam").unwrap()["kind"].as_str(), Some("bogus"));
    let a = parse_sink("archive:cam,dir=/a,format=ffv1,segment=2,on-full=stop,max-total-bytes=1000").unwrap();
    let cfg = NodeFile {
        sinks: vec![a],
        ..NodeFile::default()
    }
    .into_config()
    .unwrap();
    let ac = &cfg.sinks[0]
        .kind
        .downcast_ref::<ArchiveSink>()
        .expect("an archive sink")
        .0;
    assert_eq!(ac.segment, std::time::Duration::from_secs(2));
    assert_eq!(
        (ac.on_full, ac.max_total_bytes),
        (framewire_archive::OnFull::Stop, 1000)
    );
    assert_eq!(cfg.sinks[0].params.mode, DeliveryMode::Completeness);
}

#[test]
fn x11_sources() {
    let x: X11SourceConfig =
        kind_of(&source("x11:desk,display=:3,rect=640x480+10+20,format=raw-zstd,fps=5,inject-input=true").unwrap());
    assert_eq!(x.display.as_deref(), Some(":3"));
    assert_eq!(x.rect, Some((10, 20, 640, 480)));
    assert!(x.inject && x.fps == 5.0);
    let x: X11SourceConfig = kind_of(&source("x11:desk,monitor=LEFT").unwrap());
    assert_eq!((x.monitor.as_deref(), x.inject), (Some("LEFT"), false));
    assert!(source("x11:desk,format=h264").is_err());
}

#[test]
fn v4l2_sources() {
    let v: V4l2SourceConfig = kind_of(&source("v4l2:cam,device=/dev/video2,pixel-format=YUYV,size=1280x720,fps=12.5,format=mjpeg,quality=70,linger=0.5,controls.brightness=200").unwrap());
    assert_eq!(v.device, PathBuf::from("/dev/video2"));
    assert_eq!(v.pixel_format, Some(u32::from_le_bytes(*b"YUYV")));
    assert_eq!(v.output, framewire_net::V4l2Output::Mjpeg(70));
    assert_eq!(v.linger, std::time::Duration::from_millis(500));
    assert_eq!(v.controls, vec![("brightness".to_owned(), 200)]);
    let v: V4l2SourceConfig = kind_of(&source("v4l2:cam,pixel-format=Y10").unwrap());
    assert_eq!(v.pixel_format, Some(u32::from_le_bytes(*b"Y10 ")));
    assert_eq!((v.on_demand, v.output), (true, framewire_net::V4l2Output::Native));
    let e = source("v4l2:cam,format=h264").unwrap_err();
    assert!(e.to_string().contains("native, raw, raw-zstd, mjpeg"), "{e}");
    assert!(source("v4l2:cam,exposure=3").is_err());
}

#[test]
fn bad_values_say_what_is_wrong() {
    let f: NodeFile = toml::from_str("[[sink]]\nstream = \"a\"\nkind = \"tape\"").unwrap();
    let e = format!("{:#}", f.into_config().unwrap_err());
    assert!(e.contains("unknown kind `tape`"), "{e}");
    let e = Delivery {
        mode: Some("fast".into()),
        ..Delivery::default()
    }
    .params(DeliveryMode::LowLatency)
    .unwrap_err()
    .to_string();
    assert!(e.contains("low-latency, completeness"), "{e}");
}
