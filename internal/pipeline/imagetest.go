package pipeline

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/engine"
)

// The image test: after the image is available, a test instance is
// launched from it with the test script as user data (the bake script's
// completion protocol: a console marker, then power-off), its result read
// from the console, and the instance terminated. The image carries the
// outcome (kiln:tests), so a resumed bake never tests twice and a failed
// image is never taken for a good one.

// StepTestImage is the step of the image test (when the spec has Tests),
// between "terminate builder" and the copies.
const StepTestImage = "test image"

// TagTests is the outcome of an image's tests: TestsPassed or TestsFailed.
const (
	TagTests    = "kiln:tests"
	TestsPassed = "passed"
	TestsFailed = "failed"
)

// roleTester marks a bake's test instance (kiln:role), which the sweeper
// treats like a builder.
const roleTester = "tester"

// DefaultTestTimeout bounds a test when Tests gives no timeout.
const DefaultTestTimeout = 30 * time.Minute

// Tests is an image test (a project's or aws:ami's tests: block): an
// instance launched from the new image runs Script. Type, Subnet and
// SecurityGroups default to the builder's.
type Tests struct {
	Type           string
	Subnet         string
	SecurityGroups []string
	Script         string
	Timeout        time.Duration // launch until the test instance has stopped; 0 = DefaultTestTimeout
}

// Validate returns what is wrong with t, fields under "tests.".
func (t *Tests) Validate(skip func(string) bool) []Problem {
	if t == nil {
		return nil
	}
	if skip == nil {
		skip = func(string) bool { return false }
	}
	var out []Problem
	add := func(field, format string, args ...any) {
		out = append(out, Problem{Field: "tests." + field, Msg: fmt.Sprintf(format, args...)})
	}
	if t.Type != "" && !skip(t.Type) && !typeRE.MatchString(t.Type) {
		add("type", "%q is not an instance type such as t3.small", t.Type)
	}
	if t.Subnet != "" && !skip(t.Subnet) && !subnetRE.MatchString(t.Subnet) {
		add("subnet", "%q is not a subnet id (subnet-...)", t.Subnet)
	}
	for i, g := range t.SecurityGroups {
		if skip(g) {
			continue
		}
		if strings.HasPrefix(g, "sg-") && !sgRE.MatchString(g) || !strings.HasPrefix(g, "sg-") && !sgNameRE.MatchString(g) {
			add(fmt.Sprintf("security_groups[%d]", i), "%q is neither a security group id (sg-...) nor a group name", g)
		}
	}
	switch {
	case strings.TrimSpace(t.Script) == "":
		add("script", "must not be empty: the test to run on an instance of the new image")
	case len(t.Script) > MaxScriptLen:
		add("script", "%d bytes; at most %d", len(t.Script), MaxScriptLen)
	default:
		if _, err := WrapScript("x", t.Script); err != nil {
			add("script", "%v", err)
		}
	}
	if t.Timeout < 0 || t.Timeout > MaxTimeout {
		add("timeout", "must be more than 0 and at most %s", MaxTimeout)
	}
	return out
}

// testID is the marker id of the bake's test (its console lines read
// "kiln-bake <id>-test ok" or "... failed: exit N").
func (r *run) testID() string { return r.spec.ID + "-test" }

// testImage runs the spec's image test on img, found again after a
// crash: an image tagged with the outcome is not tested again, and the
// test instance is found by its tags and client token. A failure is a
// *FailedError with ImageID set: the image is kept, tagged
// kiln:tests=failed.
func (r *run) testImage(ctx context.Context, img types.Image) error {
	t := r.spec.Tests
	if t == nil {
		return nil
	}
	id := aws.ToString(img.ImageId)
	return r.step(ctx, StepTestImage, id, func() (string, error) {
		switch awsapi.TagValue(img.Tags, TagTests) {
		case TestsPassed:
			_, err := r.terminateTesters(ctx)
			return "passed", err
		case TestsFailed:
			_, err := r.terminateTesters(ctx)
			if err != nil {
				return "", err
			}
			return "", &FailedError{Reason: "image failed its tests", ImageID: id}
		}
		in, err := r.findTester(ctx)
		if err != nil {
			return "", err
		}
		if in == nil {
			launched, err := r.launchTester(ctx, id)
			if err != nil {
				return "", err
			}
			in = &launched
		} else {
			r.log.Info("test instance found again", "instance", aws.ToString(in.InstanceId))
		}
		tid := aws.ToString(in.InstanceId)
		ok, reason, tail, err := r.awaitTest(ctx, *in)
		if err != nil {
			return "", err
		}
		outcome := TestsPassed
		if !ok {
			outcome = TestsFailed
		}
		// The outcome is on the image before the instance goes: a crash in
		// between finds it there and only terminates.
		if err := r.tagTests(ctx, id, outcome); err != nil {
			return "", err
		}
		if _, err := r.terminateTesters(ctx); err != nil {
			return "", err
		}
		if !ok {
			return "", &FailedError{Reason: reason, ConsoleTail: tail, ImageID: id}
		}
		return fmt.Sprintf("passed on %s", tid), nil
	})
}

