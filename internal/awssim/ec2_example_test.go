package awssim_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awssim"
)

// A builder instance runs the bakery's wrapper around a script; the test
// moves the manual clock instead of sleeping.
func Example() {
	sim := awssim.New(awssim.Options{ManualClock: true, TimeScale: 1})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	c := ec2.NewFromConfig(awssim.ClientConfig(srv.URL))
	ctx := context.Background()

	imgs, _ := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"al2023-ami-2023.9.*-x86_64"}}}})
	script := "#!/bin/sh\nmkdir -p /var/lib/kiln-bake\n" +
		"cat > /var/lib/kiln-bake/script <<'KILN_BAKE_SCRIPT'\n#!/bin/sh\ndnf install -y nginx\nKILN_BAKE_SCRIPT\n" +
		"if sh /var/lib/kiln-bake/script; then\necho \"kiln-bake b1 ok\" > /dev/console\n" +
		"else\necho \"kiln-bake b1 failed: exit $?\" > /dev/console\nfi\npoweroff\n"
	run, err := c.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: imgs.Images[0].ImageId, InstanceType: types.InstanceTypeT3Small,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ClientToken: aws.String("b1"),
		UserData: aws.String(base64.StdEncoding.EncodeToString([]byte(script))),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	id := *run.Instances[0].InstanceId
	fmt.Println(run.Instances[0].State.Name)

	sim.Advance(2 * time.Minute) // boot, the script, power-off, stop, console posted
	out, _ := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	fmt.Println(out.Reservations[0].Instances[0].State.Name)
	cons, _ := c.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(id)})
	text, _ := base64.StdEncoding.DecodeString(*cons.Output)
	fmt.Println(strings.Contains(string(text), "kiln-bake b1 ok"))
	fmt.Println(sim.Calls("RunInstances"))
	// Output:
	// pending
	// stopped
	// true
	// 1
}
