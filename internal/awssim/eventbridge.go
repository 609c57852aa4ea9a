package awssim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
)

// EventBridge (AWS JSON 1.1, X-Amz-Target "AWSEvents.Action"): rules on
// the default event bus with event patterns, and SQS queues as their
// targets. Every event the simulator publishes (PublishEvent) is matched
// against the enabled rules and put into each target queue whose policy
// lets events.amazonaws.com send to it for that rule, as EventBridge does;
// a target it cannot deliver to counts a failed invocation.

const bridgeTargetPrefix = "AWSEvents"

var bridgeMatch, bridgeDecode = jsonTarget(bridgeTargetPrefix)

var eventbridgeService = &service{
	name:    "eventbridge",
	match:   bridgeMatch,
	decode:  bridgeDecode,
	proto:   awsJSON{version: "1.1", namespace: "com.amazonaws.eventbridge"},
	actions: eventbridgeActions,
	control: (*Sim).serveBridgeControl,
}

// eventbridgeActions is the EventBridge API, one line per action.
var eventbridgeActions = map[string]action{
	"PutRule":           (*Sim).putRule,
	"DescribeRule":      (*Sim).describeRule,
	"PutTargets":        (*Sim).putTargets,
	"ListTargetsByRule": (*Sim).listTargetsByRule,
}

// bridgeState is the rules; its own mutex, taken inside the events' one
// and before the queues' (sqsState).
type bridgeState struct {
	mu    sync.Mutex
	rules map[string]*rule
	order []*rule
}

func (b *bridgeState) init() { b.rules = map[string]*rule{} }

type rule struct {
	name, arn, desc, state string
	patternText            string
	pattern                map[string]any
	targets                []ruleTarget
	invocations, failed    int
}

type ruleTarget struct {
	ID    string `json:"Id"`
	Arn   string `json:"Arn"`
	Input string `json:"Input,omitempty"`
}

var ruleNameRE = regexp.MustCompile(`^[.\-_A-Za-z0-9]{1,64}$`)

func bridgeValidation(format string, args ...any) *APIError {
	return apiErr("ValidationException", format, args...)
}

// checkBus accepts the default event bus, by name or ARN.
func (s *Sim) checkBus(bus string) error {
	if bus == "" || bus == "default" || bus == "arn:aws:events:"+s.opts.Region+":"+s.opts.Account+":event-bus/default" {
		return nil
	}
	return apiErr("ResourceNotFoundException", "Event bus %s does not exist.", bus)
}

type putRuleInput struct {
	Name               string `json:"Name"`
	EventPattern       string `json:"EventPattern"`
	ScheduleExpression string `json:"ScheduleExpression"`
	State              string `json:"State"`
	Description        string `json:"Description"`
	EventBusName       string `json:"EventBusName"`
}

type ruleArnOutput struct {
	RuleArn string `json:"RuleArn"`
}

func (s *Sim) putRule(r *request) (any, error) {
	var in putRuleInput
	if err := r.input(&in); err != nil {
		return nil, err
	}
	if !ruleNameRE.MatchString(in.Name) {
		return nil, bridgeValidation("1 validation error detected: Value '%s' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+", in.Name)
	}
	if err := s.checkBus(in.EventBusName); err != nil {
		return nil, err
	}
	if in.ScheduleExpression != "" {
		return nil, bridgeValidation("The simulator serves event-pattern rules only, not ScheduleExpression.")
	}
	if in.EventPattern == "" {
		return nil, bridgeValidation("Parameter(s) EventPattern or ScheduleExpression must be specified.")
	}
	pat, err := parsePattern(in.EventPattern)
	if err != nil {
		return nil, apiErr("InvalidEventPatternException", "Event pattern is not valid. Reason: %v", err)
	}
	switch in.State {
	case "":
		in.State = "ENABLED"
	case "ENABLED", "DISABLED":
	default:
		return nil, bridgeValidation("1 validation error detected: Value '%s' at 'state' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED]", in.State)
	}
	b := &s.bridge
	b.mu.Lock()
	defer b.mu.Unlock()
	ru := b.rules[in.Name]
	if ru == nil {
		ru = &rule{name: in.Name, arn: "arn:aws:events:" + s.opts.Region + ":" + s.opts.Account + ":rule/" + in.Name}
		b.rules[in.Name] = ru
		b.order = append(b.order, ru)
	}
	ru.patternText, ru.pattern, ru.state, ru.desc = in.EventPattern, pat, in.State, in.Description
	return &ruleArnOutput{RuleArn: ru.arn}, nil
}

