package conditions

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

var (
	t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	t1 = t0.Add(time.Minute)
)

const (
	ready       = v1alpha1.ConditionReady
	reconciling = v1alpha1.ConditionReconciling
	stalled     = v1alpha1.ConditionStalled
	sTrue       = v1alpha1.ConditionTrue
	sFalse      = v1alpha1.ConditionFalse
	sUnknown    = v1alpha1.ConditionUnknown
)

func c(typ string, s v1alpha1.ConditionStatus, reason, msg string, gen int64, ltt time.Time) v1alpha1.Condition {
	return v1alpha1.Condition{Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen, LastTransitionTime: ltt}
}

func TestSet(t *testing.T) {
	tests := []struct {
		name string
		in   []v1alpha1.Condition
		set  v1alpha1.Condition
		want []v1alpha1.Condition
	}{
		{
			name: "new condition is appended at now",
			in:   []v1alpha1.Condition{c(ready, sTrue, "A", "", 1, t0)},
			set:  c(stalled, sTrue, "Bad", "m", 1, time.Time{}),
			want: []v1alpha1.Condition{c(ready, sTrue, "A", "", 1, t0), c(stalled, sTrue, "Bad", "m", 1, t1)},
		},
		{
			name: "into nil",
			set:  c(ready, sTrue, "A", "", 1, time.Time{}),
			want: []v1alpha1.Condition{c(ready, sTrue, "A", "", 1, t1)},
		},
		{
			name: "same status keeps transition time, updates reason message generation",
			in:   []v1alpha1.Condition{c(ready, sFalse, "A", "one", 1, t0)},
			set:  c(ready, sFalse, "B", "two", 2, time.Time{}),
			want: []v1alpha1.Condition{c(ready, sFalse, "B", "two", 2, t0)},
		},
		{
			name: "identical condition is unchanged",
			in:   []v1alpha1.Condition{c(ready, sTrue, "A", "m", 1, t0)},
			set:  c(ready, sTrue, "A", "m", 1, time.Time{}),
			want: []v1alpha1.Condition{c(ready, sTrue, "A", "m", 1, t0)},
		},
		{
			name: "status change moves transition time",
			in:   []v1alpha1.Condition{c(ready, sFalse, "A", "m", 1, t0)},
			set:  c(ready, sTrue, "A", "m", 1, time.Time{}),
			want: []v1alpha1.Condition{c(ready, sTrue, "A", "m", 1, t1)},
		},
		{
			name: "given transition time is ignored",
			in:   []v1alpha1.Condition{c(ready, sFalse, "A", "m", 1, t0)},
			set:  c(ready, sFalse, "A", "m", 1, t1.Add(time.Hour)),
			want: []v1alpha1.Condition{c(ready, sFalse, "A", "m", 1, t0)},
		},
		{
			name: "order is kept",
			in:   []v1alpha1.Condition{c(reconciling, sTrue, "R", "", 1, t0), c(ready, sUnknown, "R", "", 1, t0)},
			set:  c(reconciling, sFalse, "R", "", 1, time.Time{}),
			want: []v1alpha1.Condition{c(reconciling, sFalse, "R", "", 1, t1), c(ready, sUnknown, "R", "", 1, t0)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := cloneConds(tt.in)
			got := Set(tt.in, tt.set, t1)
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("Set (-want +got):\n%s", d)
			}
			if d := cmp.Diff(before, tt.in); d != "" {
				t.Errorf("Set modified its input (-before +after):\n%s", d)
			}
		})
	}
}

func TestGetIsRemove(t *testing.T) {
	conds := []v1alpha1.Condition{
		c(ready, sTrue, "A", "", 1, t0),
		c(reconciling, sFalse, "B", "", 1, t0),
		c(stalled, sUnknown, "C", "", 1, t0),
	}
	tests := []struct {
		typ                     string
		has, isTrue, isFalse    bool
		isUnknown               bool
		wantReason              string
		wantLenAfterRemove      int
		wantRemainingFirstTypes string
	}{
		{typ: ready, has: true, isTrue: true, wantReason: "A", wantLenAfterRemove: 2, wantRemainingFirstTypes: reconciling},
		{typ: reconciling, has: true, isFalse: true, wantReason: "B", wantLenAfterRemove: 2, wantRemainingFirstTypes: ready},
		{typ: stalled, has: true, isUnknown: true, wantReason: "C", wantLenAfterRemove: 2, wantRemainingFirstTypes: ready},
		{typ: "Other", isUnknown: true, wantLenAfterRemove: 3, wantRemainingFirstTypes: ready},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			got, ok := Get(conds, tt.typ)
			if ok != tt.has || Has(conds, tt.typ) != tt.has || got.Reason != tt.wantReason {
				t.Errorf("Get = %+v, %v; want has=%v reason=%q", got, ok, tt.has, tt.wantReason)
			}
			if IsTrue(conds, tt.typ) != tt.isTrue || IsFalse(conds, tt.typ) != tt.isFalse || IsUnknown(conds, tt.typ) != tt.isUnknown {
				t.Errorf("IsTrue/IsFalse/IsUnknown = %v/%v/%v, want %v/%v/%v", IsTrue(conds, tt.typ),
					IsFalse(conds, tt.typ), IsUnknown(conds, tt.typ), tt.isTrue, tt.isFalse, tt.isUnknown)
			}
			r := Remove(conds, tt.typ)
			if len(r) != tt.wantLenAfterRemove || r[0].Type != tt.wantRemainingFirstTypes || Has(r, tt.typ) {
				t.Errorf("Remove = %+v", r)
			}
			if len(conds) != 3 || conds[0].Type != ready {
				t.Errorf("Remove modified its input: %+v", conds)
			}
		})
	}
}

