package awsapi

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
)

// clients caches one client of each service per Hubs and region. (Hubs
// has no field for them; this keeps the addition in a file of its own.)
var clients sync.Map // clientKey → the client

type clientKey struct {
	hs      *Hubs
	service string
	region  string
}

// client returns the service's client of region ("" = the default
// region), made by mk from the hubs' configuration (credentials, retryer,
// endpoint) on first use and shared by every caller.
func client[C any](ctx context.Context, hs *Hubs, service, region string, mk func(cfg aws.Config, region string) C) (C, error) {
	var zero C
	if region == "" {
		r, err := hs.DefaultRegion(ctx)
		if err != nil {
			return zero, err
		}
		region = r
	}
	k := clientKey{hs, service, region}
	if c, ok := clients.Load(k); ok {
		return c.(C), nil
	}
	cfg, err := hs.config(ctx)
	if err != nil {
		return zero, err
	}
	got, _ := clients.LoadOrStore(k, mk(cfg, region))
	return got.(C), nil
}

// AutoScaling returns the Auto Scaling client of region ("" = the default
// region), built from the same configuration, credentials and retryer as
// the hubs' EC2 clients, and shared by every caller.
func (hs *Hubs) AutoScaling(ctx context.Context, region string) (*autoscaling.Client, error) {
	return client(ctx, hs, "autoscaling", region, func(cfg aws.Config, region string) *autoscaling.Client {
		return autoscaling.NewFromConfig(cfg, func(o *autoscaling.Options) { o.Region = region })
	})
}
