package config

import (
	"errors"
	suggestpkg "github.com/wcp360/wcp360/internal/suggest"
	"strings"
)

// Classes of configuration problems; a [*FieldError] unwraps to one of them.
var (
	// ErrUnknownKey: a file key, or a WCP_* variable, that is not configuration.
	ErrUnknownKey = errors.New("unknown key")
	// ErrWrongType: a value of the wrong YAML type or syntax ("abc" for a duration).
	ErrWrongType = errors.New("wrong type")
	// ErrInvalidValue: a well-typed value that is out of range or malformed.
	ErrInvalidValue = errors.New("invalid value")
)

// FieldError is one problem with one configuration key.
type FieldError struct {
	// Key is the dotted camelCase key ("controllers.workers"). For an
	// unknown environment variable it is the variable name.
	Key string
	// Source says where the value came from: "path:line" for the file,
	// "env NAME" for the environment, "" for defaults and for a Config
	// checked by [Config.Validate] alone.
	Source string
	// Class is ErrUnknownKey, ErrWrongType or ErrInvalidValue.
	Class error
	// Msg describes the problem for a human.
	Msg string
}

// Error returns "source: key: message".
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	b.WriteString(e.Key)
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the class of the problem.
func (e *FieldError) Unwrap() error { return e.Class }

// Errors is every problem found in one configuration. It is returned by
// [Load] and [Config.Validate] (never empty when returned); use errors.As to
// get at the list.
type Errors []*FieldError

// Error lists the problems, one a line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems, so errors.Is and errors.As look into each.
func (es Errors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}

// asError returns es as an error, or nil when there is no problem.
func (es Errors) asError() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// add appends a problem.
func (es *Errors) add(key string, class error, msg string) {
	*es = append(*es, &FieldError{Key: key, Class: class, Msg: msg})
}

// suggest returns ` (did you mean "x"?)` for the candidate closest to s, or ""
// when none is close.
func suggest(s string, candidates []string) string {
	best, bestDist := "", 0
	for _, c := range candidates {
		d := suggestpkg.Distance(strings.ToLower(s), strings.ToLower(c))
		if best == "" || d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" || bestDist > max(1, len(best)/3) || bestDist >= len(s) {
		return ""
	}
	return " (did you mean " + quote(best) + "?)"
}
