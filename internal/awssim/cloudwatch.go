package awssim

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
)

// CloudWatch alarms (Smithy RPC v2 CBOR, cloudwatch_cbor.go, as the Go
// SDK sends it; AWS JSON 1.0, as the aws CLI v1 sends it): PutMetricAlarm,
// DescribeAlarms, SetAlarmState and DeleteAlarms, per region. There are no
// metrics: an alarm is INSUFFICIENT_DATA when created and changes state only
// by SetAlarmState (on AWS the next evaluation of its metric would set it
// again; here nothing does). An update by PutMetricAlarm replaces the
// alarm's configuration and keeps its state, as AWS does. An alarm that goes
// to ALARM fails the instance refreshes whose AlarmSpecification names it
// (autoscaling_refresh.go).

var cloudwatchMatch, cloudwatchDecode = cborTarget("GraniteServiceVersion20100801")

// cloudwatchQueryCodes are CloudWatch's error shapes whose Query-era code
// (what the SDKs report, from x-amzn-query-error) differs.
var cloudwatchQueryCodes = map[string]string{
	"InvalidParameterValueException":       "InvalidParameterValue",
	"MissingRequiredParameterException":    "MissingParameter",
	"InvalidParameterCombinationException": "InvalidParameterCombination",
	"LimitExceededFault":                   "LimitExceeded",
	"InvalidFormatFault":                   "InvalidFormat",
}

// cloudwatchService is CloudWatch in RPC v2 CBOR (the Go SDK's protocol).
var cloudwatchService = &service{
	name:    "cloudwatch",
	match:   cloudwatchMatch,
	decode:  cloudwatchDecode,
	proto:   rpcv2CBOR{namespace: "com.amazonaws.cloudwatch", query: cloudwatchQueryCodes, queryMode: true},
	actions: cloudwatchActions,
}

var cloudwatchJSONMatch, cloudwatchJSONDecode = jsonTarget("GraniteServiceVersion20100801")

// cloudwatchJSONService is the same API in AWS JSON 1.0, which the aws CLI
// v1 picks (its botocore lists rpc-v2-cbor first but does not speak it).
var cloudwatchJSONService = &service{
	name:    "cloudwatch",
	match:   cloudwatchJSONMatch,
	decode:  cloudwatchJSONDecode,
	proto:   awsJSON{version: "1.0", namespace: "com.amazonaws.cloudwatch", query: cloudwatchQueryCodes, queryMode: true},
	actions: cloudwatchActions,
}

// cloudwatchActions is the CloudWatch API the simulator serves, one line per
// action.
var cloudwatchActions = map[string]action{
	"PutMetricAlarm": (*Sim).putMetricAlarm,
	"DescribeAlarms": (*Sim).describeAlarms,
	"SetAlarmState":  (*Sim).setAlarmState,
	"DeleteAlarms":   (*Sim).deleteAlarms,
}

// Alarm states.
const (
	AlarmOK               = "OK"
	AlarmAlarm            = "ALARM"
	AlarmInsufficientData = "INSUFFICIENT_DATA"
)

// cwState is a region's CloudWatch alarms by name, guarded by Sim.mu.
type cwState struct {
	alarms map[string]*metricAlarm
}

