package awsapi

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/engine"
)

// TagBatch marks an instance launched in a batch: its value is the digest
// of the batch's launch parameters and graph, so that every instance of
// such a batch, whichever call launched it, is found again by it.
const TagBatch = "kiln:batch"

// TagMembers is the prefix of the tags that record, at launch, which
// resource each instance of a batched RunInstances is for:
// "kiln:members:0", "kiln:members:1", ... hold, concatenated in launch
// index order, a digest of each member's resource id (MemberDigest), up
// to membersPerTag of them a tag. An instance's resource is then
// recoverable from the instance alone (its AmiLaunchIndex into the list)
// from the moment it is listed, whichever process launched it, whatever
// the batch's composition, before its Name and kiln:resource are set.
const TagMembers = "kiln:members:"

// memberDigestLen is a member digest's length in hex digits (40 bits:
// two resources of a graph sharing one is a one in 10^6 chance at 1,000
// instances of one launch key, and would only swap which of the two
// adopts an unnamed instance).
const memberDigestLen = 10

// membersPerTag is how many member digests one tag value holds (EC2: 256
// characters a value).
const membersPerTag = 25

// maxTags is EC2's limit of tags on one resource.
const maxTags = 50

// MemberDigest is the digest that TagMembers records for resource.
func MemberDigest(resource string) string {
	sum := sha256.Sum256([]byte(resource))
	return hex.EncodeToString(sum[:])[:memberDigestLen]
}

// membersTags are the TagMembers tags recording digests in launch order.
func membersTags(digests []string) []types.Tag {
	var tags []types.Tag
	for i := 0; i*membersPerTag < len(digests); i++ {
		part := digests[i*membersPerTag : min(len(digests), (i+1)*membersPerTag)]
		tags = append(tags, types.Tag{Key: aws.String(fmt.Sprintf("%s%d", TagMembers, i)), Value: aws.String(strings.Join(part, ""))})
	}
	return tags
}

// LaunchedFor is the member digest an instance of a batch was launched
// for, read from its TagMembers tags at its AmiLaunchIndex ("" when it
// records none: not a batch instance, or launched before kiln recorded
// members).
func LaunchedFor(in types.Instance) string {
	i := int(aws.ToInt32(in.AmiLaunchIndex))
	v := TagValue(in.Tags, fmt.Sprintf("%s%d", TagMembers, i/membersPerTag))
	at := (i % membersPerTag) * memberDigestLen
	if at+memberDigestLen > len(v) {
		return ""
	}
	return v[at : at+memberDigestLen]
}

// maxMembers is how many members one RunInstances of l may launch: the
// launch size, and as many as the member tags fit beside l's tags, the
// batch tag and the Name and kiln:resource each instance gets later.
func maxMembers(l Launch, size int) int {
	free := maxTags - len(l.Tags) - 3
	return max(1, min(size, free*membersPerTag))
}

// BatchMember is one instance of a batched launch: the resource that will
// own it and the tags only it carries (Name, kiln:resource), set after the
// launch.
type BatchMember struct {
	Owner Owner
	// Prev is the instance this launch replaces ("" for the first): part
	// of the token, as in a single launch.
	Prev string
	// Token is the ClientToken the member would use alone: a batch of one
	// is a single launch with it and every tag at once.
	Token string
	Tags  []types.Tag
}

// launchJoin is a member waiting for its batch.
type launchJoin struct {
	key  string
	l    Launch // shared parameters and tags
	m    BatchMember
	done chan launchRes
	// also are the later calls for the same member made while this one
	// was under way (a caller that gave up and asked again): they get
	// this join's answer (or, for other launch parameters, go once it is
	// in), so one member is never in two batches at once. Guarded by
	// launcher.mu.
	also []chan launchRes
}

type launchRes struct {
	inst types.Instance
	err  error
}

// naming is a batch instance's own tags, still to be set.
type naming struct {
	id    string
	owner Owner
	tags  []types.Tag
}

// launcher merges launches with identical parameters into RunInstances
// calls of many instances, and names their instances afterwards.
type launcher struct {
	h     *Hub
	joins chan *launchJoin
	names chan naming

	mu      sync.Mutex
	active  map[Owner]*launchJoin  // members between LaunchInBatch and their answer
	flying  map[string]bool        // ClientTokens of RunInstances not answered yet
	claimed map[Owner]string       // resource → batch instance not yet seen under its own tags
	pending map[string][]types.Tag // instance id → tags still to set
	set     map[string][]types.Tag // instance id → tags set, perhaps not visible yet
	changed chan struct{}          // closed and replaced when pending shrinks
}

