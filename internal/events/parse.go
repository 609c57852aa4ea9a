package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"kiln/internal/awsapi"
)

// bridgeEvent is an EventBridge event as delivered by an API destination
// or carried in an SNS Message.
type bridgeEvent struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// detail holds the fields kiln reads from the events it routes.
type detail struct {
	InstanceID string `json:"instance-id"` // EC2 Instance State-change Notification
	State      string `json:"state"`
	ImageID    string `json:"ImageId"` // EC2 AMI State Change
	ImageState string `json:"State"`
	Group      string `json:"AutoScalingGroupName"` // Auto Scaling
}

// ErrIgnored is returned by ParseEvent for a well-formed event kiln does not
// route (another detail-type).
var ErrIgnored = errors.New("event not routed")

// ParseEvent decodes an EventBridge event and returns what the hubs route:
// EC2 instance state changes (by instance id), AMI state changes (by image
// id) and Auto Scaling events (by group name). Malformed input is an error;
// a valid event of another type is ErrIgnored.
func ParseEvent(data []byte) (awsapi.Event, error) {
	var b bridgeEvent
	if err := json.Unmarshal(data, &b); err != nil {
		return awsapi.Event{}, fmt.Errorf("parse event: %w", err)
	}
	if b.Source == "" || b.DetailType == "" {
		return awsapi.Event{}, errors.New("parse event: no source or detail-type")
	}
	ev := awsapi.Event{ID: b.ID, Region: b.Region, Source: b.Source, DetailType: b.DetailType}
	if b.Time != "" {
		t, err := time.Parse(time.RFC3339, b.Time)
		if err != nil {
			return awsapi.Event{}, fmt.Errorf("parse event time: %w", err)
		}
		ev.Time = t
	}
	var d detail
	if len(b.Detail) > 0 && string(b.Detail) != "null" {
		if err := json.Unmarshal(b.Detail, &d); err != nil {
			return awsapi.Event{}, fmt.Errorf("parse event detail: %w", err)
		}
	}
	switch {
	case b.Source == "aws.ec2" && b.DetailType == "EC2 Instance State-change Notification":
		ev.Resource, ev.State = d.InstanceID, d.State
	case b.Source == "aws.ec2" && b.DetailType == "EC2 AMI State Change":
		ev.Resource, ev.State = d.ImageID, d.ImageState
	case b.Source == "aws.autoscaling":
		ev.Resource, ev.State = d.Group, b.DetailType
	default:
		return ev, ErrIgnored
	}
	if ev.Resource == "" {
		return awsapi.Event{}, fmt.Errorf("parse event: %s without a resource id", b.DetailType)
	}
	if ev.Region == "" {
		return awsapi.Event{}, errors.New("parse event: no region")
	}
	return ev, nil
}

// snsMessage is an SNS HTTP(S) delivery.
type snsMessage struct {
	Type             string  `json:"Type"`
	MessageID        string  `json:"MessageId"`
	Token            string  `json:"Token"`
	TopicArn         string  `json:"TopicArn"`
	Subject          *string `json:"Subject"`
	Message          string  `json:"Message"`
	SubscribeURL     string  `json:"SubscribeURL"`
	Timestamp        string  `json:"Timestamp"`
	SignatureVersion string  `json:"SignatureVersion"`
	Signature        string  `json:"Signature"`
	SigningCertURL   string  `json:"SigningCertURL"`
}

// parseSNS decodes an SNS delivery and checks the fields its type needs.
func parseSNS(data []byte) (*snsMessage, error) {
	var m snsMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("parse sns message: %w", err)
	}
	switch m.Type {
	case "Notification":
	case "SubscriptionConfirmation", "UnsubscribeConfirmation":
		if m.SubscribeURL == "" || m.Token == "" {
			return nil, fmt.Errorf("parse sns message: %s without SubscribeURL or Token", m.Type)
		}
	default:
		return nil, fmt.Errorf("parse sns message: unknown Type %q", m.Type)
	}
	if m.MessageID == "" || m.TopicArn == "" || m.Timestamp == "" || m.Signature == "" || m.SigningCertURL == "" {
		return nil, errors.New("parse sns message: missing MessageId, TopicArn, Timestamp, Signature or SigningCertURL")
	}
	return &m, nil
}

// stringToSign is what SNS signs: "Key\nValue\n" for each field, in AWS's
// order, Subject only when present.
func (m *snsMessage) stringToSign() string {
	type kv struct{ k, v string }
	var fields []kv
	if m.Type == "Notification" {
		fields = []kv{{"Message", m.Message}, {"MessageId", m.MessageID}}
		if m.Subject != nil {
			fields = append(fields, kv{"Subject", *m.Subject})
		}
		fields = append(fields, kv{"Timestamp", m.Timestamp}, kv{"TopicArn", m.TopicArn}, kv{"Type", m.Type})
	} else {
		fields = []kv{{"Message", m.Message}, {"MessageId", m.MessageID}, {"SubscribeURL", m.SubscribeURL},
			{"Timestamp", m.Timestamp}, {"Token", m.Token}, {"TopicArn", m.TopicArn}, {"Type", m.Type}}
	}
	var b []byte
	for _, f := range fields {
		b = append(b, f.k...)
		b = append(b, '\n')
		b = append(b, f.v...)
		b = append(b, '\n')
	}
	return string(b)
}
