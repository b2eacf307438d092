//! Just enough of apimachinery's `resource.Quantity` for describe and for sizing volumes: parse,
//! add, whole units, and print in canonical form (`500m`, `128Mi`, `2k`, `1536`), at milli
//! precision.

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quantity {
    /// The amount in thousandths, rounded up like `MilliValue()`.
    milli: i128,
    /// Written with a binary suffix (`Ki`, `Mi`, ...), which decides how it prints.
    binary: bool,
}

impl Quantity {
    pub fn parse(s: &str) -> Option<Quantity> {
        let s = s.trim();
        let (negative, body) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let number_end = body.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(body.len());
        let (number, suffix) = body.split_at(number_end);
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        // value = digits / 10^scale * num / den
        let digits: i128 = format!("{int}{frac}").parse().ok()?;
        let mut den: i128 = 10i128.checked_pow(frac.len() as u32)?;
        let mut num: i128 = 1000;
        let binary_power = |p: u32| 1i128 << (10 * p);
        let binary = suffix.ends_with('i');
        match suffix {
            "" => {}
            "n" => den = den.checked_mul(1_000_000_000)?,
            "u" => den = den.checked_mul(1_000_000)?,
            "m" => den = den.checked_mul(1000)?,
            "k" => num *= 1000,
            "M" => num *= 1_000_000,
            "G" => num *= 1_000_000_000,
            "T" => num *= 1_000_000_000_000,
            "P" => num *= 1_000_000_000_000_000,
            "E" => num *= 1_000_000_000_000_000_000,
            "Ki" => num *= binary_power(1),
            "Mi" => num *= binary_power(2),
            "Gi" => num *= binary_power(3),
            "Ti" => num *= binary_power(4),
            "Pi" => num *= binary_power(5),
            "Ei" => num *= binary_power(6),
            exp if exp.starts_with(['e', 'E']) => {
                let e: i32 = exp[1..].parse().ok()?;
                if e >= 0 {
                    num = num.checked_mul(10i128.checked_pow(e as u32)?)?;
                } else {
                    den = den.checked_mul(10i128.checked_pow((-e) as u32)?)?;
                }
            }
            _ => return None,
        }
        let scaled = digits.checked_mul(num)?;
        let milli = (scaled + den - 1).div_euclid(den);
        Some(Quantity { milli: if negative { -milli } else { milli }, binary })
    }

    /// Parses, or zero for a missing or malformed quantity (what a missing map key reads as).
    pub fn of(s: Option<&str>) -> Quantity {
        s.and_then(Quantity::parse).unwrap_or_default()
    }

    pub fn milli(&self) -> i128 {
        self.milli
    }

    /// `Value()`: whole units, rounded up.
    pub fn value(&self) -> i128 {
        (self.milli + 999).div_euclid(1000)
    }

    /// Whole units, rounded up, of a quantity that is not negative and fits (bytes of memory).
    pub fn value_u64(&self) -> Option<u64> {
        u64::try_from(self.value()).ok().filter(|_| self.milli >= 0)
    }

    pub fn is_zero(&self) -> bool {
        self.milli == 0
    }
}

impl std::ops::Add for Quantity {
    type Output = Quantity;

    /// `Add`: a zero receiver takes the other operand's format, as in apimachinery.
    fn add(self, other: Quantity) -> Quantity {
        let binary = if self.is_zero() { other.binary } else { self.binary };
        Quantity { milli: self.milli + other.milli, binary }
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let milli = self.milli;
        if milli == 0 {
            return f.write_str("0");
        }
        // Binary amounts print with the largest exact power of 1024, unless small or fractional.
        if self.binary && milli % 1000 == 0 && (milli / 1000).abs() >= 1024 {
            let mut v = milli / 1000;
            let mut power = 0;
            while power < 6 && v % 1024 == 0 {
                v /= 1024;
                power += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
            return write!(f, "{v}{suffix}");
        }
        // Decimal: the largest exponent (a multiple of 3) that keeps the mantissa whole.
        let mut v = milli;
        let mut exp = -3;
        while exp < 18 && v % 1000 == 0 {
            v /= 1000;
            exp += 3;
        }
        let suffix = match exp {
            -3 => "m",
            0 => "",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            _ => "E",
        };
        write!(f, "{v}{suffix}")
    }
}

/// A quantity string in canonical form; unparseable input is shown as given.
pub fn canonical(s: &str) -> String {
    Quantity::parse(s).map_or_else(|| s.to_string(), |q| q.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        for (input, want) in [
            ("100m", "100m"),
            ("0.5", "500m"),
            ("1000m", "1"),
            ("2000", "2k"),
            ("1500", "1500"),
            ("128Mi", "128Mi"),
            ("1Gi", "1Gi"),
            ("1536", "1536"),
            ("16374872Ki", "16374872Ki"),
            ("1e3", "1k"),
            ("0", "0"),
            ("110", "110"),
        ] {
            assert_eq!(canonical(input), want, "{input}");
        }
        let sum = Quantity::of(Some("128Mi")) + Quantity::of(Some("64Mi"));
        assert_eq!(sum.to_string(), "192Mi");
        let mixed = Quantity::default() + Quantity::of(Some("100m")) + Quantity::of(Some("1"));
        assert_eq!(mixed.to_string(), "1100m");
        assert_eq!(Quantity::of(Some("1Ki")).value(), 1024);
    }
}
