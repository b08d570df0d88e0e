use super::*;

fn table(s: &str) -> toml::Table {
    toml::from_str(s).unwrap()
}

fn target(kind: SinkKind) -> MuxTarget {
    let spec: &dyn std::any::Any = &*kind.0;
    spec.downcast_ref::<MuxSink>().expect("a mux sink").target.clone()
}

#[test]
fn srt_keys_make_ffmpeg_url_options() {
    let k = srt_from_table(
        "cam",
        table("url = \"srt://127.0.0.1:9000\"\nlatency = 200\npassphrase = \"0123456789\""),
    )
    .unwrap();
    let t = target(k);
    let args = t.args(Format::H265, 25.0);
    assert!(args.windows(2).any(|w| w == ["-f", "hevc"]), "{args:?}");
    assert!(args.windows(2).any(|w| w == ["-framerate", "25"]), "{args:?}");
    assert_eq!(
        args.last().unwrap(),
        "srt://127.0.0.1:9000?mode=listener&latency=200000&pkt_size=1316&passphrase=0123456789"
    );
    assert!(args.windows(2).any(|w| w == ["-f", "mpegts"]));
    // The label never shows the passphrase.
    assert_eq!(t.label(), "sink:srt:srt://127.0.0.1:9000 (listener)");
    let caller = target(srt_from_table("cam", table("url = \"srt://h:1?streamid=x\"\nlisten = false")).unwrap());
    assert_eq!(
        caller.args(Format::H264, 30.0).last().unwrap(),
        "srt://h:1?streamid=x&mode=caller&latency=120000&pkt_size=1316"
    );
}

#[test]
fn bad_keys_are_refused_with_the_reason() {
    let err = |r: Result<SinkKind, ConfigError>| r.unwrap_err().to_string();
    assert!(err(srt_from_table("cam", table(""))).contains("needs url=srt://"));
    assert!(err(srt_from_table("cam", table("url = \"udp://x:1\""))).contains("not an srt:// URL"));
    assert!(
        err(srt_from_table(
            "cam",
            table("url = \"srt://x:1\"\npassphrase = \"short\"")
        ))
        .contains("10 to 79")
    );
    assert!(err(srt_from_table("cam", table("url = \"srt://x:1\"\nlate = 1"))).contains("unknown field"));
    assert!(err(hls_from_table("cam", table(""))).contains("needs dir="));
    assert!(err(hls_from_table("cam", table("dir = \"/tmp/x\"\nsegment = 0.1"))).contains("0.5 to 60"));
    assert!(err(push_from_table("cam", table("url = \"http://x/y\""))).contains("rtmp:// or srt://"));
    assert!(err(push_from_table("cam", table("url = \"rtmp://x/app/key\"\nlatency = 5"))).contains("for srt://"));
}

#[test]
fn hls_and_rtmp_args_and_what_each_carries() {
    let hls = target(hls_from_table("cam", table("dir = \"/tmp/fw-hls\"\nsegment = 1\nlist_size = 4")).unwrap());
    let args = hls.args(Format::H264, 30.0);
    assert!(args.windows(2).any(|w| w == ["-hls_time", "1"]), "{args:?}");
    assert!(args.windows(2).any(|w| w == ["-hls_list_size", "4"]), "{args:?}");
    assert_eq!(args.last().unwrap(), "/tmp/fw-hls/index.m3u8");
    assert!(hls.carries(Format::H265) && !hls.carries(Format::Mjpeg));
    let rtmp = target(push_from_table("cam", table("url = \"rtmp://127.0.0.1/live/secret\"")).unwrap());
    assert_eq!(
        rtmp.args(Format::H264, 30.0).last().unwrap(),
        "rtmp://127.0.0.1/live/secret"
    );
    assert!(rtmp.carries(Format::H264) && !rtmp.carries(Format::H265));
    // The stream key stays out of statistics.
    assert_eq!(rtmp.label(), "sink:push:rtmp://127.0.0.1/live/…");
    let srt = target(push_from_table("cam", table("url = \"srt://127.0.0.1:9000\"")).unwrap());
    assert!(matches!(srt, MuxTarget::Srt { listener: false, .. }));
}

#[test]
fn what_ffmpeg_says_never_carries_a_key_or_passphrase() {
    let srt = target(srt_from_table("cam", table("url = \"srt://h:1\"\npassphrase = \"p:ss?word&12\"")).unwrap());
    let url = srt.args(Format::H264, 30.0).last().unwrap().clone();
    let line = format!("Connection to {url} failed: Input/output error");
    assert_eq!(srt.redact(&line), "Connection to srt://h:1 failed: Input/output error");
    let rtmp = target(push_from_table("cam", table("url = \"rtmp://h/live/secret\"")).unwrap());
    assert_eq!(rtmp.redact("rtmp://h/live/secret: refused"), "rtmp://h/live/…: refused");
}

#[test]
fn srt_options_are_the_sinks_own_and_passphrases_are_encoded() {
    let err = |t: &str| srt_from_table("cam", table(t)).unwrap_err().to_string();
    assert!(err("url = \"srt://h:1?mode=caller\"").contains("not in the URL"));
    assert!(err("url = \"srt://h:1?streamid=a&passphrase=x\"").contains("not in the URL"));
    let t = target(srt_from_table("cam", table("url = \"srt://h:1\"\npassphrase = \"a&b+c d=e/%\"")).unwrap());
    assert!(
        t.args(Format::H264, 30.0)
            .last()
            .unwrap()
            .ends_with("passphrase=a%26b%2Bc%20d%3De%2F%25")
    );
}

#[test]
fn urls_are_shown_without_keys_or_credentials() {
    assert_eq!(redact_key("rtmp://h/live/key"), "rtmp://h/live/…");
    assert_eq!(redact_key("rtmp://h/live/key/"), "rtmp://h/live/…");
    assert_eq!(redact_key("rtmp://u:p@h:1935/live/key"), "rtmp://…@h:1935/live/…");
    assert_eq!(redact_key("rtmp://h/live"), "rtmp://h/live");
    let e = push_from_table("cam", table("url = \"http://u:secret@h/x/key?token=t\""))
        .unwrap_err()
        .to_string();
    assert!(
        !e.contains("secret") && !e.contains("token") && !e.contains("key"),
        "{e}"
    );
}
