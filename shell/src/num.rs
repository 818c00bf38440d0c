//! Number parsing for commands. All arithmetic is checked: malformed or
//! out-of-range input gives `None`, never a panic or a wrapped value.

/// Parse a hexadecimal number, U-Boot style: an optional `0x`/`0X` prefix
/// followed by at least one hex digit. Values above `u64::MAX` are rejected.
pub fn parse_hex(s: &str) -> Option<u64> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for c in digits.chars() {
        let d = c.to_digit(16)?;
        v = v.checked_mul(16)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// Parse a decimal number (digits only), rejecting overflow.
pub(crate) fn parse_dec(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for c in s.chars() {
        let d = c.to_digit(10)?;
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// Parse a signed number as used by `test`: an optional `+`/`-` sign, then
/// either `0x`-prefixed hex or decimal digits. The magnitude must fit in a
/// `u64`; the result is an `i128` so that `-1` and `0xffffffffffffffff`
/// both keep their meaning.
pub fn parse_signed(s: &str) -> Option<i128> {
    let (neg, rest) = if let Some(r) = s.strip_prefix('-') {
        (true, r)
    } else if let Some(r) = s.strip_prefix('+') {
        (false, r)
    } else {
        (false, s)
    };
    let mag = if rest.starts_with("0x") || rest.starts_with("0X") {
        parse_hex(rest)?
    } else {
        parse_dec(rest)?
    };
    let mag = i128::from(mag);
    Some(if neg { -mag } else { mag })
}

/// Parse a duration in seconds with an optional decimal fraction
/// (`"2"`, `"0.5"`, `".25"`, `"1."`), returning microseconds. Digits beyond
/// the sixth decimal are ignored (they must still be digits).
pub(crate) fn parse_seconds_us(s: &str) -> Option<u64> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let whole = if int.is_empty() { 0 } else { parse_dec(int)? };
    let mut micros: u64 = 0;
    let mut scale: u64 = 100_000;
    for c in frac.chars() {
        let d = u64::from(c.to_digit(10)?);
        micros = micros.checked_add(d.checked_mul(scale)?)?;
        scale /= 10;
    }
    whole.checked_mul(1_000_000)?.checked_add(micros)
}
