package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"time"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/pipeline"
	"kiln/internal/store"
)

// The kiln serve half of the soak: two kiln serve processes on one
// PostgreSQL database of their own, projects with an environment, a bake
// triggered now and then and a promotion less often, through the API of a
// random live server, as a deployer would.

const soakToken = "kiln-bench-soak-admin-token"

// soakProject is a project whose bake takes a few seconds on the
// simulator's clock, with one environment of one instance.
const soakProject = `name: %s
region: us-east-1
base: {owner: amazon, name: "al2023-ami-*", most_recent: true}
type: t3.small
keep: 2
webhook_secret: %s
script: |
  #!/bin/sh
  %s
environments:
  - name: staging
    group: {type: t3.micro, min: 1, max: 1, rollout: {min_healthy_percent: 0, warmup: 5s}}
`

// soakBakery drives the servers and counts what it asked for.
type soakBakery struct {
	target   string // the database
	projects []string
	servers  func() []*benchKiln
	client   *http.Client
	bakes    map[int64]bool // the bakes triggered (coalesced ones once)
	promos   int            // promotions the servers accepted
	refused  int            // promotions refused (no image yet, one running)
}

// apply posts the projects to the servers (kiln project apply) once one
// answers.
func (b *soakBakery) apply(ctx context.Context, rng *rand.Rand, n int) error {
	for i := range n {
		name := fmt.Sprint("soak", i)
		file := fmt.Appendf(nil, soakProject, name, bakeSecret, bakeScript)
		err := until(ctx, time.Minute, func() bool {
			status, _, err := b.call(ctx, rng, "/api/projects", file)
			return err == nil && status < 300
		})
		if err != nil {
			return fmt.Errorf("apply project %s: %w", name, err)
		}
		b.projects = append(b.projects, name)
	}
	return nil
}

// call posts to path on the servers, starting with a random one, until
// one answers; it returns the status and the body.
func (b *soakBakery) call(ctx context.Context, rng *rand.Rand, path string, body []byte) (int, []byte, error) {
	srv := b.servers()
	first := rng.IntN(len(srv))
	var last error
	for k := range srv {
		s := srv[(first+k)%len(srv)]
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+soakToken)
		resp, err := b.client.Do(req)
		if err != nil {
			last = err // killed, or not listening yet
			continue
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			last = fmt.Errorf("POST %s: %s: %s", path, resp.Status, bytes.TrimSpace(out))
			continue
		}
		return resp.StatusCode, out, nil
	}
	return 0, nil, last
}

// bake triggers a bake of a random project.
func (b *soakBakery) bake(ctx context.Context, rng *rand.Rand) {
	p := b.projects[rng.IntN(len(b.projects))]
	status, body, err := b.call(ctx, rng, "/api/projects/"+p+"/bakes", nil)
	if err != nil || status != http.StatusAccepted {
		fmt.Fprintf(os.Stderr, "bench: soak: trigger %s: %d %v %s\n", p, status, err, bytes.TrimSpace(body))
		return
	}
	var res struct {
		Bake struct {
			ID int64 `json:"id"`
		} `json:"bake"`
	}
	if err := json.Unmarshal(body, &res); err != nil || res.Bake.ID == 0 {
		fmt.Fprintf(os.Stderr, "bench: soak: trigger %s: %s\n", p, body)
		return
	}
	b.bakes[res.Bake.ID] = true
}

// promote rolls a random project's newest image out to staging.
func (b *soakBakery) promote(ctx context.Context, rng *rand.Rand) {
	p := b.projects[rng.IntN(len(b.projects))]
	status, body, err := b.call(ctx, rng, "/api/projects/"+p+"/environments/staging/promote", nil)
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "bench: soak: promote %s: %v\n", p, err)
	case status < 300:
		b.promos++
	default:
		// No image yet, or a rollout running: refused, nothing started.
		b.refused++
		fmt.Fprintf(os.Stderr, "bench: soak: promote %s refused: %d %s\n", p, status, bytes.TrimSpace(body))
	}
}

// soakServeFigures are the serve half's figures.
type soakServeFigures struct {
	bakes, bakesFinal    int
	bakesSucceeded       int
	imagesExtra          int
	buildersLeaked       int
	promotions, promoFin int
}

// measure reads the bakes and promotions from the database and the
// images and builders from the simulator: an image is extra when no
// succeeded bake records it, a builder leaked when it is not terminated
// although its bake is final.
func (b *soakBakery) measure(ctx context.Context, sim *awssim.Sim) (soakServeFigures, bool, error) {
	var f soakServeFigures
	st, err := store.Open(ctx, b.target)
	if err != nil {
		return f, false, err
	}
	defer st.Close()
	all := map[int64]store.Bake{}
	for before := int64(0); ; {
		page, err := st.Bakes(ctx, store.BakeQuery{BeforeID: before, Limit: 1000})
		if err != nil {
			return f, false, err
		}
		for _, bk := range page {
			all[bk.ID] = bk
		}
		if len(page) < 1000 {
			break
		}
		before = page[len(page)-1].ID
	}
	images := map[string]bool{}
	for id := range b.bakes {
		f.bakes++
		bk, ok := all[id]
		// Final: succeeded, or over with the reason why.
		if ok && (bk.State == store.Succeeded || bk.State.Final() && bk.Reason != "") {
			f.bakesFinal++
		}
		if ok && bk.State == store.Succeeded {
			f.bakesSucceeded++
		}
	}
	for _, bk := range all {
		if bk.State == store.Succeeded {
			imgs, err := st.BakeImages(ctx, bk.ID)
			if err != nil {
				return f, false, err
			}
			images[bk.ImageID] = true
			for _, im := range imgs {
				images[im.ImageID] = true
			}
		}
	}
	for _, im := range sim.Images() {
		if im.Tags[awsapi.TagBake] != "" && !images[im.ID] {
			f.imagesExtra++
		}
	}
	for _, in := range sim.Instances() {
		if in.Tags[pipeline.TagRole] == "" || in.State == awssim.StateTerminated || in.State == awssim.StateShuttingDown {
			continue
		}
		id, _ := strconv.ParseInt(in.Tags[awsapi.TagBake], 10, 64)
		if bk, ok := all[id]; !ok || bk.State.Final() {
			f.buildersLeaked++
		}
	}
	promos, err := st.Promotions(ctx, store.PromotionQuery{Limit: 100000})
	if err != nil {
		return f, false, err
	}
	for _, p := range promos {
		f.promotions++
		if p.State == store.PromotionSucceeded || p.State == store.PromotionFailed && p.Reason != "" {
			f.promoFin++
		}
	}
	return f, f.bakesFinal == f.bakes && f.promoFin == f.promotions, nil
}

// serveArgs are a soak server's arguments.
func serveArgs(target string) []string {
	return []string{"serve", "--db", target, "--lease", "5s", "--log-level", "warn"}
}

func pctOf(n, of int) *float64 {
	v := 100.0
	if of > 0 {
		v = round3(100 * float64(n) / float64(of))
	}
	return &v
}
