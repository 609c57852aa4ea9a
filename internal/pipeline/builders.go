package pipeline

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
)

// liveStates are the states of a builder that still runs or could run again.
var liveStates = []string{"pending", "running", "stopping", "stopped"}

// Builders lists the live builders in region (tag kiln:role=builder, or
// tester for a bake's test instance; not
// terminated or shutting down) that match filters as well. It blocks until
// the listing is complete (one paginated DescribeInstances).
func (p *Pipeline) Builders(ctx context.Context, region string, filters ...types.Filter) ([]types.Instance, error) {
	h, err := p.hubs.Hub(ctx, region)
	if err != nil {
		return nil, err
	}
	fs := append([]types.Filter{
		{Name: aws.String("tag:" + TagRole), Values: []string{roleBuilder, roleTester}},
		{Name: aws.String("instance-state-name"), Values: liveStates},
	}, filters...)
	var builders []types.Instance
	err = h.Retry(ctx, func(ctx context.Context) error {
		builders = builders[:0]
		pg := ec2.NewDescribeInstancesPaginator(h.EC2(), &ec2.DescribeInstancesInput{Filters: fs, MaxResults: aws.Int32(1000)})
		for pg.HasMorePages() {
			page, err := pg.NextPage(ctx)
			if err != nil {
				return err
			}
			for _, res := range page.Reservations {
				builders = append(builders, res.Instances...)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list builders in %s: %w", h.Region(), err)
	}
	return builders, nil
}

// Terminate terminates the instances ids in region, 1,000 a call. An id
// already gone is not an error. It blocks until the calls are made, not
// until the instances are gone.
func (p *Pipeline) Terminate(ctx context.Context, region string, ids []string) error {
	h, err := p.hubs.Hub(ctx, region)
	if err != nil {
		return err
	}
	for chunk := range slices.Chunk(ids, 1000) {
		err := h.Retry(ctx, func(ctx context.Context) error {
			_, err := h.EC2().TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: chunk})
			if awsapi.IsNotFound(err) {
				return awsapi.NotYet(err) // a new id not visible yet
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("terminate builders in %s: %w", h.Region(), err)
		}
	}
	return nil
}

// SweepGraph terminates the live builders of aws:ami resources of graph in
// region whose resource is not among keep (the aws:ami ids of the graph as
// it is now): what a kiln run that was killed mid-bake, or a graph that
// dropped the resource, left behind. Builders of bakery projects (tag
// kiln:project) are the bakery's. It returns the terminated ids.
func (p *Pipeline) SweepGraph(ctx context.Context, region, graph string, keep map[string]bool) ([]string, error) {
	builders, err := p.Builders(ctx, region, types.Filter{Name: aws.String("tag:" + awsapi.TagOwner), Values: []string{graph}})
	if err != nil {
		return nil, err
	}
	var doomed []string
	for _, in := range builders {
		if awsapi.TagValue(in.Tags, TagProject) == "" && !keep[awsapi.TagValue(in.Tags, awsapi.TagResource)] {
			doomed = append(doomed, aws.ToString(in.InstanceId))
		}
	}
	if len(doomed) == 0 {
		return nil, nil
	}
	if err := p.Terminate(ctx, region, doomed); err != nil {
		return nil, err
	}
	p.log.Info("terminated builders no resource of the graph owns", "region", region, "graph", graph, "instances", doomed)
	return doomed, nil
}
