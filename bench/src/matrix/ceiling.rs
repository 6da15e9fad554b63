//! The ceilings of the real path: raw packet echo with no TCP, in packets/s. AF_XDP: the
//! `xdp_forward` binary's raw reflector on a veth pair, loaded by its AF_XDP generator (so
//! that the responder is the bottleneck). DPDK: the `dpdk_forward` binary (raw DPDK
//! forwarding on a veth through `net_af_xdp`, loaded by the same AF_XDP generator), when it is
//! there.

use super::child;
use super::results::Ceiling;
use super::summary::Spread;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn spread(v: &Value) -> Option<Spread> {
    if let Some(x) = v.as_f64() {
        return Spread::of(&[x]);
    }
    let g = |k: &str| v.get(k).and_then(Value::as_f64);
    Some(Spread {
        median: g("median")?,
        min: g("min")?,
        max: g("max")?,
        n: v.get("n").and_then(Value::as_u64).unwrap_or(0) as usize,
    })
}

/// The last line of `stdout` that parses as a JSON object.
fn last_json(stdout: &str) -> Option<Value> {
    stdout.lines().rev().find_map(|l| {
        serde_json::from_str::<Value>(l.trim())
            .ok()
            .filter(Value::is_object)
    })
}

/// Reads `xdp_forward --json`: the raw reflector's echoes/s under the AF_XDP generator, with
/// the kernel's and shardnet's UDP echo of the same run as context.
pub fn read_xdp_forward(stdout: &str, label: &str) -> Ceiling {
    let mut c = Ceiling {
        label: label.into(),
        packets_per_s: None,
        not_run: None,
        context: Vec::new(),
        shardnet_fraction: None,
    };
    let Some(v) = last_json(stdout) else {
        c.not_run = Some("xdp_forward printed no JSON".into());
        return c;
    };
    let loads = v
        .get("loads")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for load in &loads {
        let lname = load.get("load").and_then(Value::as_str).unwrap_or("?");
        for r in load
            .get("responders")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let rname = r.get("responder").and_then(Value::as_str).unwrap_or("?");
            let Some(echo) = r.get("echo_pps").and_then(spread) else {
                continue;
            };
            if lname == "AF_XDP generator" && rname.starts_with("AF_XDP raw reflector") {
                // The ceiling is the more the raw path carried: echoed (closed loop) or
                // received (open loop); the other is kept as context.
                let rx = r.get("rx_pps").and_then(spread);
                c.packets_per_s = Some(match rx {
                    Some(rx) if rx.median > echo.median => rx,
                    _ => echo,
                });
                c.context
                    .push((format!("{rname}, load: {lname}, echoes/s"), echo));
            } else {
                c.context
                    .push((format!("{rname}, load: {lname}, echoes/s"), echo));
            }
            if let Some(rx) = r.get("rx_pps").and_then(spread) {
                c.context.push((
                    format!("{rname}, load: {lname}, open loop, datagrams/s received"),
                    rx,
                ));
            }
        }
    }
    if c.packets_per_s.is_none() {
        c.not_run = Some("xdp_forward's JSON has no raw reflector figure".into());
    }
    c
}

/// Datagrams in flight in the ceiling's echo loop: as many as the TCP rows keep in flight at
/// most (rr with 64 connections), twice, so that the echo loop measures the path's rate
/// rather than its round-trip time.
pub const ECHO_WINDOW: usize = 128;

/// Runs `xdp_forward` (it makes and deletes its own namespaces; the caller holds the lock).
pub fn xdp_forward(bin: &Path, mode: &str, rounds: usize, secs: f64) -> Ceiling {
    let label = format!(
        "raw AF_XDP reflector ({mode} XDP, copy mode), AF_XDP generator load: the higher of echoes/s and open-loop datagrams/s received"
    );
    if !bin.exists() {
        return Ceiling {
            label,
            packets_per_s: None,
            not_run: Some(format!("not run: {} is not built", bin.display())),
            context: Vec::new(),
            shardnet_fraction: None,
        };
    }
    let limit = Duration::from_secs_f64(60.0 + rounds as f64 * secs * 20.0);
    let r = child::run(
        Command::new(bin).args([
            "--mode",
            mode,
            "--rounds",
            &rounds.to_string(),
            "--secs",
            &secs.to_string(),
            "--window",
            &ECHO_WINDOW.to_string(),
            "--json",
        ]),
        limit,
    );
    match r {
        Ok(f) if f.code == Some(0) => read_xdp_forward(&f.stdout, &label),
        Ok(f) => Ceiling {
            label,
            packets_per_s: None,
            not_run: Some(format!(
                "not run: xdp_forward status {:?}: {}",
                f.code,
                f.stderr_tail(3)
            )),
            context: Vec::new(),
            shardnet_fraction: None,
        },
        Err(e) => Ceiling {
            label,
            packets_per_s: None,
            not_run: Some(format!("not run: {e}")),
            context: Vec::new(),
            shardnet_fraction: None,
        },
    }
}