// metricAlarm is an alarm as DescribeAlarms answers it (MetricAlarm).
type metricAlarm struct {
	AlarmName                          string        `json:"AlarmName"`
	AlarmArn                           string        `json:"AlarmArn"`
	AlarmDescription                   string        `json:"AlarmDescription,omitempty"`
	AlarmConfigurationUpdatedTimestamp *epochTime    `json:"AlarmConfigurationUpdatedTimestamp,omitempty"`
	ActionsEnabled                     bool          `json:"ActionsEnabled"`
	OKActions                          []string      `json:"OKActions"`
	AlarmActions                       []string      `json:"AlarmActions"`
	InsufficientDataActions            []string      `json:"InsufficientDataActions"`
	StateValue                         string        `json:"StateValue"`
	StateReason                        string        `json:"StateReason"`
	StateReasonData                    string        `json:"StateReasonData,omitempty"`
	StateUpdatedTimestamp              *epochTime    `json:"StateUpdatedTimestamp,omitempty"`
	StateTransitionedTimestamp         *epochTime    `json:"StateTransitionedTimestamp,omitempty"`
	MetricName                         string        `json:"MetricName,omitempty"`
	Namespace                          string        `json:"Namespace,omitempty"`
	Statistic                          string        `json:"Statistic,omitempty"`
	ExtendedStatistic                  string        `json:"ExtendedStatistic,omitempty"`
	Dimensions                         []cwDimension `json:"Dimensions"`
	Period                             *int32        `json:"Period,omitempty"`
	Unit                               string        `json:"Unit,omitempty"`
	EvaluationPeriods                  int32         `json:"EvaluationPeriods"`
	DatapointsToAlarm                  *int32        `json:"DatapointsToAlarm,omitempty"`
	Threshold                          *float64      `json:"Threshold,omitempty"`
	ComparisonOperator                 string        `json:"ComparisonOperator"`
	TreatMissingData                   string        `json:"TreatMissingData,omitempty"`
	EvaluateLowSampleCountPercentile   string        `json:"EvaluateLowSampleCountPercentile,omitempty"`
}

type cwDimension struct {
	Name  string `json:"Name"`
	Value string `json:"Value"`
}

// putMetricAlarmInput is PutMetricAlarm's input as far as the simulator
// keeps it (metric math queries are accepted and not kept).
type putMetricAlarmInput struct {
	AlarmName                        string        `json:"AlarmName"`
	AlarmDescription                 string        `json:"AlarmDescription"`
	ActionsEnabled                   *bool         `json:"ActionsEnabled"`
	OKActions                        []string      `json:"OKActions"`
	AlarmActions                     []string      `json:"AlarmActions"`
	InsufficientDataActions          []string      `json:"InsufficientDataActions"`
	MetricName                       string        `json:"MetricName"`
	Namespace                        string        `json:"Namespace"`
	Statistic                        string        `json:"Statistic"`
	ExtendedStatistic                string        `json:"ExtendedStatistic"`
	Dimensions                       []cwDimension `json:"Dimensions"`
	Period                           *int32        `json:"Period"`
	Unit                             string        `json:"Unit"`
	EvaluationPeriods                *int32        `json:"EvaluationPeriods"`
	DatapointsToAlarm                *int32        `json:"DatapointsToAlarm"`
	Threshold                        *float64      `json:"Threshold"`
	ComparisonOperator               string        `json:"ComparisonOperator"`
	TreatMissingData                 string        `json:"TreatMissingData"`
	EvaluateLowSampleCountPercentile string        `json:"EvaluateLowSampleCountPercentile"`
	Metrics                          []any         `json:"Metrics"`
	ThresholdMetricId                string        `json:"ThresholdMetricId"`
	Tags                             []cwTag       `json:"Tags"`
}

// cwTag is a tag of PutMetricAlarm's input (only counted).
type cwTag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

var (
	cwStatistics  = []string{"SampleCount", "Average", "Sum", "Minimum", "Maximum"}
	cwComparisons = []string{"GreaterThanOrEqualToThreshold", "GreaterThanThreshold", "LessThanThreshold", "LessThanOrEqualToThreshold",
		"LessThanLowerOrGreaterThanUpperThreshold", "LessThanLowerThreshold", "GreaterThanUpperThreshold"}
	cwStates      = []string{AlarmOK, AlarmAlarm, AlarmInsufficientData}
	cwTreatMissed = []string{"breaching", "notBreaching", "ignore", "missing"}
)

func (s *Sim) alarmARN(name string) string {
	return "arn:aws:cloudwatch:" + s.opts.Region + ":" + s.opts.Account + ":alarm:" + name
}

// checkAlarmName applies the 1-to-255 rule.
func checkAlarmName(field, name string) error {
	if name == "" {
		return apiErr("MissingRequiredParameterException", "The parameter %s is required.", field)
	}
	if len(name) > 255 {
		return apiErr("InvalidParameterValueException", "The parameter %s must be at most 255 characters.", field)
	}
	return nil
}