type ruleRef struct {
	Name         string `json:"Name"`
	Rule         string `json:"Rule"`
	EventBusName string `json:"EventBusName"`
}

func (s *Sim) ruleLocked(name string) (*rule, error) {
	ru := s.bridge.rules[name]
	if ru == nil {
		return nil, apiErr("ResourceNotFoundException", "Rule %s does not exist on EventBus default.", name)
	}
	return ru, nil
}

type describeRuleOutput struct {
	Name         string `json:"Name"`
	Arn          string `json:"Arn"`
	EventPattern string `json:"EventPattern"`
	State        string `json:"State"`
	Description  string `json:"Description,omitempty"`
	EventBusName string `json:"EventBusName"`
}

func (s *Sim) describeRule(r *request) (any, error) {
	return s.withRule(r, func(ru *rule) (any, error) {
		return &describeRuleOutput{Name: ru.name, Arn: ru.arn, EventPattern: ru.patternText, State: ru.state, Description: ru.desc, EventBusName: "default"}, nil
	})
}

// withRule runs fn on the rule that r names (Name, or Rule), with
// s.bridge.mu held.
func (s *Sim) withRule(r *request, fn func(ru *rule) (any, error)) (any, error) {
	var in ruleRef
	if err := r.input(&in); err != nil {
		return nil, err
	}
	if err := s.checkBus(in.EventBusName); err != nil {
		return nil, err
	}
	s.bridge.mu.Lock()
	defer s.bridge.mu.Unlock()
	ru, err := s.ruleLocked(in.Name + in.Rule)
	if err != nil {
		return nil, err
	}
	return fn(ru)
}

type putTargetsInput struct {
	Rule         string `json:"Rule"`
	EventBusName string `json:"EventBusName"`
	Targets      []struct {
		ruleTarget
		InputPath        string          `json:"InputPath"`
		InputTransformer json.RawMessage `json:"InputTransformer"`
	} `json:"Targets"`
}

type failedTarget struct {
	TargetID     string `json:"TargetId"`
	ErrorCode    string `json:"ErrorCode"`
	ErrorMessage string `json:"ErrorMessage"`
}

type putTargetsOutput struct {
	FailedEntryCount int            `json:"FailedEntryCount"`
	FailedEntries    []failedTarget `json:"FailedEntries"`
}

// maxTargets is EventBridge's limit of targets per rule.
const maxTargets = 5

var targetIDRE = regexp.MustCompile(`^[.\-_A-Za-z0-9]{1,64}$`)

func (s *Sim) putTargets(r *request) (any, error) {
	var in putTargetsInput
	if err := r.input(&in); err != nil {
		return nil, err
	}
	if err := s.checkBus(in.EventBusName); err != nil {
		return nil, err
	}
	if len(in.Targets) == 0 || len(in.Targets) > 10 {
		return nil, bridgeValidation("1 validation error detected: Value at 'targets' failed to satisfy constraint: Member must have length between 1 and 10")
	}
	for _, t := range in.Targets {
		if !targetIDRE.MatchString(t.ID) {
			return nil, bridgeValidation("1 validation error detected: Value '%s' at 'targets.id' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+", t.ID)
		}
		if !strings.HasPrefix(t.Arn, "arn:") {
			return nil, bridgeValidation("Parameter %s is not valid. Reason: Provided Arn is not in correct format.", t.Arn)
		}
		if t.InputPath != "" || len(t.InputTransformer) > 0 {
			return nil, bridgeValidation("The simulator takes Input only, not InputPath or InputTransformer.")
		}
		if t.Input != "" && !json.Valid([]byte(t.Input)) {
			return nil, bridgeValidation("Input is not valid JSON text.")
		}
	}
	s.bridge.mu.Lock()
	defer s.bridge.mu.Unlock()
	ru, err := s.ruleLocked(in.Rule)
	if err != nil {
		return nil, err
	}
	out := &putTargetsOutput{FailedEntries: []failedTarget{}}
	for _, t := range in.Targets {
		i := indexOfTarget(ru.targets, t.ID)
		switch {
		case i >= 0:
			ru.targets[i] = t.ruleTarget
		case len(ru.targets) >= maxTargets:
			out.FailedEntries = append(out.FailedEntries, failedTarget{TargetID: t.ID, ErrorCode: "LimitExceededException",
				ErrorMessage: fmt.Sprintf("The requested resource exceeds the maximum number allowed (%d targets per rule).", maxTargets)})
		default:
			ru.targets = append(ru.targets, t.ruleTarget)
		}
	}
	out.FailedEntryCount = len(out.FailedEntries)
	return out, nil
}

