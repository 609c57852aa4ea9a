package awsres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/engine"
)

// Destroy ranks: lower goes first, so what uses a thing is destroyed
// before it. kiln no longer has the old graph's edges when it prunes, so
// the order is fixed per kind.
const (
	rankRecord         = 5  // a record before its zone, and before what it points at
	rankInstance       = 10 // instances use groups, key pairs and images
	rankASG            = 10 // so does a group's every member
	rankLaunchTemplate = 20 // after its group; a template version may name an image
	rankSecurityGroup  = 30
	rankKeyPair        = 30
	rankImage          = 40 // after the instances and templates that use it
	rankZone           = 50 // after its records
)

// TagProtect marks a resource with meta protect set: kiln writes it on
// what it creates (and keeps it in step with the graph), so a protected
// resource deleted from the graph file is still refused by prune and
// destroy.
const TagProtect = "kiln:protect"

// protectTag adds kiln:protect=true to tags m when env's meta protect
// is set.
func protectTag(env engine.Env, m map[string]string) {
	if env.Meta.Protect {
		m[TagProtect] = "true"
	}
}

// terminateBatch is how many instance ids one TerminateInstances call
// carries: one call per 1,000 orphans, not one each.
const terminateBatch = 1000

// estateKind is one kind's part of the estate: how to list what a graph
// owns in a region, and how to destroy some of it. A global kind (Route
// 53) is listed once, not per region, and its things carry no region.
type estateKind struct {
	kind, part string
	rank       int
	global     bool
	list       func(ctx context.Context, e *Estate, h *awsapi.Hub, graph string) ([]engine.Owned, error)
	destroy    func(ctx context.Context, e *Estate, h *awsapi.Hub, refs []string) error
}

var estateKinds = []estateKind{
	{"aws:route53_record", "", rankRecord, true, listRecords, deleteRecords},
	{"aws:ec2", "", rankInstance, false, listInstances, terminateInstances},
	{"aws:asg", "", rankASG, false, listASGs, deleteASGs},
	{"aws:asg", "launch template", rankLaunchTemplate, false, listLaunchTemplates, deleteLaunchTemplates},
	{"aws:security_group", "", rankSecurityGroup, false, listSecurityGroups, deleteSecurityGroups},
	{"aws:key_pair", "", rankKeyPair, false, listKeyPairs, deleteKeyPairs},
	{"aws:ami", "", rankImage, false, listImages, deleteImages},
	{"aws:route53_zone", "", rankZone, true, listZones, deleteZones},
}

// EstateKinds are the kinds whose things the estate finds by their tags
// (or, for records, their ownership records): the kinds prune and
// destroy remove.
func EstateKinds() []string {
	var out []string
	for _, k := range estateKinds {
		if !slices.Contains(out, k.kind) {
			out = append(out, k.kind)
		}
	}
	return out
}

// EstateIAMActions are the read calls listing the estate makes, for the
// least-privilege policy of a graph (its orphans are looked for among
// every kind, whatever kinds it declares).
func EstateIAMActions() []string {
	return []string{
		"ec2:DescribeInstances", "ec2:DescribeSecurityGroups", "ec2:DescribeKeyPairs",
		"ec2:DescribeLaunchTemplates", "ec2:DescribeImages",
		"autoscaling:DescribeAutoScalingGroups",
		"route53:ListHostedZones", "route53:ListTagsForResources", "route53:ListResourceRecordSets",
	}
}

// EstateDestroyIAMActions are the calls a prune or destroy may make.
func EstateDestroyIAMActions() []string {
	return []string{
		"ec2:TerminateInstances", "ec2:DeleteSecurityGroup", "ec2:DeleteKeyPair",
		"ec2:DeleteLaunchTemplate", "ec2:DeregisterImage", "ec2:DeleteSnapshot",
		"autoscaling:DescribeAutoScalingGroups", "autoscaling:DeleteAutoScalingGroup",
		"route53:ChangeResourceRecordSets", "route53:GetChange", "route53:DeleteHostedZone",
	}
}

// Estate lists and destroys what a graph owns in AWS, found by its tags.
type Estate struct {
	hubs *awsapi.Hubs
	log  *slog.Logger
}

// NewEstate returns the estate reader over hubs.
func NewEstate(hubs *awsapi.Hubs, log *slog.Logger) *Estate {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Estate{hubs: hubs, log: log}
}

