package awssim

import (
	"encoding/base64"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestLaunchTemplateVersions(t *testing.T) {
	s, c := newTestSim(t, Options{})
	ctx := t.Context()
	ami := baseImage(t, c)
	ud := base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho hello\n"))
	in := &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("web"),
		ClientToken:        aws.String("tok-1"),
		VersionDescription: aws.String("first"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{
			ImageId: aws.String(ami), InstanceType: types.InstanceTypeT3Micro, UserData: aws.String(ud),
			TagSpecifications: []types.LaunchTemplateTagSpecificationRequest{{
				ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("app"), Value: aws.String("web")}},
			}},
		},
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeLaunchTemplate, Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("ops")}}}},
	}
	created, err := c.CreateLaunchTemplate(ctx, in)
	if err != nil {
		t.Fatalf("CreateLaunchTemplate() = %v", err)
	}
	lt := created.LaunchTemplate
	if aws.ToInt64(lt.DefaultVersionNumber) != 1 || aws.ToInt64(lt.LatestVersionNumber) != 1 || created.Warning != nil {
		t.Fatalf("CreateLaunchTemplate() = %+v, warning %+v; want version 1, no warning", lt, created.Warning)
	}
	id := aws.ToString(lt.LaunchTemplateId)

	// The same ClientToken answers the same template; a new name conflicts.
	again, err := c.CreateLaunchTemplate(ctx, in)
	if err != nil || aws.ToString(again.LaunchTemplate.LaunchTemplateId) != id {
		t.Fatalf("CreateLaunchTemplate(same token) = %v, %v; want %s", again, err, id)
	}
	in.ClientToken = nil
	if _, err := c.CreateLaunchTemplate(ctx, in); errCode(err) != "InvalidLaunchTemplateName.AlreadyExistsException" {
		t.Fatalf("CreateLaunchTemplate(duplicate) = %q; want InvalidLaunchTemplateName.AlreadyExistsException", errCode(err))
	}
	bad, err := c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("ghost"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String("ami-0123456789abcdef0")},
	})
	if err != nil || bad.Warning == nil || len(bad.Warning.Errors) != 1 {
		t.Fatalf("CreateLaunchTemplate(unknown AMI) = %v; want success with one warning", err)
	}

	// Version 2 from version 1 with a new image inherits the rest.
	v2, err := c.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId: aws.String(id), SourceVersion: aws.String("1"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(ami), InstanceType: types.InstanceTypeT3Small},
	})
	if err != nil {
		t.Fatalf("CreateLaunchTemplateVersion() = %v", err)
	}
	d := v2.LaunchTemplateVersion.LaunchTemplateData
	if aws.ToInt64(v2.LaunchTemplateVersion.VersionNumber) != 2 || d.InstanceType != types.InstanceTypeT3Small ||
		aws.ToString(d.UserData) != ud || len(d.TagSpecifications) != 1 || aws.ToBool(v2.LaunchTemplateVersion.DefaultVersion) {
		t.Fatalf("CreateLaunchTemplateVersion() = %+v; want version 2, t3.small, inherited user data and tags, not default", v2.LaunchTemplateVersion)
	}

	versions := func(vs ...string) []int64 {
		t.Helper()
		out, err := c.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateName: aws.String("web"), Versions: vs})
		if err != nil {
			t.Fatalf("DescribeLaunchTemplateVersions(%v) = %v", vs, err)
		}
		var got []int64
		for _, v := range out.LaunchTemplateVersions {
			got = append(got, aws.ToInt64(v.VersionNumber))
		}
		return got
	}
	for _, tt := range []struct {
		versions []string
		want     []int64
	}{
		{nil, []int64{2, 1}},
		{[]string{"$Latest"}, []int64{2}},
		{[]string{"$Default"}, []int64{1}},
		{[]string{"1", "2"}, []int64{2, 1}},
	} {
		if got := versions(tt.versions...); !slices.Equal(got, tt.want) {
			t.Errorf("DescribeLaunchTemplateVersions(%v) = %v; want %v", tt.versions, got, tt.want)
		}
	}

	mod, err := c.ModifyLaunchTemplate(ctx, &ec2.ModifyLaunchTemplateInput{LaunchTemplateId: aws.String(id), DefaultVersion: aws.String("2")})
	if err != nil || aws.ToInt64(mod.LaunchTemplate.DefaultVersionNumber) != 2 {
		t.Fatalf("ModifyLaunchTemplate(default 2) = %v, %v; want default 2", mod, err)
	}
	if got := versions("$Default"); !slices.Equal(got, []int64{2}) {
		t.Fatalf("DescribeLaunchTemplateVersions($Default) after modify = %v; want [2]", got)
	}
	desc, err := c.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{
		Filters: []types.Filter{{Name: aws.String("tag:team"), Values: []string{"ops"}}},
	})
	if err != nil || len(desc.LaunchTemplates) != 1 || aws.ToString(desc.LaunchTemplates[0].LaunchTemplateId) != id {
		t.Fatalf("DescribeLaunchTemplates(tag:team=ops) = %v, %v; want [%s]", desc, err, id)
	}

	// RunInstances takes what it does not set from the template.
	run, err := c.RunInstances(ctx, &ec2.RunInstancesInput{
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateName: aws.String("web"), Version: aws.String("1")},
	})
	if err != nil {
		t.Fatalf("RunInstances(template) = %v", err)
	}
	info, _ := s.Instance(aws.ToString(run.Instances[0].InstanceId))
	if info.InstanceType != "t3.micro" || info.ImageID != ami || info.Tags["app"] != "web" {
		t.Fatalf("instance from template = %+v; want t3.micro, %s, tag app=web", info, ami)
	}

	errs := []struct {
		name string
		call func() error
		want string
	}{
		{"version of unknown id", func() error {
			_, err := c.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String("lt-0123456789abcdef0")})
			return err
		}, "InvalidLaunchTemplateId.NotFound"},
		{"malformed id", func() error {
			_, err := c.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateIds: []string{"lt-nope"}})
			return err
		}, "InvalidLaunchTemplateId.Malformed"},
		{"unknown name", func() error {
			_, err := c.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{"nope"}})
			return err
		}, "InvalidLaunchTemplateName.NotFoundException"},
		{"unknown version", func() error {
			_, err := c.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(id), Versions: []string{"9"}})
			return err
		}, "InvalidLaunchTemplateId.VersionNotFound"},
		{"default to unknown version", func() error {
			_, err := c.ModifyLaunchTemplate(ctx, &ec2.ModifyLaunchTemplateInput{LaunchTemplateId: aws.String(id), DefaultVersion: aws.String("7")})
			return err
		}, "InvalidLaunchTemplateId.VersionNotFound"},
		{"bad name", func() error {
			_, err := c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("a b"), LaunchTemplateData: &types.RequestLaunchTemplateData{}})
			return err
		}, "InvalidLaunchTemplateName.MalformedException"},
		{"versions of all without alias", func() error {
			_, err := c.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{})
			return err
		}, "MissingParameter"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			if got := errCode(tt.call()); got != tt.want {
				t.Fatalf("code = %q; want %q", got, tt.want)
			}
		})
	}
	if _, err := c.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateName: aws.String("ghost")}); err != nil {
		t.Fatalf("DeleteLaunchTemplate(ghost) = %v", err)
	}
	_, err = c.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{"ghost"}})
	if errCode(err) != "InvalidLaunchTemplateName.NotFoundException" {
		t.Fatalf("DescribeLaunchTemplates(deleted) = %q; want InvalidLaunchTemplateName.NotFoundException", errCode(err))
	}
}
