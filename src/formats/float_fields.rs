//! Delimited lines of plain decimal numbers (`-12.345`) parsed straight to float32, 32 bytes
//! at a time (AVX2): the float32 matrix's side of the CSV decoder.
//!
//! Each value equals what the scalar path gives, lexical's correctly rounded float64 then
//! cast to float32. The fast arithmetic (all digits as one integer, times a power of ten
//! rounded to float64) is within 3 float64 units of the correctly rounded value; such an
//! error can change the float32 only when the value lies that close to the midpoint between
//! two float32s, and those lines (a few in a billion) go back to the scalar path with every
//! line this parser does not take: exponents, `+`, `.5`, quotes, empty fields, more than 19
//! significant digits, anything else.
//! Into a float32 matrix on one thread (`examples/decode_bench.rs`): 10.7 ns a number, against
//! 35.2 ns through lexical and float64 columns.
// Elsewhere than on x86-64 every line takes the scalar path and the helpers go unused.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

/// Parses `line`, exactly `out.len()` fields of the form `-?[0-9]+(\.[0-9]+)?` split by
/// `delimiter`, into `out`. False, with `out` in no particular state, when the line needs
/// the scalar path (see the module) or the processor has no AVX2. `scratch` is reused
/// between calls.
pub fn parse_float32_fields(
    line: &[u8],
    delimiter: u8,
    out: &mut [f32],
    scratch: &mut Vec<u8>,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if fast_path_available() && usable_delimiter(delimiter) {
        scratch.clear();
        scratch.resize(PAD, 0);
        scratch.extend_from_slice(line);
        // A delimiter after the last field, so every field ends at one.
        scratch.push(delimiter);
        scratch.resize(PAD + line.len() + 1 + PAD, 0);
        // Safety: the instructions are present, and `scratch` is padded as `avx2::parse`
        // requires.
        return unsafe { avx2::parse(scratch, line.len(), delimiter, out) };
    }
    let _ = (line, delimiter, out, scratch);
    false
}

/// The instructions `avx2::parse` uses (every AVX2 processor has the other two, but a virtual
/// machine may hide them).
#[cfg(target_arch = "x86_64")]
fn fast_path_available() -> bool {
    std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("bmi1")
        && std::is_x86_feature_detected!("popcnt")
}

/// A delimiter that cannot be part of a number (nor the zero padding).
fn usable_delimiter(delimiter: u8) -> bool {
    !matches!(delimiter, b'0'..=b'9' | b'.' | b'-' | 0)
}

/// Bytes before and after the line in the scratch buffer: every 32-byte load stays inside.
const PAD: usize = 32;
/// Fields per line the fast path takes (the talk's rows have 31).
const MAX_FIELDS: usize = 256;

/// `10^-k` rounded to float64, k = 0..=22.
const NEGATIVE_POWERS_OF_TEN: [f64; 23] = [
    1e-0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14,
    1e-15, 1e-16, 1e-17, 1e-18, 1e-19, 1e-20, 1e-21, 1e-22,
];

