// Package conditions holds pure helpers over a resource's status conditions,
// kstatus-style (Ready, Reconciling, Stalled), in the manner of Flux's
// runtime/conditions and apimachinery's meta.SetStatusCondition.
//
// Every function returns a new slice and never modifies the one it is given,
// and time comes only from the now argument, so a status can be rebuilt from
// what was observed and compared with the stored one.
package conditions

import (
	"slices"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

// Get returns the condition of type typ and whether there is one.
func Get(conds []v1alpha1.Condition, typ string) (v1alpha1.Condition, bool) {
	if i := index(conds, typ); i >= 0 {
		return conds[i], true
	}
	return v1alpha1.Condition{}, false
}

// Has reports whether there is a condition of type typ.
func Has(conds []v1alpha1.Condition, typ string) bool {
	return index(conds, typ) >= 0
}

// IsTrue reports whether the condition of type typ exists and is True.
func IsTrue(conds []v1alpha1.Condition, typ string) bool {
	return hasStatus(conds, typ, v1alpha1.ConditionTrue)
}

// IsFalse reports whether the condition of type typ exists and is False.
func IsFalse(conds []v1alpha1.Condition, typ string) bool {
	return hasStatus(conds, typ, v1alpha1.ConditionFalse)
}

// IsUnknown reports whether the condition of type typ is Unknown or absent.
func IsUnknown(conds []v1alpha1.Condition, typ string) bool {
	c, ok := Get(conds, typ)
	return !ok || c.Status == v1alpha1.ConditionUnknown
}

// Set returns conds with c set, keyed by c.Type. A new condition is appended
// with LastTransitionTime now. An existing one keeps its LastTransitionTime
// while its status is unchanged (reason, message and observedGeneration are
// updated in place); a status change sets LastTransitionTime to now. The
// LastTransitionTime carried by c is ignored.
func Set(conds []v1alpha1.Condition, c v1alpha1.Condition, now time.Time) []v1alpha1.Condition {
	out := slices.Clone(conds)
	i := index(out, c.Type)
	if i < 0 {
		c.LastTransitionTime = now
		return append(out, c)
	}
	if out[i].Status == c.Status {
		c.LastTransitionTime = out[i].LastTransitionTime
	} else {
		c.LastTransitionTime = now
	}
	out[i] = c
	return out
}

// Remove returns conds without the condition of type typ.
func Remove(conds []v1alpha1.Condition, typ string) []v1alpha1.Condition {
	return slices.DeleteFunc(slices.Clone(conds), func(c v1alpha1.Condition) bool { return c.Type == typ })
}

// MarkReady records that generation gen converged: Ready=True, with
// Reconciling and Stalled removed.
func MarkReady(conds []v1alpha1.Condition, gen int64, reason, msg string, now time.Time) []v1alpha1.Condition {
	conds = Set(conds, cond(v1alpha1.ConditionReady, v1alpha1.ConditionTrue, gen, reason, msg), now)
	conds = Remove(conds, v1alpha1.ConditionReconciling)
	return Remove(conds, v1alpha1.ConditionStalled)
}

// MarkReconciling records that work on generation gen is in progress:
// Reconciling=True, Ready=Unknown (same reason and message), Stalled removed.
func MarkReconciling(conds []v1alpha1.Condition, gen int64, reason, msg string, now time.Time) []v1alpha1.Condition {
	conds = Set(conds, cond(v1alpha1.ConditionReconciling, v1alpha1.ConditionTrue, gen, reason, msg), now)
	conds = Set(conds, cond(v1alpha1.ConditionReady, v1alpha1.ConditionUnknown, gen, reason, msg), now)
	return Remove(conds, v1alpha1.ConditionStalled)
}

// MarkStalled records that generation gen cannot progress without a human:
// Stalled=True, Ready=False (same reason and message), Reconciling removed.
func MarkStalled(conds []v1alpha1.Condition, gen int64, reason, msg string, now time.Time) []v1alpha1.Condition {
	conds = Set(conds, cond(v1alpha1.ConditionStalled, v1alpha1.ConditionTrue, gen, reason, msg), now)
	conds = Set(conds, cond(v1alpha1.ConditionReady, v1alpha1.ConditionFalse, gen, reason, msg), now)
	return Remove(conds, v1alpha1.ConditionReconciling)
}

// MarkNotReady records a failure that will be retried: Ready=False. Reconciling
// is left as it is (a retry is still work in progress) and Stalled is removed.
func MarkNotReady(conds []v1alpha1.Condition, gen int64, reason, msg string, now time.Time) []v1alpha1.Condition {
	conds = Set(conds, cond(v1alpha1.ConditionReady, v1alpha1.ConditionFalse, gen, reason, msg), now)
	return Remove(conds, v1alpha1.ConditionStalled)
}

func cond(typ string, status v1alpha1.ConditionStatus, gen int64, reason, msg string) v1alpha1.Condition {
	return v1alpha1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen}
}

func index(conds []v1alpha1.Condition, typ string) int {
	return slices.IndexFunc(conds, func(c v1alpha1.Condition) bool { return c.Type == typ })
}

func hasStatus(conds []v1alpha1.Condition, typ string, s v1alpha1.ConditionStatus) bool {
	c, ok := Get(conds, typ)
	return ok && c.Status == s
}
