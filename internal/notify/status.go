package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"kiln/internal/store"
)

// Commit status providers.
const (
	GitHub = "github"
	GitLab = "gitlab"
)

// DefaultAPI is each provider's public API base.
var DefaultAPI = map[string]string{
	GitHub: "https://api.github.com",
	GitLab: "https://gitlab.com/api/v4",
}

// statusState maps a bake event to the provider's state; "" for events
// that report nothing on a commit.
func statusState(provider, event string) string {
	switch event {
	case BakeStarted:
		if provider == GitLab {
			return "running"
		}
		return "pending"
	case BakeSucceeded:
		return "success"
	case BakeFailed:
		if provider == GitLab {
			return "failed"
		}
		return "failure"
	}
	return ""
}

// statusRequest builds the commit status call for e: GitHub's
// POST /repos/{owner}/{repo}/statuses/{sha} with a bearer token, or
// GitLab's POST /projects/{id}/statuses/{sha} with PRIVATE-TOKEN.
func statusRequest(ctx context.Context, c *store.CommitStatus, e Event) (*http.Request, error) {
	state := statusState(c.Provider, e.Event)
	base := strings.TrimRight(c.APIURL, "/")
	name := "kiln/" + e.Project
	desc := fmt.Sprintf("bake %d: %s", e.Bake, strings.TrimPrefix(e.Event, "bake."))
	var (
		req *http.Request
		err error
	)
	switch c.Provider {
	case GitHub:
		body, _ := json.Marshal(map[string]string{"state": state, "target_url": e.Links.Bake,
			"description": desc, "context": name})
		req, err = http.NewRequestWithContext(ctx, http.MethodPost,
			base+"/repos/"+e.Repo+"/statuses/"+url.PathEscape(e.Commit), bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+c.Token)
			req.Header.Set("Accept", "application/vnd.github+json")
			req.Header.Set("Content-Type", "application/json")
		}
	case GitLab:
		body, _ := json.Marshal(map[string]string{"state": state, "target_url": e.Links.Bake,
			"description": desc, "name": name})
		req, err = http.NewRequestWithContext(ctx, http.MethodPost,
			base+"/projects/"+url.PathEscape(e.Repo)+"/statuses/"+url.PathEscape(e.Commit), bytes.NewReader(body))
		if err == nil {
			req.Header.Set("PRIVATE-TOKEN", c.Token)
			req.Header.Set("Content-Type", "application/json")
		}
	default:
		return nil, fmt.Errorf("commit status provider %q: want github or gitlab", c.Provider)
	}
	return req, err
}