func (in *putMetricAlarmInput) validate() error {
	if err := checkAlarmName("AlarmName", in.AlarmName); err != nil {
		return err
	}
	switch {
	case in.EvaluationPeriods == nil:
		return apiErr("MissingRequiredParameterException", "The parameter EvaluationPeriods is required.")
	case *in.EvaluationPeriods < 1:
		return apiErr("InvalidParameterValueException", "The parameter EvaluationPeriods must be greater than or equal to 1.")
	case in.ComparisonOperator == "":
		return apiErr("MissingRequiredParameterException", "The parameter ComparisonOperator is required.")
	case !slices.Contains(cwComparisons, in.ComparisonOperator):
		return apiErr("InvalidParameterValueException", "Invalid value %q for ComparisonOperator.", in.ComparisonOperator)
	case in.DatapointsToAlarm != nil && (*in.DatapointsToAlarm < 1 || *in.DatapointsToAlarm > *in.EvaluationPeriods):
		return apiErr("InvalidParameterValueException", "DatapointsToAlarm must be between 1 and EvaluationPeriods.")
	case in.TreatMissingData != "" && !slices.Contains(cwTreatMissed, in.TreatMissingData):
		return apiErr("InvalidParameterValueException", "Invalid value %q for TreatMissingData.", in.TreatMissingData)
	case len(in.Dimensions) > 30:
		return apiErr("InvalidParameterValueException", "The collection Dimensions must not have more than 30 elements.")
	case len(in.Tags) > 50:
		return apiErr("InvalidParameterValueException", "The collection Tags must not have more than 50 elements.")
	}
	if len(in.Metrics) > 0 {
		if in.MetricName != "" || in.Namespace != "" || in.Statistic != "" || in.ExtendedStatistic != "" || len(in.Dimensions) > 0 || in.Period != nil {
			return apiErr("InvalidParameterCombinationException", "The parameters Metrics and MetricName, Namespace, Statistic, ExtendedStatistic, Dimensions and Period are mutually exclusive.")
		}
		return nil
	}
	switch {
	case in.MetricName == "":
		return apiErr("MissingRequiredParameterException", "The parameter MetricName is required.")
	case in.Namespace == "":
		return apiErr("MissingRequiredParameterException", "The parameter Namespace is required.")
	case in.Period == nil:
		return apiErr("MissingRequiredParameterException", "The parameter Period is required.")
	case *in.Period != 10 && *in.Period != 20 && *in.Period != 30 && (*in.Period < 60 || *in.Period%60 != 0):
		return apiErr("InvalidParameterValueException", "The parameter Period must be 10, 20, 30 or a multiple of 60.")
	case (in.Statistic == "") == (in.ExtendedStatistic == ""):
		return apiErr("InvalidParameterCombinationException", "Exactly one of Statistic and ExtendedStatistic must be specified.")
	case in.Statistic != "" && !slices.Contains(cwStatistics, in.Statistic):
		return apiErr("InvalidParameterValueException", "Invalid value %q for Statistic.", in.Statistic)
	case in.Threshold == nil && !strings.HasPrefix(in.ComparisonOperator, "LessThanLower") && !strings.HasPrefix(in.ComparisonOperator, "GreaterThanUpper"):
		return apiErr("MissingRequiredParameterException", "The parameter Threshold is required.")
	}
	for _, d := range in.Dimensions {
		if d.Name == "" || d.Value == "" {
			return apiErr("InvalidParameterValueException", "A dimension needs a Name and a Value.")
		}
	}
	return nil
}

