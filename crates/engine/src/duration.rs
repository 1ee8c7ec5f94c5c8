//! Durations written in rules: `500ms`, `30s`, `10m`, `1h`, `1d`, or combinations like `1h30m`.

/// Parses a rule duration into milliseconds. Returns a message saying what is wrong.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!(
                "`{text}` is not a duration (write e.g. `30s`, `10m`, `1h`)"
            ));
        }
        let number: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{text}` is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit_ms = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("`{text}` needs a unit (ms, s, m, h, d)")),
            other => return Err(format!("unknown unit `{other}` in `{text}`")),
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(unit_ms)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("`{text}` is too large"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("10m"), Ok(600_000));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms(" 2d "), Ok(172_800_000));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_duration_ms("").is_err());
        assert!(parse_duration_ms("10").is_err());
        assert!(parse_duration_ms("ten minutes").is_err());
        assert!(parse_duration_ms("5y").is_err());
        assert!(parse_duration_ms("99999999999999999999s").is_err());
    }
}