/// Reads `dpdk_forward --json`: the raw DPDK reflector's packets/s on the vdev (the higher of
/// its closed-loop echoes/s and open-loop datagrams/s received) under the AF_XDP generator's
/// load (keys `gen_*`) when the JSON has it, else under the kernel UDP socket's load (the keys
/// without prefix, all an older `dpdk_forward` printed); shardnet's and the kernel's UDP echo
/// on the same veth, under both loads, as context. The label gets the load the ceiling came
/// from appended.
pub fn read_dpdk_forward(stdout: &str, label: &str) -> Ceiling {
    let mut c = Ceiling {
        label: label.into(),
        packets_per_s: None,
        not_run: None,
        context: Vec::new(),
        shardnet_fraction: None,
    };
    let Some(v) = last_json(stdout) else {
        c.not_run = Some("dpdk_forward printed no JSON".into());
        return c;
    };
    let get = |k: &str| v.get(k).and_then(spread);
    let loads = [("gen_", "AF_XDP generator"), ("", "kernel UDP socket")];
    for (prefix, load) in loads {
        let (echo, rx) = (
            get(&format!("{prefix}echo_raw_pps")),
            get(&format!("{prefix}rx_raw_pps")),
        );
        let raw = match (echo, rx) {
            (Some(e), Some(r)) if r.median > e.median => Some(r),
            (Some(e), _) => Some(e),
            (None, r) => r,
        };
        if c.packets_per_s.is_none() && raw.is_some() {
            c.packets_per_s = raw;
            c.label = format!("{label}; load: {load}");
        }
    }
    for (prefix, load) in loads {
        for (key, what) in [
            ("echo_raw_pps", "raw DPDK reflector, echoes/s"),
            (
                "rx_raw_pps",
                "raw DPDK reflector, open loop, datagrams/s received",
            ),
            (
                "echo_shardnet_pps",
                "shardnet UDP echo on the same vdev, echoes/s",
            ),
            (
                "rx_shardnet_pps",
                "shardnet on the same vdev, open loop, datagrams/s received",
            ),
            (
                "echo_kernel_pps",
                "kernel UDP echo on the same veth, echoes/s",
            ),
            (
                "rx_kernel_pps",
                "kernel on the same veth, open loop, datagrams/s received",
            ),
        ] {
            if let Some(x) = get(&format!("{prefix}{key}")) {
                c.context.push((format!("{what}, load: {load}"), x));
            }
        }
    }
    if c.packets_per_s.is_none() {
        c.not_run = Some("dpdk_forward's JSON has no raw reflector figure".into());
    }
    c
}

