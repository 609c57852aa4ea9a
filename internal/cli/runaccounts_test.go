package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"kiln/internal/testsupport"
)

// TestRunShowsAccounts: kiln run --listen logs the resources of each other
// account when it loads the graph, and its engine page names the account
// of a resource working there (and none for the starting credentials'); a
// run that does not converge names the account of the failed resource.
func TestRunShowsAccounts(t *testing.T) {
	_, url := accountsEnv(t)
	east := stockImage(t, url, "us-east-1")
	dir := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	inst := func(name, account string) string {
		s := "  - kind: aws:ec2\n    name: " + name + "\n    image: " + east + "\n    type: t3.micro\n"
		if account != "" {
			s += "    account: " + account + "\n"
		}
		return s
	}
	good := write("good.yaml", "name: fleet\naccounts:\n  prod: {role_arn: \""+prodRoleARN+"\", external_id: shop-7}\nresources:\n"+
		inst("web-shared", "")+inst("web-prod", "prod"))

	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithCancel(t.Context())
	var stderr testsupport.Buffer
	var wg sync.WaitGroup
	wg.Go(func() { run(ctx, []string{"run", "--listen", listen, good}, io.Discard, &stderr) })
	defer func() { cancel(); wg.Wait() }()
	var page string
	testsupport.Eventually(t, "the engine page to show both resources converged", func() bool {
		resp, err := http.Get("http://" + listen + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		page = string(b)
		return strings.Count(page, "<span class=\"state converged\">converged</span>") == 2
	})
	if !strings.Contains(page, `<code>aws:ec2/web-prod</code> <span class="account" title="AWS account">account prod</span>`) {
		t.Errorf("engine page does not name web-prod's account:\n%s", page)
	}
	if strings.Contains(page, `<code>aws:ec2/web-shared</code> <span class="account"`) {
		t.Errorf("engine page names an account for web-shared (the starting credentials')")
	}
	if log := stderr.String(); !strings.Contains(log, `msg="resources in another account" graph=fleet account=prod resources=aws:ec2/web-prod`) {
		t.Errorf("run's log does not name the prod account's resources:\n%s", log)
	}
	cancel()
	wg.Wait()

	bad := write("bad.yaml", "name: fleet\naccounts:\n  prod: {role_arn: \""+prodRoleARN+"\", external_id: wrong}\nresources:\n"+inst("web", "prod"))
	code, _, out := kilnCmd(t, "run", "--once", bad)
	if code == 0 || !strings.Contains(out, "  failed   aws:ec2/web (account prod): ") {
		t.Errorf("run --once with a refused role = %d: %s; want the failed resource with its account", code, out)
	}
}
