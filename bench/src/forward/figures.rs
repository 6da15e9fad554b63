//! The arithmetic of the results: one responder's rates in one round ([`Figures`]), from the
//! kernel socket load or the AF_XDP generator, and the median and range over the rounds
//! ([`stats`]).

use super::kernel_load::Load;
use crate::matrix::summary::Spread;
use crate::xdp_generator::GeneratorRun;

/// One responder's figures in one round: echo pkts/s, echoes presumed lost, rx pkts/s at the
/// responder, sender pkts/s in the rx pattern.
#[derive(Clone, Copy, Debug, Default)]
pub struct Figures {
    /// Echoes received per second (echo pattern).
    pub echo: f64,
    /// Echoes presumed lost (echo pattern).
    pub lost: u64,
    /// Datagrams the responder received per second (rx pattern).
    pub rx: f64,
    /// Datagrams sent per second (rx pattern).
    pub sent: f64,
}

/// The figures of an echo load and an rx load with what the responder counted during it.
pub fn figures(echo: Load, rx: (Load, u64)) -> Figures {
    Figures {
        echo: echo.packets as f64 / echo.secs,
        lost: echo.lost,
        rx: rx.1 as f64 / rx.0.secs,
        sent: rx.0.packets as f64 / rx.0.secs,
    }
}

/// The figures of one generator run (the same arithmetic as [`figures`]).
pub fn generator_figures(run: GeneratorRun) -> Figures {
    let echo = Load {
        packets: run.echoes,
        lost: run.lost,
        secs: run.echo_secs,
    };
    let rx = Load {
        packets: run.sent,
        lost: 0,
        secs: run.rx_secs,
    };
    figures(echo, (rx, run.received))
}

/// The median, minimum and maximum of `v` ([`Spread`]'s arithmetic); panics if `v` is empty
/// (every benchmark runs at least one round).
pub fn stats(v: Vec<f64>) -> (f64, f64, f64) {
    let s = Spread::of(&v).expect("at least one round");
    (s.median, s.min, s.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_median_min_and_max() {
        assert_eq!(stats(vec![4.0, 1.0, 2.0, 10.0]), (3.0, 1.0, 10.0));
    }

    #[test]
    fn figures_are_per_second_of_each_measurement() {
        let echo = Load {
            packets: 300,
            lost: 32,
            secs: 2.0,
        };
        let rx = Load {
            packets: 1000,
            lost: 0,
            secs: 0.5,
        };
        let f = figures(echo, (rx, 400));
        assert_eq!((f.echo, f.lost, f.rx, f.sent), (150.0, 32, 800.0, 2000.0));
    }
}
