//! A JSON number byte by byte (`-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?`), kept within a
//! schema's bounds: a digit is allowed only while some completion of the number so far lies
//! within them. Integers get no fraction or exponent; bounded numbers no exponent.

use super::grammar::{Bound, MAX_DIGITS};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    Start,
    Minus,
    /// A leading 0 (no more integer digits).
    Zero,
    Int,
    Dot,
    Frac,
    E,
    ESign,
    Exp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Num {
    pub neg: bool,
    /// The digits so far, integer and fraction together.
    pub m: u128,
    pub int: u8,
    pub frac: u8,
    pub exp: u8,
    pub phase: Phase,
}

/// What a number node asks for.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub integer: bool,
    pub min: Option<Bound>,
    pub max: Option<Bound>,
}

impl Spec {
    /// Bytes of the shortest number this allows.
    pub fn min_len(&self) -> u32 {
        Num::start().min_extra(self)
    }
}

/// Bytes a number prefix may try while looking for its shortest completion.
const SEARCH: &[u8] = b"-0123456789.";

/// Exponent digits at most.
const MAX_EXP: u8 = 2;

impl Num {
    pub fn start() -> Num {
        Num { neg: false, m: 0, int: 0, frac: 0, exp: 0, phase: Phase::Start }
    }

    /// The number after byte `b`, if `b` continues it and some completion stays in bounds.
    pub fn feed(self, s: &Spec, b: u8) -> Option<Num> {
        let bounded = s.min.is_some() || s.max.is_some();
        let digit = b.is_ascii_digit().then(|| (b - b'0') as u128);
        let mut n = self;
        use Phase::*;
        n.phase = match (self.phase, b, digit) {
            (Start, b'-', _) => {
                n.neg = true;
                Minus
            }
            (Start | Minus, _, Some(0)) => Zero,
            (Start | Minus, _, Some(_)) | (Int, _, Some(_)) if self.int < MAX_DIGITS => {
                n.m = self.m * 10 + digit?;
                n.int += 1;
                Int
            }
            (Zero | Int, b'.', _) if !s.integer => Dot,
            (Dot, _, Some(d)) | (Frac, _, Some(d)) if self.frac < MAX_DIGITS => {
                n.m = self.m * 10 + d;
                n.frac += 1;
                Frac
            }
            (Zero | Int | Frac, b'e' | b'E', _) if !s.integer && !bounded => E,
            (E, b'+' | b'-', _) => ESign,
            (E | ESign, _, Some(_)) => {
                n.exp = 1;
                Exp
            }
            (Exp, _, Some(_)) if self.exp < MAX_EXP => {
                n.exp += 1;
                Exp
            }
            _ => return None,
        };
        if n.phase == Zero {
            n.int = 1;
        }
        (!bounded || n.viable(s)).then_some(n)
    }

    /// Fewest bytes that make this a complete number within bounds (a breadth-first search
    /// over the bytes a number may take, exponents aside; a bound the search cannot reach
    /// answers with the most a number may take).
    pub fn min_extra(&self, s: &Spec) -> u32 {
        let mut frontier = vec![*self];
        for d in 0..=(2 * MAX_DIGITS as u32 + 2) {
            if frontier.iter().any(|n| n.complete(s)) {
                return d;
            }
            let mut next: Vec<Num> = frontier.iter().flat_map(|n| SEARCH.iter().filter_map(|&b| n.feed(s, b))).collect();
            if next.is_empty() {
                break;
            }
            // Kept small: the smallest and the largest magnitudes (where bounds are reached
            // first). Dropping states can only make the answer longer, never too short.
            next.sort_unstable_by_key(|n| (n.m, n.frac, n.neg, n.int));
            next.dedup();
            if next.len() > 256 {
                next.drain(128..next.len() - 128);
            }
            frontier = next;
        }
        2 * MAX_DIGITS as u32 + 2
    }

    /// Whether the number may end here (a complete number within bounds).
    pub fn complete(&self, s: &Spec) -> bool {
        matches!(self.phase, Phase::Zero | Phase::Int | Phase::Frac | Phase::Exp) && self.within(s, self.value())
    }

    /// The value so far (bounded numbers have no exponent): as JSON.parse reads it, the
    /// digits being exact in a double and divided by an exact power of ten.
    fn value(&self) -> f64 {
        let x = self.m as f64 / 10f64.powi(self.frac as i32);
        if self.neg {
            -x
        } else {
            x
        }
    }

    fn within(&self, s: &Spec, x: f64) -> bool {
        let lo = s.min.is_none_or(|b| if b.exclusive { x > b.value } else { x >= b.value });
        let hi = s.max.is_none_or(|b| if b.exclusive { x < b.value } else { x <= b.value });
        lo && hi
    }

