package awsapi

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// SSM returns the Systems Manager (Parameter Store) client of region (""
// = the default region), built from the hubs' configuration, credentials
// and retryer, and shared by every caller.
func (hs *Hubs) SSM(ctx context.Context, region string) (*ssm.Client, error) {
	return client(ctx, hs, "ssm", region, func(cfg aws.Config, region string) *ssm.Client {
		return ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.Region = region })
	})
}
