package v1alpha1

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// Quantity is a byte size as users write it: "512Mi", "2G", "1048576".
// The empty string means "not set". Decimal suffixes k (or K), M, G, T, P, E
// are powers of 1000, binary suffixes Ki, Mi, Gi, Ti, Pi, Ei powers of 1024.
// A decimal fraction is allowed when it comes out as whole bytes ("1.5Gi").
type Quantity string

// ErrInvalidQuantity is wrapped by every error of ParseQuantity.
var ErrInvalidQuantity = errors.New("invalid quantity")

// ErrInvalidCPU is wrapped by every error of ParseCPUPercent.
var ErrInvalidCPU = errors.New("invalid CPU percentage")

// maxQuantityLen bounds the work of parsing: no real size needs more.
const maxQuantityLen = 32

var quantitySuffixes = map[string]int64{
	"":  1,
	"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
	"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60,
}

// Common sizes, for range checks.
const (
	KiB int64 = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
	PiB
)

// Bytes returns the size in bytes; an empty quantity is 0.
func (q Quantity) Bytes() (int64, error) {
	if q == "" {
		return 0, nil
	}
	return ParseQuantity(string(q))
}

// String returns the quantity as written.
func (q Quantity) String() string { return string(q) }

// ParseQuantity parses a byte size such as "512Mi", "2G", "1.5Gi" or "1048576".
// It refuses signs, exponents, unknown suffixes, fractions of a byte and
// values above math.MaxInt64.
func ParseQuantity(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: empty", ErrInvalidQuantity)
	}
	if len(s) > maxQuantityLen {
		return 0, fmt.Errorf("%w: longer than %d characters", ErrInvalidQuantity, maxQuantityLen)
	}
	num, suffix := splitQuantity(s)
	mult, ok := quantitySuffixes[suffix]
	if !ok || num == "" {
		return 0, fmt.Errorf("%w %q: want a whole number with an optional suffix k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi or Ei", ErrInvalidQuantity, s)
	}
	whole, frac, hasDot := strings.Cut(num, ".")
	if whole == "" || (hasDot && frac == "") || strings.Contains(frac, ".") {
		return 0, fmt.Errorf("%w %q: malformed number", ErrInvalidQuantity, s)
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("%w %q: malformed number", ErrInvalidQuantity, s)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("%w %q: not a whole number of bytes", ErrInvalidQuantity, s)
	}
	n := r.Num()
	if !n.IsInt64() {
		return 0, fmt.Errorf("%w %q: too large", ErrInvalidQuantity, s)
	}
	return n.Int64(), nil
}

// splitQuantity splits "1.5Gi" into "1.5" and "Gi"; num keeps only digits and dots.
func splitQuantity(s string) (num, suffix string) {
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	return s[:i], s[i:]
}

// MaxCPUPercent is the highest CPU limit: 1024 CPUs.
const MaxCPUPercent = 100 * 1024

// ParseCPUPercent parses a CPU limit written as a percentage of one CPU:
// "150%" is one and a half CPUs. It accepts 1% to MaxCPUPercent.
func ParseCPUPercent(s string) (int, error) {
	digits, ok := strings.CutSuffix(s, "%")
	if !ok || digits == "" || len(digits) > 7 || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, fmt.Errorf("%w %q: want a percentage such as \"150%%\"", ErrInvalidCPU, s)
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 1 || n > MaxCPUPercent {
		return 0, fmt.Errorf("%w %q: must be between 1%% and %d%%", ErrInvalidCPU, s, MaxCPUPercent)
	}
	return n, nil
}

// formatBytes writes n with the largest binary suffix that divides it.
func formatBytes(n int64) string {
	for _, u := range []struct {
		s string
		v int64
	}{{"Pi", PiB}, {"Ti", TiB}, {"Gi", GiB}, {"Mi", MiB}, {"Ki", KiB}} {
		if n != 0 && n%u.v == 0 {
			return strconv.FormatInt(n/u.v, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}