func TestMark(t *testing.T) {
	type markFunc func([]v1alpha1.Condition, int64, string, string, time.Time) []v1alpha1.Condition
	tests := []struct {
		name string
		in   []v1alpha1.Condition
		mark markFunc
		want []v1alpha1.Condition
	}{
		{
			name: "ready from reconciling",
			in:   []v1alpha1.Condition{c(reconciling, sTrue, "Progressing", "", 1, t0), c(ready, sUnknown, "Progressing", "", 1, t0)},
			mark: MarkReady,
			want: []v1alpha1.Condition{c(ready, sTrue, "R", "msg", 2, t1)},
		},
		{
			name: "ready again keeps transition time",
			in:   []v1alpha1.Condition{c(ready, sTrue, "Old", "old", 1, t0)},
			mark: MarkReady,
			want: []v1alpha1.Condition{c(ready, sTrue, "R", "msg", 2, t0)},
		},
		{
			name: "ready clears stalled",
			in:   []v1alpha1.Condition{c(stalled, sTrue, "X", "", 1, t0), c(ready, sFalse, "X", "", 1, t0)},
			mark: MarkReady,
			want: []v1alpha1.Condition{c(ready, sTrue, "R", "msg", 2, t1)},
		},
		{
			name: "reconciling from nothing",
			mark: MarkReconciling,
			want: []v1alpha1.Condition{c(reconciling, sTrue, "R", "msg", 2, t1), c(ready, sUnknown, "R", "msg", 2, t1)},
		},
		{
			name: "reconciling from ready",
			in:   []v1alpha1.Condition{c(ready, sTrue, "Old", "", 1, t0)},
			mark: MarkReconciling,
			want: []v1alpha1.Condition{c(ready, sUnknown, "R", "msg", 2, t1), c(reconciling, sTrue, "R", "msg", 2, t1)},
		},
		{
			name: "reconciling clears stalled",
			in:   []v1alpha1.Condition{c(stalled, sTrue, "X", "", 1, t0), c(ready, sFalse, "X", "", 1, t0)},
			mark: MarkReconciling,
			want: []v1alpha1.Condition{c(ready, sUnknown, "R", "msg", 2, t1), c(reconciling, sTrue, "R", "msg", 2, t1)},
		},
		{
			name: "stalled from reconciling",
			in:   []v1alpha1.Condition{c(reconciling, sTrue, "P", "", 1, t0), c(ready, sUnknown, "P", "", 1, t0)},
			mark: MarkStalled,
			want: []v1alpha1.Condition{c(ready, sFalse, "R", "msg", 2, t1), c(stalled, sTrue, "R", "msg", 2, t1)},
		},
		{
			name: "stalled again keeps transition times",
			in:   []v1alpha1.Condition{c(stalled, sTrue, "X", "", 1, t0), c(ready, sFalse, "X", "", 1, t0)},
			mark: MarkStalled,
			want: []v1alpha1.Condition{c(stalled, sTrue, "R", "msg", 2, t0), c(ready, sFalse, "R", "msg", 2, t0)},
		},
		{
			name: "not ready keeps reconciling, clears stalled",
			in: []v1alpha1.Condition{c(reconciling, sTrue, "P", "", 1, t0), c(ready, sUnknown, "P", "", 1, t0),
				c(stalled, sTrue, "X", "", 1, t0)},
			mark: MarkNotReady,
			want: []v1alpha1.Condition{c(reconciling, sTrue, "P", "", 1, t0), c(ready, sFalse, "R", "msg", 2, t1)},
		},
		{
			name: "not ready from nothing",
			mark: MarkNotReady,
			want: []v1alpha1.Condition{c(ready, sFalse, "R", "msg", 2, t1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := cloneConds(tt.in)
			got := tt.mark(tt.in, 2, "R", "msg", t1)
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if d := cmp.Diff(before, tt.in); d != "" {
				t.Errorf("modified its input (-before +after):\n%s", d)
			}
		})
	}
}

func cloneConds(in []v1alpha1.Condition) []v1alpha1.Condition {
	if in == nil {
		return nil
	}
	return append([]v1alpha1.Condition(nil), in...)
}
