package apitest

import "testing"

func TestCountReady(t *testing.T) {
	list := []byte(`{"items":[
		{"metadata":{"generation":2},"status":{"observedGeneration":2,"conditions":[{"type":"Ready","status":"True"}]}},
		{"metadata":{"generation":3},"status":{"observedGeneration":2,"conditions":[{"type":"Ready","status":"True"}]}},
		{"metadata":{"generation":1},"status":{"observedGeneration":1,"conditions":[{"type":"Ready","status":"False"}]}},
		{"metadata":{"generation":1},"status":{}}]}`)
	if n, err := CountReady(list); n != 1 || err != nil {
		t.Errorf("CountReady = %d, %v; want 1 (Ready for its generation)", n, err)
	}
	if _, err := CountReady([]byte("{")); err == nil {
		t.Error("bad JSON accepted")
	}
}