// awaitTest waits until the test instance has stopped (within the test's
// timeout, counted from the step's first start) and reads its result. ok
// false comes with the bake's reason ("image failed its tests: exit 3").
func (r *run) awaitTest(ctx context.Context, in types.Instance) (ok bool, reason, tail string, err error) {
	t := r.spec.Tests
	timeout := cmpDuration(t.Timeout, DefaultTestTimeout)
	id := aws.ToString(in.InstanceId)
	if isLive(in) {
		wctx, cancel := context.WithDeadline(ctx, r.deadline(ctx, StepTestImage, timeout))
		var gone string
		werr := r.hub.Await(wctx, id, func(ctx context.Context) (bool, error) {
			cur, err := r.instance(ctx, id)
			if err != nil {
				return false, err
			}
			switch cur.State.Name {
			case types.InstanceStateNameStopped:
				return true, nil
			case types.InstanceStateNameTerminated, types.InstanceStateNameShuttingDown:
				gone = string(cur.State.Name)
				return true, nil
			}
			return false, nil
		})
		cancel()
		switch {
		case werr == nil && gone != "":
			_, tail, _ := r.readMarker(ctx, id, r.testID(), 0)
			return false, fmt.Sprintf("image failed its tests: test instance %s is %s while its script ran", id, gone), tail, nil
		case werr == nil:
		case ctx.Err() == nil && errors.Is(werr, context.DeadlineExceeded):
			_, tail, _ := r.readMarker(ctx, id, r.testID(), 0)
			return false, fmt.Sprintf("image failed its tests: timed out after %s", timeout), tail, nil
		default:
			return false, "", "", fmt.Errorf("wait for test instance %s to stop: %w", id, werr)
		}
	}
	wait := min(r.p.o.ConsoleWait, timeout)
	ok, tail, err = r.readMarker(ctx, id, r.testID(), wait)
	if err != nil {
		return false, "", tail, err
	}
	if ok {
		return true, "", tail, nil
	}
	return false, testFailure(tail, r.testID()), tail, nil
}

var exitRE = regexp.MustCompile(`exit [0-9]+`)

// testFailure is the reason of a failed test: "image failed its tests:
// exit N", or what is missing.
func testFailure(tail, id string) string {
	marker := "kiln-bake " + id + " failed"
	for _, l := range slices.Backward(strings.Split(tail, "\n")) {
		if i := strings.Index(l, marker); i >= 0 {
			if m := exitRE.FindString(l[i:]); m != "" {
				return "image failed its tests: " + m
			}
			return "image failed its tests"
		}
	}
	return "image failed its tests: no result on the test instance's console (the script powered off by itself, or its output was lost)"
}

func cmpDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// findTesters lists the instances tagged as this bake's test instance.
func (r *run) findTesters(ctx context.Context) ([]types.Instance, error) {
	return r.findRole(ctx, roleTester, "test instance")
}

// findTester returns the live test instance, else the newest gone one
// (its console still tells the result), else nil.
func (r *run) findTester(ctx context.Context) (*types.Instance, error) {
	all, err := r.findTesters(ctx)
	if err != nil {
		return nil, err
	}
	return liveOrLast(all), nil
}

// TestClientToken is the RunInstances token of a bake's test instance:
// the bake's identity and "test", so a restarted bake gets the same one.
func TestClientToken(id string, match map[string]string) string {
	return ClientToken(id+"\x00test", match)
}

// launchTester runs the test instance from image with the test script,
// the test's client token and tags in the same call.
func (r *run) launchTester(ctx context.Context, image string) (types.Instance, error) {
	t := r.spec.Tests
	ud, err := WrapScript(r.testID(), t.Script)
	if err != nil {
		return types.Instance{}, engine.Permanent(err)
	}
	sgs := t.SecurityGroups
	if len(sgs) == 0 {
		sgs = r.spec.SecurityGroups
	}
	groups, err := groupIDs(ctx, r.hub, r.hub.EC2(), sgs)
	if err != nil {
		return types.Instance{}, fmt.Errorf("launch test instance of bake %s: %w", r.spec.ID, err)
	}
	inst, err := r.hub.Launch(ctx, r.api, awsapi.Launch{
		Token: TestClientToken(r.spec.ID, r.spec.Match), Image: image,
		Type: cmpString(t.Type, r.spec.Type), UserData: ud,
		Subnet: cmpString(t.Subnet, r.spec.Subnet), SecurityGroups: groups, Profile: r.spec.IAMProfile,
		Shutdown: types.ShutdownBehaviorStop,
		Tags:     r.tags(map[string]string{TagRole: roleTester, awsapi.TagName: "kiln-test " + r.spec.ImageName, TagSourceImage: image}),
	})
	if err != nil {
		return types.Instance{}, fmt.Errorf("launch test instance of bake %s: %w", r.spec.ID, err)
	}
	r.log.Info("test instance launched", "instance", aws.ToString(inst.InstanceId), "image", image)
	return inst, nil
}

func cmpString(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// terminateTesters terminates every live test instance of the bake and
// returns their ids; it does not wait for them to be gone.
func (r *run) terminateTesters(ctx context.Context) ([]string, error) {
	if r.spec.Tests == nil {
		return nil, nil
	}
	return r.terminateRole(ctx, roleTester, "test instance")
}

// tagTests records the test's outcome on the image.
func (r *run) tagTests(ctx context.Context, image, outcome string) error {
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		_, err := r.api.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{image},
			Tags: []types.Tag{{Key: aws.String(TagTests), Value: aws.String(outcome)}}})
		if awsapi.IsNotFound(err) {
			return awsapi.NotYet(err)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("tag image %s %s=%s: %w", image, TagTests, outcome, err)
	}
	return nil
}

// testsFailedLast orders images with failed tests after every other, so
// retention (which keeps the first N of its newest-first order) removes
// them first.
func testsFailedLast(imgs []types.Image) {
	slices.SortStableFunc(imgs, func(a, b types.Image) int {
		fa, fb := awsapi.TagValue(a.Tags, TagTests) == TestsFailed, awsapi.TagValue(b.Tags, TagTests) == TestsFailed
		switch {
		case fa == fb:
			return 0
		case fa:
			return 1
		}
		return -1
	})
}
