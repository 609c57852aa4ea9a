package awsres

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
)

// templateAPI is what aws:asg and RollOut call on EC2: *ec2.Client
// satisfies it.
type templateAPI interface {
	DescribeLaunchTemplates(context.Context, *ec2.DescribeLaunchTemplatesInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
	DescribeLaunchTemplateVersions(context.Context, *ec2.DescribeLaunchTemplateVersionsInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error)
	CreateLaunchTemplate(context.Context, *ec2.CreateLaunchTemplateInput, ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateOutput, error)
	CreateLaunchTemplateVersion(context.Context, *ec2.CreateLaunchTemplateVersionInput, ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateVersionOutput, error)
	DescribeSubnets(context.Context, *ec2.DescribeSubnetsInput, ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
	CreateTags(context.Context, *ec2.CreateTagsInput, ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
}

var ltNameBad = regexp.MustCompile(`[^A-Za-z0-9().\-/_]`)

// templateName is the launch template's name: kiln-<graph>-<name>.
func (r *ASG) templateName() string {
	n := "kiln-" + r.env.Name
	if r.env.Graph != "" {
		n = "kiln-" + r.env.Graph + "-" + r.env.Name
	}
	n = ltNameBad.ReplaceAllString(n, "_")
	if len(n) > 128 {
		n = n[:128]
	}
	return n
}

// templateData is the launch-template data the spec asks for.
func (r *ASG) templateData() *types.RequestLaunchTemplateData {
	d := &types.RequestLaunchTemplateData{
		ImageId:      aws.String(r.Image),
		InstanceType: types.InstanceType(r.Type),
	}
	if r.UserData != "" {
		d.UserData = aws.String(base64.StdEncoding.EncodeToString([]byte(r.UserData)))
	}
	if len(r.SecurityGroups) > 0 {
		d.SecurityGroupIds = slices.Clone(r.SecurityGroups)
	}
	if r.IAMProfile != "" {
		d.IamInstanceProfile = &types.LaunchTemplateIamInstanceProfileSpecificationRequest{}
		if strings.HasPrefix(r.IAMProfile, "arn:") {
			d.IamInstanceProfile.Arn = aws.String(r.IAMProfile)
		} else {
			d.IamInstanceProfile.Name = aws.String(r.IAMProfile)
		}
	}
	return d
}

// profileOf is a version's instance profile as the spec names it: its
// ARN when the spec gives an ARN, else its name.
func profileOf(v *types.ResponseLaunchTemplateData, byARN bool) string {
	if v.IamInstanceProfile == nil {
		return ""
	}
	if byARN {
		return aws.ToString(v.IamInstanceProfile.Arn)
	}
	return aws.ToString(v.IamInstanceProfile.Name)
}

// matches reports whether a version's data is what the spec asks for.
func (r *ASG) matches(v *types.ResponseLaunchTemplateData) bool {
	if v == nil {
		return false
	}
	want := r.templateData()
	return aws.ToString(v.ImageId) == aws.ToString(want.ImageId) &&
		v.InstanceType == want.InstanceType &&
		aws.ToString(v.UserData) == aws.ToString(want.UserData) &&
		sameSet(v.SecurityGroupIds, want.SecurityGroupIds) &&
		profileOf(v, strings.HasPrefix(r.IAMProfile, "arn:")) == r.IAMProfile
}

func sameSet(a, b []string) bool {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}

func token(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return "kiln-" + hex.EncodeToString(sum[:16])
}

// template finds the launch template kept for the group and returns its id
// and the number of a version with the spec's data (0 and "" when check
// only and there is none yet), creating the template or a new version when
// apply is set. A new version is made only when neither the latest version
// nor one the group g uses (a hand change pointed it elsewhere) matches.
func (r *ASG) template(ctx context.Context, apply bool, g *astypes.AutoScalingGroup) (id string, version int64, changed bool, err error) {
	var lt *types.LaunchTemplate
	err = r.hub.Retry(ctx, func(ctx context.Context) error {
		out, err := r.ec.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{Filters: []types.Filter{
			{Name: aws.String("tag:" + awsapi.TagOwner), Values: []string{r.env.Graph}},
			{Name: aws.String("tag:" + awsapi.TagResource), Values: []string{r.id()}},
		}})
		if err != nil {
			return err
		}
		if len(out.LaunchTemplates) > 0 {
			lt = &out.LaunchTemplates[0]
		}
		return nil
	})
	if err != nil {
		return "", 0, false, fmt.Errorf("find launch template of aws:asg %q: %w", r.env.Name, err)
	}
	if lt == nil {
		if !apply {
			r.log().Info("would create launch template", "name", r.templateName())
			return "", 0, true, nil
		}
		tags := []types.Tag{
			{Key: aws.String(awsapi.TagOwner), Value: aws.String(r.env.Graph)},
			{Key: aws.String(awsapi.TagResource), Value: aws.String(r.id())},
		}
		var out *ec2.CreateLaunchTemplateOutput
		err = r.hub.Retry(ctx, func(ctx context.Context) error {
			var err error
			out, err = r.ec.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
				LaunchTemplateName: aws.String(r.templateName()),
				LaunchTemplateData: r.templateData(),
				ClientToken:        aws.String(token("lt", r.env.Graph, r.id())),
				TagSpecifications:  []types.TagSpecification{{ResourceType: types.ResourceTypeLaunchTemplate, Tags: tags}},
			})
			return err
		})
		if err != nil {
			return "", 0, false, fmt.Errorf("create launch template of aws:asg %q: %w", r.env.Name, awsapi.Classify(err, "InvalidLaunchTemplateName.AlreadyExistsException", "InvalidAMIID.NotFound", "InvalidAMIID.Malformed"))
		}
		id := aws.ToString(out.LaunchTemplate.LaunchTemplateId)
		r.log().Info("launch template created", "id", id)
		return id, aws.ToInt64(out.LaunchTemplate.LatestVersionNumber), true, nil
	}
	id = aws.ToString(lt.LaunchTemplateId)
	r.recallFailure(lt.Tags)
	also := versionsInUse(g, id)
	for _, v := range r.Reuse {
		if _, err := strconv.ParseInt(v, 10, 64); err == nil && !slices.Contains(also, v) {
			also = append(also, v)
		}
	}
	v, changed, err := ensureVersion(ctx, r.hub, r.ec, id, also, r.matches, r.templateData(), nil, apply, r.log())
	if err != nil {
		return "", 0, false, fmt.Errorf("aws:asg %q: %w", r.env.Name, err)
	}
	return id, v, changed, nil
}

