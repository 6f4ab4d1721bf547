// Package metrics writes the Prometheus text exposition format (version
// 0.0.4) by hand: wcpd exposes a few counters and histograms, which need
// no client library. See
// https://prometheus.io/docs/instrumenting/exposition_formats/.
package metrics

import (
	"bufio"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// ContentType is the media type of the text format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Metric types, as # TYPE names them.
const (
	TypeCounter   = "counter"
	TypeGauge     = "gauge"
	TypeHistogram = "histogram"
)

// Writer writes one exposition. Each family is a Header followed by its
// samples; the first write error is kept and returned by Flush.
type Writer struct {
	w   *bufio.Writer
	err error
}

// NewWriter returns a Writer to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriter(w)} }

// Header starts the family name: its # HELP and # TYPE lines.
func (w *Writer) Header(name, typ, help string) {
	w.write("# HELP " + name + " " + escapeHelp(help) + "\n# TYPE " + name + " " + typ + "\n")
}

// Sample writes one sample of name; labels are name, value pairs.
func (w *Writer) Sample(name string, value float64, labels ...string) {
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 1 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(labels[i])
			b.WriteString(`="`)
			b.WriteString(escapeLabel(labels[i+1]))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatFloat(value))
	b.WriteByte('\n')
	w.write(b.String())
}

// Flush writes what is buffered and returns the first error.
func (w *Writer) Flush() error {
	if w.err == nil {
		w.err = w.w.Flush()
	}
	return w.err
}

func (w *Writer) write(s string) {
	if w.err == nil {
		_, w.err = w.w.WriteString(s)
	}
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// Histogram counts observations in cumulative buckets. It is safe for
// concurrent use.
type Histogram struct {
	bounds []float64 // upper bounds, ascending; +Inf is implicit

	mu     sync.Mutex
	counts []uint64 // per bucket (not cumulative), then the +Inf one
	sum    float64
}

// NewHistogram returns a histogram with these bucket upper bounds.
func NewHistogram(bounds ...float64) *Histogram {
	b := slices.Clone(bounds)
	slices.Sort(b)
	return &Histogram{bounds: b, counts: make([]uint64, len(b)+1)}
}

// Observe records v.
func (h *Histogram) Observe(v float64) {
	i, _ := slices.BinarySearch(h.bounds, v) // the first bound >= v
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.mu.Unlock()
}

// Write writes the histogram's samples: name_bucket for each bound and
// +Inf, name_sum and name_count, with labels (name, value pairs).
func (h *Histogram) Write(w *Writer, name string, labels ...string) {
	h.mu.Lock()
	counts, sum := slices.Clone(h.counts), h.sum
	h.mu.Unlock()
	var cum uint64
	for i, c := range counts {
		cum += c
		le := math.Inf(1)
		if i < len(h.bounds) {
			le = h.bounds[i]
		}
		w.Sample(name+"_bucket", float64(cum), append(slices.Clone(labels), "le", formatFloat(le))...)
	}
	w.Sample(name+"_sum", sum, labels...)
	w.Sample(name+"_count", float64(cum), labels...)
}

// Value reads the sample of name without labels from an exposition (what
// a client of GET /metrics wants of a counter); ok false when there is
// none.
func Value(exposition []byte, name string) (v float64, ok bool, err error) {
	for line := range strings.Lines(string(exposition)) {
		if s, found := strings.CutPrefix(strings.TrimSpace(line), name+" "); found {
			v, err = strconv.ParseFloat(s, 64)
			return v, err == nil, err
		}
	}
	return 0, false, nil
}
