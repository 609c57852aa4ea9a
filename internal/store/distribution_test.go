package store

import (
	"errors"
	"reflect"
	"testing"
)

func TestDistributionAndBakeImages(t *testing.T) {
	bothDrivers(t, func(t *testing.T) {
		s, _ := openTest(t)
		ctx := t.Context()
		if err := s.PutDistribution(ctx, "nope", Distribution{CopyTo: []string{"us-west-2"}}); !errors.Is(err, ErrNotFound) {
			t.Errorf("PutDistribution(unknown project) = %v; want ErrNotFound", err)
		}
		mustPut(t, s, "web")
		d := Distribution{CopyTo: []string{"us-west-2", "eu-west-1"}, Encrypt: true, KMSKeyID: "alias/k", ShareWith: []string{"210987654321"}}
		if err := s.PutDistribution(ctx, "web", d); err != nil {
			t.Fatal(err)
		}
		d.CopyTo = d.CopyTo[:1]
		if err := s.PutDistribution(ctx, "web", d); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Distribution(ctx, "web"); err != nil || !reflect.DeepEqual(got, d) {
			t.Errorf("Distribution() = %+v, %v; want %+v", got, err, d)
		}
		if err := s.PutDistribution(ctx, "web", Distribution{}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Distribution(ctx, "web"); err != nil || !reflect.DeepEqual(got, Distribution{}) {
			t.Errorf("Distribution() after clearing = %+v, %v", got, err)
		}

		r, err := s.CreateBake(ctx, "web", "abc", "refs/heads/main", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range []struct{ region, id, state string }{
			{"us-west-2", "ami-0000000000000000b", "pending"},
			{"us-east-1", "ami-0000000000000000a", "available"},
			{"us-west-2", "ami-0000000000000000b", "available"},
		} {
			if err := s.SetBakeImage(ctx, r.BakeID, st.region, st.id, st.state); err != nil {
				t.Fatal(err)
			}
		}
		imgs, err := s.BakeImages(ctx, r.BakeID)
		if err != nil || len(imgs) != 2 || imgs[0].Region != "us-east-1" || imgs[1].State != "available" {
			t.Fatalf("BakeImages() = %+v, %v", imgs, err)
		}
		// Deleting the project deletes its settings and its bakes' images.
		if err := s.PutDistribution(ctx, "web", d); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteProject(ctx, "web"); err != nil {
			t.Fatal(err)
		}
		if imgs, err := s.BakeImages(ctx, r.BakeID); err != nil || len(imgs) != 0 {
			t.Errorf("BakeImages() after delete = %+v, %v", imgs, err)
		}
		mustPut(t, s, "web")
		if got, _ := s.Distribution(ctx, "web"); !reflect.DeepEqual(got, Distribution{}) {
			t.Errorf("a new project of the same name inherits %+v", got)
		}
	})
}