// versionsInUse are the numbered versions of template id that group g and
// its live instances use.
func versionsInUse(g *astypes.AutoScalingGroup, id string) []string {
	if g == nil {
		return nil
	}
	var vs []string
	add := func(lt *astypes.LaunchTemplateSpecification) {
		if lt == nil || aws.ToString(lt.LaunchTemplateId) != id {
			return
		}
		v := aws.ToString(lt.Version)
		if _, err := strconv.ParseInt(v, 10, 64); err == nil && !slices.Contains(vs, v) {
			vs = append(vs, v)
		}
	}
	add(g.LaunchTemplate)
	for _, in := range g.Instances {
		if live(in) {
			add(in.LaunchTemplate)
		}
	}
	return vs
}

// ensureVersion returns the number of a version of template id whose data
// ok accepts: the latest, else the highest of also (versions in use), else
// a new version with data (from source when set: only data's fields
// change). Check only, it returns 0 and changed instead of creating.
func ensureVersion(ctx context.Context, hub *awsapi.Hub, ec templateAPI, id string, also []string, ok func(*types.ResponseLaunchTemplateData) bool,
	data *types.RequestLaunchTemplateData, source *int64, apply bool, log *slog.Logger) (int64, bool, error) {
	var vs []types.LaunchTemplateVersion
	err := hub.Retry(ctx, func(ctx context.Context) error {
		out, err := ec.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(id), Versions: append([]string{"$Latest"}, also...)})
		if err != nil {
			return err
		}
		if len(out.LaunchTemplateVersions) == 0 {
			return awsapi.NotYet(fmt.Errorf("launch template %s has no versions", id))
		}
		vs = out.LaunchTemplateVersions
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("describe launch template %s versions: %w", id, err)
	}
	slices.SortFunc(vs, func(a, b types.LaunchTemplateVersion) int {
		return int(aws.ToInt64(b.VersionNumber) - aws.ToInt64(a.VersionNumber))
	})
	latest := aws.ToInt64(vs[0].VersionNumber)
	for _, v := range vs {
		if ok(v.LaunchTemplateData) {
			return aws.ToInt64(v.VersionNumber), false, nil
		}
	}
	if !apply {
		log.Info("would create launch template version", "template", id, "after", latest)
		return 0, true, nil
	}
	in := &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId:   aws.String(id),
		LaunchTemplateData: data,
		ClientToken:        aws.String(token("ltv", id, strconv.FormatInt(latest, 10), versionKey(data))),
	}
	if source != nil {
		in.SourceVersion = aws.String(strconv.FormatInt(*source, 10))
	}
	var out *ec2.CreateLaunchTemplateVersionOutput
	err = hub.Retry(ctx, func(ctx context.Context) error {
		var err error
		out, err = ec.CreateLaunchTemplateVersion(ctx, in)
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("create launch template %s version: %w", id, awsapi.Classify(err, "InvalidAMIID.NotFound", "InvalidAMIID.Malformed"))
	}
	v := aws.ToInt64(out.LaunchTemplateVersion.VersionNumber)
	log.Info("launch template version created", "template", id, "version", v)
	return v, true, nil
}

// versionKey sums up a version's data for its client token (the instance
// profile only when set, so that tokens of versions without one stay as
// they were).
func versionKey(data *types.RequestLaunchTemplateData) string {
	k := fmt.Sprint(aws.ToString(data.ImageId), data.InstanceType, aws.ToString(data.UserData), data.SecurityGroupIds)
	if p := data.IamInstanceProfile; p != nil {
		k += " profile=" + aws.ToString(p.Name) + aws.ToString(p.Arn)
	}
	return k
}
