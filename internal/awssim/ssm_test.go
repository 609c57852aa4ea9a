package awssim_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"kiln/internal/awssim"
)

func newSSM(t *testing.T) (*ssm.Client, *awssim.Sim) {
	t.Helper()
	sim := awssim.New(awssim.Options{ManualClock: true})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return ssm.NewFromConfig(awssim.ClientConfig(srv.URL)), sim
}

func TestSSMPutGetVersions(t *testing.T) {
	ctx := context.Background()
	c, sim := newSSM(t)
	put := func(name, value string, typ ssmtypes.ParameterType, overwrite bool) (int64, error) {
		out, err := c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(value), Type: typ, Overwrite: aws.Bool(overwrite)})
		if err != nil {
			return 0, err
		}
		return out.Version, nil
	}
	if v, err := put("/kiln/web/prod/DB_PASSWORD", "hunter2-secret", ssmtypes.ParameterTypeSecureString, false); err != nil || v != 1 {
		t.Fatalf("put: v=%d err=%v", v, err)
	}
	if _, err := put("/kiln/web/prod/DB_PASSWORD", "other", ssmtypes.ParameterTypeSecureString, false); code(err) != "ParameterAlreadyExists" {
		t.Fatalf("put again without overwrite: %v, want ParameterAlreadyExists", err)
	}
	if v, err := put("/kiln/web/prod/DB_PASSWORD", "hunter3-secret", "", true); err != nil || v != 2 {
		t.Fatalf("overwrite: v=%d err=%v", v, err)
	}
	// Without decryption a SecureString is ciphertext.
	got, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/kiln/web/prod/DB_PASSWORD")})
	if err != nil {
		t.Fatal(err)
	}
	if v := aws.ToString(got.Parameter.Value); strings.Contains(v, "hunter") || got.Parameter.Type != ssmtypes.ParameterTypeSecureString || got.Parameter.Version != 2 {
		t.Fatalf("get without decryption: %+v", got.Parameter)
	}
	got, err = c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/kiln/web/prod/DB_PASSWORD"), WithDecryption: aws.Bool(true)})
	if err != nil || aws.ToString(got.Parameter.Value) != "hunter3-secret" || got.Parameter.LastModifiedDate == nil {
		t.Fatalf("get with decryption: %+v %v", got, err)
	}
	old, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/kiln/web/prod/DB_PASSWORD:1"), WithDecryption: aws.Bool(true)})
	if err != nil || aws.ToString(old.Parameter.Value) != "hunter2-secret" || aws.ToString(old.Parameter.Selector) != ":1" {
		t.Fatalf("get version 1: %+v %v", old, err)
	}
	if _, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/kiln/web/prod/DB_PASSWORD:9")}); code(err) != "ParameterVersionNotFound" {
		t.Fatalf("get version 9: %v", err)
	}
	if _, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/nope")}); code(err) != "ParameterNotFound" {
		t.Fatalf("get missing: %v", err)
	}
	var nf *ssmtypes.ParameterNotFound
	if _, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/nope")}); !errors.As(err, &nf) {
		t.Fatalf("get missing: %T %v, want *types.ParameterNotFound", err, err)
	}
	if v, typ, n, ok := sim.Parameter("/kiln/web/prod/DB_PASSWORD"); !ok || v != "hunter3-secret" || typ != "SecureString" || n != 2 {
		t.Fatalf("sim.Parameter: %q %q %d %v", v, typ, n, ok)
	}
}

func TestSSMValidation(t *testing.T) {
	ctx := context.Background()
	c, _ := newSSM(t)
	for _, tc := range []struct{ name, value, typ, code string }{
		{"kiln/no-slash", "v", "String", "ValidationException"},
		{"/aws/reserved", "v", "String", "ValidationException"},
		{"/bad name", "v", "String", "ValidationException"},
		{"/ok", "", "String", "ValidationException"},
		{"/ok", strings.Repeat("x", 4097), "String", "ValidationException"},
		{"/ok", "v", "", "ValidationException"},
		{"/ok", "v", "Number", "ValidationException"},
		{"/" + strings.Repeat("a/", 15) + "b", "v", "String", "HierarchyLevelLimitExceededException"},
	} {
		_, err := c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(tc.name), Value: aws.String(tc.value), Type: ssmtypes.ParameterType(tc.typ)})
		if code(err) != tc.code {
			t.Errorf("put %q=%q (%s): %v, want %s", tc.name, tc.value, tc.typ, err, tc.code)
		}
	}
}

func TestSSMByPathAndDelete(t *testing.T) {
	ctx := context.Background()
	c, _ := newSSM(t)
	for i := range 13 {
		if _, err := c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(fmt.Sprintf("/kiln/web/staging/K%02d", i)), Value: aws.String("v"), Type: ssmtypes.ParameterTypeString}); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/kiln/web/staging/deep/X"), Value: aws.String("s3cret"), Type: ssmtypes.ParameterTypeSecureString})
	_, _ = c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/kiln/web/production/K"), Value: aws.String("v"), Type: ssmtypes.ParameterTypeString})
	count := func(recursive bool) (n int, pages int, secret string) {
		p := ssm.NewGetParametersByPathPaginator(c, &ssm.GetParametersByPathInput{Path: aws.String("/kiln/web/staging"), Recursive: aws.Bool(recursive), WithDecryption: aws.Bool(true)})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, pr := range out.Parameters {
				n++
				if aws.ToString(pr.Name) == "/kiln/web/staging/deep/X" {
					secret = aws.ToString(pr.Value)
				}
			}
		}
		return n, pages, secret
	}
	if n, pages, _ := count(false); n != 13 || pages != 2 {
		t.Fatalf("one level: %d parameters in %d pages, want 13 in 2", n, pages)
	}
	if n, _, secret := count(true); n != 14 || secret != "s3cret" {
		t.Fatalf("recursive: %d parameters, secret %q", n, secret)
	}
	gp, err := c.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/kiln/web/staging/K00", "/missing"}})
	if err != nil || len(gp.Parameters) != 1 || len(gp.InvalidParameters) != 1 || gp.InvalidParameters[0] != "/missing" {
		t.Fatalf("GetParameters: %+v %v", gp, err)
	}
	dp, err := c.DeleteParameters(ctx, &ssm.DeleteParametersInput{Names: []string{"/kiln/web/staging/K00", "/missing"}})
	if err != nil || len(dp.DeletedParameters) != 1 || len(dp.InvalidParameters) != 1 {
		t.Fatalf("DeleteParameters: %+v %v", dp, err)
	}
	if _, err := c.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/kiln/web/staging/K00")}); code(err) != "ParameterNotFound" {
		t.Fatalf("delete deleted: %v", err)
	}
	if _, err := c.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/kiln/web/staging/K01")}); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := count(false); n != 11 {
		t.Fatalf("after deletes: %d", n)
	}
}
