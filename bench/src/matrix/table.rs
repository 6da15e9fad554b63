//! The Markdown report of a matrix run: the machine, every side-by-side row (median, spread,
//! ratio), the ceilings, the churn runs and the targets.

use super::results::{Results, Side};
use super::summary::Spread;
use std::fmt::Write as _;

/// `v` with thousands separators (no decimals), or with two decimals below 100.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    if v.abs() < 100.0 {
        return format!("{v:.2}");
    }
    let s = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

fn spread(s: &Spread) -> String {
    format!("{} ({}–{})", num(s.median), num(s.min), num(s.max))
}

fn side(s: &Side) -> String {
    match (&s.value, &s.not_run) {
        (Some(v), _) => {
            let failed = s.runs.len() - s.measured().count();
            let errors: u64 = s.measured().map(|m| m.errors).sum();
            let mut out = spread(v);
            if failed > 0 {
                let _ = write!(out, ", {failed} of {} runs failed", s.runs.len());
            }
            if errors > 0 {
                let _ = write!(out, ", {errors} errors");
            }
            out
        }
        (None, Some(why)) => why.replace('|', "/"),
        (None, None) => "-".into(),
    }
}

fn p99(s: &Side) -> String {
    s.p99_us.map_or("-".into(), |p| format!("{:.1}", p.median))
}

/// The whole report as Markdown.
pub fn render(r: &Results, command: &str, plots: &[(String, String)]) -> String {
    let m = &r.machine;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# shardnet next to the Linux kernel: {} on {}\n",
        m.date(),
        m.host
    );
    let _ = writeln!(
        s,
        "Machine: {} ({} cores{}), Linux {}, {}, shardnet commit {}; load average {:.2} at the start, {:.2} at the end.\n",
        m.cpu_model,
        m.cores,
        if m.virtual_machine {
            ", virtual machine"
        } else {
            ""
        },
        m.kernel,
        m.rustc,
        m.git_commit,
        m.load_average.0,
        m.load_average.1
    );
    let _ = writeln!(s, "Command: `{command}`\n");
    let _ = writeln!(
        s,
        "Each cell: median (min–max) over the repetitions; shardnet and the kernel ran back to back, alternating which went first. p99 in microseconds (median over the repetitions). Frames/s: frames through shardnet's load generator stack, the larger of received and sent.\n"
    );
    for g in &r.groups {
        let _ = writeln!(s, "## {}\n", g.label);
        for n in &g.notes {
            let _ = writeln!(s, "- {n}");
        }
        if !g.notes.is_empty() {
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "| scenario | unit | shardnet | kernel | shardnet / kernel | p99 us shardnet | p99 us kernel | shardnet frames/s |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
        for row in &g.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                row.label,
                row.unit,
                side(&row.shardnet),
                side(&row.kernel),
                row.ratio.map_or("-".into(), |x| format!("{x:.2}x")),
                p99(&row.shardnet),
                p99(&row.kernel),
                row.shardnet
                    .frames_per_s
                    .map_or("-".into(), |f| num(f.median)),
            );
        }
        s.push('\n');
    }
    if !r.ceilings.is_empty() {
        let _ = writeln!(s, "## Ceilings of the packet path (no TCP)\n");
        let _ = writeln!(
            s,
            "| ceiling | packets/s | shardnet frames/s (veth rr64) as a fraction |"
        );
        let _ = writeln!(s, "|---|---:|---:|");
        for c in &r.ceilings {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                c.label,
                match (&c.packets_per_s, &c.not_run) {
                    (Some(p), _) => spread(p),
                    (None, Some(w)) => w.replace('|', "/"),
                    _ => "-".into(),
                },
                c.shardnet_fraction
                    .map_or("-".into(), |f| format!("{f:.2}"))
            );
            for (what, v) in &c.context {
                let _ = writeln!(s, "| &nbsp;&nbsp;same run: {what} | {} | |", spread(v));
            }
        }
        s.push('\n');
    }
    if !r.churn.is_empty() {
        let _ = writeln!(s, "## TIME_WAIT churn: client-closed crr, 16 connections\n");
        let _ = writeln!(
            s,
            "| run | connections/s overall | short-run rate (mean of s 0-4) | worst 5 s window | worst second | TIME_WAIT peak | TIME_WAIT steady state (from s, level) | EADDRNOTAVAIL / port exhaustion | TIME-WAIT entry bytes |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for c in &r.churn {
            match &c.run {
                super::results::Run::Measured(m) => {
                    let exhausted = format!(
                        "{} / {}",
                        m.eaddrnotavail.map_or("-".into(), |x| x.to_string()),
                        m.port_exhausted.map_or("-".into(), |x| x.to_string())
                    );
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                        c.label,
                        num(m.value),
                        c.short_run_rate.map_or("-".into(), num),
                        c.worst_window_fraction
                            .map_or("-".into(), |f| format!("{:.0} %", f * 100.0)),
                        c.worst_second_fraction
                            .map_or("-".into(), |f| format!("{:.0} %", f * 100.0)),
                        m.time_wait_peak.map_or("-".into(), |x| num(x as f64)),
                        m.time_wait_steady
                            .map_or("not reached".into(), |(at, l)| format!(
                                "{at} s, {}",
                                num(l as f64)
                            )),
                        exhausted,
                        m.time_wait_entry_bytes
                            .map_or("-".into(), |b| b.to_string()),
                    );
                }
                super::results::Run::Failed(e) => {
                    let _ = writeln!(
                        s,
                        "| {} | failed: {} | | | | | | | |",
                        c.label,
                        e.replace('|', "/")
                    );
                }
            }
        }
        s.push('\n');
    }
    if let Some(sc) = &r.scale {
        let _ = writeln!(s, "## Idle connections (`conn_memory`)\n");
        match &sc.not_run {
            Some(w) => {
                let _ = writeln!(s, "{} connections: {w}\n", sc.connections);
            }
            None => {
                let _ = writeln!(
                    s,
                    "{} connections on each side (memory wire, both sides in one process): RSS {} MiB with all open (peak {} MiB); heap per idle connection {} B client, {} B server.\n",
                    num(sc.connections as f64),
                    sc.rss_mib.map_or("-".into(), |v| format!("{v:.1}")),
                    sc.peak_rss_mib.map_or("-".into(), |v| format!("{v:.1}")),
                    sc.client_bytes_per_conn
                        .map_or("-".into(), |v| format!("{v:.0}")),
                    sc.server_bytes_per_conn
                        .map_or("-".into(), |v| format!("{v:.0}")),
                );
            }
        }
    }
    let _ = writeln!(s, "## Targets (measured in this run, not asserted)\n");
    let _ = writeln!(s, "| target | wanted | measured | |");
    let _ = writeln!(s, "|---|---|---|---|");
    for t in &r.targets {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            t.name,
            t.target,
            t.measured,
            match t.hit {
                Some(true) => "hit",
                Some(false) => "**miss**",
                None => "not measured",
            }
        );
    }
    s.push('\n');
    for (title, file) in plots {
        let _ = writeln!(s, "![{title}]({file})\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_separators() {
        assert_eq!(num(1234567.4), "1,234,567");
        assert_eq!(num(999.0), "999");
        assert_eq!(num(12.345), "12.35");
        assert_eq!(num(-4321.0), "-4,321");
    }
}
