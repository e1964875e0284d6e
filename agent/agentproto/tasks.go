package agentproto

import (
	"slate/wipe"
)

// TaskKind names what a task asks the agent to do. Every kind exists here and only here:
// Slate queues tasks with these constants, the agent registers its runners under them, and
// TestNoTaskKindLiteralsOutsideAgentproto (internal/importrules) fails when a kind is spelled
// as a string literal anywhere else. The values are the wire form (Task.Kind, the tasks
// table), so they never change: a deploy environment built earlier still understands them.
type TaskKind string

// The task kinds.
const (
	// KindInspect reads the hardware facts (no params; the facts travel in Result.Facts).
	KindInspect TaskKind = "inspect"
	// KindReboot reboots the machine once Slate has the result (no params).
	KindReboot TaskKind = "reboot"
	// KindPowerOff powers the machine off once Slate has the result (no params).
	KindPowerOff TaskKind = "poweroff"
	// KindWait waits (WaitParams → WaitResult); for tests and drills.
	KindWait TaskKind = "wait"
	// KindInstallImage streams a release's raw disk image onto the target disk
	// (InstallImageParams → InstallImageResult).
	KindInstallImage TaskKind = "install-image"
	// KindInstallBootc runs a bootc image's own `bootc install to-disk`
	// (InstallBootcParams → InstallBootcResult).
	KindInstallBootc TaskKind = "install-bootc"
	// KindWipePlan probes every drive and proposes a sanitization plan; nothing is written
	// (WipePlanParams → WipePlanResult). Deploy environment only.
	KindWipePlan TaskKind = "wipe-plan"
	// KindWipe executes a plan Slate confirmed (WipeParams → WipeResult). Deploy environment
	// only: node mode never registers it, so an installed system cannot be asked to erase itself.
	KindWipe TaskKind = "wipe"
)

// Kinds lists every task kind.
func Kinds() []TaskKind {
	return []TaskKind{KindInspect, KindReboot, KindPowerOff, KindWait, KindInstallImage, KindInstallBootc, KindWipePlan, KindWipe}
}

// Known says whether k is one of Kinds.
func (k TaskKind) Known() bool {
	for _, c := range Kinds() {
		if k == c {
			return true
		}
	}
	return false
}

// Installs says whether a task of this kind writes a system onto the disk: it leaves an
// installed system behind (which may ask for a node token) and pulls from Slate's registry.
func (k TaskKind) Installs() bool { return k == KindInstallImage || k == KindInstallBootc }

// Manual says whether an operator may queue a task of this kind by hand (POST
// /api/v1/machines/{id}/tasks). Wipes and installs go through their own, confirmed, flows.
func (k TaskKind) Manual() bool {
	return k == KindInspect || k == KindReboot || k == KindPowerOff || k == KindWait
}

// ManualKinds lists the kinds Manual allows, for messages and the CLI.
func ManualKinds() []TaskKind {
	var out []TaskKind
	for _, k := range Kinds() {
		if k.Manual() {
			out = append(out, k)
		}
	}
	return out
}

// WaitParams are the wait task's params.
type WaitParams struct {
	Seconds float64 `json:"seconds"`
	// Fail makes the task fail at the end with this message (for tests and drills).
	Fail string `json:"fail,omitempty"`
}

// WaitResult is the wait task's result.
type WaitResult struct {
	WaitedSeconds float64 `json:"waited_seconds"`
}

// InstallImageParams are the install-image task's params, built by Slate from an approved
// release: the blob is fetched from Slate's registry with the machine's agent token. The
// fields are in the order of their JSON names because Slate sent this document as a map
// before it was a struct (encoding/json sorts map keys): the bytes stay the same.
type InstallImageParams struct {
	BlobURL string `json:"blob_url"` // http://slate/v2/<repo>/blobs/<digest>
	// Compression is the layer's compression ("gzip", "zstd", "" for none). Slate always
	// sends the key; deploy environments read it as optional.
	Compression string `json:"compression"`
	Digest      string `json:"digest"` // sha256:<hex> of the blob
	// ImageDigest is the release's manifest digest, recorded on the disk for the node.
	ImageDigest string     `json:"image_digest"`
	Release     string     `json:"release"` // name@version
	Target      DiskTarget `json:"target"`
}

// InstalledDisk is the disk an install chose, as reported in its result. Its fields carry no
// JSON tags because the agent always reported them under their Go names.
type InstalledDisk struct {
	Name, Serial, WWN string
	Bytes             int64
	Removable         bool
	Rotational        bool
}

// ImageWrite is what writing a raw image did (image/disk's WriteResult on the wire).
type ImageWrite struct {
	Written     int64  `json:"written"`       // bytes of raw image written
	DiskBytes   int64  `json:"disk_bytes"`    // size of the target disk
	RawSHA256   string `json:"raw_sha256"`    // of the decompressed image, checked on read-back
	StreamSHA   string `json:"stream_sha256"` // of the stream as received (= the digest)
	GPTRepaired bool   `json:"gpt_repaired"`  // the backup GPT header was moved to the disk's end
}

// InstallImageResult is the install-image task's result (fields in JSON name order, as the
// map the agent sent before).
type InstallImageResult struct {
	Disk        InstalledDisk `json:"disk"`
	ImageDigest string        `json:"image_digest"`
	Release     string        `json:"release"`
	Result      ImageWrite    `json:"result"`
}

// InstallBootcParams are the install-bootc task's params, built by Slate from an approved
// bootc release.
type InstallBootcParams struct {
	// Image is <Slate's registry host:port>/<repo>; the image is pulled by Digest from there.
	Image string `json:"image"`
	// Digest is the manifest digest (sha256:<hex>) the release pins.
	Digest string `json:"digest"`
	// TargetImgref is <repo>:<tag> on the same registry: what the installed system follows
	// for updates (bootc's --target-imgref).
	TargetImgref string     `json:"target_imgref"`
	Target       DiskTarget `json:"target"`
	// Kargs are added to the installed system's kernel command line, one --karg each.
	Kargs []string `json:"kargs,omitempty"`
	// RootSSHAuthorizedKeys is an authorized_keys file's content for root (optional).
	RootSSHAuthorizedKeys string `json:"root_ssh_authorized_keys,omitempty"`
	Release               string `json:"release"` // name@version, for the log
}

// InstallBootcResult is the install-bootc task's result (fields in JSON name order, as the
// map the agent sent before).
type InstallBootcResult struct {
	Disk         InstalledDisk `json:"disk"`
	Release      string        `json:"release"`
	SourceImgref string        `json:"source_imgref"` // registry:<host>/<repo>@<digest>
	TargetImgref string        `json:"target_imgref"` // <host>/<repo>:<tag>
}

// WipePlanParams are the wipe-plan task's params. Slate sends none ({}): the agent plans with
// wipe's default policy and Slate re-plans with its own from the probed drives.
type WipePlanParams struct {
	Policy *wipe.Policy `json:"policy,omitempty"`
}

// The wipe documents are defined by the wipe package, which owns the plan's semantics (its
// digest, its checks) and is linked by both sides; these names make them part of this
// contract, so a task's params and result are all found here.
type (
	// WipePlanResult is the wipe-plan task's result: the proposed plan.
	WipePlanResult = wipe.Plan
	// WipeParams are the wipe task's params: the plan as confirmed and its authorization.
	WipeParams = wipe.TaskParams
	// WipeResult is the wipe task's result: per-drive results and whether all are sanitized.
	WipeResult = wipe.TaskResult
)
