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

/// U-Boot's `simple_strtoul(s, NULL, base)`: never fails. A `0x`/`0X`
/// prefix selects base 16 whatever `base` is; with base 0 a leading `0`
/// selects 8, else 10. Digits are read until the first character that is
/// not a digit of the base (so `"12g"` is 0x12 in base 16 and `"xyz"` is 0);
/// overflow wraps, as C's unsigned arithmetic does.
pub fn strtoul(s: &str, base: u32) -> u64 {
    let b = s.as_bytes();
    let mut base = base;
    let mut i = 0;
    if b.first() == Some(&b'0') {
        if matches!(b.get(1), Some(b'x' | b'X')) {
            base = 16;
            i = 2;
        } else if base == 0 {
            base = 8;
        }
    }
    if base == 0 {
        base = 10;
    }
    let mut v: u64 = 0;
    while let Some(d) = b.get(i).and_then(|&c| char::from(c).to_digit(16)) {
        if d >= base {
            break;
        }
        v = v.wrapping_mul(u64::from(base)).wrapping_add(u64::from(d));
        i += 1;
    }
    v
}

/// U-Boot's `hextoul(s, NULL)` (`simple_strtoul` in base 16).
pub fn hextoul(s: &str) -> u64 {
    strtoul(s, 16)
}

/// U-Boot's `simple_strtol(s, NULL, base)`: a leading `-` negates
/// [`strtoul`] of the rest (wrapping). The result is C's 64-bit `long`.
pub fn strtol(s: &str, base: u32) -> i64 {
    match s.strip_prefix('-') {
        Some(rest) => (strtoul(rest, base) as i64).wrapping_neg(),
        None => strtoul(s, base) as i64,
    }
}
