package v1alpha1

import (
	"errors"
	"strings"
	"testing"
)

func TestFieldErrorMessages(t *testing.T) {
	p := NewPath("spec", "aliases").Index(2)
	tests := []struct {
		err  *FieldError
		want string
	}{
		{Invalid(p, "a;b", "must be a valid hostname"), `spec.aliases[2]: Invalid value "a;b": must be a valid hostname`},
		{Required(NewPath("spec", "tenant"), "the owner"), `spec.tenant: Required value: the owner`},
		{NotSupported(NewPath("spec", "tls", "mode"), TLSMode("x"), []TLSMode{TLSACME, TLSNone}),
			`spec.tls.mode: Unsupported value "x": supported values: "acme", "none"`},
		{TooLong(NewPath("metadata", "annotations"), nil, "at most 64 KiB"), `metadata.annotations: Too long: at most 64 KiB`},
		{Forbidden(NewPath("status"), "written by wcpd"), `status: Forbidden: written by wcpd`},
		{Duplicate(p, "x.example", ""), `spec.aliases[2]: Duplicate value "x.example"`},
		{OutOfRange(NewPath("spec", "uid"), int64(5), "must be 0 or >= 1000"), `spec.uid: Out of range value 5: must be 0 or >= 1000`},
		{Invalid(NewPath("a").Key("b.c/d"), Quantity("1x"), "bad"), `a[b.c/d]: Invalid value "1x": bad`},
		{Invalid("", strings.Repeat("é", 60), "long"), `Invalid value "` + strings.Repeat("é", 40) + `"...: long`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() =\n  %s\nwant\n  %s", got, tt.want)
		}
	}
}

func TestErrorListAggregate(t *testing.T) {
	if err := (ErrorList{}).ToAggregate(); err != nil {
		t.Fatalf("empty list: ToAggregate() = %v, want nil", err)
	}
	var nilList ErrorList
	if err := nilList.ToAggregate(); err != nil {
		t.Fatalf("nil list: ToAggregate() = %v, want nil", err)
	}
	l := ErrorList{Required(NewPath("a"), ""), Invalid(NewPath("b"), 1, "no")}
	err := l.ToAggregate()
	if err == nil || err.Error() != "a: Required value; b: Invalid value 1: no" {
		t.Fatalf("ToAggregate() = %v", err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "a" {
		t.Fatalf("errors.As(*FieldError) = %v", fe)
	}
	var back ErrorList
	if !errors.As(err, &back) || len(back) != 2 {
		t.Fatalf("errors.As(ErrorList) = %v", back)
	}
}

func TestSplitPath(t *testing.T) {
	got := splitPath("spec.php.ini[date.timezone].x[3]")
	want := []string{"spec", "php", "ini", "date.timezone", "x", "3"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("splitPath = %q, want %q", got, want)
	}
}
