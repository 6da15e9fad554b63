//! The shard's timer wheel (`shardnet::shard::timer_wheel`) with 1 M timers pending, as a shard
//! with a million connections would have:
//!
//! - `timer_wheel/insert`: start a timer at a random deadline 1 ms..1000 s ahead (ns per insert;
//!   the timers are cancelled in untimed batches so the population stays at 1 M);
//! - `timer_wheel/cancel`: stop a pending timer (ns per cancel; re-inserted untimed);
//! - `timer_wheel/reschedule`: move a pending timer to a new random deadline (ns per call), what
//!   a retransmit timer re-armed by every ACK costs;
//! - `timer_wheel/advance_1ms`: advance time by 1 ms, firing the 1000 timers due in it (the 1 M
//!   timers are spread evenly over 1000 ms and each fired one is re-armed 1000 ms later,
//!   untimed); reported per fired timer (criterion's elements).

use criterion::{Criterion, Throughput, black_box, criterion_main};
use shardnet::shard::timer_wheel::{TimerId, TimerWheel};
use shardnet::time::{Duration, Instant};
use std::time::Instant as Clock;

const TIMERS: usize = 1 << 20;
const CHUNK: u64 = 65_536;
const MS: Duration = Duration::from_millis(1);

/// xorshift64*: a reproducible stream of random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A deadline 1 ms..1000 s after `now`.
    fn deadline(&mut self, now: Instant) -> Instant {
        now + Duration::from_micros(1000 + self.next() % 1_000_000_000)
    }
}

/// A wheel holding `TIMERS` random timers, with room for `CHUNK` more.
fn full_wheel(rng: &mut Rng) -> (TimerWheel<u32>, Vec<TimerId>) {
    let now = Instant::from_millis(1);
    let mut w = TimerWheel::new(TIMERS + CHUNK as usize, MS, now);
    let ids = (0..TIMERS as u32)
        .map(|i| w.insert(rng.deadline(now), i).expect("room"))
        .collect();
    (w, ids)
}

fn insert(c: &mut Criterion) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut w, _) = full_wheel(&mut rng);
    let now = Instant::from_millis(1);
    let mut batch = Vec::with_capacity(CHUNK as usize);
    c.bench_function("timer_wheel/insert", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                let deadlines: Vec<Instant> = (0..n).map(|_| rng.deadline(now)).collect();
                let start = Clock::now();
                for &d in &deadlines {
                    batch.push(w.insert(black_box(d), 0).expect("room"));
                }
                total += start.elapsed();
                for id in batch.drain(..) {
                    w.cancel(id);
                }
                left -= n;
            }
            total
        })
    });
}

fn cancel(c: &mut Criterion) {
    let mut rng = Rng(0x51_7cc1_b727_220a);
    let (mut w, mut ids) = full_wheel(&mut rng);
    let now = Instant::from_millis(1);
    let mut cursor = 0usize;
    c.bench_function("timer_wheel/cancel", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK) as usize;
                // Random victims: the ids were issued in random deadline order.
                let victims: Vec<usize> = (0..n).map(|i| (cursor + i * 7919) % TIMERS).collect();
                cursor = (cursor + 1) % TIMERS;
                let start = Clock::now();
                for &v in &victims {
                    black_box(w.cancel(ids[v]));
                }
                total += start.elapsed();
                for &v in &victims {
                    if w.deadline(ids[v]).is_none() {
                        ids[v] = w.insert(rng.deadline(now), 0).expect("room");
                    }
                }
                left -= n as u64;
            }
            total
        })
    });
}

fn reschedule(c: &mut Criterion) {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut w, ids) = full_wheel(&mut rng);
    let now = Instant::from_millis(1);
    let mut i = 0usize;
    c.bench_function("timer_wheel/reschedule", |b| {
        b.iter(|| {
            i = (i + 7919) % TIMERS;
            let d = rng.deadline(now);
            w.reschedule(ids[i], black_box(d)).expect("pending")
        })
    });
}

fn advance(c: &mut Criterion) {
    const PER_MS: usize = 1000;
    let mut now = Instant::from_millis(1);
    let mut w = TimerWheel::new(TIMERS, MS, now);
    // Timer i is due at (i / PER_MS + 1) ms from now, up to 1048 ms: PER_MS timers a tick.
    for i in 0..TIMERS {
        w.insert(now + MS * (i / PER_MS + 1) as u32, i as u32)
            .expect("room");
    }
    let span = MS * TIMERS.div_ceil(PER_MS) as u32;
    let mut fired = Vec::with_capacity(4 * PER_MS);
    let mut group = c.benchmark_group("timer_wheel");
    group.throughput(Throughput::Elements(PER_MS as u64));
    group.bench_function("advance_1ms", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                now += MS;
                let start = Clock::now();
                w.advance(now, |_, v| fired.push(v));
                total += start.elapsed();
                for v in fired.drain(..) {
                    w.insert(now + span, v).expect("room");
                }
            }
            total
        })
    });
    group.finish();
}

mod group {
    criterion::criterion_group!(
        benches,
        super::insert,
        super::cancel,
        super::reschedule,
        super::advance
    );
}
criterion_main!(group::benches);