// Regions are the regions the resources rs name, and the default region
// (""): where a graph's things may live.
func Regions(rs []engine.Resource) []string {
	set := map[string]bool{"": true}
	for _, r := range rs {
		switch r := r.(type) {
		case *Instance:
			set[r.Region] = true
		case *SecurityGroup:
			set[r.Region] = true
		case *KeyPair:
			set[r.Region] = true
		case *AMI:
			set[r.Region] = true
		case *ASG:
			set[r.Region] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// Owned lists everything graph owns in regions, in destroy order. The
// instances come from the region's last poll when there was one (no
// call), else from one tag-filtered DescribeInstances per 1,000.
func (e *Estate) Owned(ctx context.Context, graph string, regions []string) ([]engine.Owned, error) {
	seen := map[*awsapi.Hub]bool{}
	var out []engine.Owned
	for _, region := range regions {
		h, err := e.hubs.Hub(ctx, region)
		if err != nil {
			return nil, fmt.Errorf("list what graph %q owns: %w", graph, err)
		}
		if seen[h] {
			continue // "" and the default region by name
		}
		seen[h] = true
		first := len(seen) == 1
		for _, k := range estateKinds {
			if k.global && !first {
				continue
			}
			owned, err := k.list(ctx, e, h, graph)
			if err != nil {
				return nil, fmt.Errorf("list %s resources of graph %q in %s: %w", k.kind, graph, h.Region(), err)
			}
			for _, o := range owned {
				// Only the kind's own: an Auto Scaling group's members carry
				// its tags (kiln:resource = aws:asg/NAME), and a bake's
				// builder its image's; the group or the bake owns them.
				if !strings.HasPrefix(o.ID, k.kind+"/") {
					continue
				}
				o.Kind, o.Part, o.Region, o.Rank = k.kind, k.part, h.Region(), k.rank
				if k.global {
					o.Region = ""
				}
				out = append(out, o)
			}
		}
	}
	engine.SortOwned(out)
	return out, nil
}

// Destroy destroys owned in rank order: every thing of one rank is gone
// (or its destroy failed) before the next rank starts. It destroys only
// what is listed; it is idempotent (a thing already gone is no error).
func (e *Estate) Destroy(ctx context.Context, owned []engine.Owned) error {
	owned = slices.Clone(owned)
	engine.SortOwned(owned)
	byKind := map[[2]string]estateKind{}
	for _, k := range estateKinds {
		byKind[[2]string{k.kind, k.part}] = k
	}
	for len(owned) > 0 {
		rank := owned[0].Rank
		n := 0
		for n < len(owned) && owned[n].Rank == rank {
			n++
		}
		batch := owned[:n]
		owned = owned[n:]
		// One destroy call set per kind and region of this rank.
		type key struct{ kind, part, region string }
		refs := map[key][]string{}
		for _, o := range batch {
			k := key{o.Kind, o.Part, o.Region}
			refs[k] = append(refs[k], o.Ref)
		}
		var errs []error
		for _, k := range slices.SortedFunc(maps.Keys(refs), func(a, b key) int {
			return strings.Compare(a.kind+"/"+a.part+"/"+a.region, b.kind+"/"+b.part+"/"+b.region)
		}) {
			ek, ok := byKind[[2]string{k.kind, k.part}]
			if !ok {
				errs = append(errs, fmt.Errorf("destroy %s: kiln cannot destroy this kind", k.kind))
				continue
			}
			h, err := e.hubs.Hub(ctx, k.region)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if err := ek.destroy(ctx, e, h, refs[k]); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	return nil
}

// liveStates are the instance states a graph still owns.
var liveStates = []string{"pending", "running", "stopping", "stopped"}

func listInstances(ctx context.Context, _ *Estate, h *awsapi.Hub, graph string) ([]engine.Owned, error) {
	if polled, ok := h.PolledOwned(graph); ok {
		var out []engine.Owned
		for res, ids := range polled {
			for _, id := range ids {
				out = append(out, engine.Owned{ID: res, Ref: id})
			}
		}
		return out, nil
	}
	p := ec2.NewDescribeInstancesPaginator(h.EC2(), &ec2.DescribeInstancesInput{
		Filters:    append(ownerFilter(graph), types.Filter{Name: aws.String("instance-state-name"), Values: liveStates}),
		MaxResults: aws.Int32(1000),
	})
	return ownedPages(ctx, h, p.HasMorePages, p.NextPage, func(page *ec2.DescribeInstancesOutput) (out []engine.Owned) {
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				out = append(out, tagged(in.Tags, aws.ToString(in.InstanceId))...)
			}
		}
		return out
	})
}

// terminateInstances terminates ids, terminateBatch per call. It does not
// wait for them to be gone: a security group they hold waits in its own
// delete until they are.
func terminateInstances(ctx context.Context, e *Estate, h *awsapi.Hub, ids []string) error {
	for batch := range slices.Chunk(ids, terminateBatch) {
		err := h.Retry(ctx, func(ctx context.Context) error {
			_, err := h.EC2().TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: batch})
			if awsapi.IsNotFound(err) {
				return terminateEach(ctx, h, batch)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("terminate %d instances (%s...): %w", len(batch), batch[0], err)
		}
		e.log.Info("instances terminating", "count", len(batch), "first", batch[0])
	}
	return nil
}

// terminateEach terminates ids one by one when a batch named one that is
// gone (AWS refuses the whole call then); one already gone is fine.
func terminateEach(ctx context.Context, h *awsapi.Hub, ids []string) error {
	for _, id := range ids {
		_, err := h.EC2().TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
		if err != nil && !awsapi.IsNotFound(err) {
			return err
		}
	}
	return nil
}

func listSecurityGroups(ctx context.Context, _ *Estate, h *awsapi.Hub, graph string) ([]engine.Owned, error) {
	p := ec2.NewDescribeSecurityGroupsPaginator(h.EC2(), &ec2.DescribeSecurityGroupsInput{Filters: ownerFilter(graph)})
	return ownedPages(ctx, h, p.HasMorePages, p.NextPage, func(page *ec2.DescribeSecurityGroupsOutput) (out []engine.Owned) {
		for _, g := range page.SecurityGroups {
			out = append(out, tagged(g.Tags, aws.ToString(g.GroupId))...)
		}
		return out
	})
}

// deleteSecurityGroups deletes each group. A group still in use waits
// (the instances holding it are shutting down, or belong to the graph
// still), its error naming the instances that hold it.
func deleteSecurityGroups(ctx context.Context, e *Estate, h *awsapi.Hub, ids []string) error {
	var errs []error
	for _, id := range ids {
		err := h.Retry(ctx, func(ctx context.Context) error {
			_, err := h.EC2().DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(id)})
			switch {
			case awsapi.IsNotFound(err):
				return nil
			case awsapi.IsInUse(err):
				return awsapi.NotYet(fmt.Errorf("%w (held by %s)", err, groupHolders(ctx, h, id)))
			}
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("delete security group %s: %w", id, err))
			continue
		}
		e.log.Info("security group deleted", "group", id)
	}
	return errors.Join(errs...)
}

// groupHolders names the instances that hold group id, for an error.
func groupHolders(ctx context.Context, h *awsapi.Hub, id string) string {
	out, err := h.EC2().DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("instance.group-id"), Values: []string{id}},
		{Name: aws.String("instance-state-name"), Values: append(slices.Clone(liveStates), "shutting-down")},
	}})
	if err != nil {
		return "instances not known: " + err.Error()
	}
	var ids []string
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			ids = append(ids, aws.ToString(in.InstanceId))
		}
	}
	if len(ids) == 0 {
		return "another security group's rule"
	}
	return "the network interfaces of " + strings.Join(ids, ", ")
}

