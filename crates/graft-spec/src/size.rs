//! Sizes as users write them on the command line.

/// `10MB`, `512KiB`, `1048576`: a size in bytes (KB, MB, GB decimal; KiB, MiB, GiB binary).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 10MB)"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KB, MB, GB, KiB, MiB, GiB)"
            ));
        }
    };
    let bytes = n * scale;
    // `as usize` would saturate: a size past the address space is an error, not the largest one.
    if bytes >= usize::MAX as f64 {
        return Err(format!("{text:?} is larger than this machine can address"));
    }
    Ok(bytes as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_decimal_and_binary_units() {
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("512KiB"), Ok(524_288));
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert!(parse_size("ten").is_err() && parse_size("5XB").is_err());
    }

    #[test]
    fn a_size_past_the_address_space_is_refused_not_saturated() {
        let e = parse_size("99999999999999999999999GB").expect_err("a size past usize");
        assert!(e.contains("larger than this machine can address"), "{e}");
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
    }
}
