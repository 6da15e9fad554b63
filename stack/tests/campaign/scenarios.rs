//! The Monte-Carlo campaign's scenarios, as data: each row says what a seed of it draws
//! (connections, sizes, close patterns, fault rates) and on how many shards each side runs.
//! `campaign.rs` runs them; add a row here to add a scenario.

/// How the two ends of a connection finish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// The client sends everything, shuts down writing, and closes after reading EOF; the server
    /// shuts down after EOF (TIME-WAIT on the client).
    ClientFirst,
    /// The server shuts down first, the client after EOF (TIME-WAIT on the server).
    ServerFirst,
    /// Both shut down writing as soon as they have sent everything (simultaneous close is
    /// possible).
    Both,
    /// Half-close: the client sends its request and shuts down writing; the server sends its
    /// response only after reading EOF, then closes.
    HalfClosed,
    /// The client aborts (`SO_LINGER` 0: RST) after a drawn number of bytes.
    ClientAborts,
    /// The server aborts after a drawn number of bytes.
    ServerAborts,
}

impl Close {
    /// True if the connection ends with a RST on purpose: the receivers get a prefix.
    pub fn aborts(self) -> bool {
        matches!(self, Close::ClientAborts | Close::ServerAborts)
    }
}

/// How many bytes each direction of a connection carries (the client's first 8 bytes, the
/// connection id, included).
#[derive(Clone, Copy, Debug)]
pub enum Sizes {
    /// Uniform in `[8, max]`.
    Uniform(usize),
    /// `8 + u * u * max` for a uniform `u`: mostly small, a few large.
    HeavyTail(usize),
}

/// One scenario. Ranges are `(low, high)`; each seed draws one value uniformly from each.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Its name (`SHARDNET_SCENARIO=name`).
    pub name: &'static str,
    /// What it checks, in a few words.
    pub about: &'static str,
    /// Connections per seed.
    pub connections: (usize, usize),
    /// Connections open at once; the rest wait for one to end (churn).
    pub concurrency: usize,
    /// Bytes per direction.
    pub sizes: Sizes,
    /// Close patterns, drawn uniformly per connection.
    pub closes: &'static [Close],
    /// Frame loss probability.
    pub loss: (f64, f64),
    /// Frame duplication probability.
    pub duplicate: (f64, f64),
    /// Probability that a frame is held back by the reorder delay.
    pub reorder: (f64, f64),
    /// Probability that a frame has one bit flipped.
    pub corrupt: (f64, f64),
    /// One-way delay, microseconds.
    pub delay_us: (u64, u64),
    /// Jitter, microseconds.
    pub jitter_us: (u64, u64),
    /// Extra delay of a reordered frame, microseconds.
    pub reorder_delay_us: (u64, u64),
    /// Shards (and RSS queues) of the client host.
    pub client_shards: u16,
    /// Shards (and RSS queues) of the server host.
    pub server_shards: u16,
    /// The client's ephemeral port range, if narrowed (forces 4-tuple reuse).
    pub ephemeral: Option<(u16, u16)>,
    /// `tcp_tw_reuse` on the client.
    pub tw_reuse: bool,
    /// Seeds the bounded run (`cargo test`) simulates.
    pub seeds: u64,
}

const ALL_CLOSES: &[Close] = &[
    Close::ClientFirst,
    Close::ServerFirst,
    Close::Both,
    Close::HalfClosed,
    Close::ClientAborts,
    Close::ServerAborts,
];

/// A scenario with no faults, one shard a side and every close pattern; rows override it.
const BASE: Scenario = Scenario {
    name: "",
    about: "",
    connections: (1, 6),
    concurrency: usize::MAX,
    sizes: Sizes::HeavyTail(300_000),
    closes: ALL_CLOSES,
    loss: (0.0, 0.0),
    duplicate: (0.0, 0.0),
    reorder: (0.0, 0.0),
    corrupt: (0.0, 0.0),
    delay_us: (50, 1050),
    jitter_us: (0, 200),
    reorder_delay_us: (100, 2100),
    client_shards: 1,
    server_shards: 1,
    ephemeral: None,
    tw_reuse: false,
    seeds: 12,
};

/// Every scenario of the campaign.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "mixed-faults",
        about: "bulk both ways, every close pattern, up to 20% loss, 5% dup, 20% reorder",
        loss: (0.0, 0.2),
        duplicate: (0.0, 0.05),
        reorder: (0.0, 0.2),
        ..BASE
    },
    Scenario {
        name: "corruption",
        about: "bit flips in up to 10% of frames (checksums must catch them) plus loss",
        connections: (1, 4),
        sizes: Sizes::Uniform(120_000),
        loss: (0.0, 0.05),
        reorder: (0.0, 0.05),
        corrupt: (0.01, 0.10),
        ..BASE
    },
    Scenario {
        name: "close-patterns",
        about: "many short connections, every close pattern incl. half-close and aborts",
        connections: (8, 24),
        sizes: Sizes::Uniform(3_000),
        loss: (0.0, 0.1),
        duplicate: (0.0, 0.05),
        reorder: (0.0, 0.1),
        ..BASE
    },
    Scenario {
        name: "sharded-2x2",
        about: "2 client and 2 server shards with RSS steering, bulk, loss/dup/reorder",
        connections: (4, 12),
        sizes: Sizes::HeavyTail(100_000),
        loss: (0.0, 0.1),
        duplicate: (0.0, 0.03),
        reorder: (0.0, 0.1),
        client_shards: 2,
        server_shards: 2,
        ..BASE
    },
    Scenario {
        name: "churn-tuple-reuse",
        about: "2x2 shards, 8 client ports: 4-tuples reused through TIME-WAIT on both sides",
        connections: (30, 60),
        concurrency: 6,
        sizes: Sizes::Uniform(2_000),
        closes: &[
            Close::ClientFirst,
            Close::ServerFirst,
            Close::ServerFirst,
            Close::ClientAborts,
        ],
        loss: (0.0, 0.05),
        duplicate: (0.0, 0.02),
        reorder: (0.0, 0.05),
        client_shards: 2,
        server_shards: 2,
        ephemeral: Some((40_000, 40_007)),
        tw_reuse: true,
        seeds: 8,
        ..BASE
    },
    Scenario {
        name: "churn-one-port",
        about: "1x3 shards, 2 client ports, server-side TIME-WAIT taken over by new SYNs",
        connections: (10, 20),
        concurrency: 2,
        sizes: Sizes::Uniform(600),
        closes: &[Close::ServerFirst, Close::ClientFirst, Close::Both],
        loss: (0.0, 0.03),
        duplicate: (0.0, 0.02),
        client_shards: 1,
        server_shards: 3,
        ephemeral: Some((50_000, 50_001)),
        tw_reuse: true,
        seeds: 8,
        ..BASE
    },
];
