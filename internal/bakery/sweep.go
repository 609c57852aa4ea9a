package bakery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/pipeline"
	"kiln/internal/store"
)

// Sweep terminates every builder of this bakery (tags kiln:role=builder,
// kiln:project and kiln:bakery = store.BakeryID, in the regions of the
// stored projects) whose bake is over or unknown to this database, and
// returns their ids. Builders of bakes still queued or running are left to
// their bake; builders of another bakery (another database, say a second
// server in the same account) and of aws:ami resources (no kiln:project
// tag) are not this bakery's. It blocks until the calls are made; Run calls
// it every SweepInterval on the bakery's leader (one server at a time).
func (s *Service) Sweep(ctx context.Context) ([]string, error) {
	projects, err := s.store.Projects(ctx)
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	var regions []string
	for _, p := range projects {
		if p.Region != "" && !slices.Contains(regions, p.Region) {
			regions = append(regions, p.Region)
		}
	}
	var swept []string
	var errs []error
	for _, region := range regions {
		ids, err := s.sweepRegion(ctx, region)
		swept = append(swept, ids...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return swept, errors.Join(errs...)
}

func (s *Service) sweepRegion(ctx context.Context, region string) ([]string, error) {
	builders, err := s.pipe.Builders(ctx, region,
		types.Filter{Name: aws.String("tag-key"), Values: []string{pipeline.TagProject}},
		types.Filter{Name: aws.String("tag:" + pipeline.TagBakery), Values: []string{s.store.BakeryID()}})
	if err != nil {
		return nil, fmt.Errorf("sweep %s: %w", region, err)
	}
	var doomed []string
	for _, in := range builders {
		id := aws.ToString(in.InstanceId)
		bakeID, perr := strconv.ParseInt(awsapi.TagValue(in.Tags, awsapi.TagBake), 10, 64)
		if perr != nil {
			doomed = append(doomed, id) // a builder of no bake kiln can know
			continue
		}
		b, err := s.store.Bake(ctx, bakeID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			doomed = append(doomed, id)
		case err != nil:
			return nil, fmt.Errorf("sweep %s: %w", region, err)
		case b.State.Final() || b.Project != awsapi.TagValue(in.Tags, pipeline.TagProject):
			doomed = append(doomed, id)
		}
	}
	if len(doomed) == 0 {
		return nil, nil
	}
	if err := s.pipe.Terminate(ctx, region, doomed); err != nil {
		return nil, fmt.Errorf("sweep %s: %w", region, err)
	}
	s.log.Info("sweeper terminated builders", "region", region, "instances", doomed)
	return doomed, nil
}
