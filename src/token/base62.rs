//! Base62 (`0-9A-Za-z`): random token bodies and fixed-width checksums.

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Width of an encoded CRC32: 62^6 ≈ 5.7e10 > 2^32.
pub(crate) const CHECKSUM_LEN: usize = 6;

fn value_of(byte: u8) -> Option<u64> {
    let value = match byte {
        b'0'..=b'9' => byte - b'0',
        b'A'..=b'Z' => byte - b'A' + 10,
        b'a'..=b'z' => byte - b'a' + 36,
        _ => return None,
    };
    Some(u64::from(value))
}

/// Appends `checksum` as exactly [`CHECKSUM_LEN`] base62 digits, most significant first.
pub(crate) fn push_checksum(out: &mut String, checksum: u32) {
    let mut digits = [b'0'; CHECKSUM_LEN];
    let mut rest = u64::from(checksum);
    for digit in digits.iter_mut().rev() {
        *digit = ALPHABET[(rest % 62) as usize];
        rest /= 62;
    }
    out.extend(digits.iter().map(|&d| char::from(d)));
}

/// Reads a checksum written by [`push_checksum`]; `None` for other characters or a value
/// above `u32::MAX` (six digits can hold more, and each value must have one spelling).
pub(crate) fn parse_checksum(digits: &[u8]) -> Option<u32> {
    if digits.len() != CHECKSUM_LEN {
        return None;
    }
    let mut value = 0u64;
    for &digit in digits {
        value = value * 62 + value_of(digit)?;
    }
    u32::try_from(value).ok()
}

/// Appends `count` characters drawn uniformly from the alphabet using the OS CSPRNG.
pub(crate) fn push_random(out: &mut String, count: usize) -> Result<(), getrandom::Error> {
    // Rejection sampling: 248 = 4 * 62, so bytes below it map uniformly onto the alphabet.
    let mut pool = [0u8; 64];
    let mut pushed = 0;
    while pushed < count {
        getrandom::fill(&mut pool)?;
        for &byte in pool.iter().filter(|&&b| b < 248) {
            if pushed == count {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(byte % 62)]));
            pushed += 1;
        }
    }
    zeroize::Zeroize::zeroize(&mut pool);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_round_trips_at_the_edges() {
        for value in [0, 1, 61, 62, u32::MAX / 2, u32::MAX] {
            let mut out = String::new();
            push_checksum(&mut out, value);
            assert_eq!(out.len(), CHECKSUM_LEN);
            assert_eq!(parse_checksum(out.as_bytes()), Some(value));
        }
    }

    #[test]
    fn checksum_above_u32_is_rejected() {
        assert_eq!(parse_checksum(b"zzzzzz"), None);
        assert_eq!(parse_checksum(b"00000"), None);
        assert_eq!(parse_checksum(b"00000_"), None);
    }

    #[test]
    fn random_output_uses_the_whole_alphabet() {
        let mut out = String::new();
        push_random(&mut out, 20_000).unwrap();
        assert_eq!(out.len(), 20_000);
        for &symbol in ALPHABET {
            assert!(
                out.as_bytes().contains(&symbol),
                "{} never drawn",
                symbol as char
            );
        }
    }
}
