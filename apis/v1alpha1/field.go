package v1alpha1

import (
	"fmt"
	"strconv"
	"strings"
)

// ErrorType says what is wrong with a field.
type ErrorType string

// The error types of a FieldError.
const (
	ErrorTypeRequired     ErrorType = "Required"
	ErrorTypeInvalid      ErrorType = "Invalid"
	ErrorTypeNotSupported ErrorType = "NotSupported"
	ErrorTypeTooLong      ErrorType = "TooLong"
	ErrorTypeForbidden    ErrorType = "Forbidden"
	ErrorTypeDuplicate    ErrorType = "Duplicate"
	ErrorTypeOutOfRange   ErrorType = "OutOfRange"
)

// String returns the words used in messages ("Invalid value").
func (t ErrorType) String() string {
	switch t {
	case ErrorTypeRequired:
		return "Required value"
	case ErrorTypeInvalid:
		return "Invalid value"
	case ErrorTypeNotSupported:
		return "Unsupported value"
	case ErrorTypeTooLong:
		return "Too long"
	case ErrorTypeForbidden:
		return "Forbidden"
	case ErrorTypeDuplicate:
		return "Duplicate value"
	case ErrorTypeOutOfRange:
		return "Out of range value"
	}
	return string(t)
}

// FieldError is one problem with one field of a resource. Path names the
// field as a user writes it: "spec.aliases[2]", "metadata.labels[tier]".
type FieldError struct {
	Path   string
	Type   ErrorType
	Value  any // the offending value; nil when it is not shown (secrets, missing values)
	Detail string
}

// Error returns `path: Type value: detail`, e.g.
// `spec.aliases[2]: Invalid value "a;b": must be a valid hostname`.
func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.ErrorBody()
	}
	return e.Path + ": " + e.ErrorBody()
}

// ErrorBody is the message without the path.
func (e *FieldError) ErrorBody() string {
	var b strings.Builder
	b.WriteString(e.Type.String())
	if e.Value != nil && e.Type != ErrorTypeRequired && e.Type != ErrorTypeForbidden {
		b.WriteByte(' ')
		b.WriteString(formatValue(e.Value))
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// maxShownValue caps how much of a value a message repeats.
const maxShownValue = 80

func formatValue(v any) string {
	switch v := v.(type) {
	case string:
		if len(v) > maxShownValue {
			return strconv.Quote(truncateUTF8(v, maxShownValue)) + "..."
		}
		return strconv.Quote(v)
	case Quantity:
		return formatValue(string(v))
	case fmt.Stringer:
		return formatValue(v.String())
	default:
		return fmt.Sprintf("%v", v)
	}
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 { // do not cut a rune in half
		n--
	}
	return s[:n]
}

// ErrorList is every problem Validate found. It is an error only through
// ToAggregate, so that an empty list is never a non-nil error.
type ErrorList []*FieldError

// Error joins the messages with "; ".
func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap lets errors.As find each *FieldError.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// ToAggregate returns the list as an error, or nil when it is empty.
func (l ErrorList) ToAggregate() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// Path is a field path under construction, e.g.
// NewPath("spec").Child("aliases").Index(1) is "spec.aliases[1]".
type Path string

// NewPath starts a path at the named fields, joined by dots.
func NewPath(name string, more ...string) Path {
	p := Path(name)
	for _, m := range more {
		p = p.Child(m)
	}
	return p
}

// Child is the named field below p.
func (p Path) Child(name string) Path {
	if p == "" {
		return Path(name)
	}
	return p + "." + Path(name)
}

// Index is the i-th element of the list at p.
func (p Path) Index(i int) Path { return p + "[" + Path(strconv.Itoa(i)) + "]" }

// Key is the entry of the map at p with the given key.
func (p Path) Key(k string) Path { return p + "[" + Path(k) + "]" }

// String returns the path as text.
func (p Path) String() string { return string(p) }

// Required reports a missing value.
func Required(p Path, detail string) *FieldError {
	return &FieldError{Path: p.String(), Type: ErrorTypeRequired, Detail: detail}
}

// Invalid reports a malformed value.
func Invalid(p Path, value any, detail string) *FieldError {
	return &FieldError{Path: p.String(), Type: ErrorTypeInvalid, Value: value, Detail: detail}
}

// NotSupported reports a value outside an enumeration; the message lists the supported values.
func NotSupported[T ~string](p Path, value T, supported []T) *FieldError {
	quoted := make([]string, len(supported))
	for i, s := range supported {
		quoted[i] = strconv.Quote(string(s))
	}
	return &FieldError{
		Path: p.String(), Type: ErrorTypeNotSupported, Value: string(value),
		Detail: "supported values: " + strings.Join(quoted, ", "),
	}
}

// TooLong reports a value or list longer than max (bytes or entries).
func TooLong(p Path, value any, detail string) *FieldError {
	return &FieldError{Path: p.String(), Type: ErrorTypeTooLong, Value: value, Detail: detail}
}

// Forbidden reports a field that may not be set here.
func Forbidden(p Path, detail string) *FieldError {
	return &FieldError{Path: p.String(), Type: ErrorTypeForbidden, Detail: detail}
}

// Duplicate reports a value given twice.
func Duplicate(p Path, value any, detail string) *FieldError {
	return &FieldError{Path: p.String(), Type: ErrorTypeDuplicate, Value: value, Detail: detail}
}

// OutOfRange reports a number or size outside its bounds.
func OutOfRange(p Path, value any, detail string) *FieldError {
	return &FieldError{Path: p.String(), Type: ErrorTypeOutOfRange, Value: value, Detail: detail}
}