func listKeyPairs(ctx context.Context, _ *Estate, h *awsapi.Hub, graph string) ([]engine.Owned, error) {
	// DescribeKeyPairs answers in one page.
	p := onePage(func(ctx context.Context, opts ...func(*ec2.Options)) (*ec2.DescribeKeyPairsOutput, error) {
		return h.EC2().DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{Filters: ownerFilter(graph)}, opts...)
	})
	return ownedPages(ctx, h, p.more, p.next, func(page *ec2.DescribeKeyPairsOutput) (out []engine.Owned) {
		for _, kp := range page.KeyPairs {
			out = append(out, tagged(kp.Tags, aws.ToString(kp.KeyPairId))...)
		}
		return out
	})
}

func deleteKeyPairs(ctx context.Context, e *Estate, h *awsapi.Hub, ids []string) error {
	var errs []error
	for _, id := range ids {
		err := h.Retry(ctx, func(ctx context.Context) error {
			_, err := h.EC2().DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyPairId: aws.String(id)})
			if awsapi.IsNotFound(err) {
				return nil
			}
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("delete key pair %s: %w", id, err))
			continue
		}
		e.log.Info("key pair deleted", "key_pair", id)
	}
	return errors.Join(errs...)
}

func listASGs(ctx context.Context, e *Estate, h *awsapi.Hub, graph string) ([]engine.Owned, error) {
	as, err := e.hubs.AutoScaling(ctx, h.Region())
	if err != nil {
		return nil, err
	}
	p := autoscaling.NewDescribeAutoScalingGroupsPaginator(as, &autoscaling.DescribeAutoScalingGroupsInput{
		Filters: []astypes.Filter{{Name: aws.String("tag:" + awsapi.TagOwner), Values: []string{graph}}},
	})
	return ownedPages(ctx, h, p.HasMorePages, p.NextPage, func(page *autoscaling.DescribeAutoScalingGroupsOutput) (out []engine.Owned) {
		for _, g := range page.AutoScalingGroups {
			o := engine.Owned{Ref: aws.ToString(g.AutoScalingGroupName)}
			for _, t := range g.Tags {
				switch aws.ToString(t.Key) {
				case awsapi.TagResource:
					o.ID = aws.ToString(t.Value)
				case TagProtect:
					o.Protected = aws.ToString(t.Value) == "true"
				}
			}
			if o.ID != "" {
				out = append(out, o)
			}
		}
		return out
	})
}

