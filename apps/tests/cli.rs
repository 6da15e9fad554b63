//! Command-line behaviour of both binaries.

use std::process::{Command, Output};

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const ECHO: &str = env!("CARGO_BIN_EXE_echo");
const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");

#[test]
fn help_lists_the_options() {
    let o = run(ECHO, &["--help"]);
    assert!(o.status.success());
    for flag in [
        "--port",
        "--backlog",
        "--reuseport",
        "--fastopen",
        "--defer-accept",
        "--close-after",
        "--linger0",
        "--stack",
        "--metrics",
    ] {
        assert!(text(&o).contains(flag), "echo --help lacks {flag}");
    }
    let o = run(LOADGEN, &["--help"]);
    assert!(o.status.success());
    for flag in [
        "--target",
        "--mode",
        "--conns",
        "--rate",
        "--client-close",
        "--server-close",
        "--hist-log",
        "--tw-report",
        "--count",
        "--sockets",
        "--loss",
        "--json",
        "--busy-poll",
    ] {
        assert!(text(&o).contains(flag), "loadgen --help lacks {flag}");
    }
}

#[test]
fn bad_arguments_fail_clearly() {
    let o = run(LOADGEN, &["--mode", "bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("invalid value 'bogus'"), "{}", text(&o));
    let o = run(ECHO, &["--port", "notaport"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("invalid value"), "{}", text(&o));
    let o = run(
        LOADGEN,
        &[
            "--stack",
            "kernel",
            "--mode",
            "crr",
            "--client-close",
            "--server-close",
        ],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("cannot be used with"), "{}", text(&o));
    let o = run(LOADGEN, &["--stack", "kernel", "--pcap", "x.pcap"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("--pcap is a shardnet option"),
        "{}",
        text(&o)
    );
    let o = run(
        LOADGEN,
        &["--stack", "kernel", "--mode", "rr", "--conns", "0"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("--conns must be at least 1"),
        "{}",
        text(&o)
    );
}

#[test]
fn unbuilt_drivers_and_unwired_tcp_say_so() {
    for bin in [ECHO, LOADGEN] {
        for driver in ["dpdk", "af-xdp"] {
            let o = run(bin, &["--stack", "shardnet", "--driver", driver]);
            assert_eq!(o.status.code(), Some(1), "{bin} {driver}");
            let t = text(&o);
            assert!(
                t.contains(&format!("--driver {driver}: driver not built yet")),
                "{t}"
            );
        }
    }
    let o = run(LOADGEN, &["--stack", "shardnet", "--mode", "rr"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("shardnet's TCP modes are not wired yet"),
        "{}",
        text(&o)
    );
    let o = run(ECHO, &["--stack", "shardnet"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("shardnet TCP echo server is not wired yet"),
        "{}",
        text(&o)
    );
}

#[test]
fn default_job_is_the_shardnet_udp_run() {
    let o = run(LOADGEN, &["--count", "2000"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("driver: memory"), "{t}");
    assert!(t.contains("2000 of 2000 requests"), "{t}");
    let o = run(LOADGEN, &["--count", "10", "--size", "4000"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("the UDP job needs 8..=1472"),
        "{}",
        text(&o)
    );
}
