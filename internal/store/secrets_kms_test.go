package store

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"kiln/internal/awssim"
	"kiln/internal/secrets"
)

func TestKMSSecretsAtRest(t *testing.T) { bothDrivers(t, testKMSSecretsAtRest) }

// testKMSSecretsAtRest: with an AWS KMS master key (the simulator's,
// over HTTP) the webhook and notification secrets are sealed under data
// keys from KMS: the database never holds them, and they read back.
func testKMSSecretsAtRest(t *testing.T) {
	s, target := openTest(t)
	ctx := t.Context()
	sim := awssim.New(awssim.Options{})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	api := kms.NewFromConfig(awssim.ClientConfig(srv.URL))
	created, err := api.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	kk, err := secrets.NewKMSKey(ctx, api, *created.KeyMetadata.Arn)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := secrets.NewKeyringOf(kk)
	if err != nil {
		t.Fatal(err)
	}
	s.UseSecrets(ring)
	const hook, notifySecret = "kms-webhook-secret-0123456789", "kms-notify-secret-0123456789"
	if _, err := s.PutProject(ctx, testProject("web"), hook); err != nil {
		t.Fatal(err)
	}
	if err := s.PutNotifyTargets(ctx, "web", []NotifyTarget{{URL: "https://ops.example.com/hook", Secret: notifySecret, Events: []string{"bake.failed"}}}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ProjectSecret(ctx, "web"); err != nil || got != hook {
		t.Errorf("ProjectSecret() = %q, %v", got, err)
	}
	if ts, err := s.NotifyTargets(ctx, "web"); err != nil || len(ts) != 1 || ts[0].Secret != notifySecret {
		t.Errorf("NotifyTargets() = %+v, %v", ts, err)
	}
	for _, secret := range []string{hook, notifySecret} {
		if rawContains(t, s, target, secret) {
			t.Errorf("the database holds %q in clear text", secret)
		}
	}
	var stored string
	s.DB().QueryRowContext(ctx, `SELECT webhook_secret FROM projects WHERE name = 'web'`).Scan(&stored)
	if !strings.HasPrefix(stored, "kiln:v1:"+kk.ID()+":") {
		t.Errorf("stored secret = %q; want sealed under the KMS key %s", stored, kk.ID())
	}
	if sim.Calls("GenerateDataKey") < 2 {
		t.Errorf("GenerateDataKey calls = %d; want one per sealed secret", sim.Calls("GenerateDataKey"))
	}
}
