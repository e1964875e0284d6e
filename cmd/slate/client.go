package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// credentials is what `slate login` caches in the user's config directory.
type credentials struct {
	Server string `json:"server"`
	Token  string `json:"token"`
	User   string `json:"user"`
}

func credentialsPath(env *cliEnv) string {
	dir := env.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := env.getenv("HOME")
		if home == "" {
			home = "."
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "slate", "credentials.json")
}

func loadCredentials(env *cliEnv) credentials {
	var c credentials
	b, err := os.ReadFile(credentialsPath(env))
	if err == nil {
		_ = json.Unmarshal(b, &c)
	}
	return c
}

func saveCredentials(env *cliEnv, c credentials) error {
	p := credentialsPath(env)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	return os.WriteFile(p, b, 0o600)
}

// client talks to a Slate's API on behalf of a CLI command.
type client struct {
	server string
	token  string
	http   *http.Client
}

// newClient resolves the server (flag > SLATE_SERVER > cached) and token (SLATE_TOKEN > cached).
func newClient(env *cliEnv, serverFlag string) (*client, error) {
	cred := loadCredentials(env)
	server := firstNonEmpty(serverFlag, env.getenv("SLATE_SERVER"), cred.Server, "http://127.0.0.1:8080")
	token := firstNonEmpty(env.getenv("SLATE_TOKEN"), cred.Token)
	if token == "" {
		return nil, errors.New("not logged in: run `slate login --server URL` or set SLATE_TOKEN")
	}
	return &client{server: strings.TrimRight(server, "/"), token: token, http: &http.Client{Timeout: 60 * time.Second}}, nil
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// apiError is a problem+json answer.
type apiError struct {
	Status int
	Title  string
	Detail string
}

func (e *apiError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s (HTTP %d)", e.Detail, e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Title, e.Status)
}

// rawResponse is an answer that is not JSON (a PDF, a PEM file).
type rawResponse struct {
	Body   []byte
	Header http.Header
}

func (c *client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	u := c.server + "/api/v1" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach Slate at %s: %w (check --server / SLATE_SERVER)", c.server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		var p apiError
		_ = json.Unmarshal(data, &struct {
			Status *int    `json:"status"`
			Title  *string `json:"title"`
			Detail *string `json:"detail"`
		}{&p.Status, &p.Title, &p.Detail})
		p.Status = resp.StatusCode
		if p.Title == "" {
			p.Title = http.StatusText(resp.StatusCode)
		}
		if resp.StatusCode == http.StatusUnauthorized {
			p.Detail += " — run `slate login`"
		}
		return &p
	}
	if rr, ok := out.(*rawResponse); ok {
		rr.Body, rr.Header = data, resp.Header
		return nil
	}
	if out != nil && len(data) > 0 {
		if raw, ok := out.(*json.RawMessage); ok {
			*raw = append((*raw)[:0], data...)
			return nil
		}
		return json.Unmarshal(data, out)
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }
