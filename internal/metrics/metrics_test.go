package metrics

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriter(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.Header("wcp360_things_total", TypeCounter, "Things done.\nBy \\ us.")
	w.Sample("wcp360_things_total", 3)
	w.Sample("wcp360_things_total", 1.5, "controller", "dom\"ain\n", "result", `a\b`)
	h := NewHistogram(1, 0.1)
	for _, v := range []float64{0.05, 0.1, 0.5, 2} {
		h.Observe(v)
	}
	w.Header("wcp360_seconds", TypeHistogram, "Durations.")
	h.Write(w, "wcp360_seconds", "controller", "tenant")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := `# HELP wcp360_things_total Things done.\nBy \\ us.
# TYPE wcp360_things_total counter
wcp360_things_total 3
wcp360_things_total{controller="dom\"ain\n",result="a\\b"} 1.5
# HELP wcp360_seconds Durations.
# TYPE wcp360_seconds histogram
wcp360_seconds_bucket{controller="tenant",le="0.1"} 2
wcp360_seconds_bucket{controller="tenant",le="1"} 3
wcp360_seconds_bucket{controller="tenant",le="+Inf"} 4
wcp360_seconds_sum{controller="tenant"} 2.65
wcp360_seconds_count{controller="tenant"} 4
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("exposition (-want +got):\n%s", diff)
	}
}

func TestValue(t *testing.T) {
	text := []byte("# HELP a_total A.\n# TYPE a_total counter\na_total 42\nb{x=\"1\"} 3\nc NaNish\n")
	if v, ok, err := Value(text, "a_total"); v != 42 || !ok || err != nil {
		t.Errorf("a_total = %v %v %v", v, ok, err)
	}
	if _, ok, err := Value(text, "b"); ok || err != nil {
		t.Errorf("a labelled sample read as unlabelled: %v %v", ok, err)
	}
	if _, ok, err := Value(text, "c"); ok || err == nil {
		t.Errorf("a bad value: %v %v", ok, err)
	}
	if _, ok, _ := Value(text, "a"); ok {
		t.Error("a prefix of a name matched")
	}
}
