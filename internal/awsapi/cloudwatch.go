package awsapi

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
)

// CloudWatch returns the CloudWatch client of region ("" = the default
// region), built from the hubs' configuration, credentials and retryer,
// and shared by every caller (alarm gates read alarms with it).
func (hs *Hubs) CloudWatch(ctx context.Context, region string) (*cloudwatch.Client, error) {
	return client(ctx, hs, "cloudwatch", region, func(cfg aws.Config, region string) *cloudwatch.Client {
		return cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) { o.Region = region })
	})
}