    /// Whether some completion of this prefix lies within the bounds: the magnitudes it can
    /// still reach, as intervals, against the bounds.
    fn viable(&self, s: &Spec) -> bool {
        let (bounds, integer) = (Interval::of(s), s.integer);
        let meets = |a: f64, b: f64, b_in: bool| -> bool {
            // Magnitudes [a, b) (or [a, b]), with the sign applied.
            let iv = if self.neg { Interval { lo: -b, lo_in: b_in, hi: -a, hi_in: true } } else { Interval { lo: a, lo_in: true, hi: b, hi_in: b_in } };
            iv.meets(&bounds, integer)
        };
        let top = 10f64.powi(MAX_DIGITS as i32);
        let x = self.m as f64 / 10f64.powi(self.frac as i32);
        match self.phase {
            Phase::Start => true,
            // A minus only where a negative value (not -0) can follow.
            Phase::Minus => meets(if integer { 1.0 } else { 10f64.powi(-(MAX_DIGITS as i32)) }, top, false),
            Phase::Zero => meets(0.0, if integer { 0.0 } else { 1.0 }, integer),
            Phase::Int => {
                // More integer digits (k of them), then maybe a fraction.
                (0..=(MAX_DIGITS - self.int) as i32).any(|k| {
                    let p = 10f64.powi(k);
                    let a = self.m as f64 * p;
                    if integer {
                        meets(a, a + p - 1.0, true)
                    } else {
                        meets(a, a + p, false)
                    }
                })
            }
            Phase::Frac if self.frac == MAX_DIGITS => meets(x, x, true),
            Phase::Dot | Phase::Frac => meets(x, x + 10f64.powi(-(self.frac as i32)), false),
            Phase::E | Phase::ESign | Phase::Exp => true,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Interval {
    lo: f64,
    lo_in: bool,
    hi: f64,
    hi_in: bool,
}

impl Interval {
    fn of(s: &Spec) -> Interval {
        let (lo, lo_in) = s.min.map_or((f64::NEG_INFINITY, false), |b| (b.value, !b.exclusive));
        let (hi, hi_in) = s.max.map_or((f64::INFINITY, false), |b| (b.value, !b.exclusive));
        Interval { lo, lo_in, hi, hi_in }
    }

    /// Whether the two share a point (an integer one when `integer`).
    fn meets(&self, o: &Interval, integer: bool) -> bool {
        let (lo, lo_in) = if self.lo > o.lo { (self.lo, self.lo_in) } else if o.lo > self.lo { (o.lo, o.lo_in) } else { (self.lo, self.lo_in && o.lo_in) };
        let (hi, hi_in) = if self.hi < o.hi { (self.hi, self.hi_in) } else if o.hi < self.hi { (o.hi, o.hi_in) } else { (self.hi, self.hi_in && o.hi_in) };
        if integer {
            let first = if lo_in { lo.ceil() } else { lo.floor() + 1.0 };
            let last = if hi_in { hi.floor() } else { hi.ceil() - 1.0 };
            first <= last
        } else {
            lo < hi || (lo == hi && lo_in && hi_in)
        }
    }
}

/// Whether any number (integer) of at most `MAX_DIGITS` integer digits lies within the bounds.
pub fn satisfiable(integer: bool, min: Option<Bound>, max: Option<Bound>) -> bool {
    let top = 10f64.powi(MAX_DIGITS as i32);
    Interval { lo: -top, lo_in: false, hi: top, hi_in: false }.meets(&Interval::of(&Spec { integer, min, max }), integer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &Spec, text: &str) -> Option<Num> {
        text.bytes().try_fold(Num::start(), |n, b| n.feed(s, b))
    }

    #[test]
    fn bounds_prune_digits() {
        let b = |v, exclusive| Some(Bound { value: v, exclusive });
        let age = Spec { integer: true, min: b(0.0, false), max: b(120.0, false) };
        assert!(run(&age, "-").is_none());
        assert!(run(&age, "12").is_some_and(|n| n.complete(&age)));
        assert!(run(&age, "120").is_some_and(|n| n.complete(&age)));
        assert!(run(&age, "121").is_none());
        assert!(run(&age, "1.").is_none());
        assert!(run(&age, "2").is_some_and(|n| n.complete(&age)));
        assert!(run(&age, "20").is_some());
        assert!(run(&age, "200").is_none());
        let unit = Spec { integer: false, min: b(0.0, true), max: b(1.0, false) };
        assert!(run(&unit, "0").is_some_and(|n| !n.complete(&unit)));
        assert!(run(&unit, "0.0").is_some_and(|n| !n.complete(&unit)));
        assert!(run(&unit, "0.05").is_some_and(|n| n.complete(&unit)));
        assert!(run(&unit, "1.0").is_some_and(|n| n.complete(&unit)));
        assert!(run(&unit, "1.01").is_none());
        assert!(run(&unit, "2").is_none());
        assert!(run(&unit, "1e").is_none());
        let neg = Spec { integer: true, min: b(-50.0, false), max: b(-10.0, true) };
        assert!(run(&neg, "5").is_none());
        assert!(run(&neg, "-1").is_some());
        assert!(run(&neg, "-10").is_none());
        assert!(run(&neg, "-11").is_some_and(|n| n.complete(&neg)));
        assert!(run(&neg, "-51").is_none());
        let free = Spec { integer: false, min: None, max: None };
        assert!(run(&free, "-0.5e+12").is_some_and(|n| n.complete(&free)));
        assert!(run(&free, "01").is_none());
        assert!(!satisfiable(true, b(0.5, false), b(0.9, false)));
        assert!(satisfiable(false, b(0.5, false), b(0.9, false)));
    }
}