func newLauncher(h *Hub) *launcher {
	return &launcher{h: h, joins: make(chan *launchJoin), names: make(chan naming, 1<<16),
		active: map[Owner]*launchJoin{}, flying: map[string]bool{},
		claimed: map[Owner]string{}, pending: map[string][]types.Tag{}, set: map[string][]types.Tag{}, changed: make(chan struct{})}
}

// Named blocks until every batch instance launched so far carries its own
// tags (kiln run --once waits for it before it exits), or ctx is done.
func (h *Hub) Named(ctx context.Context) error {
	for {
		h.launch.mu.Lock()
		n, ch := len(h.launch.pending), h.launch.changed
		h.launch.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Named is Hub.Named for every hub.
func (hs *Hubs) Named(ctx context.Context) error {
	hs.mu.Lock()
	hubs := slices.Collect(maps.Values(hs.hubs))
	hs.mu.Unlock()
	for _, h := range hubs {
		if err := h.Named(ctx); err != nil {
			return err
		}
	}
	return nil
}

// launchKey identifies identical launch parameters of one graph.
func launchKey(graph string, l Launch) (string, error) {
	l.Token = "x"
	in, err := l.input()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00", graph, aws.ToString(in.ImageId), in.InstanceType,
		aws.ToString(in.UserData), aws.ToString(in.SubnetId), strings.Join(in.SecurityGroupIds, ","), aws.ToString(in.KeyName), l.Profile, l.Shutdown)
	for _, t := range l.Tags {
		fmt.Fprintf(h, "%s=%s\x00", aws.ToString(t.Key), aws.ToString(t.Value))
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// LaunchInBatch launches one instance of l (its Tags the ones every member
// shares) for m, together with the other members that ask for a launch
// with identical parameters within the batch window (BatchOptions.Idle):
// one RunInstances of up to BatchOptions.LaunchSize instances, MinCount 1,
// a ClientToken derived from the members' owners and previous instances,
// kiln:batch and the members' digests (TagMembers) among its tags. Each
// instance goes to the member at its AmiLaunchIndex (members sorted by
// owner) and gets m.Tags afterwards, one CreateTags per instance in the
// hub's background, paced by the CreateTags bucket: until then
// GivenTags and Claimed answer for it.
//
// Before launching, the batch adopts the live instances of earlier
// batches with the same parameters that were launched for its members
// and never named (a process killed between launch and naming), found by
// kiln:batch and matched by the member digest recorded at launch, so a
// restart launches only what is missing whatever the earlier batches'
// composition. Instances of RunInstances calls this process still waits
// for are never adopted. A batch of one is a single launch (Hub.Launch)
// with m.Token and every tag at once.
//
// A second call for a member whose first is still under way (its caller
// gave up) gets the first one's answer, or with other parameters waits
// for it: one member is never in two batches at once.
//
// It blocks until EC2 has answered, not until the instance runs; the
// answer may be an instance that is no longer live (a token spent on one
// since terminated): the caller decides. Errors are Hub.Launch's. The
// hub's Run must be running.
func (h *Hub) LaunchInBatch(ctx context.Context, l Launch, m BatchMember) (types.Instance, error) {
	key, err := launchKey(m.Owner.Graph, l)
	if err != nil {
		return types.Instance{}, engine.Permanent(err)
	}
	j := &launchJoin{key: key, l: l, m: m, done: make(chan launchRes, 1)}
	lc := h.launch
	for {
		lc.mu.Lock()
		first := lc.active[m.Owner]
		if first == nil {
			lc.active[m.Owner] = j
			lc.mu.Unlock()
			break
		}
		ch := make(chan launchRes, 1)
		first.also = append(first.also, ch)
		lc.mu.Unlock()
		select {
		case r := <-ch:
			if first.key == key {
				return r.inst, r.err
			}
			// Another launch (an older spec): over now, so this one may go.
		case <-ctx.Done():
			return types.Instance{}, ctx.Err()
		}
	}
	select {
	case lc.joins <- j:
	case <-ctx.Done():
		lc.answer(j, launchRes{err: ctx.Err()})
	}
	select {
	case r := <-j.done:
		return r.inst, r.err
	case <-ctx.Done():
		return types.Instance{}, ctx.Err()
	}
}

// answer hands r to j's caller and to the later calls for its member.
func (lc *launcher) answer(j *launchJoin, r launchRes) {
	lc.mu.Lock()
	if lc.active[j.m.Owner] == j {
		delete(lc.active, j.m.Owner)
	}
	also := j.also
	j.also = nil
	lc.mu.Unlock()
	j.done <- r
	for _, ch := range also {
		ch <- r
	}
}

// Claimed is the batch instance given to owner whose own tags kiln has not
// yet seen on it ("" for none): lookups by tag miss it until then.
func (h *Hub) Claimed(owner Owner) string {
	h.launch.mu.Lock()
	defer h.launch.mu.Unlock()
	return h.launch.claimed[owner]
}

// Settle forgets owner's claim on id once a lookup by tags found it.
func (h *Hub) Settle(owner Owner, id string) {
	h.launch.mu.Lock()
	defer h.launch.mu.Unlock()
	if h.launch.claimed[owner] == id && h.launch.pending[id] == nil {
		delete(h.launch.claimed, owner)
		delete(h.launch.set, id)
	}
}

// GivenTags are the own tags of batch instance id that count as set: queued
// for the hub's naming, or set by it and perhaps not visible yet (tags
// show up late under eventual consistency). None once its naming failed:
// its resource then sets them itself.
func (h *Hub) GivenTags(id string) []types.Tag {
	h.launch.mu.Lock()
	defer h.launch.mu.Unlock()
	if t := h.launch.pending[id]; t != nil {
		return slices.Clone(t)
	}
	return slices.Clone(h.launch.set[id])
}

// namers is how many CreateTags calls naming keeps in flight: enough to
// fill the CreateTags bucket's refill (10/s) with a call's latency to
// spare.
const namers = 8

// Run collects joins into batches, launches them and names their
// instances until ctx is done; joins still waiting then fail with ctx's
// error.
func (lc *launcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for range namers {
		wg.Go(func() { lc.nameLoop(ctx) })
	}
	o := lc.h.o.Batch
	pending := map[string][]*launchJoin{}
	var order []string
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	maxT := time.NewTimer(time.Hour)
	maxT.Stop()
	send := func(key string) {
		g := pending[key]
		delete(pending, key)
		order = slices.DeleteFunc(order, func(k string) bool { return k == key })
		wg.Go(func() { lc.exec(ctx, g) })
	}
	flush := func() {
		idle.Stop()
		maxT.Stop()
		for _, k := range slices.Clone(order) {
			send(k)
		}
	}
	for {
		select {
		case <-ctx.Done():
			for _, g := range pending {
				lc.fail(g, ctx.Err())
			}
			return ctx.Err()
		case j := <-lc.joins:
			if len(order) == 0 {
				maxT.Reset(o.Max)
			}
			if _, ok := pending[j.key]; !ok {
				order = append(order, j.key)
			}
			pending[j.key] = append(pending[j.key], j)
			idle.Reset(o.Idle)
			if len(pending[j.key]) >= o.LaunchSize {
				send(j.key)
			}
		case <-idle.C:
			flush()
		case <-maxT.C:
			flush()
		}
	}
}

// exec launches one batch: adopt, then RunInstances for the rest until
// each member has an instance or an error.
func (lc *launcher) exec(ctx context.Context, g []*launchJoin) {
	slices.SortFunc(g, func(a, b *launchJoin) int {
		return cmp.Or(strings.Compare(a.m.Owner.Resource, b.m.Owner.Resource), strings.Compare(a.m.Prev, b.m.Prev))
	})
	rest, err := lc.adopt(ctx, g)
	if err != nil {
		lc.fail(rest, err)
		return
	}
	if len(rest) == 1 && len(g) == 1 {
		j := rest[0]
		l := j.l
		l.Token, l.Tags = j.m.Token, mergeTags(j.l.Tags, j.m.Tags)
		inst, err := lc.h.Launch(ctx, lc.h.ec2, l)
		lc.answer(j, launchRes{inst: inst, err: err})
		return
	}
	size := maxMembers(g[0].l, lc.h.o.Batch.LaunchSize)
	for len(rest) > 0 {
		call := rest[:min(len(rest), size)]
		ins, token, err := lc.run(ctx, call)
		defer lc.landed(token)
		if err != nil {
			lc.fail(rest, err)
			return
		}
		slices.SortFunc(ins, func(a, b types.Instance) int {
			return cmp.Compare(aws.ToInt32(a.AmiLaunchIndex), aws.ToInt32(b.AmiLaunchIndex))
		})
		next := slices.Clone(rest[len(call):])
		for i, j := range call {
			if i >= len(ins) {
				next = append(next, j) // fewer than asked (capacity): the rest go again
				continue
			}
			lc.give(j, ins[i])
		}
		rest = next
	}
}

func (lc *launcher) fail(g []*launchJoin, err error) {
	for _, j := range g {
		lc.answer(j, launchRes{err: err})
	}
}

// landed forgets a batch token once its instances are given.
func (lc *launcher) landed(token string) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	delete(lc.flying, token)
}

// holds reports whether this process still has to give or name instance
// id (of token), or gave it to a resource whose lookup has not seen it
// under its tags yet.
func (lc *launcher) holds(id, token string) bool {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.flying[token] || lc.pending[id] != nil || lc.set[id] != nil {
		return true
	}
	for _, c := range lc.claimed {
		if c == id {
			return true
		}
	}
	return false
}

// give hands in to j and queues its naming.
func (lc *launcher) give(j *launchJoin, in types.Instance) {
	id := aws.ToString(in.InstanceId)
	if IsLive(in) {
		lc.mu.Lock()
		lc.claimed[j.m.Owner] = id
		lc.pending[id] = slices.Clone(j.m.Tags)
		lc.mu.Unlock()
		lc.names <- naming{id: id, owner: j.m.Owner, tags: j.m.Tags}
	}
	lc.h.Track(j.m.Owner, id)
	lc.answer(j, launchRes{inst: in})
}

// adopt gives each member the live instance an earlier batch with the
// same key launched for it (TagMembers at its launch index) and nobody
// named for another resource, the oldest when there are several, and
// terminates the others: they are extras, launched for a member that
// has one. It returns the members still without an instance. Instances
// of this process's RunInstances calls still in flight are left to their
// own batch.
func (lc *launcher) adopt(ctx context.Context, g []*launchJoin) ([]*launchJoin, error) {
	graph := g[0].m.Owner.Graph
	var all []types.Instance
	err := lc.h.Retry(ctx, func(ctx context.Context) error {
		all = all[:0]
		p := ec2.NewDescribeInstancesPaginator(lc.h.ec2, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(pollPageSize), Filters: []types.Filter{
			{Name: aws.String("tag:" + TagOwner), Values: []string{graph}},
			{Name: aws.String("tag:" + TagBatch), Values: []string{g[0].key}},
		}})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return err
			}
			for _, r := range out.Reservations {
				all = append(all, r.Instances...)
			}
		}
		return nil
	})
	if err != nil {
		return g, fmt.Errorf("find unnamed instances of batch %s: %w", g[0].key, err)
	}
	byDigest := map[string]*launchJoin{}
	for _, j := range g {
		byDigest[MemberDigest(j.m.Owner.Resource)] = j
	}
	lc.mu.Lock()
	found := map[*launchJoin][]types.Instance{}
	for _, in := range all {
		j := byDigest[LaunchedFor(in)]
		if j == nil || !IsLive(in) || lc.flying[aws.ToString(in.ClientToken)] {
			continue
		}
		if r := TagValue(in.Tags, TagResource); r != "" && r != j.m.Owner.Resource {
			continue // named for another resource since: not ours to take
		}
		found[j] = append(found[j], in)
	}
	lc.mu.Unlock()
	var rest []*launchJoin
	var extras []string
	for _, j := range g {
		ins := found[j]
		if len(ins) == 0 {
			rest = append(rest, j)
			continue
		}
		slices.SortFunc(ins, func(a, b types.Instance) int {
			return cmp.Or(aws.ToTime(a.LaunchTime).Compare(aws.ToTime(b.LaunchTime)),
				strings.Compare(aws.ToString(a.InstanceId), aws.ToString(b.InstanceId)))
		})
		for _, x := range ins[1:] {
			extras = append(extras, aws.ToString(x.InstanceId))
		}
		lc.h.o.Log.Info("batch instance adopted", "instance", aws.ToString(ins[0].InstanceId), "resource", j.m.Owner.Resource)
		lc.give(j, ins[0])
	}
	if len(extras) > 0 {
		lc.h.o.Log.Warn("extra batch instances terminated", "batch", g[0].key, "instances", extras)
		err := lc.h.Retry(ctx, func(ctx context.Context) error {
			_, err := lc.h.states.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: extras})
			return err
		})
		if err != nil {
			lc.h.o.Log.Warn("extra batch instances not terminated", "instances", extras, "err", err)
		}
	}
	return rest, nil
}

