package v1alpha1

import (
	"errors"
	"math"
	"testing"
)

func TestParseQuantity(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1048576", 1048576, true},
		{"1k", 1000, true},
		{"1K", 1000, true},
		{"2M", 2_000_000, true},
		{"3G", 3_000_000_000, true},
		{"1T", 1_000_000_000_000, true},
		{"1P", 1e15, true},
		{"1Ki", 1024, true},
		{"512Mi", 512 << 20, true},
		{"2Gi", 2 << 30, true},
		{"1Ti", 1 << 40, true},
		{"1Pi", 1 << 50, true},
		{"7Ei", 7 << 60, true},
		{"1.5Gi", 3 << 29, true},
		{"1.5k", 1500, true},
		{"0.5Ki", 512, true},
		{"007", 7, true},
		{"9223372036854775807", math.MaxInt64, true},
		// refused
		{"", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1.5", 0, false},     // a byte and a half
		{"1.0001k", 0, false}, // 1000.1 bytes
		{"8Ei", 0, false},     // overflows int64
		{"9223372036854775808", 0, false},
		{"99999999999999999999999999999Ei", 0, false},
		{"1e3", 0, false},
		{"1m", 0, false},
		{"1ki", 0, false},
		{"1KiB", 0, false},
		{"1 Gi", 0, false},
		{" 1", 0, false},
		{"Gi", 0, false},
		{".5Gi", 0, false},
		{"1.Gi", 0, false},
		{"1..5Gi", 0, false},
		{"1.5.5Gi", 0, false},
		{"0x10", 0, false},
		{"1/2", 0, false},
		{"١٢", 0, false}, // Arabic-Indic digits
		{"123456789012345678901234567890123", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseQuantity(tt.in)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("ParseQuantity(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
		if !tt.ok && (err == nil || !errors.Is(err, ErrInvalidQuantity)) {
			t.Errorf("ParseQuantity(%q) = %d, %v; want ErrInvalidQuantity", tt.in, got, err)
		}
	}
}

func TestQuantityBytesEmpty(t *testing.T) {
	if n, err := Quantity("").Bytes(); n != 0 || err != nil {
		t.Fatalf(`Quantity("").Bytes() = %d, %v; want 0, nil`, n, err)
	}
	if n, err := Quantity("64Mi").Bytes(); n != 64<<20 || err != nil {
		t.Fatalf(`Quantity("64Mi").Bytes() = %d, %v`, n, err)
	}
}

func TestParseCPUPercent(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"1%", 1, true},
		{"150%", 150, true},
		{"102400%", 102400, true},
		{"0%", 0, false},
		{"102401%", 0, false},
		{"150", 0, false},
		{"%", 0, false},
		{"-5%", 0, false},
		{"1.5%", 0, false},
		{"15 %", 0, false},
		{"99999999999%", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseCPUPercent(tt.in)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("ParseCPUPercent(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidCPU) {
			t.Errorf("ParseCPUPercent(%q) = %d, %v; want ErrInvalidCPU", tt.in, got, err)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 1000: "1000", 1024: "1Ki", 16 << 20: "16Mi", 1 << 50: "1Pi", 3 << 29: "1536Mi"} {
		if got := formatBytes(in); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}
