package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls a kiln server's API. Its methods block until the server
// answered; ctx cancels the call.
type Client struct {
	base  string // e.g. http://127.0.0.1:8080, no trailing slash
	token string
	http  *http.Client
	// Reconnect is how long Follow waits before it reconnects a broken
	// stream, and MaxReconnects how many times it tries in a row.
	Reconnect     time.Duration
	MaxReconnects int
}

// NewClient returns a client of the server at base with the admin token.
func NewClient(base, token string) *Client {
	return &Client{
		base: strings.TrimSuffix(base, "/"), token: token,
		// No overall timeout: Follow's stream lasts as long as the bake.
		http:      &http.Client{},
		Reconnect: time.Second, MaxReconnects: 30,
	}
}

// APIError is an error answer of the server.
type APIError struct {
	Status   int
	Message  string
	Problems []string // an invalid project file's problems
}

func (e *APIError) Error() string {
	if e.Status == http.StatusUnauthorized {
		if e.Message != "" && e.Message != "bad or missing token" {
			return e.Message + " (KILN_TOKEN)"
		}
		return "bad or missing token (KILN_TOKEN)"
	}
	if e.Message == "" {
		return fmt.Sprintf("server answered %d %s", e.Status, http.StatusText(e.Status))
	}
	return e.Message
}

// UnreachableError is a server that did not answer at all.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the kiln server at %s (is kiln serve running? --server / KILN_SERVER): %v", e.URL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Projects lists every project.
func (c *Client) Projects(ctx context.Context) ([]Project, error) {
	var out struct {
		Projects []Project `json:"projects"`
	}
	err := c.do(ctx, http.MethodGet, "/api/projects", nil, nil, &out)
	return out.Projects, err
}

// Project returns one project.
func (c *Client) Project(ctx context.Context, name string) (*Project, error) {
	var out Project
	if err := c.do(ctx, http.MethodGet, "/api/projects/"+url.PathEscape(name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Apply creates or updates a project from a project file. file names it
// in problems; env supplies the variables its webhook_secret refers to.
func (c *Client) Apply(ctx context.Context, file string, data []byte, env map[string]string) (*ApplyResult, error) {
	h := http.Header{}
	h.Set("Content-Type", "application/yaml")
	h.Set("Kiln-File", file)
	for k, v := range env {
		h.Add("Kiln-Env", k+"="+v)
	}
	var out ApplyResult
	if err := c.do(ctx, http.MethodPost, "/api/projects", h, data, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteProject deletes a project and its bakes' records.
func (c *Client) DeleteProject(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/projects/"+url.PathEscape(name), nil, nil, nil)
}

// RotateSecret gives a project a new, generated webhook secret and returns
// it: the only time it is shown. The old secret stops working at once.
func (c *Client) RotateSecret(ctx context.Context, name string) (*SecretResult, error) {
	var out SecretResult
	if err := c.do(ctx, http.MethodPost, "/api/projects/"+url.PathEscape(name)+"/secret", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Trigger queues a bake of project now.
func (c *Client) Trigger(ctx context.Context, project string) (*TriggerResult, error) {
	var out TriggerResult
	if err := c.do(ctx, http.MethodPost, "/api/projects/"+url.PathEscape(project)+"/bakes", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// BakeQuery selects a page of bakes.
type BakeQuery struct {
	Project string
	Limit   int   // 0: the server's default (50)
	Before  int64 // BakeList.NextBefore of the previous page
}

// Bakes returns a page of bakes, newest first.
func (c *Client) Bakes(ctx context.Context, q BakeQuery) (*BakeList, error) {
	v := url.Values{}
	if q.Project != "" {
		v.Set("project", q.Project)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Before > 0 {
		v.Set("before", strconv.FormatInt(q.Before, 10))
	}
	path := "/api/bakes"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out BakeList
	if err := c.do(ctx, http.MethodGet, path, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Bake returns one bake with its steps.
func (c *Client) Bake(ctx context.Context, id int64) (*Bake, error) {
	var out Bake
	if err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/bakes/%d", id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Cancel asks the server to cancel a bake; it does not wait for the
// builder to be gone.
func (c *Client) Cancel(ctx context.Context, id int64, reason string) (*Bake, error) {
	var body []byte
	if reason != "" {
		body, _ = json.Marshal(map[string]string{"reason": reason})
	}
	var out Bake
	if err := c.do(ctx, http.MethodPost, fmt.Sprintf("/api/bakes/%d/cancel", id), nil, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Follow streams a bake's progress, calling fn with the bake each time it
// changed, until the bake is over; it returns the final bake. A broken
// stream (the server restarting) is reconnected up to MaxReconnects times
// in a row. It blocks; ctx stops it.
func (c *Client) Follow(ctx context.Context, id int64, fn func(*Bake)) (*Bake, error) {
	failures := 0
	var last *Bake
	for {
		b, err := c.stream(ctx, id, func(b *Bake) {
			failures = 0
			last = b
			fn(b)
		})
		if err == nil && b != nil && b.State.Final() {
			return b, nil
		}
		var apiErr *APIError
		if errors.As(err, &apiErr) || ctx.Err() != nil {
			return last, err
		}
		failures++
		if failures > c.MaxReconnects {
			if err == nil {
				err = errors.New("the stream ended before the bake did")
			}
			return last, fmt.Errorf("follow bake %d: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(c.Reconnect):
		}
	}
}

// stream reads one progress stream; it returns the last bake seen.
func (c *Client) stream(ctx context.Context, id int64, fn func(*Bake)) (*Bake, error) {
	req, err := c.request(ctx, http.MethodGet, fmt.Sprintf("/api/bakes/%d/events", id), nil, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &UnreachableError{URL: c.base, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, readError(resp)
	}
	var (
		last  *Bake
		event string
		data  bytes.Buffer
	)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20) // a bake with a 64 KiB console tail fits
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event == "bake" {
				var b Bake
				if err := json.Unmarshal(data.Bytes(), &b); err != nil {
					return last, fmt.Errorf("progress stream of bake %d: %w", id, err)
				}
				last = &b
				fn(last)
			}
			if event == "end" {
				return last, nil
			}
			event = ""
			data.Reset()
		case strings.HasPrefix(line, ":"): // comment (keep-alive)
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if err := sc.Err(); err != nil {
		return last, err
	}
	return last, nil
}

func (c *Client) request(ctx context.Context, method, path string, h http.Header, body []byte) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, fmt.Errorf("kiln server %q: %w", c.base, err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// do sends one request and decodes a 2xx JSON answer into out (when
// non-nil); any other answer becomes an *APIError.
func (c *Client) do(ctx context.Context, method, path string, h http.Header, body []byte, out any) error {
	req, err := c.request(ctx, method, path, h, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &UnreachableError{URL: c.base, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return readError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func readError(resp *http.Response) error {
	e := &APIError{Status: resp.StatusCode}
	var body Error
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(data, &body) == nil {
		e.Message, e.Problems = body.Error, body.Problems
	}
	return e
}
