package engine_test

import (
	"context"
	"fmt"
	"sync"

	"kiln/internal/engine"
)

// setting is a tiny resource: it keeps key = want in a shared store.
type setting struct {
	store     *store
	key, want string
}

type store struct {
	mu sync.Mutex
	m  map[string]string
}

// Watch has nothing external to watch here: it is established at once.
func (s *setting) Watch(ctx context.Context, ev engine.Events) error {
	ev.Running()
	<-ctx.Done()
	return nil
}

func (s *setting) CheckApply(_ context.Context, apply bool) (bool, error) {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	if s.store.m[s.key] == s.want {
		return true, nil
	}
	if apply {
		s.store.m[s.key] = s.want
	}
	return false, nil
}

// Outputs lets dependents read ${setting/NAME.value}.
func (s *setting) Outputs() map[string]string { return map[string]string{"value": s.want} }

func Example() {
	st := &store{m: map[string]string{}}
	specs := []*engine.Spec{
		{
			Kind: "setting", Name: "region", Hash: "v1",
			Build: func(engine.Lookup) (engine.Resource, string, error) {
				return &setting{store: st, key: "region", want: "us-east-1"}, "", nil
			},
		},
		{
			// endpoint reads region's output, so it also depends on it.
			Kind: "setting", Name: "endpoint", Hash: "v1",
			DependsOn: []string{"setting/region"},
			Refs:      []string{"setting/region"},
			Build: func(lookup engine.Lookup) (engine.Resource, string, error) {
				region, _ := lookup("setting/region", "value")
				want := "https://ec2." + region + ".amazonaws.com"
				return &setting{store: st, key: "endpoint", want: want}, want, nil
			},
		},
	}
	g, err := engine.NewGraph("demo", specs)
	if err != nil {
		fmt.Println(err)
		return
	}
	eng := engine.New(g, engine.Options{Once: true})
	if err := eng.Run(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range eng.Status() {
		fmt.Printf("%s %s applies=%d\n", s.ID, s.State, s.Applies)
	}
	fmt.Println(st.m["endpoint"])
	// Output:
	// setting/region converged applies=1
	// setting/endpoint converged applies=1
	// https://ec2.us-east-1.amazonaws.com
}
