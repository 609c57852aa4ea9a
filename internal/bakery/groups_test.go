package bakery

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"kiln/internal/awssim"
	"kiln/internal/store"
)

// A project names its builder's security group by name, as an
// aws:security_group calls it; the bake looks the id up at launch.
func TestBakeSecurityGroupByName(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	sg, err := w.client.CreateSecurityGroup(t.Context(), &ec2.CreateSecurityGroupInput{GroupName: aws.String("builders"), Description: aws.String("bake builders")})
	if err != nil {
		t.Fatal(err)
	}
	st := w.open(t)
	putProject(t, st, "web", "#!/bin/sh\necho hi\n", func(p *store.Project) { p.SecurityGroups = []string{"builders"} })
	putProject(t, st, "ghost", "#!/bin/sh\necho hi\n", func(p *store.Project) { p.SecurityGroups = []string{"nope"} })
	s := w.serve(t, st, nil)

	id := trigger(t, s, "web")
	if b := waitFinal(t, st, id); b.State != store.Succeeded {
		t.Fatalf("bake = %s (%s); want succeeded", b.State, b.Reason)
	}
	b := w.checkOneBuilderGone(t, id)
	if got := strings.Join(b.SecurityGroupIDs, ","); got != aws.ToString(sg.GroupId) {
		t.Errorf("builder groups = %s; want %s", got, aws.ToString(sg.GroupId))
	}

	id = trigger(t, s, "ghost")
	if b := waitFinal(t, st, id); b.State != store.Failed || !strings.Contains(b.Reason, `security group "nope": no group of that name in us-east-1`) {
		t.Errorf("bake of a missing group = %s (%s); want failed naming it", b.State, b.Reason)
	}
}