func (s *Sim) putMetricAlarm(r *request) (any, error) {
	var in putMetricAlarmInput
	if err := cwBody(r, &in); err != nil {
		return nil, err
	}
	if err := in.validate(); err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	if s.cw.alarms == nil {
		s.cw.alarms = map[string]*metricAlarm{}
	}
	old := s.cw.alarms[in.AlarmName]
	a := &metricAlarm{
		AlarmName: in.AlarmName, AlarmArn: s.alarmARN(in.AlarmName), AlarmDescription: in.AlarmDescription,
		AlarmConfigurationUpdatedTimestamp: stamp(now), ActionsEnabled: in.ActionsEnabled == nil || *in.ActionsEnabled,
		OKActions: nonNil(in.OKActions), AlarmActions: nonNil(in.AlarmActions), InsufficientDataActions: nonNil(in.InsufficientDataActions),
		MetricName: in.MetricName, Namespace: in.Namespace, Statistic: in.Statistic, ExtendedStatistic: in.ExtendedStatistic,
		Dimensions: in.Dimensions, Period: in.Period, Unit: in.Unit, EvaluationPeriods: *in.EvaluationPeriods,
		DatapointsToAlarm: in.DatapointsToAlarm, Threshold: in.Threshold, ComparisonOperator: in.ComparisonOperator,
		TreatMissingData: in.TreatMissingData, EvaluateLowSampleCountPercentile: in.EvaluateLowSampleCountPercentile,
		StateValue: AlarmInsufficientData, StateReason: "Unchecked: Initial alarm creation",
		StateUpdatedTimestamp: stamp(now), StateTransitionedTimestamp: stamp(now),
	}
	if a.Dimensions == nil {
		a.Dimensions = []cwDimension{}
	}
	if old != nil { // an update keeps the state
		a.StateValue, a.StateReason, a.StateReasonData = old.StateValue, old.StateReason, old.StateReasonData
		a.StateUpdatedTimestamp, a.StateTransitionedTimestamp = old.StateUpdatedTimestamp, old.StateTransitionedTimestamp
	}
	s.cw.alarms[in.AlarmName] = a
	return nil, nil
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

type describeAlarmsInput struct {
	AlarmNames      []string `json:"AlarmNames"`
	AlarmNamePrefix string   `json:"AlarmNamePrefix"`
	AlarmTypes      []string `json:"AlarmTypes"`
	StateValue      string   `json:"StateValue"`
	ActionPrefix    string   `json:"ActionPrefix"`
	MaxRecords      *int32   `json:"MaxRecords"`
	NextToken       string   `json:"NextToken"`
}

type describeAlarmsOutput struct {
	MetricAlarms    []metricAlarm `json:"MetricAlarms"`
	CompositeAlarms []struct{}    `json:"CompositeAlarms"`
	NextToken       string        `json:"NextToken,omitempty"`
}

// describeAlarms lists the alarms by name, filtered by AlarmNames (at most
// 100) or AlarmNamePrefix, StateValue and ActionPrefix, MaxRecords (1 to
// 100, default 50) at a time.
func (s *Sim) describeAlarms(r *request) (any, error) {
	var in describeAlarmsInput
	if err := cwBody(r, &in); err != nil {
		return nil, err
	}
	max := 50
	switch {
	case len(in.AlarmNames) > 100:
		return nil, apiErr("InvalidParameterValueException", "The collection AlarmNames must not have more than 100 elements.")
	case len(in.AlarmNames) > 0 && in.AlarmNamePrefix != "":
		return nil, apiErr("InvalidParameterCombinationException", "The parameters AlarmNames and AlarmNamePrefix are mutually exclusive.")
	case in.StateValue != "" && !slices.Contains(cwStates, in.StateValue):
		return nil, apiErr("InvalidParameterValueException", "Invalid value %q for StateValue.", in.StateValue)
	case in.MaxRecords != nil && (*in.MaxRecords < 1 || *in.MaxRecords > 100):
		return nil, apiErr("InvalidParameterValueException", "The parameter MaxRecords must be between 1 and 100.")
	case in.MaxRecords != nil:
		max = int(*in.MaxRecords)
	}
	start, err := parsePageToken("alarms", in.NextToken)
	if err != nil {
		return nil, apiErr("InvalidNextToken", "The service returned an invalid next token.")
	}
	out := &describeAlarmsOutput{MetricAlarms: []metricAlarm{}, CompositeAlarms: []struct{}{}}
	if len(in.AlarmTypes) > 0 && !slices.Contains(in.AlarmTypes, "MetricAlarm") {
		return out, nil
	}
	s.lock()
	var list []metricAlarm
	for _, a := range s.cw.alarms {
		switch {
		case len(in.AlarmNames) > 0 && !slices.Contains(in.AlarmNames, a.AlarmName),
			in.AlarmNamePrefix != "" && !strings.HasPrefix(a.AlarmName, in.AlarmNamePrefix),
			in.StateValue != "" && a.StateValue != in.StateValue,
			in.ActionPrefix != "" && !slices.ContainsFunc(a.AlarmActions, func(x string) bool { return strings.HasPrefix(x, in.ActionPrefix) }):
			continue
		}
		list = append(list, *a)
	}
	s.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].AlarmName < list[j].AlarmName })
	page, next := pageOf(list, start, max, "alarms")
	out.MetricAlarms = append(out.MetricAlarms, page...)
	out.NextToken = next
	return out, nil
}