/// Runs `dpdk_forward --vdev af_xdp --json` (it makes and deletes its own namespaces; the
/// caller holds the lock) if it is built.
pub fn dpdk_forward(bin: &Path, rounds: usize, secs: f64) -> Ceiling {
    let label = "raw DPDK reflector (net_af_xdp on veth): the higher of echoes/s and open-loop datagrams/s received".to_string();
    if !bin.exists() {
        return Ceiling {
            label,
            packets_per_s: None,
            not_run: Some(format!(
                "not run: {} is not built (scripts/bench.sh builds it when libdpdk is installed)",
                bin.display()
            )),
            context: Vec::new(),
            shardnet_fraction: None,
        };
    }
    match child::run(
        Command::new(bin).args([
            "--vdev",
            "af_xdp",
            "--rounds",
            &rounds.to_string(),
            "--secs",
            &secs.to_string(),
            "--window",
            &ECHO_WINDOW.to_string(),
            "--json",
        ]),
        Duration::from_secs_f64(120.0 + rounds as f64 * secs * 40.0),
    ) {
        Ok(f) if f.code == Some(0) => read_dpdk_forward(&f.stdout, &label),
        Ok(f) => Ceiling {
            label,
            packets_per_s: None,
            not_run: Some(format!(
                "not run: dpdk_forward status {:?}: {}",
                f.code,
                f.stderr_tail(3)
            )),
            context: Vec::new(),
            shardnet_fraction: None,
        },
        Err(e) => Ceiling {
            label,
            packets_per_s: None,
            not_run: Some(format!("not run: {e}")),
            context: Vec::new(),
            shardnet_fraction: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_reflector_under_the_generator() {
        let out = "table\n{\"loads\":[{\"load\":\"kernel UDP socket\",\"responders\":[{\"responder\":\"AF_XDP raw reflector (no stack)\",\"echo_pps\":{\"median\":5.0,\"min\":4.0,\"max\":6.0}}]},\
            {\"load\":\"AF_XDP generator\",\"responders\":[{\"responder\":\"AF_XDP raw reflector (no stack)\",\"echo_pps\":{\"median\":9.0,\"min\":8.0,\"max\":10.0}}]}]}\n";
        let c = read_xdp_forward(out, "x");
        assert_eq!(c.packets_per_s.map(|s| s.median), Some(9.0));
        assert_eq!(c.context.len(), 2);
        assert!(c.context[0].0.contains("kernel UDP socket"));
        assert!(read_xdp_forward("no json", "x").not_run.is_some());
    }

    #[test]
    fn reads_the_dpdk_reflector_and_keeps_the_stacks_as_context() {
        let out = "{\"bench\":\"dpdk_forward\",\"echo_kernel_pps\":{\"median\":50.0,\"min\":40.0,\"max\":60.0},\"echo_raw_pps\":{\"median\":70.0,\"min\":65.0,\"max\":75.0},\"echo_shardnet_pps\":{\"median\":60.0,\"min\":55.0,\"max\":65.0},\"rx_raw_pps\":{\"median\":110.0,\"min\":100.0,\"max\":120.0}}\n";
        let c = read_dpdk_forward(out, "x");
        assert_eq!(c.packets_per_s.map(|s| s.median), Some(110.0));
        assert_eq!(c.context.len(), 4);
        assert!(c.label.ends_with("load: kernel UDP socket"), "{}", c.label);
        assert!(
            c.context
                .iter()
                .all(|(w, _)| w.contains("kernel UDP socket"))
        );
        assert!(read_dpdk_forward("{}", "x").not_run.is_some());
    }

    #[test]
    fn takes_the_dpdk_ceiling_from_the_generator_load_when_present() {
        let out = "table\n{\"bench\":\"dpdk_forward\",\
            \"echo_kernel_pps\":{\"median\":50.0,\"min\":40.0,\"max\":60.0},\
            \"echo_raw_pps\":{\"median\":70.0,\"min\":65.0,\"max\":75.0},\
            \"rx_raw_pps\":{\"median\":110.0,\"min\":100.0,\"max\":120.0},\
            \"gen_echo_kernel_pps\":{\"median\":80.0,\"min\":70.0,\"max\":90.0},\
            \"gen_echo_raw_pps\":{\"median\":300.0,\"min\":250.0,\"max\":320.0},\
            \"gen_rx_raw_pps\":{\"median\":200.0,\"min\":150.0,\"max\":220.0},\
            \"gen_echo_shardnet_pps\":{\"median\":150.0,\"min\":140.0,\"max\":160.0}}\n";
        let c = read_dpdk_forward(out, "x");
        // The generator's echo (300) beats its rx (200) and the socket load's figures (110).
        assert_eq!(c.packets_per_s.map(|s| s.median), Some(300.0));
        assert_eq!(c.label, "x; load: AF_XDP generator");
        assert_eq!(c.context.len(), 7);
        let generator = c
            .context
            .iter()
            .filter(|(w, _)| w.ends_with("load: AF_XDP generator"))
            .count();
        assert_eq!(generator, 4);
        // Only generator figures, and the open loop is higher: the open loop is the ceiling.
        let out = "{\"gen_echo_raw_pps\":{\"median\":30.0,\"min\":25.0,\"max\":32.0},\
            \"gen_rx_raw_pps\":{\"median\":90.0,\"min\":80.0,\"max\":95.0}}";
        let c = read_dpdk_forward(out, "x");
        assert_eq!(c.packets_per_s.map(|s| s.median), Some(90.0));
        assert!(c.not_run.is_none());
    }
}
