package pipeline

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
)

// RemoveImage deregisters img and deletes its snapshots, as retention
// does: prune and kiln destroy remove an aws:ami's images with it. It is
// idempotent (an image or snapshot already gone is no error) and blocks
// until done.
func RemoveImage(ctx context.Context, h *awsapi.Hub, img types.Image) error {
	return removeImage(ctx, h, h.EC2(), img)
}

// ImagesInUse returns which of ids are in use, by retention's rule: named
// by an instance that is not terminated (shutting-down counts) or by a
// launch-template version an Auto Scaling group uses.
func ImagesInUse(ctx context.Context, hubs *awsapi.Hubs, h *awsapi.Hub, ids []string) (map[string]bool, error) {
	return imagesInUse(ctx, hubs, h, h.EC2(), ids)
}
