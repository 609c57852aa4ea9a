package eventqueue

import (
	"net/url"
	"strconv"
	"strings"

	"kiln/internal/iampolicy"
)

// Statements are what --events-queue needs in kiln's IAM policy: one
// statement per queue, allowing sqs:ReceiveMessage and sqs:DeleteMessage
// (which DeleteMessageBatch needs) on it, and sqs:GetQueueUrl when it is
// given by name. The Resource is the queue's ARN, as far as the URL tells
// it (a name matches the queue of that name in any region and account).
func Statements(queues []string) []iampolicy.Statement {
	var out []iampolicy.Statement
	for i, q := range queues {
		acts := []string{"sqs:DeleteMessage", "sqs:ReceiveMessage"}
		if !IsURL(q) {
			acts = []string{"sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"}
		}
		sid := "KilnEventsQueue"
		if len(queues) > 1 {
			sid += strconv.Itoa(i + 1)
		}
		out = append(out, iampolicy.Statement{Sid: sid, Effect: "Allow", Action: acts, Resource: []string{ARN(q)}})
	}
	return out
}

// ARN is a queue's ARN from its URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME),
// with "*" for what the URL does not tell.
func ARN(queue string) string {
	region, account := "*", "*"
	if r := Region(queue); r != "" {
		region = r
	}
	if IsURL(queue) {
		if u, err := url.Parse(queue); err == nil {
			if parts := strings.Split(strings.Trim(u.Path, "/"), "/"); len(parts) == 2 && parts[0] != "" {
				account = parts[0]
			}
		}
	}
	return "arn:aws:sqs:" + region + ":" + account + ":" + Name(queue)
}
