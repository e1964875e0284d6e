// Package agentproto is the wire protocol between slate-agent and Slate's agent API
// (/agent/v1/…): JSON bodies, a bearer token bound to one machine. Both sides import it, so
// they cannot drift apart. tasks.go is the task contract: every kind (TaskKind) and every
// task's params and result.
//
//	POST /agent/v1/register              Register            → RegisterReply
//	GET  /agent/v1/tasks/next?wait=25s   -                   → 200 Task | 204 nothing to do
//	POST /agent/v1/tasks/{id}/progress   Progress            → 204 | 409 task finished/cancelled
//	POST /agent/v1/tasks/{id}/result     Result              → 200 ResultReply (repeat-safe)
//	PUT  /agent/v1/facts                 Facts               → 200 FactsReply
//	POST /agent/v1/heartbeat             Heartbeat           → 200 HeartbeatReply
//	POST /agent/v1/tasks/{id}/node-token -                   → 200 NodeToken (install tasks)
//
// Errors are {"error": "..."} with 400 (bad body), 401 (token), 404 (not this machine's), 409.
package agentproto

import (
	"encoding/json"
	"time"
)

// PathPrefix is where Slate mounts the agent API.
const PathPrefix = "/agent/v1"

// Register is the first call of a booted agent.
type Register struct {
	Mode         string   `json:"mode"` // "deploy" (the deploy env) or "node" (an installed OS)
	AgentVersion string   `json:"agent_version"`
	BootID       string   `json:"boot_id"`
	MACs         []string `json:"macs"`
	Addresses    []string `json:"addresses,omitempty"`
}

// RegisterReply tells the agent who it is.
type RegisterReply struct {
	MachineID string `json:"machine_id"`
	Name      string `json:"name"`
	State     string `json:"state"`
}

// Task is what the agent is asked to do.
type Task struct {
	ID       string          `json:"id"`
	Kind     TaskKind        `json:"kind"`
	Params   json.RawMessage `json:"params"`
	Attempts int             `json:"attempts"`
}

// LogLine is one line of task output; Seq is per task, from 1, chosen by the agent so that
// a retried upload is stored once.
type LogLine struct {
	Seq  int64     `json:"seq"`
	At   time.Time `json:"at"`
	Line string    `json:"line"`
}

// Progress reports how far a running task is (0..1) with new log lines.
type Progress struct {
	Progress float64   `json:"progress"`
	Message  string    `json:"message,omitempty"`
	Logs     []LogLine `json:"logs,omitempty"`
}

// Result ends a task. Facts, for an inspect task, are stored with it in one transaction.
type Result struct {
	State   string          `json:"state"` // "succeeded" or "failed"
	Message string          `json:"message,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Facts   *Facts          `json:"facts,omitempty"`
	Logs    []LogLine       `json:"logs,omitempty"`
}

// ResultReply confirms a result; Duplicate means it had already been recorded.
type ResultReply struct {
	State     string `json:"state"`
	Duplicate bool   `json:"duplicate"`
}

// FactsReply gives the stored version.
type FactsReply struct {
	Version  int      `json:"version"`
	Warnings []string `json:"warnings,omitempty"`
}

// Heartbeat is what a running node (or the deploy env, idle) says periodically.
type Heartbeat struct {
	Mode          string `json:"mode"`
	BootID        string `json:"boot_id"`
	UptimeSeconds int64  `json:"uptime_seconds"`
	// BootedRelease is the image digest bootc booted, or the release the installer wrote.
	BootedRelease string `json:"booted_release,omitempty"`
	ReleaseSource string `json:"release_source,omitempty"` // "bootc" or "release-file"
	// InstalledRelease and ImageDigest are what the installer recorded on the disk (disk
	// images): Slate checks the booted system agrees with them and with the release.
	InstalledRelease string `json:"installed_release,omitempty"`
	ImageDigest      string `json:"image_digest,omitempty"`
}

// NodeToken is the long-lived token an install task leaves on the installed disk for
// `slate-agent node`; issuing one revokes the machine's earlier node tokens.
type NodeToken struct {
	Token     string `json:"token"`
	MachineID string `json:"machine_id"`
}

// HeartbeatReply tells a node how often to come back.
type HeartbeatReply struct {
	IntervalSeconds int `json:"interval_seconds"`
}

// Error is every error body.
type Error struct {
	Error string `json:"error"`
}
