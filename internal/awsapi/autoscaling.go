package awsapi

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
)

// asClients caches one Auto Scaling client per Hubs and region. (Hubs has
// no field for it; this keeps the addition in a file of its own.)
var asClients sync.Map // asKey → *autoscaling.Client

type asKey struct {
	hs     *Hubs
	region string
}

// AutoScaling returns the Auto Scaling client of region ("" = the default
// region), built from the same configuration, credentials and retryer as
// the hubs' EC2 clients, and shared by every caller.
func (hs *Hubs) AutoScaling(ctx context.Context, region string) (*autoscaling.Client, error) {
	if region == "" {
		r, err := hs.DefaultRegion(ctx)
		if err != nil {
			return nil, err
		}
		region = r
	}
	k := asKey{hs, region}
	if c, ok := asClients.Load(k); ok {
		return c.(*autoscaling.Client), nil
	}
	cfg, err := hs.config(ctx)
	if err != nil {
		return nil, err
	}
	c := autoscaling.NewFromConfig(cfg, func(o *autoscaling.Options) { o.Region = region })
	got, _ := asClients.LoadOrStore(k, c)
	return got.(*autoscaling.Client), nil
}
