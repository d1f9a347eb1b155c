//! The generator's own CPU time, so that a report says what the load cost
//! the machine it ran on (`generator_cpu_us_per_op`): on loopback the
//! generator and the node share the cores, and a generator that costs more
//! than the node's work per request hides the node's capacity.

/// Clock ticks per second of `/proc/*/stat` times: USER_HZ, 100 on every
/// Linux architecture (the kernel scales its internal HZ to it).
const USER_HZ: f64 = 100.0;

/// This process's user + system CPU time so far (s), from
/// `/proc/self/stat`; `None` where there is no such file (not Linux).
pub fn process_cpu_seconds() -> Option<f64> {
    parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` line, in s.
/// The command name (field 2) may hold spaces and parentheses, so fields
/// are counted after its last `)`.
fn parse_stat(line: &str) -> Option<f64> {
    let (_, rest) = line.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_system_ticks_are_read_after_the_command_name() {
        let line = "4242 (sigil-perf (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 3 0 100 0 0";
        assert_eq!(parse_stat(line), Some(3.25));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        // Linux only, like the rest of the tool's figures.
        let t = process_cpu_seconds().expect("/proc/self/stat");
        assert!(t >= 0.0);
    }
}
