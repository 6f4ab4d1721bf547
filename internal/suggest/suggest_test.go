package suggest

import "testing"

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "abc", 3}, {"kitten", "sitting", 3},
		{"displayName", "displayname", 1}, {"memoryMax", "memoryMax", 0}, {"tls", "tsl", 2},
	} {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	long := string(make([]byte, 65))
	if got := Distance(long, "a"); got != 65 {
		t.Errorf("long strings: %d", got)
	}
}
