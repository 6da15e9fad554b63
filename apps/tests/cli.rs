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
        "--target-ports",
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
        "--idle",
        "--echo-backlog",
        "--echo-reuseport",
        "--echo-linger0",
        "--echo-close-after",
        "udp-rr",
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
fn interface_drivers_say_what_they_need_and_the_standalone_memory_echo_says_so() {
    for bin in [ECHO, LOADGEN] {
        let o = run(bin, &["--stack", "shardnet", "--driver", "af-xdp"]);
        assert_eq!(o.status.code(), Some(1), "{bin}");
        let t = text(&o);
        assert!(t.contains("--driver af-xdp needs --ip A.B.C.D/N"), "{t}");
        let o = run(bin, &["--stack", "shardnet", "--driver", "dpdk"]);
        assert_eq!(o.status.code(), Some(1), "{bin}");
        let t = text(&o);
        if cfg!(feature = "dpdk") {
            assert!(t.contains("--driver dpdk needs --ip A.B.C.D/N"), "{t}");
        } else {
            assert!(
                t.contains(
                    "built without the dpdk feature: cargo build --features dpdk (needs libdpdk-dev)"
                ),
                "{t}"
            );
        }
        // A missing interface is reported by the driver, not unwrapped.
        let mut a = vec![
            "--stack",
            "shardnet",
            "--driver",
            "af-xdp",
            "--iface",
            "sapp-none0",
            "--ip",
            "198.18.0.2/24",
            "--duration",
            "1",
        ];
        if bin == LOADGEN {
            a.extend(["--target", "198.18.0.1:7"]);
        }
        let o = run(bin, &a);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{bin}: {t}");
        assert!(t.contains("af-xdp on sapp-none0"), "{bin}: {t}");
    }
    let o = run(
        LOADGEN,
        &[
            "--stack",
            "shardnet",
            "--driver",
            "af-xdp",
            "--iface",
            "x",
            "--ip",
            "198.18.0.2/24",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("--driver af-xdp needs --target"),
        "{}",
        text(&o)
    );
    let o = run(LOADGEN, &["--stack", "kernel", "--xdp-mode", "native"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("--xdp-mode is a shardnet option"),
        "{}",
        text(&o)
    );
    let o = run(
        ECHO,
        &[
            "--stack",
            "shardnet",
            "--driver",
            "memory",
            "--no-time-wait",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("--no-time-wait is for --stack kernel"),
        "{}",
        text(&o)
    );
    let o = run(ECHO, &["--stack", "shardnet", "--driver", "memory"]);
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(t.contains("wire lives inside one process"), "{t}");
    assert!(
        t.contains("loadgen --stack shardnet --driver memory` starts this echo server itself"),
        "{t}"
    );
}

#[test]
fn shardnet_tcp_arguments_are_checked() {
    let cases: [(&[&str], &str); 6] = [
        (
            &["--mode", "rr", "--target", "127.0.0.1:7"],
            "the echo server runs in this process",
        ),
        (
            &["--mode", "rr", "--fastopen"],
            "--fastopen on shardnet applies to --mode crr",
        ),
        (&["--server-close"], "--server-close needs --mode"),
        (
            &["--mode", "rr", "--loss", "0.1"],
            "--loss applies to --mode udp-rr",
        ),
        (
            &["--mode", "stream", "--server-close"],
            "apply to --mode crr",
        ),
        (
            &["--duration", "0"],
            "--duration 0: must be a positive number",
        ),
    ];
    for (args, want) in cases {
        let o = run(LOADGEN, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
    }
    let o = run(
        LOADGEN,
        &["--stack", "kernel", "--mode", "rr", "--echo-reuseport"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("--echo-reuseport is for shardnet's memory driver"),
        "{}",
        text(&o)
    );
    let o = run(LOADGEN, &["--stack", "kernel", "--mode", "udp-rr"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("no --stack kernel form"), "{}", text(&o));
}

#[test]
fn target_ports_are_checked_on_every_stack() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--stack", "kernel", "--mode", "rr", "--target-ports", "0"],
            "--target-ports 0: 1 to 16 (the most ports one echo listens on)",
        ),
        (
            &["--stack", "kernel", "--mode", "crr", "--target-ports", "17"],
            "--target-ports 17: 1 to 16",
        ),
        (
            &[
                "--stack",
                "kernel",
                "--mode",
                "crr",
                "--target",
                "127.0.0.1:65530",
                "--target-ports",
                "8",
            ],
            "the ports from 65530 would run past 65535",
        ),
        (
            &[
                "--stack",
                "shardnet",
                "--driver",
                "memory",
                "--mode",
                "crr",
                "--target-ports",
                "0",
            ],
            "--target-ports 0: 1 to 16",
        ),
        (
            &["--mode", "udp-rr", "--target-ports", "2"],
            "--target-ports applies to the TCP modes",
        ),
    ];
    for (args, want) in cases {
        let o = run(LOADGEN, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
    }
}

#[test]
fn udp_job_stays_reachable_with_its_flags() {
    let o = run(LOADGEN, &["--mode", "udp-rr", "--count", "2000"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("driver: memory"), "{t}");
    assert!(t.contains("2000 of 2000 requests"), "{t}");
    let o = run(
        LOADGEN,
        &["--mode", "udp-rr", "--count", "10", "--size", "4000"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("the UDP job needs 8..=1472"),
        "{}",
        text(&o)
    );
}