func indexOfTarget(ts []ruleTarget, id string) int {
	for i, t := range ts {
		if t.ID == id {
			return i
		}
	}
	return -1
}

type listTargetsOutput struct {
	Targets []ruleTarget `json:"Targets"`
}

func (s *Sim) listTargetsByRule(r *request) (any, error) {
	return s.withRule(r, func(ru *rule) (any, error) {
		return &listTargetsOutput{Targets: append([]ruleTarget{}, ru.targets...)}, nil
	})
}

// routeEventLocked hands a published event to the targets of every
// enabled rule it matches; the events' mutex is held, so events reach the
// queues in the order they were published.
func (s *Sim) routeEventLocked(ev Event, at time.Time, delay time.Duration) {
	b := &s.bridge
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.order) == 0 {
		return
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		return
	}
	for _, ru := range b.order {
		if ru.state != "ENABLED" || !matchPattern(ru.pattern, doc) {
			continue
		}
		for _, t := range ru.targets {
			payload := body
			if t.Input != "" {
				payload = []byte(t.Input)
			}
			ru.invocations++
			if !s.deliverToQueue(t.Arn, ru.arn, payload, at, delay) {
				ru.failed++
			}
		}
	}
}

// deliverToQueue sends payload to the SQS queue arn names, if it is one of
// this simulator's and its policy allows the rule to.
func (s *Sim) deliverToQueue(arn, ruleArn string, payload []byte, at time.Time, delay time.Duration) bool {
	prefix := "arn:aws:sqs:" + s.opts.Region + ":" + s.opts.Account + ":"
	if !strings.HasPrefix(arn, prefix) {
		return false
	}
	name := strings.TrimPrefix(arn, prefix)
	s.sqs.mu.Lock()
	q := s.sqs.queues[name]
	allowed := q != nil && policyAllows(q.attrs["Policy"], "events.amazonaws.com", "sqs:SendMessage", q.arn, ruleArn)
	s.sqs.mu.Unlock()
	return allowed && s.sendEventLocked(name, payload, at, delay)
}

// RuleInfo is a snapshot of a rule, for tests and the control API.
type RuleInfo struct {
	Name        string   `json:"name"`
	ARN         string   `json:"arn"`
	Pattern     string   `json:"pattern"`
	State       string   `json:"state"`
	Targets     []string `json:"targets"`
	Invocations int      `json:"invocations"`
	Failed      int      `json:"failed_invocations"`
}

// Rules returns every rule, oldest first.
func (s *Sim) Rules() []RuleInfo {
	s.bridge.mu.Lock()
	defer s.bridge.mu.Unlock()
	var out []RuleInfo
	for _, ru := range s.bridge.order {
		ri := RuleInfo{Name: ru.name, ARN: ru.arn, Pattern: ru.patternText, State: ru.state, Invocations: ru.invocations, Failed: ru.failed}
		for _, t := range ru.targets {
			ri.Targets = append(ri.Targets, t.Arn)
		}
		out = append(out, ri)
	}
	return out
}

// serveBridgeControl serves GET /_sim/eventbridge/rules.
func (s *Sim) serveBridgeControl(w http.ResponseWriter, hr *http.Request, parts []string) {
	if len(parts) != 1 || parts[0] != "rules" || hr.Method != http.MethodGet {
		http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Rules())
}
