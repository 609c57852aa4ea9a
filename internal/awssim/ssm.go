package awssim

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SSM Parameter Store (AWS JSON 1.1, jsonproto.go: POST /, X-Amz-Target
// AmazonSSM.ACTION, a JSON body; errors {"__type", "message"}).
// Parameters are kept by name with every version; a SecureString's value
// is returned only WithDecryption (otherwise an opaque ciphertext, as KMS
// gives). Names follow AWS's rules: letters, digits and _.-/, a
// hierarchical name starts with "/" and has at most 15 levels, "aws" and
// "ssm" prefixes are reserved. Values are at most 4 KB (Standard tier).

var ssmMatch, ssmDecode = jsonTarget("AmazonSSM")

var ssmService = &service{
	name:    "ssm",
	match:   ssmMatch,
	decode:  ssmDecode,
	proto:   awsJSON{version: "1.1", namespace: "com.amazonaws.ssm"},
	actions: ssmActions,
}

// ssmActions is the Parameter Store API, one line per action.
var ssmActions = map[string]action{
	"PutParameter":        (*Sim).putParameter,
	"GetParameter":        (*Sim).getParameter,
	"GetParameters":       (*Sim).getParameters,
	"GetParametersByPath": (*Sim).getParametersByPath,
	"DeleteParameter":     (*Sim).deleteParameter,
	"DeleteParameters":    (*Sim).deleteParameters,
}

// ssmState is Parameter Store, guarded by Sim.mu.
type ssmState struct {
	params map[string]*ssmParam
}

type ssmParam struct {
	name     string
	versions []ssmVersion // oldest first; the last is current
}

type ssmVersion struct {
	typ, value, cipher, description, dataType string
	version                                   int64
	modified                                  time.Time
}

// ssmParameter is the Parameter shape of the answers.
type ssmParameter struct {
	Name             string  `json:"Name"`
	Type             string  `json:"Type"`
	Value            string  `json:"Value"`
	Version          int64   `json:"Version"`
	LastModifiedDate float64 `json:"LastModifiedDate"`
	ARN              string  `json:"ARN"`
	DataType         string  `json:"DataType"`
	Selector         string  `json:"Selector,omitempty"`
}

const (
	ssmMaxValue  = 4096
	ssmMaxName   = 2048
	ssmMaxLevels = 15
)

var ssmNameRe = regexp.MustCompile(`^[A-Za-z0-9_.\-/]+$`)

// checkSSMName applies AWS's naming rules to a parameter name.
func checkSSMName(name string) error {
	lower := strings.ToLower(strings.TrimPrefix(name, "/"))
	switch {
	case name == "" || len(name) > ssmMaxName:
		return apiErr("ValidationException", "Parameter name must be 1 to %d characters.", ssmMaxName)
	case !ssmNameRe.MatchString(name):
		return apiErr("ValidationException", "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive). It must use only letters, numbers, or the following symbols: . (period), - (hyphen), _ (underscore). Special characters are not allowed. All sub-paths, if specified, must use the forward slash symbol \"/\". Valid example: /get/parameters2-/by1./path0_.")
	case strings.HasPrefix(lower, "aws") || strings.HasPrefix(lower, "ssm"):
		return apiErr("ValidationException", "No access to reserved parameter name: %s.", name)
	case strings.Contains(name, "/") && !strings.HasPrefix(name, "/"):
		return apiErr("ValidationException", "Parameter name must be a fully qualified name.")
	case strings.HasSuffix(name, "/") || strings.Contains(name, "//"):
		return apiErr("ValidationException", "Parameter name must not end with a slash or hold an empty level.")
	case strings.Count(name, "/") > ssmMaxLevels:
		return &APIError{Status: http.StatusBadRequest, Code: "HierarchyLevelLimitExceededException", Message: "A hierarchy can have a maximum of 15 levels."}
	}
	return nil
}

// checkNames applies the 1-to-10 rule of GetParameters and DeleteParameters.
func checkNames(names []string) error {
	if len(names) == 0 || len(names) > 10 {
		return apiErr("ValidationException", "1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length between 1 and 10")
	}
	return nil
}

func (s *Sim) ssmARN(name string) string {
	return "arn:aws:ssm:" + s.opts.Region + ":" + s.opts.Account + ":parameter/" + strings.TrimPrefix(name, "/")
}

// answer is version v of p as GetParameter returns it.
func (s *Sim) ssmAnswer(p *ssmParam, v *ssmVersion, decrypt bool, selector string) ssmParameter {
	val := v.value
	if v.typ == "SecureString" && !decrypt {
		val = v.cipher
	}
	return ssmParameter{
		Name: p.name, Type: v.typ, Value: val, Version: v.version, Selector: selector,
		LastModifiedDate: float64(v.modified.UnixMilli()) / 1000, ARN: s.ssmARN(p.name), DataType: v.dataType,
	}
}

func (s *Sim) putParameter(r *request) (any, error) {
	var in struct {
		Name, Value, Type, Description, KeyId, Tier, DataType string
		Overwrite                                             bool
		Tags                                                  []struct{ Key, Value string }
	}
	if err := r.input(&in); err != nil {
		return nil, err
	}
	if err := checkSSMName(in.Name); err != nil {
		return nil, err
	}
	switch {
	case in.Value == "":
		return nil, apiErr("ValidationException", "1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1")
	case len(in.Value) > ssmMaxValue:
		return nil, apiErr("ValidationException", "Standard tier parameters support a maximum parameter value of 4096 characters.")
	case in.Tier != "" && in.Tier != "Standard":
		return nil, apiErr("ValidationException", "kiln's simulator serves the Standard tier only.")
	case in.Overwrite && len(in.Tags) > 0:
		return nil, apiErr("ValidationException", "Invalid request: tags and overwrite can't be used together.")
	}
	if in.DataType == "" {
		in.DataType = "text"
	}
	now := s.lock()
	defer s.mu.Unlock()
	if s.ssm.params == nil {
		s.ssm.params = map[string]*ssmParam{}
	}
	p := s.ssm.params[in.Name]
	if p != nil && !in.Overwrite {
		return nil, apiErr("ParameterAlreadyExists", "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.")
	}
	if in.Type == "" {
		if p == nil {
			return nil, apiErr("ValidationException", "A parameter type is required when you create a parameter.")
		}
		in.Type = p.versions[len(p.versions)-1].typ
	}
	if in.Type != "String" && in.Type != "StringList" && in.Type != "SecureString" {
		return nil, apiErr("ValidationException", "1 validation error detected: Value '%s' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]", in.Type)
	}
	if in.KeyId != "" && in.Type != "SecureString" {
		return nil, apiErr("ValidationException", "KeyId is only valid for a SecureString parameter.")
	}
	if p == nil {
		p = &ssmParam{name: in.Name}
		s.ssm.params[in.Name] = p
	}
	v := ssmVersion{typ: in.Type, value: in.Value, description: in.Description, dataType: in.DataType, version: int64(len(p.versions)) + 1, modified: now}
	if p.versions != nil {
		v.version = p.versions[len(p.versions)-1].version + 1
	}
	if v.typ == "SecureString" {
		b := make([]byte, 48+len(in.Value))
		rand.Read(b)
		v.cipher = "AQICAH" + base64.StdEncoding.EncodeToString(b)
	}
	p.versions = append(p.versions, v)
	return map[string]any{"Version": v.version, "Tier": "Standard"}, nil
}

// lookupParamLocked finds name, or name:VERSION; s.mu is held.
func (s *Sim) lookupParamLocked(name string) (*ssmParam, *ssmVersion, string, error) {
	base, sel, hasSel := strings.Cut(name, ":")
	p := s.ssm.params[base]
	if p == nil {
		return nil, nil, "", apiErr("ParameterNotFound", "Parameter %s not found.", base)
	}
	if !hasSel {
		return p, &p.versions[len(p.versions)-1], "", nil
	}
	n, err := strconv.ParseInt(sel, 10, 64)
	if err != nil {
		return nil, nil, "", apiErr("ValidationException", "Invalid parameter version or label: %s", sel)
	}
	for i := range p.versions {
		if p.versions[i].version == n {
			return p, &p.versions[i], ":" + sel, nil
		}
	}
	return nil, nil, "", apiErr("ParameterVersionNotFound", "Systems Manager could not find version %d of %s. Verify the version and try again.", n, base)
}

func (s *Sim) getParameter(r *request) (any, error) {
	var in struct {
		Name           string
		WithDecryption bool
	}
	if err := r.input(&in); err != nil {
		return nil, err
	}
	s.lock()
	defer s.mu.Unlock()
	p, v, sel, err := s.lookupParamLocked(in.Name)
	if err != nil {
		return nil, err
	}
	return map[string]any{"Parameter": s.ssmAnswer(p, v, in.WithDecryption, sel)}, nil
}

func (s *Sim) getParameters(r *request) (any, error) {
	var in struct {
		Names          []string
		WithDecryption bool
	}
	if err := r.input(&in); err != nil {
		return nil, err
	}
	if err := checkNames(in.Names); err != nil {
		return nil, err
	}
	s.lock()
	defer s.mu.Unlock()
	out := struct {
		Parameters        []ssmParameter
		InvalidParameters []string
	}{Parameters: []ssmParameter{}, InvalidParameters: []string{}}
	for _, n := range in.Names {
		p, v, sel, err := s.lookupParamLocked(n)
		if err != nil {
			out.InvalidParameters = append(out.InvalidParameters, n)
			continue
		}
		out.Parameters = append(out.Parameters, s.ssmAnswer(p, v, in.WithDecryption, sel))
	}
	return out, nil
}

func (s *Sim) getParametersByPath(r *request) (any, error) {
	var in struct {
		Path, NextToken           string
		Recursive, WithDecryption bool
		MaxResults                int
	}
	if err := r.input(&in); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(in.Path, "/") || strings.Count(in.Path, "/") > ssmMaxLevels+1 {
		return nil, apiErr("ValidationException", "The parameter path must begin with a forward slash (/) and have at most 15 levels.")
	}
	if in.MaxResults == 0 {
		in.MaxResults = 10
	}
	if in.MaxResults < 1 || in.MaxResults > 10 {
		return nil, apiErr("ValidationException", "1 validation error detected: Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 10", in.MaxResults)
	}
	start := 0
	if in.NextToken != "" {
		n, err := strconv.Atoi(in.NextToken)
		if err != nil || n < 0 {
			return nil, apiErr("ValidationException", "The specified token is not valid.")
		}
		start = n
	}
	prefix := strings.TrimSuffix(in.Path, "/") + "/"
	s.lock()
	defer s.mu.Unlock()
	var names []string
	for name := range s.ssm.params {
		rest, ok := strings.CutPrefix(name, prefix)
		if ok && (in.Recursive || !strings.Contains(rest, "/")) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	out := struct {
		Parameters []ssmParameter
		NextToken  string `json:",omitempty"`
	}{Parameters: []ssmParameter{}}
	for i := start; i < len(names); i++ {
		if len(out.Parameters) == in.MaxResults {
			out.NextToken = strconv.Itoa(i)
			break
		}
		p := s.ssm.params[names[i]]
		out.Parameters = append(out.Parameters, s.ssmAnswer(p, &p.versions[len(p.versions)-1], in.WithDecryption, ""))
	}
	return out, nil
}

func (s *Sim) deleteParameter(r *request) (any, error) {
	var in struct{ Name string }
	if err := r.input(&in); err != nil {
		return nil, err
	}
	s.lock()
	defer s.mu.Unlock()
	if s.ssm.params[in.Name] == nil {
		return nil, apiErr("ParameterNotFound", "Parameter %s not found.", in.Name)
	}
	delete(s.ssm.params, in.Name)
	return struct{}{}, nil
}

func (s *Sim) deleteParameters(r *request) (any, error) {
	var in struct{ Names []string }
	if err := r.input(&in); err != nil {
		return nil, err
	}
	if err := checkNames(in.Names); err != nil {
		return nil, err
	}
	s.lock()
	defer s.mu.Unlock()
	out := struct{ DeletedParameters, InvalidParameters []string }{[]string{}, []string{}}
	for _, n := range in.Names {
		if s.ssm.params[n] == nil {
			out.InvalidParameters = append(out.InvalidParameters, n)
			continue
		}
		delete(s.ssm.params, n)
		out.DeletedParameters = append(out.DeletedParameters, n)
	}
	return out, nil
}

// Parameter returns the current value, type and version of the parameter
// name, decrypted (tests look at what kiln stored), and false when there is
// none.
func (s *Sim) Parameter(name string) (value, typ string, version int64, ok bool) {
	s.lock()
	defer s.mu.Unlock()
	p := s.ssm.params[name]
	if p == nil {
		return "", "", 0, false
	}
	v := p.versions[len(p.versions)-1]
	return v.value, v.typ, v.version, true
}
