//! Child processes of the matrix: every one bounded in time, killed by its own PID (and its
//! process group) when it overruns or when the run is over.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished (or killed) child left.
#[derive(Clone, Debug)]
pub struct Finished {
    /// Exit status code (`None`: killed by a signal, or by us at its deadline).
    pub code: Option<i32>,
    /// Everything it wrote on stdout.
    pub stdout: String,
    /// Everything it wrote on stderr.
    pub stderr: String,
    /// Whether we killed it at its deadline.
    pub timed_out: bool,
}

impl Finished {
    /// The last `n` lines of stderr, for a "not run: ..." reason.
    pub fn stderr_tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.stderr.lines().collect();
        lines[lines.len().saturating_sub(n)..].join(" | ")
    }
}

/// A running child whose output is collected on two threads.
pub struct Running {
    child: Child,
    out: std::thread::JoinHandle<String>,
    err: std::thread::JoinHandle<String>,
    deadline: Instant,
}

fn collect<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            s = String::from_utf8_lossy(&buf).into_owned();
        }
        s
    })
}

/// Starts `cmd` (in a process group of its own, so that `kill` reaches what it started, e.g.
/// `ip netns exec`'s child); it is killed if still running `limit` from now.
pub fn spawn(cmd: &mut Command, limit: Duration) -> Result<Running, String> {
    use std::os::unix::process::CommandExt;
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting {:?}: {e}", cmd.get_program()))?;
    let out = collect(child.stdout.take());
    let err = collect(child.stderr.take());
    Ok(Running {
        child,
        out,
        err,
        deadline: Instant::now() + limit,
    })
}

impl Running {
    /// The child's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited already.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends `signal` to the child's process group (its PID: we made it the group leader).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the process group we created for this child; no memory involved.
        unsafe {
            libc::kill(-(self.child.id() as i32), signal);
        }
    }

    /// Waits until it exits, or kills it at its deadline.
    pub fn wait(mut self) -> Finished {
        let mut timed_out = false;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() >= self.deadline => {
                    timed_out = true;
                    self.signal(libc::SIGKILL);
                    break self.child.wait().ok();
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break None,
            }
        };
        Finished {
            code: status.and_then(|s| s.code()),
            stdout: self.out.join().unwrap_or_default(),
            stderr: self.err.join().unwrap_or_default(),
            timed_out,
        }
    }

    /// Asks it to stop (SIGINT, as Ctrl-C: the apps then report and exit), waits up to
    /// `grace`, then kills it.
    pub fn stop(mut self, grace: Duration) -> Finished {
        if !self.exited() {
            self.signal(libc::SIGINT);
        }
        self.deadline = self.deadline.min(Instant::now() + grace);
        self.wait()
    }
}

/// Runs `cmd` to completion within `limit`.
pub fn run(cmd: &mut Command, limit: Duration) -> Result<Finished, String> {
    Ok(spawn(cmd, limit)?.wait())
}

/// Runs a short set-up command (`ip`, `sysctl`, ...), failing unless it succeeded.
pub fn run_ok(args: &[&str]) -> Result<String, String> {
    let f = run(
        Command::new(args[0]).args(&args[1..]),
        Duration::from_secs(30),
    )?;
    if f.code == Some(0) {
        Ok(f.stdout)
    } else {
        Err(format!("{}: {}", args.join(" "), f.stderr.trim()))
    }
}
