//! Decimal text and scale handling shared by the formats: parsing as Java's `new BigDecimal(text)`
//! does and fitting a value into a column's `DECIMAL(precision, scale)` as ksqlDB's
//! `DecimalUtil.ensureFit` does (HALF_UP to the column's scale, refused when too many digits).

use crate::value::Value;

/// Parses `12.30`, `-.5`, `1E+3`, `7.` into (unscaled, scale); the scale may be negative for
/// exponents. `None` for anything else or beyond 38 digits.
pub(crate) fn parse_decimal(text: &str) -> Option<(i128, i32)> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            pos = 1;
            true
        }
        Some(b'+') => {
            pos = 1;
            false
        }
        _ => false,
    };
    let mut unscaled: i128 = 0;
    let mut scale: i32 = 0;
    let mut digits = 0usize;
    let mut seen_point = false;
    while pos < bytes.len() {
        let byte = bytes[pos];
        match byte {
            b'0'..=b'9' => {
                unscaled = unscaled
                    .checked_mul(10)?
                    .checked_add((byte - b'0') as i128)?;
                digits += 1;
                if seen_point {
                    scale += 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            b'e' | b'E' => break,
            _ => return None,
        }
        pos += 1;
    }
    if digits == 0 {
        return None;
    }
    if pos < bytes.len() {
        let exponent: i32 = text[pos + 1..].parse().ok()?;
        scale = scale.checked_sub(exponent)?;
    }
    if unscaled_digits(unscaled) > 38 {
        return None;
    }
    Some((if negative { -unscaled } else { unscaled }, scale))
}

/// Number of decimal digits of |value| (1 for zero), as BigDecimal's precision counts them.
pub(crate) fn unscaled_digits(value: i128) -> u32 {
    let mut magnitude = value.unsigned_abs();
    let mut digits = 1;
    while magnitude >= 10 {
        magnitude /= 10;
        digits += 1;
    }
    digits
}

/// `unscaled * 10^-from` rescaled to `to` digits after the point, rounding HALF_UP.
pub(crate) fn rescale(unscaled: i128, from: i32, to: i32) -> Option<i128> {
    if from == to {
        return Some(unscaled);
    }
    if to > from {
        let factor = 10i128.checked_pow((to - from) as u32)?;
        return unscaled.checked_mul(factor);
    }
    let shift = (from - to) as u32;
    if shift > 38 {
        return Some(0);
    }
    let factor = 10i128.pow(shift);
    let quotient = unscaled / factor;
    let remainder = (unscaled % factor).unsigned_abs();
    let half = (factor / 2) as u128;
    Some(if remainder >= half {
        quotient + unscaled.signum()
    } else {
        quotient
    })
}

/// Fits a parsed decimal into `DECIMAL(precision, scale)`; the message is ksqlDB's.
pub(crate) fn fit_decimal(
    unscaled: i128,
    from_scale: i32,
    precision: u8,
    scale: u8,
) -> Result<Value, String> {
    let fitted = rescale(unscaled, from_scale, scale as i32);
    match fitted {
        Some(value) if unscaled_digits(value) <= precision as u32 || value == 0 => {
            Ok(Value::Decimal {
                unscaled: value,
                scale,
            })
        }
        _ => Err(format!(
            "Cannot fit decimal '{}' into DECIMAL({precision}, {scale}) without rounding. (Requires {},{})",
            plain_text(unscaled, from_scale),
            unscaled_digits(unscaled),
            from_scale
        )),
    }
}

/// Parses text and fits it into the column's type.
pub(crate) fn decimal_from_text(text: &str, precision: u8, scale: u8) -> Result<Value, String> {
    let (unscaled, from_scale) =
        parse_decimal(text.trim()).ok_or_else(|| format!("Invalid decimal: '{text}'"))?;
    fit_decimal(unscaled, from_scale, precision, scale)
}

fn plain_text(unscaled: i128, scale: i32) -> String {
    if scale >= 0 {
        crate::value::decimal_to_string(unscaled, scale.min(255) as u8)
    } else {
        let mut text = unscaled.to_string();
        text.extend(std::iter::repeat_n('0', (-scale) as usize));
        text
    }
}

/// Minimal big-endian two's-complement bytes of `value` (Avro's and Connect's decimal bytes).
pub(crate) fn to_twos_complement(value: i128) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (current, next) = (bytes[start], bytes[start + 1]);
        let redundant =
            (current == 0x00 && next & 0x80 == 0) || (current == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    bytes[start..].to_vec()
}

/// Big-endian two's-complement bytes back to a number; `None` beyond 16 bytes of magnitude.
pub(crate) fn from_twos_complement(bytes: &[u8]) -> Option<i128> {
    if bytes.is_empty() {
        return Some(0);
    }
    let negative = bytes[0] & 0x80 != 0;
    let significant: &[u8] = {
        let filler = if negative { 0xff } else { 0x00 };
        let skip = bytes.iter().take_while(|b| **b == filler).count();
        let skip = skip.min(bytes.len().saturating_sub(16));
        &bytes[skip..]
    };
    if significant.len() > 16 {
        return None;
    }
    let mut buffer = if negative { [0xffu8; 16] } else { [0u8; 16] };
    buffer[16 - significant.len()..].copy_from_slice(significant);
    Some(i128::from_be_bytes(buffer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_bigdecimal_does() {
        assert_eq!(parse_decimal("12.30"), Some((1230, 2)));
        assert_eq!(parse_decimal(".12"), Some((12, 2)));
        assert_eq!(parse_decimal("-5"), Some((-5, 0)));
        assert_eq!(parse_decimal("1E+3"), Some((1, -3)));
        assert_eq!(parse_decimal("1.5e-2"), Some((15, 3)));
        assert_eq!(parse_decimal("abc"), None);
        assert_eq!(parse_decimal("."), None);
    }

    #[test]
    fn rescales_half_up_and_refuses_overflow() {
        assert_eq!(rescale(12345, 3, 2), Some(1235));
        assert_eq!(rescale(-12345, 3, 2), Some(-1235));
        assert_eq!(rescale(12, 0, 4), Some(120000));
        assert_eq!(
            decimal_from_text("12.0", 6, 4),
            Ok(Value::Decimal {
                unscaled: 120000,
                scale: 4
            })
        );
        let error = decimal_from_text("123.4", 4, 2).unwrap_err();
        assert!(
            error.contains("Cannot fit decimal '123.4' into DECIMAL(4, 2)"),
            "{error}"
        );
    }

    #[test]
    fn twos_complement_round_trips() {
        for value in [0i128, 1, -1, 127, 128, -128, -129, 1234567, -99999999999999] {
            let bytes = to_twos_complement(value);
            assert_eq!(from_twos_complement(&bytes), Some(value), "{value}");
        }
        assert_eq!(to_twos_complement(128), vec![0x00, 0x80]);
        assert_eq!(to_twos_complement(-1), vec![0xff]);
    }
}