type setAlarmStateInput struct {
	AlarmName       string `json:"AlarmName"`
	StateValue      string `json:"StateValue"`
	StateReason     string `json:"StateReason"`
	StateReasonData string `json:"StateReasonData"`
}

// setAlarmState sets an alarm's state, as AWS does to test an alarm's
// actions. An alarm that goes to ALARM fails the instance refreshes that
// watch it.
func (s *Sim) setAlarmState(r *request) (any, error) {
	var in setAlarmStateInput
	if err := cwBody(r, &in); err != nil {
		return nil, err
	}
	if err := checkAlarmName("AlarmName", in.AlarmName); err != nil {
		return nil, err
	}
	switch {
	case in.StateValue == "":
		return nil, apiErr("MissingRequiredParameterException", "The parameter StateValue is required.")
	case !slices.Contains(cwStates, in.StateValue):
		return nil, apiErr("InvalidParameterValueException", "Invalid value %q for StateValue.", in.StateValue)
	case in.StateReason == "":
		return nil, apiErr("MissingRequiredParameterException", "The parameter StateReason is required.")
	case len(in.StateReason) > 1023:
		return nil, apiErr("InvalidParameterValueException", "The parameter StateReason must be at most 1023 characters.")
	case in.StateReasonData != "" && !json.Valid([]byte(in.StateReasonData)):
		return nil, apiErr("InvalidFormatFault", "Invalid JSON in StateReasonData.")
	}
	now := s.lock()
	defer s.mu.Unlock()
	a := s.cw.alarms[in.AlarmName]
	if a == nil {
		return nil, &APIError{Status: http.StatusNotFound, Code: "ResourceNotFound", Message: "Alarm " + in.AlarmName + " does not exist."}
	}
	if a.StateValue != in.StateValue {
		a.StateTransitionedTimestamp = stamp(now)
	}
	a.StateValue, a.StateReason, a.StateReasonData = in.StateValue, in.StateReason, in.StateReasonData
	a.StateUpdatedTimestamp = stamp(now)
	if in.StateValue == AlarmAlarm {
		s.alarmFiredLocked(in.AlarmName, now)
	}
	return nil, nil
}

type deleteAlarmsInput struct {
	AlarmNames []string `json:"AlarmNames"`
}

// deleteAlarms deletes the named alarms; when one of them does not exist
// it deletes none and answers ResourceNotFound.
func (s *Sim) deleteAlarms(r *request) (any, error) {
	var in deleteAlarmsInput
	if err := cwBody(r, &in); err != nil {
		return nil, err
	}
	switch {
	case len(in.AlarmNames) == 0:
		return nil, apiErr("MissingRequiredParameterException", "The parameter AlarmNames is required.")
	case len(in.AlarmNames) > 100:
		return nil, apiErr("InvalidParameterValueException", "The collection AlarmNames must not have more than 100 elements.")
	}
	s.lock()
	defer s.mu.Unlock()
	var missing []string
	for _, n := range in.AlarmNames {
		if s.cw.alarms[n] == nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, &APIError{Status: http.StatusNotFound, Code: "ResourceNotFound", Message: "Alarms not found: " + strings.Join(missing, ", ")}
	}
	for _, n := range in.AlarmNames {
		delete(s.cw.alarms, n)
	}
	return nil, nil
}

// alarmStateLocked is the state of the named alarm, "" when there is none.
// s.mu is held.
func (s *Sim) alarmStateLocked(name string) string {
	if a := s.cw.alarms[name]; a != nil {
		return a.StateValue
	}
	return ""
}

// AlarmState is the state of the named alarm in the home region's world,
// "" when there is none.
func (s *Sim) AlarmState(name string) string {
	s.lock()
	defer s.mu.Unlock()
	return s.alarmStateLocked(name)
}
