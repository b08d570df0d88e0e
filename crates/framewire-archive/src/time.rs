//! Wall-clock times as the archive writes and reads them: nanoseconds since
//! the Unix epoch, shown as RFC 3339 in UTC. No time-zone database needed.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Year, month, day of a count of days since 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // d in 1..=31 and m in 1..=12 by construction.
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

/// Days since 1970-01-01 of a civil date (inverse of [`civil_from_days`]).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

struct Parts {
    y: i64,
    mo: u32,
    d: u32,
    h: u64,
    mi: u64,
    s: u64,
    ms: u64,
}

fn parts(ns: u64) -> Parts {
    let secs = ns / 1_000_000_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, mo, d) = civil_from_days(days);
    Parts {
        y,
        mo,
        d,
        h: rem / 3600,
        mi: rem % 3600 / 60,
        s: rem % 60,
        ms: ns % 1_000_000_000 / 1_000_000,
    }
}

/// `2026-11-21T13:28:00.123Z`.
pub fn rfc3339(ns: u64) -> String {
    let p = parts(ns);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        p.y, p.mo, p.d, p.h, p.mi, p.s, p.ms
    )
}

/// `2026-11-21`: the directory a segment starting at `ns` goes in.
pub fn date_dir(ns: u64) -> String {
    let p = parts(ns);
    format!("{:04}-{:02}-{:02}", p.y, p.mo, p.d)
}

/// `20261121T132800.123Z`: a file-name-safe time.
pub fn compact(ns: u64) -> String {
    let p = parts(ns);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        p.y, p.mo, p.d, p.h, p.mi, p.s, p.ms
    )
}

/// Parses a time given on the command line: unix seconds (`1763731680`,
/// `1763731680.5`) or RFC 3339 (`2026-11-21T13:28:00Z`,
/// `2026-11-21T14:28:00.25+01:00`; a space may replace the `T`).
pub fn parse_time(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let bad = || format!("`{s}` is not a time: use unix seconds or RFC 3339 (2026-11-21T13:28:00Z)");
    if let Some((int, frac)) = unix_parts(s) {
        let secs: u64 = int.parse().map_err(|_| bad())?;
        if secs >= 100_000_000_000 {
            return Err(bad());
        }
        let mut ns = 0u64;
        for (i, c) in frac.bytes().take(9).enumerate() {
            ns += u64::from(c - b'0') * 10u64.pow(8 - u32::try_from(i).unwrap_or(8));
        }
        return as_ns(secs, ns).ok_or_else(bad);
    }
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|t| t.parse::<u32>().ok()).ok_or_else(bad);
    let (y, mo, d, h, mi, sec) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    let mut rest = &s[19..];
    let mut frac_ns = 0u64;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        for (i, c) in r[..digits].bytes().take(9).enumerate() {
            frac_ns += u64::from(c - b'0') * 10u64.pow(8 - u32::try_from(i).unwrap_or(8));
        }
        rest = &r[digits..];
    }
    let offset_s: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return Err(bad()),
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return Err(bad());
            }
            let oh: i64 = rest[1..3].parse().map_err(|_| bad())?;
            let om: i64 = rest[4..6].parse().map_err(|_| bad())?;
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(sec) - offset_s;
    let secs = u64::try_from(secs).map_err(|_| bad())?;
    as_ns(secs, frac_ns).ok_or_else(bad)
}

/// Seconds and nanoseconds as nanoseconds since 1970, if they fit (until
/// the year 2554).
fn as_ns(secs: u64, ns: u64) -> Option<u64> {
    secs.checked_mul(1_000_000_000)?.checked_add(ns)
}

/// `123` or `123.45` as its integer and fraction digits.
fn unix_parts(s: &str) -> Option<(&str, &str)> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.bytes().all(|c| c.is_ascii_digit());
    (!int.is_empty() && int.len() <= 12 && digits(int) && digits(frac)).then_some((int, frac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_back() {
        let t = 1_763_731_680_123_000_000;
        assert_eq!(rfc3339(t), "2025-11-21T13:28:00.123Z");
        assert_eq!(date_dir(t), "2025-11-21");
        assert_eq!(compact(t), "20251121T132800.123Z");
        assert_eq!(parse_time(&rfc3339(t)).unwrap(), t);
        assert_eq!(parse_time("2025-11-21T14:28:00.123+01:00").unwrap(), t);
        assert_eq!(parse_time("2025-11-21 13:28:00.123Z").unwrap(), t);
        assert_eq!(parse_time("1763731680.123").unwrap(), t);
        assert_eq!(parse_time("0").unwrap(), 0);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400 * 1_000_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(parse_time("2000-02-29T00:00:00Z").unwrap(), 951_782_400 * 1_000_000_000);
        assert_eq!(
            parse_time("2500-01-01T00:00:00Z").unwrap(),
            16_725_225_600 * 1_000_000_000
        );
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for s in [
            "",
            "yesterday",
            "2025-13-01T00:00:00Z",
            "2025-11-21T13:28:00",
            "2025-11-21T13:28:00+1",
            "-5",
            // Past what nanoseconds since 1970 hold in 64 bits (2554).
            "9999-12-31T23:59:59Z",
            "99999999999",
            "20000000000.5",
        ] {
            assert!(parse_time(s).is_err(), "{s}");
        }
    }
}
