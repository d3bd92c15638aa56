package mapping

import (
	"errors"
	"math"
	"math/bits"
)

// MicroPerUnit is the resolution of Neptune steps: neptune-scale stores
// whole + micro/1e6, neptune-exporter a DECIMAL(18,6); neptune-client 1.x
// floats are read at the same resolution.
const MicroPerUnit = 1_000_000

// MaxMultiplier is the largest automatic step multiplier.
const MaxMultiplier = MicroPerUnit

// Errors of step parsing and conversion.
var (
	ErrStepSyntax   = errors.New("step is not a number")
	ErrStepNegative = errors.New("step is negative")
	ErrStepTooFine  = errors.New("step has more than 6 fractional digits")
	ErrStepOverflow = errors.New("step is too large")
	ErrStepNotExact = errors.New("step is not integral under the step multiplier")
)

var pow10 = [...]int64{1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000,
	10_000_000_000, 100_000_000_000, 1_000_000_000_000, 10_000_000_000_000, 100_000_000_000_000,
	1_000_000_000_000_000, 10_000_000_000_000_000, 100_000_000_000_000_000, 1_000_000_000_000_000_000}

// ParseMicro parses a JSON number token (as Python's json module writes
// floats and ints: "3", "3.5", "1e+16", "2.5e-05") into millionths, exactly,
// without going through a float.
func ParseMicro(tok []byte) (int64, error) {
	i := 0
	neg := false
	if i < len(tok) && (tok[i] == '-' || tok[i] == '+') {
		neg = tok[i] == '-'
		i++
	}
	var (
		mant      uint64
		nDigits   int // significant digits in mant
		fracShift int // digits after the point that went into mant
		seenDigit bool
		seenPoint bool
		dropped   bool // a non-zero digit that did not fit
	)
	for ; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c >= '0' && c <= '9':
			seenDigit = true
			if seenPoint {
				fracShift++
			}
			if mant == 0 && c == '0' {
				continue
			}
			if nDigits >= 18 {
				// A digit beyond the precision: an integer digit still
				// scales the value, a fractional one is ignored; both
				// undo the shift counted above.
				if c != '0' {
					dropped = true
				}
				fracShift--
				continue
			}
			mant = mant*10 + uint64(c-'0')
			nDigits++
		case c == '.' && !seenPoint:
			seenPoint = true
		default:
			goto exp
		}
	}
exp:
	if !seenDigit {
		return 0, ErrStepSyntax
	}
	e := 0
	if i < len(tok) {
		if tok[i] != 'e' && tok[i] != 'E' {
			return 0, ErrStepSyntax
		}
		i++
		eneg := false
		if i < len(tok) && (tok[i] == '-' || tok[i] == '+') {
			eneg = tok[i] == '-'
			i++
		}
		if i == len(tok) {
			return 0, ErrStepSyntax
		}
		for ; i < len(tok); i++ {
			c := tok[i]
			if c < '0' || c > '9' {
				return 0, ErrStepSyntax
			}
			if e < 10000 {
				e = e*10 + int(c-'0')
			}
		}
		if eneg {
			e = -e
		}
	}
	if dropped {
		return 0, ErrStepOverflow
	}
	if mant == 0 {
		return 0, nil
	}
	if neg {
		return 0, ErrStepNegative
	}
	// value = mant * 10^(e - fracShift); micro = value * 10^6.
	scale := e - fracShift + 6
	switch {
	case scale >= 0:
		if scale >= len(pow10) {
			return 0, ErrStepOverflow
		}
		hi, lo := bits.Mul64(mant, uint64(pow10[scale]))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, ErrStepOverflow
		}
		return int64(lo), nil
	default:
		if -scale >= len(pow10) {
			return 0, ErrStepTooFine
		}
		d := uint64(pow10[-scale])
		if mant%d != 0 {
			return 0, ErrStepTooFine
		}
		return int64(mant / d), nil
	}
}

// MicroFromFloat converts a float step to millionths, accepting it only when
// it is within float precision of a multiple of 1e-6.
func MicroFromFloat(f float64) (int64, error) {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return 0, ErrStepSyntax
	case f < 0:
		return 0, ErrStepNegative
	case f >= float64(math.MaxInt64)/MicroPerUnit:
		return 0, ErrStepOverflow
	}
	x := f * MicroPerUnit
	r := math.Round(x)
	if math.Abs(x-r) > math.Max(1e-6, math.Abs(x)*1e-15) {
		return 0, ErrStepTooFine
	}
	return int64(r), nil
}

// FracDigits returns how many fractional decimal digits (0..6) a step in
// millionths needs.
func FracDigits(micro int64) int {
	if micro < 0 {
		micro = -micro
	}
	for d := 0; d < 6; d++ {
		if micro%pow10[6-d] == 0 {
			return d
		}
	}
	return 6
}

// StepScan collects the steps of a run to choose its multiplier: the
// smallest power of ten that makes every step integral.
type StepScan struct {
	digits int
}

// Add records one step in millionths.
func (s *StepScan) Add(micro int64) {
	if s.digits == 6 {
		return
	}
	if d := FracDigits(micro); d > s.digits {
		s.digits = d
	}
}

// Merge records everything another scan saw.
func (s *StepScan) Merge(o StepScan) {
	if o.digits > s.digits {
		s.digits = o.digits
	}
}

// Multiplier returns 10^digits, between 1 and MaxMultiplier.
func (s StepScan) Multiplier() int64 { return pow10[s.digits] }

// ConvertStep turns a step in millionths into an mlop step under the
// multiplier: micro * mul / 1e6, which must be an integer.
func ConvertStep(micro, mul int64) (int64, error) {
	if micro < 0 {
		return 0, ErrStepNegative
	}
	if mul <= 0 {
		mul = 1
	}
	if MicroPerUnit%mul == 0 {
		d := MicroPerUnit / mul
		if micro%d != 0 {
			return 0, ErrStepNotExact
		}
		return micro / d, nil
	}
	hi, lo := bits.Mul64(uint64(micro), uint64(mul))
	if hi >= MicroPerUnit {
		return 0, ErrStepOverflow
	}
	q, r := bits.Div64(hi, lo, MicroPerUnit)
	if r != 0 {
		return 0, ErrStepNotExact
	}
	if q > math.MaxInt64 {
		return 0, ErrStepOverflow
	}
	return int64(q), nil
}

// FormatMicro writes a step in millionths as a decimal with six fractional
// digits, the way neptune-exporter prints steps ("250.000000").
func FormatMicro(micro int64) string {
	neg := micro < 0
	if neg {
		micro = -micro
	}
	whole, frac := micro/MicroPerUnit, micro%MicroPerUnit
	var buf [32]byte
	i := len(buf)
	for k := 0; k < 6; k++ {
		i--
		buf[i] = byte('0' + frac%10)
		frac /= 10
	}
	i--
	buf[i] = '.'
	if whole == 0 {
		i--
		buf[i] = '0'
	}
	for whole > 0 {
		i--
		buf[i] = byte('0' + whole%10)
		whole /= 10
	}
	if neg {
		i--
		buf[i] = '-'
	}
	return string(buf[i:])
}
