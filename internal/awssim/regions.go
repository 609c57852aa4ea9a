package awssim

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Regions. Each AWS region is a world of its own on the one endpoint: its
// instances, images, snapshots, security groups, launch templates and
// groups, its own stock images with their own ids (as AWS publishes the
// same Amazon Linux release under a different id in every region), its
// own request buckets and its own events (with the region in them). The
// region a request is signed for (the credential scope of its SigV4
// Authorization header) picks the world; a request without one (a plain
// form POST) goes to the home region, Options.Region. The home world is
// the *Sim that New returns, so every single-region caller sees what it
// always saw; the other worlds are made on first use. A region AWS does
// not have is refused as AWS refuses a credential scoped to it
// (AuthFailure).
//
// Calls, throttle counts and injected faults are the home world's, for
// every region: Calls("CopyImage") counts the copies to all of them. The
// manual clock is shared: Advance moves every world. Region returns a
// world for the Go control API; /_sim/regions/{region}/... is the JSON
// control API of one (e.g. GET /_sim/regions/us-west-2/instances).

// knownRegions are the regions a request may be signed for.
var knownRegions = []string{
	"us-east-1", "us-east-2", "us-west-1", "us-west-2",
	"af-south-1", "ap-east-1", "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2",
	"ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
	"ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2", "eu-west-1", "eu-west-2", "eu-west-3",
	"eu-south-1", "eu-south-2", "eu-north-1", "il-central-1", "me-south-1", "me-central-1", "mx-central-1",
	"sa-east-1",
}

// KnownRegion reports whether the simulator serves region.
func KnownRegion(region string) bool { return slices.Contains(knownRegions, region) }

// regionWorlds is the home world's router, and every world's own
// distribution state (ec2_copyimage.go, ec2_imageattrs.go).
type regionWorlds struct {
	home *Sim // nil in the home world itself

	mu     sync.Mutex
	worlds map[string]*Sim // the other regions, made on first use
	runCtx context.Context // while Run runs: new worlds run in it
	runG   *errgroup.Group

	// copies are the CopyImage client tokens of this world (ec2_copyimage.go).
	copies map[string]copyToken
	// launchPerms and volumePerms are the images' launch permissions and
	// the snapshots' create-volume permissions (ec2_imageattrs.go), by id.
	launchPerms map[string][]permission
	volumePerms map[string][]permission
}

func (rw *regionWorlds) init(home *Sim) {
	rw.home = home
	rw.worlds = map[string]*Sim{}
	rw.copies = map[string]copyToken{}
	rw.launchPerms = map[string][]permission{}
	rw.volumePerms = map[string][]permission{}
}

// root is the home world of s.
func (s *Sim) root() *Sim {
	if s.regions.home != nil {
		return s.regions.home
	}
	return s
}

// Region returns the world of region (made on first use), or
// AuthFailure for a region AWS does not have. The home region is s.
func (s *Sim) Region(region string) (*Sim, error) {
	h := s.root()
	if region == "" || region == h.opts.Region {
		return h, nil
	}
	if !KnownRegion(region) {
		return nil, &APIError{Status: http.StatusUnauthorized, Code: "AuthFailure",
			Message: "Credential should be scoped to a valid region, not '" + region + "'."}
	}
	rw := &h.regions
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if w, ok := rw.worlds[region]; ok {
		return w, nil
	}
	o := h.opts
	o.Region = region
	o.Start = h.Now()
	f := fnv.New64a()
	f.Write([]byte(region))
	o.Seed = h.opts.Seed ^ f.Sum64()
	if o.Seed == 0 {
		o.Seed = 1
	}
	w := newSim(o)
	w.acct = h.acct
	w.regions.home = h
	rw.worlds[region] = w
	if rw.runG != nil {
		rw.runG.Go(func() error { return w.Run(rw.runCtx) })
	}
	return w, nil
}

// others returns the worlds made so far besides the home one.
func (s *Sim) others() []*Sim {
	rw := &s.root().regions
	rw.mu.Lock()
	defer rw.mu.Unlock()
	out := make([]*Sim, 0, len(rw.worlds))
	for _, r := range slices.Sorted(maps.Keys(rw.worlds)) {
		out = append(out, rw.worlds[r])
	}
	return out
}

// Regions lists the regions that have a world so far, the home one first.
func (s *Sim) Regions() []string {
	out := []string{s.root().opts.Region}
	for _, w := range s.others() {
		out = append(out, w.opts.Region)
	}
	return out
}

// runRegions drives the other worlds while the home world's Run runs,
// those made later included.
func (s *Sim) runRegions(ctx context.Context) error {
	rw := &s.regions
	g, gctx := errgroup.WithContext(ctx)
	rw.mu.Lock()
	rw.runCtx, rw.runG = gctx, g
	for _, w := range rw.worlds {
		g.Go(func() error { return w.Run(gctx) })
	}
	rw.mu.Unlock()
	<-gctx.Done()
	rw.mu.Lock()
	rw.runCtx, rw.runG = nil, nil
	rw.mu.Unlock()
	return g.Wait()
}

// signingRegion is the region of a SigV4 Authorization header's credential
// scope ("Credential=AKID/20260101/us-west-2/ec2/aws4_request"), "" when
// the request is not signed.
func signingRegion(hr *http.Request) string {
	auth := hr.Header.Get("Authorization")
	_, cred, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	cred, _, _ = strings.Cut(cred, ",")
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) < 5 {
		return ""
	}
	return parts[2]
}

// worldFor is the world a request is for: its credentials' account's
// (accounts.go), in its signing region.
func (s *Sim) worldFor(hr *http.Request) (*Sim, error) {
	acct, err := s.acct.accountWorld(hr)
	if err != nil {
		return nil, err
	}
	return acct.Region(signingRegion(hr))
}

// serveRegionControl serves /_sim/regions (the regions with a world) and
// /_sim/regions/{region}/... (that world's control API); it reports false
// for any other path.
func (s *Sim) serveRegionControl(w http.ResponseWriter, hr *http.Request) bool {
	rest, ok := strings.CutPrefix(hr.URL.Path, controlPrefix+"regions")
	if !ok || (rest != "" && rest[0] != '/') {
		return false
	}
	region, sub, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	if region == "" {
		replyJSON(w, http.StatusOK, map[string]any{"home": s.opts.Region, "regions": s.Regions(), "known": knownRegions})
		return true
	}
	world, err := s.Region(region)
	if err != nil {
		replyJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return true
	}
	r2 := hr.Clone(hr.Context())
	r2.URL.Path = controlPrefix + sub
	world.serveControl(w, r2)
	return true
}

func replyJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
