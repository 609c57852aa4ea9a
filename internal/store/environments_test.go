package store

import (
	"errors"
	"testing"
	"time"
)

func TestEnvironmentsAndPromotions(t *testing.T) {
	bothDrivers(t, func(t *testing.T) {
		s, _ := openTest(t)
		ctx := t.Context()
		mustPut(t, s, "web")
		two := 2
		envs := []Environment{
			{Name: "staging", Region: "us-east-1", Promotion: "auto", Group: EnvGroup{Name: "web-staging", Type: "t3.micro", Min: 1, Max: 2, Desired: &two},
				Config: []ConfigValue{{Key: "A", Value: "1"}, {Key: "S", Value: "clear-secret", Secret: true, Version: 3}}},
			{Name: "production", Region: "us-east-1", Promotion: "manual", Soak: time.Minute, Group: EnvGroup{Name: "web-prod", Type: "t3.small", Min: 2, Max: 4}},
		}
		if err := s.PutEnvironments(ctx, "web", envs); err != nil {
			t.Fatal(err)
		}
		if envs[0].Config[1].Value != "clear-secret" {
			t.Error("PutEnvironments changed the caller's values")
		}
		got, err := s.Environments(ctx, "web")
		if err != nil || len(got) != 2 || got[0].Name != "staging" || got[1].Name != "production" || *got[0].Group.Desired != 2 || got[1].Soak != time.Minute {
			t.Fatalf("Environments() = %+v, %v", got, err)
		}
		if c := got[0].Config[1]; c.Value != "" || !c.Secret || c.Version != 3 {
			t.Errorf("stored secret = %+v; want no value, its version", c)
		}
		if err := s.PutEnvironments(ctx, "web", envs[1:]); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Environments(ctx, "web"); len(got) != 1 || got[0].Name != "production" {
			t.Errorf("after replacing: %+v", got)
		}

		p, err := s.AddPromotion(ctx, Promotion{Project: "web", Env: "production", ImageID: "ami-1", Cause: "manual", Digest: "d1"})
		if err != nil || p.ID != 1 || p.State != PromotionRolling {
			t.Fatalf("AddPromotion() = %+v, %v", p, err)
		}
		if _, err := s.AddPromotion(ctx, Promotion{Project: "web", Env: "production", ImageID: "ami-2"}); !errors.Is(err, ErrPromotionRunning) {
			t.Errorf("a second rolling promotion: %v; want ErrPromotionRunning", err)
		}
		if err := s.FinishPromotion(ctx, p.ID, PromotionSucceeded, "", "3"); err != nil {
			t.Fatal(err)
		}
		until := time.Now().Add(time.Minute).Truncate(time.Millisecond)
		if ok, err := s.SetSoak(ctx, p.ID, SoakRunning, until, ""); !ok || err != nil {
			t.Fatalf("SetSoak(running) = %v, %v", ok, err)
		}
		if ps, _ := s.Promotions(ctx, PromotionQuery{Soak: SoakRunning}); len(ps) != 1 || !ps[0].SoakUntil.Equal(until) || ps[0].Version != "3" || ps[0].Finished.IsZero() {
			t.Errorf("soaking promotions = %+v", ps)
		}
		// A newer promotion abandons the soak; ending it then changes nothing.
		q, err := s.AddPromotion(ctx, Promotion{Project: "web", Env: "production", ImageID: "ami-2", Cause: "rollback"})
		if err != nil || q.ID != 2 {
			t.Fatalf("AddPromotion() = %+v, %v", q, err)
		}
		if ok, _ := s.SetSoak(ctx, p.ID, SoakPassed, until, ""); ok {
			t.Error("an abandoned soak passed")
		}
		ps, err := s.Promotions(ctx, PromotionQuery{Project: "web", Env: "production"})
		if err != nil || len(ps) != 2 || ps[0].ID != 2 || ps[1].Soak != SoakAbandoned {
			t.Errorf("Promotions() = %+v, %v", ps, err)
		}
		if ps, _ := s.Promotions(ctx, PromotionQuery{Project: "web", ImageID: "ami-1", State: PromotionSucceeded}); len(ps) != 1 {
			t.Errorf("by image and state: %+v", ps)
		}
		if err := s.DeleteProject(ctx, "web"); err != nil {
			t.Fatal(err)
		}
		if ps, _ := s.Promotions(ctx, PromotionQuery{}); len(ps) != 0 {
			t.Errorf("promotions outlive their project: %+v", ps)
		}
		if got, _ := s.Environments(ctx, "web"); len(got) != 0 {
			t.Errorf("environments outlive their project: %+v", got)
		}
	})
}
