package store

import (
	"errors"
	"testing"
	"time"
)

func TestSafeDeliveryRecords(t *testing.T) {
	bothDrivers(t, func(t *testing.T) {
		s, _ := openTest(t)
		ctx := t.Context()
		if err := s.PutTests(ctx, "nope", &ImageTests{Script: "true"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("PutTests(unknown project) = %v; want ErrNotFound", err)
		}
		mustPut(t, s, "web")
		want := &ImageTests{Type: "t3.micro", SecurityGroups: []string{"sg-0123abcd"}, Script: "#!/bin/sh\ntrue\n", Timeout: 5 * time.Minute}
		if err := s.PutTests(ctx, "web", want); err != nil {
			t.Fatal(err)
		}
		got, err := s.Tests(ctx, "web")
		if err != nil || got == nil || got.Script != want.Script || got.Timeout != want.Timeout || got.SecurityGroups[0] != "sg-0123abcd" {
			t.Errorf("Tests() = %+v, %v; want %+v", got, err, want)
		}
		if err := s.PutTests(ctx, "web", nil); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Tests(ctx, "web"); got != nil || err != nil {
			t.Errorf("Tests() after removal = %+v, %v; want none", got, err)
		}

		if err := s.AddRevocation(ctx, Revocation{Project: "nope", ImageID: "ami-1", Reason: "x"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("AddRevocation(unknown project) = %v; want ErrNotFound", err)
		}
		r := Revocation{Project: "web", ImageID: "ami-0123456789abcdef0", Reason: "leaks", Actor: "user alice"}
		if err := s.AddRevocation(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := s.AddRevocation(ctx, r); !errors.Is(err, ErrRevoked) {
			t.Errorf("AddRevocation(again) = %v; want ErrRevoked", err)
		}
		revs, err := s.Revocations(ctx, "web")
		if got := revs[r.ImageID]; err != nil || len(revs) != 1 || got.Reason != "leaks" || got.Actor != "user alice" || got.Created.IsZero() {
			t.Errorf("Revocations() = %+v, %v", revs, err)
		}

		p, err := s.AddPromotion(ctx, Promotion{Project: "web", Env: "staging", ImageID: "ami-1"})
		if err != nil {
			t.Fatal(err)
		}
		a := Approval{Project: "web", Env: "production", PromotionID: p.ID, ImageID: "ami-1", Actor: "user bob"}
		if ok, err := s.ApproveSoak(ctx, a); ok || err != nil {
			t.Errorf("ApproveSoak(not awaiting) = %v, %v; want false", ok, err)
		}
		for _, soak := range []string{SoakRunning, SoakAwaiting} {
			if ok, err := s.SetSoak(ctx, p.ID, soak, time.Now(), ""); !ok || err != nil {
				t.Fatalf("SetSoak(%s) = %v, %v", soak, ok, err)
			}
		}
		if ok, err := s.ApproveSoak(ctx, a); !ok || err != nil {
			t.Errorf("ApproveSoak() = %v, %v; want true", ok, err)
		}
		if ok, _ := s.ApproveSoak(ctx, a); ok {
			t.Errorf("ApproveSoak(again) = true; want false")
		}
		as, err := s.Approvals(ctx, "web")
		if err != nil || len(as) != 1 || as[0].Actor != "user bob" || as[0].PromotionID != p.ID {
			t.Errorf("Approvals() = %+v, %v", as, err)
		}
		ps, _ := s.Promotions(ctx, PromotionQuery{Project: "web", Env: "staging"})
		if ps[0].Soak != SoakPassed {
			t.Errorf("soak after the approval = %q; want passed", ps[0].Soak)
		}
	})
}
