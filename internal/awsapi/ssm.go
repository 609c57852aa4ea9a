package awsapi

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// ssmClients caches one SSM client per Hubs and region, as asClients does
// for Auto Scaling.
var ssmClients sync.Map // asKey → *ssm.Client

// SSM returns the Systems Manager (Parameter Store) client of region (""
// = the default region), built from the hubs' configuration, credentials
// and retryer, and shared by every caller.
func (hs *Hubs) SSM(ctx context.Context, region string) (*ssm.Client, error) {
	if region == "" {
		r, err := hs.DefaultRegion(ctx)
		if err != nil {
			return nil, err
		}
		region = r
	}
	k := asKey{hs, region}
	if c, ok := ssmClients.Load(k); ok {
		return c.(*ssm.Client), nil
	}
	cfg, err := hs.config(ctx)
	if err != nil {
		return nil, err
	}
	c := ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.Region = region })
	got, _ := ssmClients.LoadOrStore(k, c)
	return got.(*ssm.Client), nil
}