// run is one RunInstances for members g (MinCount 1), retried as a launch
// is; it returns the instances launched, perhaps fewer than len(g), and
// the call's token, held in flight until exec calls landed.
func (lc *launcher) run(ctx context.Context, g []*launchJoin) (ins []types.Instance, token string, err error) {
	l := g[0].l
	parts := []string{g[0].key}
	for _, j := range g {
		parts = append(parts, j.m.Owner.Resource, j.m.Prev)
	}
	l.Token = ClientToken("kiln-b-", parts...) // 55 chars
	digests := make([]string, len(g))
	for i, j := range g {
		digests[i] = MemberDigest(j.m.Owner.Resource)
	}
	l.Tags = mergeTags(l.Tags, append(membersTags(digests), types.Tag{Key: aws.String(TagBatch), Value: aws.String(g[0].key)}))
	in, err := l.input()
	if err != nil {
		return nil, "", engine.Permanent(err)
	}
	lc.mu.Lock()
	lc.flying[l.Token] = true // until exec has given its instances
	lc.mu.Unlock()
	in.MaxCount = aws.Int32(int32(len(g)))
	var since time.Time
	err = lc.h.Retry(ctx, func(ctx context.Context) error {
		out, err := lc.h.ec2.RunInstances(ctx, in)
		switch LaunchErrorClass(err) {
		case ClassDone:
			if since.IsZero() {
				since = time.Now()
			}
			found, ferr := allByToken(ctx, lc.h.ec2, l.Token)
			switch {
			case ferr != nil:
				return ferr
			case len(found) > 0:
				ins = found
				return nil
			case time.Since(since) > MismatchWait:
				return engine.Permanent(fmt.Errorf("%w: %w", ErrTokenSpent, err))
			}
			return NotYet(err)
		case ClassRetried:
			return NotYet(err)
		}
		if err != nil {
			return Classify(err, PermanentLaunchCodes()...)
		}
		if len(out.Instances) == 0 {
			return errors.New("RunInstances returned no instance")
		}
		ins = out.Instances
		return nil
	})
	if err != nil {
		return nil, l.Token, fmt.Errorf("run batch of %d instances: %w", len(g), err)
	}
	lc.h.o.Log.Info("batch launched", "batch", g[0].key, "asked", len(g), "launched", len(ins))
	return ins, l.Token, nil
}

