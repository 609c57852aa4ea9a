package awsres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"kiln/internal/awsapi"
)

// imagesAPI is what the aws:ami data source calls.
type imagesAPI interface {
	DescribeImages(context.Context, *ec2.DescribeImagesInput, ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
}

// parameterAPI is what the aws:ssm_parameter data source calls.
type parameterAPI interface {
	GetParameter(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// DataReader reads the AWS data sources of HCL graphs: aws:ami (the image
// an owner and name pattern resolve to) and aws:ssm_parameter (a
// Parameter Store value). Each read is one call (DescribeImages, paginated,
// or GetParameter).
type DataReader struct {
	Hubs *awsapi.Hubs
}

// ReadData reads one data source. args are the block's arguments; an
// unknown or missing one is an error naming it.
func (d *DataReader) ReadData(ctx context.Context, kind string, args map[string]string) (map[string]string, []string, error) {
	switch kind {
	case "aws:ami":
		if err := checkArgs(args, []string{"owner", "name"}, []string{"region", "architecture", "most_recent"}); err != nil {
			return nil, nil, err
		}
		h, err := d.Hubs.Hub(ctx, args["region"])
		if err != nil {
			return nil, nil, err
		}
		out, err := readImage(ctx, h.EC2(), args)
		return out, nil, err
	case "aws:ssm_parameter":
		if err := checkArgs(args, []string{"name"}, []string{"region"}); err != nil {
			return nil, nil, err
		}
		c, err := d.Hubs.SSM(ctx, args["region"])
		if err != nil {
			return nil, nil, err
		}
		return readParameter(ctx, c, args["name"])
	}
	return nil, nil, fmt.Errorf("unknown data source kind %q", kind)
}

func checkArgs(args map[string]string, required, optional []string) error {
	var errs []error
	for _, r := range required {
		if args[r] == "" {
			errs = append(errs, fmt.Errorf("%s: required", r))
		}
	}
	for k := range args {
		if !slices.Contains(required, k) && !slices.Contains(optional, k) {
			errs = append(errs, fmt.Errorf("unknown argument %q (want %v)", k, append(slices.Clone(required), optional...)))
		}
	}
	return errors.Join(errs...)
}

// readImage finds the available images of the owner matching the name
// (and architecture); several match only with most_recent = true, which
// picks the newest.
func readImage(ctx context.Context, api imagesAPI, args map[string]string) (map[string]string, error) {
	mostRecent := false
	if s, ok := args["most_recent"]; ok {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("most_recent: want true or false, got %q", s)
		}
		mostRecent = b
	}
	in := &ec2.DescribeImagesInput{
		Owners: []string{args["owner"]},
		Filters: []types.Filter{
			{Name: aws.String("name"), Values: []string{args["name"]}},
			{Name: aws.String("state"), Values: []string{string(types.ImageStateAvailable)}},
		},
	}
	if a := args["architecture"]; a != "" {
		in.Filters = append(in.Filters, types.Filter{Name: aws.String("architecture"), Values: []string{a}})
	}
	var imgs []types.Image
	p := ec2.NewDescribeImagesPaginator(api, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe images %s/%s: %w", args["owner"], args["name"], awsapi.Classify(err))
		}
		imgs = append(imgs, out.Images...)
	}
	switch {
	case len(imgs) == 0:
		return nil, fmt.Errorf("no available image of owner %s matches %q", args["owner"], args["name"])
	case len(imgs) > 1 && !mostRecent:
		return nil, fmt.Errorf("%d images of owner %s match %q (set most_recent = true to take the newest)", len(imgs), args["owner"], args["name"])
	}
	newest := slices.MaxFunc(imgs, func(a, b types.Image) int {
		return cmpStr(aws.ToString(a.CreationDate), aws.ToString(b.CreationDate))
	})
	return map[string]string{
		"image_id":      aws.ToString(newest.ImageId),
		"name":          aws.ToString(newest.Name),
		"creation_date": aws.ToString(newest.CreationDate),
	}, nil
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readParameter reads a parameter (decrypted); a SecureString's value is
// secret.
func readParameter(ctx context.Context, api parameterAPI, name string) (map[string]string, []string, error) {
	out, err := api.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if err != nil {
		return nil, nil, fmt.Errorf("get parameter %s: %w", name, awsapi.Classify(err))
	}
	p := out.Parameter
	attrs := map[string]string{"value": aws.ToString(p.Value), "version": strconv.FormatInt(p.Version, 10)}
	var secret []string
	if p.Type == ssmtypes.ParameterTypeSecureString {
		secret = []string{"value"}
	}
	return attrs, secret, nil
}
