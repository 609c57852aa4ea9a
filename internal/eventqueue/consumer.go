// Package eventqueue takes AWS's state-change events from SQS queues that
// an EventBridge rule fills, and hands them to the region hubs' router
// (events.Sink, *awsapi.Hubs): the way in for a kiln that AWS cannot
// reach over HTTP. Events wait in the queue, for days and across kiln
// restarts, and kiln long-polls it from anywhere.
//
// A Consumer long-polls one queue (ReceiveMessage, 20 s wait, up to 10
// messages), routes every EventBridge event in it (directly, or inside an
// SNS notification), and deletes what it received in one batch. Events are
// hints: a duplicate or a late one only makes the owner check again, so
// nothing is deduplicated or ordered. A message that is not an event kiln
// routes is deleted and counted as dropped, never retried forever. Idle, a
// queue costs three calls a minute.
//
// Setup creates (idempotently) the queue, its policy and the EventBridge
// rule and target that feed it; Template prints the same as a
// CloudFormation template.
package eventqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"kiln/internal/awsapi"
	"kiln/internal/events"
)

// API is what a Consumer calls, in the SDK's shape; *sqs.Client is one.
type API interface {
	GetQueueUrl(context.Context, *sqs.GetQueueUrlInput, ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(context.Context, *sqs.DeleteMessageBatchInput, ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// Options configure a Consumer.
type Options struct {
	// Wait is the long poll's wait; default and most 20 s (SQS's limit).
	Wait time.Duration
	// Max is the most messages a receive returns; default and most 10.
	Max int32
	// Retry paces receives after an error: Min doubling up to Max.
	// Default 1 s .. 30 s.
	RetryMin, RetryMax time.Duration
	// Metrics counts what the consumer does; nil counts nowhere.
	Metrics *Metrics
	Log     *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (o *Options) fill() {
	if o.Wait <= 0 || o.Wait > 20*time.Second {
		o.Wait = 20 * time.Second
	}
	if o.Max <= 0 || o.Max > 10 {
		o.Max = 10
	}
	if o.RetryMin <= 0 {
		o.RetryMin = time.Second
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(30*time.Second, o.RetryMin)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Consumer routes the events of one queue.
type Consumer struct {
	api  API
	url  string
	name string
	sink events.Sink
	o    Options
	m    queueMetrics
}

// IsURL reports whether queue is a queue URL rather than a name.
func IsURL(queue string) bool { return strings.Contains(queue, "://") }

// Name is a queue's name: the last element of its URL, or queue itself.
func Name(queue string) string {
	if !IsURL(queue) {
		return queue
	}
	u, err := url.Parse(queue)
	if err != nil {
		return queue
	}
	p := strings.Trim(u.Path, "/")
	return p[strings.LastIndexByte(p, '/')+1:]
}

// Region is the region a queue URL names (https://sqs.REGION.amazonaws.com/...,
// the legacy https://REGION.queue.amazonaws.com/... and
// https://queue.amazonaws.com/..., which is us-east-1), or "" when its
// host names none (a name, or another endpoint such as the simulator's).
func Region(queue string) string {
	if !IsURL(queue) {
		return ""
	}
	u, err := url.Parse(queue)
	if err != nil {
		return ""
	}
	h := u.Hostname()
	switch {
	case h == "queue.amazonaws.com":
		return "us-east-1"
	case strings.HasPrefix(h, "sqs.") && strings.Contains(h, ".amazonaws.com"):
		r, _, _ := strings.Cut(strings.TrimPrefix(h, "sqs."), ".")
		return r
	case strings.HasSuffix(h, ".queue.amazonaws.com"):
		return strings.TrimSuffix(h, ".queue.amazonaws.com")
	}
	return ""
}

// Open resolves queue (a URL, or a name GetQueueUrl looks up) and makes a
// first receive, which does not wait, so that a queue that does not exist
// or that kiln may not read is an error now, naming the queue and what to
// do, rather than a retry loop later. What that receive returns is routed
// and deleted like any other batch.
func Open(ctx context.Context, api API, queue string, sink events.Sink, o Options) (*Consumer, error) {
	o.fill()
	c := &Consumer{api: api, url: queue, name: Name(queue), sink: sink, o: o}
	c.m = o.Metrics.forQueue(c.name)
	if !IsURL(queue) {
		out, err := api.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(queue)})
		if err != nil {
			return nil, c.startError(err)
		}
		c.url = aws.ToString(out.QueueUrl)
	}
	msgs, err := c.receive(ctx, 0)
	if err != nil {
		return nil, c.startError(err)
	}
	c.handle(ctx, msgs)
	o.Log.Info("events queue open", "queue", c.name, "url", c.url)
	return c, nil
}

// startError explains why a queue cannot be used.
func (c *Consumer) startError(err error) error {
	var missing *types.QueueDoesNotExist
	switch {
	case errors.As(err, &missing) || awsapi.Code(err) == "AWS.SimpleQueueService.NonExistentQueue":
		return fmt.Errorf("events queue %s does not exist (create it and its EventBridge rule with: kiln events setup --queue %s): %w", c.url, c.name, err)
	case awsapi.IsPermission(err):
		return fmt.Errorf("events queue %s: kiln may not read it (grant sqs:ReceiveMessage and sqs:DeleteMessage, see kiln iam-policy --events-queue): %w", c.url, err)
	}
	return fmt.Errorf("events queue %s: %w", c.url, err)
}

// URL is the queue's URL.
func (c *Consumer) URL() string { return c.url }

// Run long-polls the queue until ctx is done, then returns nil. Errors
// are logged and counted, and the next receive waits a backoff.
func (c *Consumer) Run(ctx context.Context) error {
	delay := time.Duration(0)
	for ctx.Err() == nil {
		msgs, err := c.receive(ctx, c.o.Wait)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			delay = min(max(2*delay, c.o.RetryMin), c.o.RetryMax)
			c.m.errors.Inc()
			c.o.Log.Warn("events queue receive failed", "queue", c.name, "retry_in", delay, "err", err)
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		delay = 0
		c.handle(ctx, msgs)
	}
	return nil
}

func (c *Consumer) receive(ctx context.Context, wait time.Duration) ([]types.Message, error) {
	out, err := c.api.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(c.url),
		MaxNumberOfMessages:         c.o.Max,
		WaitTimeSeconds:             int32(wait / time.Second),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameSentTimestamp},
	})
	if err != nil {
		return nil, err
	}
	return out.Messages, nil
}

// handle routes a batch and then deletes all of it, routed or dropped.
func (c *Consumer) handle(ctx context.Context, msgs []types.Message) {
	if len(msgs) == 0 {
		return
	}
	now := c.o.Now()
	entries := make([]types.DeleteMessageBatchRequestEntry, 0, len(msgs))
	for i, m := range msgs {
		c.m.received.Inc()
		if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
			c.m.lag.Observe(max(0, now.Sub(time.UnixMilli(ms)).Seconds()))
		}
		c.route(m)
		entries = append(entries, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
	}
	// Delete even when ctx is done: what was routed must not come back.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	out, err := c.api.DeleteMessageBatch(dctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(c.url), Entries: entries})
	if err != nil {
		c.m.errors.Inc()
		c.o.Log.Warn("events queue delete failed; the messages come back after their visibility timeout", "queue", c.name, "messages", len(entries), "err", err)
		return
	}
	c.m.deleted.Add(float64(len(out.Successful)))
	for _, f := range out.Failed {
		c.m.errors.Inc()
		c.o.Log.Warn("events queue delete failed", "queue", c.name, "code", aws.ToString(f.Code), "message", aws.ToString(f.Message))
	}
}

// route delivers one message's event, or drops it.
func (c *Consumer) route(m types.Message) {
	ev, err := events.ParseEvent(unwrapSNS([]byte(aws.ToString(m.Body))))
	switch {
	case err == nil:
		c.m.routed.Inc()
		c.sink.Deliver(ev)
	case errors.Is(err, events.ErrIgnored):
		c.m.dropped("ignored").Inc()
		c.o.Log.Debug("events queue: event not routed", "queue", c.name, "message_id", aws.ToString(m.MessageId))
	default:
		c.m.dropped("malformed").Inc()
		c.o.Log.Warn("events queue: message is not an event; deleted", "queue", c.name, "message_id", aws.ToString(m.MessageId), "err", err)
	}
}

// unwrapSNS returns the Message of an SNS notification (a rule that
// targets an SNS topic the queue subscribes to, without raw delivery), or
// body itself. SQS authenticated the sender, so there is no signature to
// check.
func unwrapSNS(body []byte) []byte {
	var n struct {
		Type     string  `json:"Type"`
		TopicArn string  `json:"TopicArn"`
		Message  *string `json:"Message"`
	}
	if json.Unmarshal(body, &n) != nil || n.Type != "Notification" || n.TopicArn == "" || n.Message == nil {
		return body
	}
	return []byte(*n.Message)
}
