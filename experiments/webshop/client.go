// Package webshop runs MEM1's multi-turn web-shopping domain (WebShop, arXiv
// 2506.15841 Table 2): a client for the HTTP protocol of AgentGym's
// agentenv-webshop server, the environment adapter the WebShop episode loop
// (core.WebShopAgent) steps, a small fake WebShop server for tests and demos,
// a scripted shopper, and the run loop that stores episodes.
package webshop

import (
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

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
)

// ErrEnvExpired is wrapped by a reply saying the environment index is unknown
// to the server (it restarted, or closed the index): the caller creates a new
// one and replays its actions.
var ErrEnvExpired = errors.New("webshop: environment index expired")

// Client speaks AgentGym's agentenv-webshop protocol:
//
//	POST /create                          → env_idx (a JSON number)
//	POST /reset  {"env_idx","session_id"}  (session_id: the goal index)
//	POST /step   {"env_idx","action"}      → {"state","reward","done","info"}
//	GET  /available_actions?env_idx=I      → {"has_search_bar","clickables"}
//	GET  /observation?env_idx=I            → the page text (a JSON string)
//	GET  /instruction_text?env_idx=I       → the goal's instruction
//	POST /close  {"env_idx"}
//
// Failures are *experiments.CallError values (status, Retry-After, Timeout)
// that experiments.Retryable classifies; a 404 or a reply {"error": …} that
// names an unknown index wraps ErrEnvExpired; other {"error": …} replies and
// replies that are not the JSON above are plain errors.
type Client struct {
	// BaseURL is the server's root, e.g. "http://127.0.0.1:36001".
	BaseURL string
	// Timeout limits each request (0 = none beyond ctx).
	Timeout time.Duration
	HTTP    *http.Client
}

// Create asks for a new environment and returns its index.
func (c *Client) Create(ctx context.Context) (int, error) {
	raw, err := c.do(ctx, http.MethodPost, "/create", nil, map[string]any{})
	if err != nil {
		return 0, err
	}
	var idx int
	if err := json.Unmarshal(raw, &idx); err != nil {
		var obj struct {
			ID     *int `json:"id"`
			EnvIdx *int `json:"env_idx"`
		}
		if json.Unmarshal(raw, &obj) == nil && (obj.ID != nil || obj.EnvIdx != nil) {
			if obj.ID != nil {
				return *obj.ID, nil
			}
			return *obj.EnvIdx, nil
		}
		return 0, fmt.Errorf("webshop %s/create: reply is not an env index: %s", c.BaseURL, clip(string(raw)))
	}
	return idx, nil
}

// Reset starts goal session on environment idx.
func (c *Client) Reset(ctx context.Context, idx, session int) error {
	_, err := c.do(ctx, http.MethodPost, "/reset", nil, map[string]any{"env_idx": idx, "session_id": session})
	return err
}

// Step applies action on environment idx.
func (c *Client) Step(ctx context.Context, idx int, action string) (state string, reward float64, done bool, err error) {
	raw, err := c.do(ctx, http.MethodPost, "/step", nil, map[string]any{"env_idx": idx, "action": action})
	if err != nil {
		return "", 0, false, err
	}
	var wire struct {
		State  *string  `json:"state"`
		Reward *float64 `json:"reward"`
		Done   *bool    `json:"done"`
	}
	if err := json.Unmarshal(raw, &wire); err != nil || wire.State == nil || wire.Done == nil {
		return "", 0, false, fmt.Errorf("webshop %s/step: reply is not {state, reward, done, info}: %s", c.BaseURL, clip(string(raw)))
	}
	if wire.Reward != nil {
		reward = *wire.Reward
	}
	return *wire.State, reward, *wire.Done, nil
}

// AvailableActions is the actions the current page of idx offers.
func (c *Client) AvailableActions(ctx context.Context, idx int) (core.AvailableActions, error) {
	raw, err := c.do(ctx, http.MethodGet, "/available_actions", url.Values{"env_idx": {strconv.Itoa(idx)}}, nil)
	if err != nil {
		return core.AvailableActions{}, err
	}
	var wire struct {
		HasSearchBar *bool    `json:"has_search_bar"`
		Clickables   []string `json:"clickables"`
	}
	if err := json.Unmarshal(raw, &wire); err != nil || wire.HasSearchBar == nil {
		return core.AvailableActions{}, fmt.Errorf("webshop %s/available_actions: reply is not {has_search_bar, clickables}: %s", c.BaseURL, clip(string(raw)))
	}
	return core.AvailableActions{HasSearchBar: *wire.HasSearchBar, Clickables: wire.Clickables}, nil
}

// Observation is the current page text of idx.
func (c *Client) Observation(ctx context.Context, idx int) (string, error) {
	return c.text(ctx, "/observation", idx)
}

// InstructionText is the goal instruction of idx's session.
func (c *Client) InstructionText(ctx context.Context, idx int) (string, error) {
	return c.text(ctx, "/instruction_text", idx)
}

// Close frees environment idx.
func (c *Client) Close(ctx context.Context, idx int) error {
	_, err := c.do(ctx, http.MethodPost, "/close", nil, map[string]any{"env_idx": idx})
	return err
}

func (c *Client) text(ctx context.Context, path string, idx int) (string, error) {
	raw, err := c.do(ctx, http.MethodGet, path, url.Values{"env_idx": {strconv.Itoa(idx)}}, nil)
	if err != nil {
		return "", err
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("webshop %s%s: reply is not a JSON string: %s", c.BaseURL, path, clip(string(raw)))
	}
	return s, nil
}

// do sends one request and returns the 2xx body, or the errors described on
// Client.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body any) ([]byte, error) {
	u := strings.TrimRight(c.BaseURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	reqCtx := ctx
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		reqCtx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(reqCtx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("webshop %s: %w", u, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	timedOut := func() bool { return ctx.Err() == nil && errors.Is(reqCtx.Err(), context.DeadlineExceeded) }
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &experiments.CallError{Timeout: timedOut(), Err: fmt.Errorf("webshop %s %s: %w", method, path, err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, &experiments.CallError{Timeout: timedOut(), Err: fmt.Errorf("webshop %s %s: reading reply: %w", method, path, err)}
	}
	if msg, ok := errorReply(raw); ok || resp.StatusCode == http.StatusNotFound {
		if !ok {
			msg = clip(string(raw))
		}
		if resp.StatusCode == http.StatusNotFound || expiredMessage(msg) {
			return nil, fmt.Errorf("webshop %s %s: %s: %w", method, path, msg, ErrEnvExpired)
		}
		if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
			return nil, fmt.Errorf("webshop %s %s: server error: %s", method, path, msg)
		}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &experiments.CallError{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After")),
			Err: fmt.Errorf("webshop %s %s: %s: %s", method, path, resp.Status, clip(string(raw)))}
	}
	return raw, nil
}

// errorReply reads AgentGym's {"error": "..."} replies.
func errorReply(raw []byte) (string, bool) {
	var e struct {
		Error *string `json:"error"`
	}
	if json.Unmarshal(raw, &e) != nil || e.Error == nil {
		return "", false
	}
	return *e.Error, true
}

func expiredMessage(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "env_idx") && (strings.Contains(m, "not found") || strings.Contains(m, "expired") || strings.Contains(m, "unknown"))
}

func retryAfter(v string) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

func clip(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
