package engine

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func estateGraph(t *testing.T, ids ...string) *Graph {
	t.Helper()
	var specs []*Spec
	for _, id := range ids {
		i := strings.LastIndex(id, "/")
		kind, name := id[:i], id[i+1:]
		specs = append(specs, &Spec{Kind: kind, Name: name, Build: func(Lookup) (Resource, string, error) { return nil, "", nil }})
	}
	g, err := NewGraph("shop", specs)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestOrphansInRankOrder(t *testing.T) {
	g := estateGraph(t, "aws:ec2/web-1", "aws:security_group/web")
	owned := []Owned{
		{ID: "aws:key_pair/old", Ref: "key-1", Rank: 30},
		{ID: "aws:ec2/web-1", Ref: "i-1", Rank: 10},
		{ID: "aws:security_group/db", Ref: "sg-2", Rank: 30},
		{ID: "aws:ec2/web-2", Ref: "i-3", Rank: 10},
		{ID: "aws:ec2/web-2", Ref: "i-2", Rank: 10},
		{ID: "aws:security_group/web", Ref: "sg-1", Rank: 30},
	}
	var got []string
	for _, o := range Orphans(g, owned) {
		got = append(got, o.ID+" "+o.Ref)
	}
	want := []string{"aws:ec2/web-2 i-2", "aws:ec2/web-2 i-3", "aws:key_pair/old key-1", "aws:security_group/db sg-2"}
	if !slices.Equal(got, want) {
		t.Errorf("Orphans() = %q; want %q", got, want)
	}
	if n := OwnedIDs(owned); n != 5 {
		t.Errorf("OwnedIDs() = %d; want 5", n)
	}
}

func TestPruneGuard(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		orphans, owned, confirm int
		limit                   int
		refused                 bool
	}{
		{"three of three", 3, 3, 0, 0, false},
		{"four of ten", 4, 10, 0, 0, false},
		{"five of ten", 5, 10, 0, 0, false},
		{"six of ten", 6, 10, 0, 0, true},
		{"all of a fleet", 1000, 1000, 0, 0, true},
		{"confirmed", 6, 10, 6, 0, false},
		{"confirmed another count", 6, 10, 5, 0, true},
		{"within prune_limit", 6, 10, 0, 6, false},
		{"past prune_limit", 7, 10, 0, 6, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &Graph{Name: "shop", PruneLimit: tc.limit}
			err := g.PruneGuard(tc.orphans, tc.owned, tc.confirm)
			if got := errors.Is(err, ErrPruneGuard); got != tc.refused {
				t.Fatalf("PruneGuard(%d, %d, %d) = %v; want refused %v", tc.orphans, tc.owned, tc.confirm, err, tc.refused)
			}
		})
	}
}

func TestProtected(t *testing.T) {
	g := estateGraph(t, "aws:ec2/db", "aws:ec2/web")
	g.Specs[0].Meta.Protect = true
	owned := []Owned{{ID: "aws:ec2/db", Ref: "i-1"}, {ID: "aws:ec2/db", Ref: "i-2"}, {ID: "aws:ec2/web", Ref: "i-3"}}
	if got := Protected(g, owned); !slices.Equal(got, []string{"aws:ec2/db"}) {
		t.Errorf("Protected() = %q; want [aws:ec2/db]", got)
	}
	if got := Protected(g, owned[2:]); len(got) != 0 {
		t.Errorf("Protected() of what holds no protected resource = %q; want none", got)
	}
}
