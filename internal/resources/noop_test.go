package resources

import "testing"

func TestNoop(t *testing.T) {
	r := &Noop{}
	watch(t, r)
	for _, apply := range []bool{false, true} {
		if ok, err := r.CheckApply(t.Context(), apply); !ok || err != nil {
			t.Errorf("CheckApply(%v) = %v, %v; want true, nil", apply, ok, err)
		}
	}
}
