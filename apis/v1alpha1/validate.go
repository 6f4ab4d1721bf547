package v1alpha1

import (
	"fmt"
	"maps"
	"slices"
	"unicode/utf8"
)

// Limits on metadata.
const (
	MaxLabels          = 64
	MaxAnnotationBytes = 64 * 1024 // keys and values together
)

// validateTypeMeta accepts an empty apiVersion/kind (Default fills them) or the right ones.
func validateTypeMeta(tm TypeMeta, want Kind) ErrorList {
	var errs ErrorList
	if tm.APIVersion != "" && tm.APIVersion != APIVersion {
		errs = append(errs, NotSupported(NewPath("apiVersion"), tm.APIVersion, []string{APIVersion}))
	}
	if tm.Kind != "" && tm.Kind != want {
		errs = append(errs, NotSupported(NewPath("kind"), tm.Kind, []Kind{want}))
	}
	return errs
}

// nameCheck returns why a metadata.name is invalid, or "".
type nameCheck func(name string) string

// validateMeta checks name, labels, annotations and resourceVersion.
func validateMeta(m *ObjectMeta, check nameCheck) ErrorList {
	p := NewPath("metadata")
	var errs ErrorList
	if m.Name == "" {
		errs = append(errs, Required(p.Child("name"), "every resource has a name"))
	} else if why := check(m.Name); why != "" {
		errs = append(errs, Invalid(p.Child("name"), m.Name, why))
	}
	errs = append(errs, validateLabels(p.Child("labels"), m.Labels)...)
	errs = append(errs, validateAnnotations(p.Child("annotations"), m.Annotations)...)
	if m.ResourceVersion < 0 {
		errs = append(errs, Invalid(p.Child("resourceVersion"), m.ResourceVersion, "must not be negative"))
	}
	return errs
}

func validateLabels(p Path, labels map[string]string) ErrorList {
	var errs ErrorList
	if len(labels) > MaxLabels {
		errs = append(errs, TooLong(p, nil, fmt.Sprintf("at most %d labels", MaxLabels)))
	}
	for _, k := range sortedKeys(labels) {
		if why := checkLabelKey(k); why != "" {
			errs = append(errs, Invalid(p.Key(k), k, "key "+why))
			continue
		}
		if v := labels[k]; !isLabelValue(v) {
			errs = append(errs, Invalid(p.Key(k), v, "must be empty or 1 to 63 of [A-Za-z0-9._-], "+
				"starting and ending with a letter or digit"))
		}
	}
	return errs
}

func validateAnnotations(p Path, ann map[string]string) ErrorList {
	var errs ErrorList
	total := 0
	for _, k := range sortedKeys(ann) {
		total += len(k) + len(ann[k])
		if why := checkLabelKey(k); why != "" {
			errs = append(errs, Invalid(p.Key(k), k, "key "+why))
			continue
		}
		if v := ann[k]; !utf8.ValidString(v) || containsNUL(v) {
			errs = append(errs, Invalid(p.Key(k), nil, "must be valid UTF-8 without NUL characters"))
		}
	}
	if total > MaxAnnotationBytes {
		errs = append(errs, TooLong(p, nil, fmt.Sprintf("keys and values together may have at most %d bytes, have %d", MaxAnnotationBytes, total)))
	}
	return errs
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// checkInt reports n outside [lo, hi]; zeroOK also accepts 0 ("not set").
func checkInt(p Path, n, lo, hi int64, zeroOK bool) *FieldError {
	if (zeroOK && n == 0) || (n >= lo && n <= hi) {
		return nil
	}
	if zeroOK {
		return OutOfRange(p, n, fmt.Sprintf("must be 0 (no limit) or between %d and %d", lo, hi))
	}
	return OutOfRange(p, n, fmt.Sprintf("must be between %d and %d", lo, hi))
}

// checkQuantity parses q (empty means not set) and reports it outside
// [lo, hi]; zeroOK also accepts 0. It returns the bytes for further checks.
func checkQuantity(p Path, q Quantity, lo, hi int64, zeroOK bool) (int64, *FieldError) {
	if q == "" {
		return 0, nil
	}
	n, err := q.Bytes()
	if err != nil {
		return 0, Invalid(p, q, "must be a byte size such as \"512Mi\", \"2G\" or \"1048576\"")
	}
	if (zeroOK && n == 0) || (n >= lo && n <= hi) {
		return n, nil
	}
	if zeroOK {
		return n, OutOfRange(p, q, fmt.Sprintf("must be 0 (no limit) or between %s and %s", formatBytes(lo), formatBytes(hi)))
	}
	return n, OutOfRange(p, q, fmt.Sprintf("must be between %s and %s", formatBytes(lo), formatBytes(hi)))
}

// checkEnum reports v when it is neither empty (defaulted) nor one of allowed.
func checkEnum[T ~string](p Path, v T, allowed ...T) *FieldError {
	if v == "" {
		return nil
	}
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return NotSupported(p, v, allowed)
}

// appendErr appends e when it is not nil.
func appendErr(errs ErrorList, e ...*FieldError) ErrorList {
	for _, x := range e {
		if x != nil {
			errs = append(errs, x)
		}
	}
	return errs
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
