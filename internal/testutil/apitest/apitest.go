// Package apitest reads what tests wait for in wcpd's API answers.
package apitest

import "encoding/json"

// CountReady counts the items of a list answer (GET /api/v1/<plural>)
// whose Ready condition is True for their current generation.
func CountReady(list []byte) (int, error) {
	var l struct {
		Items []struct {
			Metadata struct{ Generation int64 } `json:"metadata"`
			Status   struct {
				ObservedGeneration int64 `json:"observedGeneration"`
				Conditions         []struct{ Type, Status string }
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal(list, &l); err != nil {
		return 0, err
	}
	ready := 0
	for _, it := range l.Items {
		for _, c := range it.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" && it.Status.ObservedGeneration == it.Metadata.Generation {
				ready++
			}
		}
	}
	return ready, nil
}
