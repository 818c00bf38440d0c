//! Parsing what the loaders print (load lines, rates, bdinfo, the start-up lines).

/// "27302400 bytes read in 274 ms (95 MiB/s)" (both loaders) → (bytes, ms, MiB/s).
/// U-Boot prints no rate for "in 0 ms": then the rate is bytes / 1 ms, a lower bound.
pub(super) fn parse_load_line(line: &str) -> Option<(u64, f64, f64)> {
    let (head, tail) = line.split_once(" bytes read in ")?;
    let bytes: u64 = head.split_whitespace().last()?.parse().ok()?;
    let (msv, rest) = tail.split_once(" ms")?;
    let msv: f64 = msv.trim().parse().ok()?;
    let rate = match rest.split_once('(') {
        Some((_, r)) => parse_rate(r)?,
        None => bytes as f64 / 1048576.0 / (msv.max(1.0) / 1000.0),
    };
    Some((bytes, msv, rate))
}

/// "95 MiB/s)", "1.8 GiB/s)", "47.9 KiB/s)" → MiB/s.
pub(super) fn parse_rate(s: &str) -> Option<f64> {
    let mut it = s.split_whitespace();
    let v: f64 = it.next()?.parse().ok()?;
    let unit = it.next()?.trim_end_matches(')').trim_end_matches(',');
    Some(match unit {
        "B/s" => v / 1048576.0,
        "KiB/s" => v / 1024.0,
        "MiB/s" => v,
        "GiB/s" => v * 1024.0,
        _ => return None,
    })
}

/// The rate line both loaders print after a TFTP download's marks (U-Boot's
/// `"\t " print_size(rate) "/s"`, e.g. "\t 21.3 MiB/s") → MiB/s: the last such line of `text`.
pub(super) fn parse_tftp_rate(text: &str) -> Option<f64> {
    text.lines()
        .rev()
        .map(|l| l.trim_matches(|c: char| c.is_whitespace() || c == '#'))
        .filter(|l| l.ends_with("/s"))
        .find_map(parse_rate)
}

/// "Bytes transferred = 27302400 (1a09a00 hex)" → bytes.
pub(super) fn parse_transferred(line: &str) -> Option<u64> {
    line.split("Bytes transferred = ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// parkboot: "virtio read: 53325 blocks (27302400 bytes in 379 ms, 68.63 MiB/s)" → MiB/s.
pub(super) fn parse_parkboot_raw(line: &str) -> Option<f64> {
    let (_, r) = line.split_once(" ms, ")?;
    parse_rate(r)
}

/// bdinfo: "boot time   = 79493 us (entry -> prompt)" → ms.
pub(super) fn parse_boot_time(bdinfo: &str) -> Option<f64> {
    let l = bdinfo
        .lines()
        .find(|l| l.trim_start().starts_with("boot time"))?;
    let v: f64 = l
        .split('=')
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(v / 1000.0)
}

/// parkboot: "CPUs: 4 in DT, 3 in pen at 0x7ffff000 (4096 bytes) after 21115 us" → ms.
pub(super) fn parse_gather(text: &str) -> Option<f64> {
    let l = text
        .lines()
        .rev()
        .find(|l| l.contains("CPUs: ") && l.contains(" in pen"))?;
    let us: f64 = l
        .split(" after ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(us / 1000.0)
}

/// "1 disk(s); ready in 59.011 ms" → ms.
pub(super) fn parse_ready(text: &str) -> Option<f64> {
    let l = text.lines().rev().find(|l| l.contains("ready in"))?;
    l.split("ready in ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tftp_lines() {
        let uboot = "Load address: 0x40400000\r\nLoading: #################\r\n\t #####\r\n\t 15 MiB/s\r\ndone\r\n";
        assert_eq!(parse_tftp_rate(uboot), Some(15.0));
        let parkboot = "Loading: *\x08####  26 MiB\r\n\t 21.3 MiB/s\r\ndone\r\n";
        assert_eq!(parse_tftp_rate(parkboot), Some(21.3));
        assert_eq!(parse_tftp_rate("Loading: ###\r\ndone"), None);
        assert_eq!(
            parse_transferred("Bytes transferred = 27302400 (1a09a00 hex)"),
            Some(27302400)
        );
    }

    #[test]
    fn load_lines() {
        assert_eq!(
            parse_load_line("27302400 bytes read in 274 ms (95 MiB/s)"),
            Some((27302400, 274.0, 95.0))
        );
        assert_eq!(
            parse_load_line("27302400 bytes read in 14 ms (1.8 GiB/s)").map(|x| x.2),
            Some(1.8 * 1024.0)
        );
        assert_eq!(
            parse_load_line("295 bytes read in 6 ms (47.9 KiB/s)").map(|x| x.2),
            Some(47.9 / 1024.0)
        );
        assert_eq!(
            parse_load_line("27302400 bytes read in 20 ms (1278.54 MiB/s)").map(|x| x.2),
            Some(1278.54)
        );
        let (b, m, r) = parse_load_line("2091576 bytes read in 0 ms").unwrap();
        assert_eq!((b, m), (2091576, 0.0));
        assert!((r - 2091576.0 / 1048576.0 * 1000.0).abs() < 1e-6);
        assert_eq!(parse_load_line("** File not found /Image **"), None);
    }

    #[test]
    fn parkboot_lines() {
        assert_eq!(
            parse_parkboot_raw("virtio read: 53325 blocks (27302400 bytes in 379 ms, 68.63 MiB/s)"),
            Some(68.63)
        );
        assert_eq!(
            parse_boot_time("heap = 1\nboot time   = 79493 us (entry -> prompt)\n"),
            Some(79.493)
        );
        assert_eq!(
            parse_ready("x\n1 disk(s); ready in 59.011 ms\n"),
            Some(59.011)
        );
        assert_eq!(
            parse_gather("CPUs: 4 in DT, 3 in pen at 0x7ffff000 (4096 bytes) after 21115 us"),
            Some(21.115)
        );
        assert_eq!(parse_gather("1 disk(s); ready in 59.011 ms"), None);
    }
}
