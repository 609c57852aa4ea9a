package awsapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/engine"
)

// ErrArchMismatch: the image's architecture is not one the instance type
// runs. EC2 would refuse the launch (InvalidParameterValue); kiln says so
// before asking, naming both. Returned engine.Permanent.
var ErrArchMismatch = errors.New("architecture mismatch")

// archCache remembers the architectures of instance types and images: an
// AMI id's architecture never changes, nor does a type's, so each is asked
// for once per process and region, however many resources ask at once
// (a cold start of a thousand instances makes one call, not a thousand).
type archCache struct {
	mu      sync.Mutex
	entries map[string]*archEntry // "type:" or "image:" + name
}

type archEntry struct {
	done  chan struct{} // closed once archs and err are set
	archs []string
	err   error
}

// get returns the cached answer for key, or loads it with load; concurrent
// callers wait for the one load. A failed load is forgotten, so the next
// caller asks again.
func (c *archCache) get(ctx context.Context, key string, load func(ctx context.Context) ([]string, error)) ([]string, error) {
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]*archEntry{}
	}
	e, ok := c.entries[key]
	if !ok {
		e = &archEntry{done: make(chan struct{})}
		c.entries[key] = e
	}
	c.mu.Unlock()
	if ok {
		select {
		case <-e.done:
			if e.err == nil {
				return e.archs, nil
			}
			return c.get(ctx, key, load) // the failed load was forgotten: ask again
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	e.archs, e.err = load(ctx)
	if e.err != nil {
		c.mu.Lock()
		delete(c.entries, key)
		c.mu.Unlock()
	}
	close(e.done)
	return e.archs, e.err
}

// TypeArchitectures returns the architectures instance type itype runs
// ("x86_64", "arm64", "i386"), from DescribeInstanceTypes, asked once. An
// unknown type is a permanent error.
func (h *Hub) TypeArchitectures(ctx context.Context, itype string) ([]string, error) {
	return h.arch.get(ctx, "type:"+itype, func(ctx context.Context) ([]string, error) {
		var archs []string
		err := h.Retry(ctx, func(ctx context.Context) error {
			out, err := h.ec2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{types.InstanceType(itype)}})
			if err != nil {
				return Classify(err, "InvalidInstanceType", "InvalidParameterValue")
			}
			archs = nil
			for _, t := range out.InstanceTypes {
				if string(t.InstanceType) == itype && t.ProcessorInfo != nil {
					for _, a := range t.ProcessorInfo.SupportedArchitectures {
						archs = append(archs, string(a))
					}
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("describe instance type %s: %w", itype, err)
		}
		if len(archs) == 0 {
			return nil, engine.Permanent(fmt.Errorf("instance type %s: not offered in %s", itype, h.region))
		}
		return archs, nil
	})
}

// ImageArchitecture returns the architecture of image id, from
// DescribeImages, asked once. An image that does not exist is a permanent
// error (kiln launches only images it has seen available or the user
// typed; see launchErrors).
func (h *Hub) ImageArchitecture(ctx context.Context, id string) (string, error) {
	archs, err := h.arch.get(ctx, "image:"+id, func(ctx context.Context) ([]string, error) {
		var arch string
		err := h.Retry(ctx, func(ctx context.Context) error {
			out, err := h.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
			if err != nil {
				return Classify(err, PermanentLaunchCodes()...)
			}
			for _, im := range out.Images {
				if aws.ToString(im.ImageId) == id {
					arch = string(im.Architecture)
					return nil
				}
			}
			return engine.Permanent(fmt.Errorf("image %s: no such image", id))
		})
		if err != nil {
			return nil, fmt.Errorf("describe image %s: %w", id, err)
		}
		return []string{arch}, nil
	})
	if err != nil {
		return "", err
	}
	return archs[0], nil
}

// RememberImageArchitecture records what a caller read of an image
// elsewhere (a base image resolved with DescribeImages), so that a check
// of it costs no call.
func (h *Hub) RememberImageArchitecture(id, arch string) {
	_, _ = h.arch.get(context.Background(), "image:"+id, func(context.Context) ([]string, error) { return []string{arch}, nil })
}

// CheckArchitecture returns nil when instance type itype runs image's
// architecture, else an engine.Permanent error wrapping ErrArchMismatch
// that names both. It costs a DescribeImages and a DescribeInstanceTypes
// the first time it sees the image or the type, nothing after.
func (h *Hub) CheckArchitecture(ctx context.Context, image, itype string) error {
	archs, err := h.TypeArchitectures(ctx, itype)
	if err != nil {
		return err
	}
	if image == engine.KnownAfterApply {
		return nil // a check-only pass: the image is not made yet
	}
	arch, err := h.ImageArchitecture(ctx, image)
	if err != nil {
		return err
	}
	return ArchMismatch(image, arch, itype, archs)
}

// ArchMismatch is nil when archs (what instance type itype runs) hold arch
// (image's architecture; "" is not known, and passes), else the permanent
// error wrapping ErrArchMismatch that names both.
func ArchMismatch(image, arch, itype string, archs []string) error {
	if arch == "" || slices.Contains(archs, arch) {
		return nil
	}
	return engine.Permanent(fmt.Errorf("%w: image %s is %s, but instance type %s runs %s: choose an image and a type of the same architecture",
		ErrArchMismatch, image, arch, itype, strings.Join(archs, " or ")))
}
