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
	rankInstance       = 10 // instances use groups, key pairs and images
	rankASG            = 10 // so does a group's every member
	rankLaunchTemplate = 20 // after its group
	rankSecurityGroup  = 30
	rankKeyPair        = 30
)

// terminateBatch is how many instance ids one TerminateInstances call
// carries: one call per 1,000 orphans, not one each.
const terminateBatch = 1000

// estateKind is one kind's part of the estate: how to list what a graph
// owns in a region, and how to destroy some of it.
type estateKind struct {
	kind, part string
	rank       int
	list       func(ctx context.Context, e *Estate, h *awsapi.Hub, graph string) ([]engine.Owned, error)
	destroy    func(ctx context.Context, e *Estate, h *awsapi.Hub, refs []string) error
}

var estateKinds = []estateKind{
	{"aws:ec2", "", rankInstance, listInstances, terminateInstances},
	{"aws:asg", "", rankASG, listASGs, deleteASGs},
	{"aws:asg", "launch template", rankLaunchTemplate, listLaunchTemplates, deleteLaunchTemplates},
	{"aws:security_group", "", rankSecurityGroup, listSecurityGroups, deleteSecurityGroups},
	{"aws:key_pair", "", rankKeyPair, listKeyPairs, deleteKeyPairs},
}

// Estate lists and destroys what a graph owns in AWS, found by its tags.
type Estate struct {
	hubs *awsapi.Hubs
	log  *slog.Logger
	// kinds, when set, limits Owned to these kinds: orphans are looked
	// for only among the kinds a graph uses, so watching a graph makes no
	// call (and needs no permission) for kinds it never declared. Destroy
	// lists every kind.
	kinds map[string]bool
}

// OnlyKinds limits what Owned lists to kinds and returns e.
func (e *Estate) OnlyKinds(kinds []string) *Estate {
	e.kinds = map[string]bool{}
	for _, k := range kinds {
		e.kinds[k] = true
	}
	return e
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
		for _, k := range estateKinds {
			if e.kinds != nil && !e.kinds[k.kind] {
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
	var out []engine.Owned
	p := ec2.NewDescribeInstancesPaginator(h.EC2(), &ec2.DescribeInstancesInput{
		Filters: []types.Filter{
			{Name: aws.String("tag:" + awsapi.TagOwner), Values: []string{graph}},
			{Name: aws.String("instance-state-name"), Values: liveStates},
		},
		MaxResults: aws.Int32(1000),
	})
	for p.HasMorePages() {
		var page *ec2.DescribeInstancesOutput
		err := h.Retry(ctx, func(ctx context.Context) error {
			var err error
			page, err = p.NextPage(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				if res := awsapi.TagValue(in.Tags, awsapi.TagResource); res != "" {
					out = append(out, engine.Owned{ID: res, Ref: aws.ToString(in.InstanceId)})
				}
			}
		}
	}
	return out, nil
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
	var out []engine.Owned
	p := ec2.NewDescribeSecurityGroupsPaginator(h.EC2(), &ec2.DescribeSecurityGroupsInput{
		Filters: []types.Filter{{Name: aws.String("tag:" + awsapi.TagOwner), Values: []string{graph}}},
	})
	for p.HasMorePages() {
		var page *ec2.DescribeSecurityGroupsOutput
		err := h.Retry(ctx, func(ctx context.Context) error {
			var err error
			page, err = p.NextPage(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, g := range page.SecurityGroups {
			if res := awsapi.TagValue(g.Tags, awsapi.TagResource); res != "" {
				out = append(out, engine.Owned{ID: res, Ref: aws.ToString(g.GroupId)})
			}
		}
	}
	return out, nil
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
	var out []engine.Owned
	err := h.Retry(ctx, func(ctx context.Context) error {
		page, err := h.EC2().DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{
			Filters: []types.Filter{{Name: aws.String("tag:" + awsapi.TagOwner), Values: []string{graph}}},
		})
		if err != nil {
			return err
		}
		out = out[:0]
		for _, kp := range page.KeyPairs {
			if res := awsapi.TagValue(kp.Tags, awsapi.TagResource); res != "" {
				out = append(out, engine.Owned{ID: res, Ref: aws.ToString(kp.KeyPairId)})
			}
		}
		return nil
	})
	return out, err
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
	var out []engine.Owned
	p := autoscaling.NewDescribeAutoScalingGroupsPaginator(as, &autoscaling.DescribeAutoScalingGroupsInput{
		Filters: []astypes.Filter{{Name: aws.String("tag:" + awsapi.TagOwner), Values: []string{graph}}},
	})
	for p.HasMorePages() {
		var page *autoscaling.DescribeAutoScalingGroupsOutput
		err := h.Retry(ctx, func(ctx context.Context) error {
			var err error
			page, err = p.NextPage(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, g := range page.AutoScalingGroups {
			for _, t := range g.Tags {
				if aws.ToString(t.Key) == awsapi.TagResource {
					out = append(out, engine.Owned{ID: aws.ToString(t.Value), Ref: aws.ToString(g.AutoScalingGroupName)})
				}
			}
		}
	}
	return out, nil
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
	var out []engine.Owned
	p := ec2.NewDescribeLaunchTemplatesPaginator(h.EC2(), &ec2.DescribeLaunchTemplatesInput{
		Filters: []types.Filter{{Name: aws.String("tag:" + awsapi.TagOwner), Values: []string{graph}}},
	})
	for p.HasMorePages() {
		var page *ec2.DescribeLaunchTemplatesOutput
		err := h.Retry(ctx, func(ctx context.Context) error {
			var err error
			page, err = p.NextPage(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, lt := range page.LaunchTemplates {
			if res := awsapi.TagValue(lt.Tags, awsapi.TagResource); res != "" {
				out = append(out, engine.Owned{ID: res, Ref: aws.ToString(lt.LaunchTemplateId)})
			}
		}
	}
	return out, nil
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