// deleteASGs deletes each group with its instances (ForceDelete) and
// waits until it is gone, so its launch template can go next.
func deleteASGs(ctx context.Context, e *Estate, h *awsapi.Hub, names []string) error {
	as, err := e.hubs.AutoScaling(ctx, h.Region())
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		err := h.Retry(ctx, func(ctx context.Context) error {
			_, err := as.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{
				AutoScalingGroupName: aws.String(name), ForceDelete: aws.Bool(true)})
			if err != nil && awsapi.Code(err) == "ValidationError" {
				// Auto Scaling's answer for a group that is not there:
				// gone is done, anything else is the error.
				out, derr := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
				if derr == nil && len(out.AutoScalingGroups) == 0 {
					return nil
				}
			}
			return err
		})
		if err == nil {
			err = h.Await(ctx, "", func(ctx context.Context) (bool, error) {
				out, err := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
				return err == nil && len(out.AutoScalingGroups) == 0, err
			})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("delete Auto Scaling group %s: %w", name, err))
			continue
		}
		e.log.Info("Auto Scaling group deleted", "group", name)
	}
	return errors.Join(errs...)
}

func listLaunchTemplates(ctx context.Context, _ *Estate, h *awsapi.Hub, graph string) ([]engine.Owned, error) {
	p := ec2.NewDescribeLaunchTemplatesPaginator(h.EC2(), &ec2.DescribeLaunchTemplatesInput{Filters: ownerFilter(graph)})
	return ownedPages(ctx, h, p.HasMorePages, p.NextPage, func(page *ec2.DescribeLaunchTemplatesOutput) (out []engine.Owned) {
		for _, lt := range page.LaunchTemplates {
			out = append(out, tagged(lt.Tags, aws.ToString(lt.LaunchTemplateId))...)
		}
		return out
	})
}

func deleteLaunchTemplates(ctx context.Context, e *Estate, h *awsapi.Hub, ids []string) error {
	var errs []error
	for _, id := range ids {
		err := h.Retry(ctx, func(ctx context.Context) error {
			_, err := h.EC2().DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: aws.String(id)})
			if awsapi.IsNotFound(err) {
				return nil
			}
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("delete launch template %s: %w", id, err))
			continue
		}
		e.log.Info("launch template deleted", "launch_template", id)
	}
	return errors.Join(errs...)
}

// ownedPages pages a listing (an SDK paginator's HasMorePages and
// NextPage), each page with the hub's retries, and collects what each
// page owns (owned: its things that carry a kiln:resource tag). Every
// kind's listing has this shape; only the call and the page differ.
func ownedPages[T, O any](ctx context.Context, h *awsapi.Hub, more func() bool, next func(context.Context, ...func(O)) (T, error), owned func(T) []engine.Owned) ([]engine.Owned, error) {
	var out []engine.Owned
	for more() {
		var page T
		err := h.Retry(ctx, func(ctx context.Context) error {
			var err error
			page, err = next(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, owned(page)...)
	}
	return out, nil
}

// single is a listing of one page, for a call with no paginator.
type single[T, O any] struct {
	call func(context.Context, ...func(O)) (T, error)
	done bool
}

func onePage[T, O any](call func(context.Context, ...func(O)) (T, error)) *single[T, O] {
	return &single[T, O]{call: call}
}

func (s *single[T, O]) more() bool { return !s.done }

func (s *single[T, O]) next(ctx context.Context, opts ...func(O)) (T, error) {
	out, err := s.call(ctx, opts...)
	s.done = err == nil
	return out, err
}

// ownerFilter selects what carries graph's owner tag.
func ownerFilter(graph string) []types.Filter {
	return []types.Filter{{Name: aws.String("tag:" + awsapi.TagOwner), Values: []string{graph}}}
}

// tagged is the thing ref as owned, when its tags name a kiln resource.
func tagged(tags []types.Tag, ref string) []engine.Owned {
	if res := awsapi.TagValue(tags, awsapi.TagResource); res != "" {
		return []engine.Owned{{ID: res, Ref: ref, Protected: awsapi.TagValue(tags, TagProtect) == "true"}}
	}
	return nil
}
