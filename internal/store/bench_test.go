package store

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// seedBakes writes projects × perProject finished bakes directly, the way
// months of history would look.
func seedBakes(b *testing.B, s *Store, projects, perProject int) {
	b.Helper()
	ctx := b.Context()
	for p := range projects {
		if _, err := s.PutProject(ctx, testProject(fmt.Sprint("p", p)), "secret"); err != nil {
			b.Fatal(err)
		}
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for i := range projects * perProject {
			_, err := tx.ExecContext(ctx, `INSERT INTO bakes (project, commit_sha, state, created_at, updated_at,
				started_at, finished_at, image_id) VALUES (?, ?, 'succeeded', ?, ?, ?, ?, ?)`,
				fmt.Sprint("p", i%projects), fmt.Sprintf("%040x", i), i, i, i, i, fmt.Sprint("ami-", i))
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkBakesPage lists pages of 50 over 10,000 bakes of 100 projects:
// the newest page, a deep page, one project's page and a count.
func BenchmarkBakesPage(b *testing.B) {
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "kiln.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	seedBakes(b, s, 100, 100)
	for _, bc := range []struct {
		name string
		q    BakeQuery
	}{
		{"newest", BakeQuery{Limit: 50}},
		{"deep", BakeQuery{Limit: 50, BeforeID: 150}},
		{"project", BakeQuery{Project: "p42", Limit: 50}},
		{"project-deep", BakeQuery{Project: "p42", Limit: 50, BeforeID: 2000}},
		{"state", BakeQuery{States: []BakeState{Queued, Running}, Limit: 50}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Bakes(b.Context(), bc.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("count", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.CountBakes(b.Context(), BakeQuery{Project: "p42"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEnqueuePush measures the webhook's database cost: one push
// transaction (dedupe, coalesce, delivery record) to one of 100 projects.
func BenchmarkEnqueuePush(b *testing.B) {
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "kiln.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	seedBakes(b, s, 100, 0)
	i := 0
	for b.Loop() {
		_, err := s.EnqueuePush(b.Context(), Push{Project: fmt.Sprint("p", i%100), DeliveryID: fmt.Sprint("d", i),
			Commit: fmt.Sprintf("%040x", i)}, nil)
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkEnqueuePushParallel is the webhook burst: many concurrent pushes
// (2 cores × 50 goroutines) to 100 projects.
func BenchmarkEnqueuePushParallel(b *testing.B) {
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "kiln.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	seedBakes(b, s, 100, 0)
	var n atomic.Int64
	b.SetParallelism(50)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			_, err := s.EnqueuePush(b.Context(), Push{Project: fmt.Sprint("p", i%100), DeliveryID: fmt.Sprint("d", i),
				Commit: fmt.Sprintf("%040x", i)}, nil)
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}
