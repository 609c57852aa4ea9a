package engine

// Temporary: lets dependents compile until the engine lands. Delete with it.

import (
	"context"
	"errors"
)

type Metrics struct{}

type engine struct{}

func newGraph(name string, specs []*Spec) (*Graph, error) {
	return &Graph{Name: name, Specs: specs}, nil
}
func newEngine(*Graph, Options) *engine              { return &engine{} }
func (*engine) run(context.Context) error            { return errors.New("engine: not built yet") }
func (*engine) swap(*Graph)                          {}
func (*engine) status() []VertexStatus               { return nil }
func (*engine) subscribe() (<-chan struct{}, func()) { return nil, func() {} }
