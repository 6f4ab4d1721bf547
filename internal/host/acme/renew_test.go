package acme

import (
	"testing"
	"time"
)

func TestRenewAt(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	na := nb.Add(90 * day)
	tests := []struct {
		name   string
		nb, na time.Time
		ari    *Window
		jitter float64
		want   time.Time
	}{
		{"two thirds without jitter", nb, na, nil, 0, nb.Add(60 * day)},
		{"full jitter brings it a tenth earlier", nb, na, nil, 1, nb.Add(51 * day)},
		{"half jitter", nb, na, nil, 0.5, nb.Add(55*day + 12*time.Hour)},
		{"jitter is clamped below", nb, na, nil, -3, nb.Add(60 * day)},
		{"jitter is clamped above", nb, na, nil, 7, nb.Add(51 * day)},
		{"short-lived certificate", nb, nb.Add(6 * day), nil, 0, nb.Add(4 * day)},
		{"ARI window before ours wins", nb, na, &Window{Start: nb.Add(10 * day), End: nb.Add(12 * day)}, 0.5, nb.Add(11 * day)},
		{"ARI window after ours is ignored", nb, na, &Window{Start: nb.Add(80 * day), End: nb.Add(85 * day)}, 0, nb.Add(60 * day)},
		{"ARI window in the past: renew now (its start)", nb, na, &Window{Start: nb.Add(-2 * day), End: nb.Add(-day)}, 0, nb.Add(-2 * day)},
		{"invalid ARI window (end before start) is ignored", nb, na, &Window{Start: nb.Add(10 * day), End: nb.Add(9 * day)}, 0, nb.Add(60 * day)},
		{"empty ARI window is ignored", nb, na, &Window{Start: nb.Add(10 * day), End: nb.Add(10 * day)}, 0, nb.Add(60 * day)},
		{"no lifetime", nb, nb, nil, 0, nb},
		{"never after notAfter", nb, nb.Add(-day), nil, 0, nb},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RenewAt(tt.nb, tt.na, tt.ari, tt.jitter)
			if d := got.Sub(tt.want); d < -time.Second || d > time.Second {
				t.Errorf("RenewAt = %s, want %s", got, tt.want)
			}
			if got.After(tt.na) && tt.na.After(tt.nb) {
				t.Errorf("RenewAt = %s, after notAfter %s", got, tt.na)
			}
		})
	}
}

// Every jitter lands in [51 days, 60 days] of a 90-day certificate.
func TestRenewAtJitterRange(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for i := range 1000 {
		j := float64(i) / 1000
		got := RenewAt(nb, nb.Add(90*day), nil, j)
		if got.Before(nb.Add(51*day)) || got.After(nb.Add(60*day)) {
			t.Fatalf("jitter %v: %s outside days 51..60", j, got)
		}
	}
}
