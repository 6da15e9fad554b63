//! The benchmarks' command lines: `--name value` pairs and `--flag`s, nothing else.

/// The value after `name` in `args`, if `name` is there and has one.
pub fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}