/// Whether the float32 rounding of an approximate float64 `approx` (at most 3 float64 units
/// from the correctly rounded value of the decimal) could differ from that of the correct
/// value: only when a midpoint between two float32s lies between them, so within 3 units of
/// `approx`. A midpoint's lowest 29 bits (those float32 drops) are 1 followed by 28 zeros.
fn near_float32_midpoint(approx: f64) -> bool {
    let dropped = (approx.to_bits() & ((1 << 29) - 1)) as i64;
    (dropped - (1 << 28)).abs() <= 4
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{near_float32_midpoint, MAX_FIELDS, NEGATIVE_POWERS_OF_TEN, PAD};

    /// Where each field ends, then each field on its own: the ends are found first so that
    /// no field's loads wait for the previous field's end, and the fields overlap in the
    /// processor.
    ///
    /// # Safety
    /// The processor has AVX2, BMI1 and POPCNT; `padded` is `PAD` bytes, the line (`len`
    /// bytes), the delimiter, `PAD` bytes of zeros.
    #[target_feature(enable = "avx2,bmi1,popcnt")]
    pub unsafe fn parse(padded: &[u8], len: usize, delimiter: u8, out: &mut [f32]) -> bool {
        let width = out.len();
        if width > MAX_FIELDS || padded.len() < 2 * PAD + len + 1 {
            return false;
        }
        let mut ends = [0u32; MAX_FIELDS + 4];
        if !field_ends(padded, len + 1, delimiter, &mut ends[..width + 4]) {
            return false;
        }
        let mut start = PAD;
        for (slot, &end) in out.iter_mut().zip(&ends[..width]) {
            let end = end as usize;
            // The 32 bytes that end where the field ends: it lies right-aligned in them.
            // In bounds: end >= PAD >= 32 and end < padded.len().
            let bytes = _mm256_loadu_si256(padded.as_ptr().add(end - 32) as *const __m256i);
            match field_value(bytes, end - start) {
                Some(value) => *slot = value,
                None => return false,
            }
            start = end + 1;
        }
        true
    }

    /// Fills `ends` with the position (in `padded`) of each delimiter among the `total`
    /// bytes after the front padding; false unless there are exactly `ends.len() - 4`.
    #[target_feature(enable = "avx2,bmi1,popcnt")]
    unsafe fn field_ends(padded: &[u8], total: usize, delimiter: u8, ends: &mut [u32]) -> bool {
        let width = ends.len() - 4;
        let delimiters = _mm256_set1_epi8(delimiter as i8);
        let mut found = 0;
        let mut block = 0;
        while block < total {
            // In bounds: block < total, and PAD zeros follow the `total` bytes.
            let bytes = _mm256_loadu_si256(padded.as_ptr().add(PAD + block) as *const __m256i);
            let mut mask = _mm256_movemask_epi8(_mm256_cmpeq_epi8(bytes, delimiters)) as u32;
            if total - block < 32 {
                mask &= (1u32 << (total - block)) - 1;
            }
            let count = mask.count_ones() as usize;
            if found + count > width {
                return false;
            }
            // Four ends written whatever the count (the surplus is overwritten or unused):
            // a loop as long as the count would mispredict its exit on every block.
            let base = (PAD + block) as u32;
            for end in &mut ends[found..found + 4] {
                *end = base + mask.trailing_zeros();
                mask &= mask.wrapping_sub(1);
            }
            let mut next = found + 4;
            while mask != 0 {
                ends[next] = base + mask.trailing_zeros();
                mask &= mask - 1;
                next += 1;
            }
            found += count;
            block += 32;
        }
        found == width
    }

    /// The value of the field of `len` bytes that ends `bytes`; `None` unless it is
    /// `-?[0-9]+(\.[0-9]+)?` with at most 19 significant digits and 22 decimals, and not
    /// near a float32 midpoint.
    #[target_feature(enable = "avx2,bmi1,popcnt")]
    unsafe fn field_value(bytes: __m256i, len: usize) -> Option<f32> {
        if len == 0 || len > 32 {
            return None;
        }
        let in_field = u32::MAX << (32 - len);
        let first = 1u32 << (32 - len);
        let digits_only = _mm256_sub_epi8(bytes, _mm256_set1_epi8(b'0' as i8));
        let is_digit = _mm256_cmpeq_epi8(
            _mm256_min_epu8(digits_only, _mm256_set1_epi8(9)),
            digits_only,
        );
        let digits = _mm256_movemask_epi8(is_digit) as u32 & in_field;
        let dots = _mm256_movemask_epi8(_mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(b'.' as i8)))
            as u32
            & in_field;
        let minus = _mm256_movemask_epi8(_mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(b'-' as i8)))
            as u32
            & in_field;
        if digits | dots | minus != in_field || minus & !first != 0 || dots.count_ones() > 1 {
            return None;
        }
        let negative = minus != 0;
        let first_digit = 32 - len + negative as usize;
        // Bytes before the dot move one place right, over it; `shift_below`: those indices.
        let (shift_below, decimals) = if dots != 0 {
            let dot = dots.trailing_zeros() as usize;
            if dot == first_digit || dot == 31 {
                return None; // ".5", "5.": the scalar path decides
            }
            (dot as i8 + 1, 31 - dot)
        } else {
            if first_digit == 32 {
                return None; // "-"
            }
            (0, 0)
        };
        let digit_count = (32 - first_digit - (dots != 0) as usize) as i8;
        let index = _mm256_setr_epi8(
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
            24, 25, 26, 27, 28, 29, 30, 31,
        );
        // One byte to the right across the two 128-bit lanes.
        let shifted = _mm256_alignr_epi8::<15>(
            digits_only,
            _mm256_permute2x128_si256::<0x08>(digits_only, digits_only),
        );
        let moved = _mm256_blendv_epi8(
            digits_only,
            shifted,
            _mm256_cmpgt_epi8(_mm256_set1_epi8(shift_below), index),
        );
        let keep = _mm256_cmpgt_epi8(index, _mm256_set1_epi8(31 - digit_count));
        let digit_values = _mm256_and_si256(moved, keep);
        // 32 digits -> 16 two-digit -> 8 four-digit -> 4 eight-digit numbers.
        let pairs = _mm256_maddubs_epi16(digit_values, _mm256_set1_epi16(0x010a));
        let fours = _mm256_madd_epi16(pairs, _mm256_set1_epi32(0x0001_0064));
        let fours = _mm256_packus_epi32(fours, fours);
        let eights = _mm256_madd_epi16(fours, _mm256_set1_epi32(0x0001_2710));
        let front = _mm_cvtsi128_si64(_mm256_castsi256_si128(eights)) as u64;
        let back = _mm_cvtsi128_si64(_mm256_extracti128_si256::<1>(eights)) as u64;
        let high = (front & 0xffff_ffff) * 100_000_000 + (front >> 32);
        let low = (back & 0xffff_ffff) * 100_000_000 + (back >> 32);
        // high * 10^16 + low fits in 64 bits while high <= 1843.
        if high > 1843 || decimals >= NEGATIVE_POWERS_OF_TEN.len() {
            return None;
        }
        let mantissa = high * 10_000_000_000_000_000 + low;
        // Through i64 below 2^63: one instruction, where u64 takes a sequence of them.
        let mantissa = if mantissa >> 63 == 0 {
            mantissa as i64 as f64
        } else {
            mantissa as f64
        };
        let approx = mantissa * NEGATIVE_POWERS_OF_TEN[decimals];
        if near_float32_midpoint(approx) {
            return None;
        }
        // The sign as a bit: a branch on it would be mispredicted on every other number.
        let magnitude = approx as f32;
        Some(f32::from_bits(
            magnitude.to_bits() | (negative as u32) << 31,
        ))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What the scalar path gives: lexical's float64, cast.
    fn scalar(field: &str) -> f32 {
        lexical_core::parse::<f64>(field.as_bytes()).unwrap() as f32
    }

    fn fast(line: &str, width: usize) -> Option<Vec<f32>> {
        let mut out = vec![f32::NAN; width];
        parse_float32_fields(line.as_bytes(), b',', &mut out, &mut Vec::new()).then_some(out)
    }

    /// On a processor without AVX2 every line goes to the scalar path: the tests check that.
    fn fast_path_on() -> bool {
        let on = fast("1", 1).is_some();
        #[cfg(target_arch = "x86_64")]
        assert_eq!(on, fast_path_available());
        on
    }

    fn assert_same_bits(fields: &[String]) {
        let line = fields.join(",");
        let Some(values) = fast(&line, fields.len()) else {
            panic!("fast path refused {line:?}");
        };
        for (field, value) in fields.iter().zip(values) {
            assert_eq!(value.to_bits(), scalar(field).to_bits(), "{field}");
        }
    }

    #[test]
    fn plain_numbers_equal_the_scalar_path() {
        let fields: Vec<String> = [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "7",
            "007.50",
            "-1.5",
            "123456.789",
            "0.1",
            "-0.3",
            "9999999999999999999",
            "0.0000000000000000000001",
            "0.30000000000000004",
            "340282346638528859811704183484516925440", // f32::MAX: 39 digits, refused
        ]
        .iter()
        .map(|f| f.to_string())
        .collect();
        if !fast_path_on() {
            assert_eq!(fast(&fields.join(","), fields.len()), None);
            return;
        }
        assert_same_bits(&fields[..fields.len() - 1]);
        assert_eq!(fast(&fields[fields.len() - 1], 1), None);
        // 2^24 + 1 is the midpoint between two float32s: the scalar path rounds it.
        assert_eq!(fast("16777217", 1), None);
    }

    #[test]
    fn other_forms_are_left_to_the_scalar_path() {
        for line in [
            "1,2e5",
            "1,.5",
            "1,5.",
            "1,+5",
            "1,",
            ",1",
            "1,-",
            "1,--1",
            "1,1.2.3",
            "1,1-2",
            "1, 2",
            "1,\"2\"",
            "1,NaN",
            "1,2,3",
            "1",
            "1,12345678901234567890123",
            "1,0.00000000000000000000001",
            "1,123456789012345678901234567890123",
        ] {
            assert_eq!(fast(line, 2), None, "{line:?}");
        }
        // A field longer than the 32 bytes the fast path reads at once.
        let long = format!("1,0.{}", "1".repeat(40));
        assert_eq!(fast(&long, 2), None);
    }

    #[test]
    fn values_at_and_beside_float32_midpoints_equal_the_scalar_path() {
        let on = fast_path_on();
        let mut checked = 0;
        let mut x = 1.0e-3f32;
        while x < 1.0e7 {
            let midpoint = (x as f64 + f32::from_bits(x.to_bits() + 1) as f64) / 2.0;
            for value in [midpoint.next_down(), midpoint, midpoint.next_up()] {
                for field in [format!("{value}"), format!("{value:.12}")] {
                    let mut out = [0.0f32];
                    if parse_float32_fields(field.as_bytes(), b',', &mut out, &mut Vec::new()) {
                        assert_eq!(out[0].to_bits(), scalar(&field).to_bits(), "{field}");
                        checked += 1;
                    }
                }
            }
            x *= 1.37;
        }
        // The rounded ones ("{:.12}") are far from midpoints and must be taken.
        assert!(!on || checked > 50, "only {checked} taken");
    }

    proptest! {
        #[test]
        fn random_doubles_equal_the_scalar_path(
            values in prop::collection::vec(any::<f64>(), 1..40),
        ) {
            prop_assume!(fast_path_on());
            let fields: Vec<String> = values
                .iter()
                .filter(|v| v.is_finite())
                .map(|v| format!("{v}"))
                .collect();
            prop_assume!(!fields.is_empty());
            let line = fields.join(",");
            if let Some(parsed) = fast(&line, fields.len()) {
                for (field, value) in fields.iter().zip(parsed) {
                    prop_assert_eq!(value.to_bits(), scalar(field).to_bits(), "{}", field);
                }
            }
        }

        #[test]
        fn random_digit_strings_equal_the_scalar_path(
            negative in any::<bool>(),
            whole in "[0-9]{1,12}",
            decimals in "[0-9]{1,18}",
        ) {
            prop_assume!(fast_path_on());
            let field = format!("{}{whole}.{decimals}", if negative { "-" } else { "" });
            if let Some(parsed) = fast(&field, 1) {
                prop_assert_eq!(parsed[0].to_bits(), scalar(&field).to_bits(), "{}", field);
            }
        }
    }
}