// allByToken lists every instance launched with token.
func allByToken(ctx context.Context, c describer, token string) ([]types.Instance, error) {
	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{
		Filters: []types.Filter{{Name: aws.String("client-token"), Values: []string{token}}},
	})
	if err != nil {
		return nil, err
	}
	var ins []types.Instance
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if aws.ToString(in.ClientToken) == token {
				ins = append(ins, in)
			}
		}
	}
	return ins, nil
}

// nameLoop sets queued instances' own tags until ctx is done.
func (lc *launcher) nameLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-lc.names:
			err := lc.h.Retry(ctx, func(ctx context.Context) error {
				_, err := lc.h.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{n.id}, Tags: n.tags})
				if Code(err) == "InvalidInstanceID.NotFound" {
					return NotYet(err)
				}
				return err
			})
			if err != nil && ctx.Err() != nil {
				return
			}
			if err != nil {
				// The next check of its resource sees the tags missing
				// and sets them itself.
				lc.h.o.Log.Warn("batch instance not named", "instance", n.id, "resource", n.owner.Resource, "err", err)
			}
			lc.mu.Lock()
			delete(lc.pending, n.id)
			if err == nil && lc.claimed[n.owner] == n.id {
				lc.set[n.id] = n.tags
			}
			close(lc.changed)
			lc.changed = make(chan struct{})
			lc.mu.Unlock()
		}
	}
}

// mergeTags is a with b's tags added, b winning on equal keys, sorted.
func mergeTags(a, b []types.Tag) []types.Tag {
	m := map[string]string{}
	for _, t := range a {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	for _, t := range b {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return Tags(m)
}
