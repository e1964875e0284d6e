package wipe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Authorization is what the agent's `wipe` task passes to prove the wipe was requested and
// confirmed: nothing is erased without one that matches the plan.
type Authorization struct {
	TaskID      string `json:"task_id"`
	MachineID   string `json:"machine_id"`
	PlanDigest  string `json:"plan_digest"`
	ConfirmedBy string `json:"confirmed_by"`
}

// Progress is one progress report for one drive.
type Progress struct {
	MachineID string  `json:"machine_id"`
	TaskID    string  `json:"task_id"`
	Drive     string  `json:"drive"`
	Phase     string  `json:"phase"` // sample-before, purge, overwrite, verify, done, failed
	Method    Method  `json:"method"`
	Done      uint64  `json:"done"`  // bytes, or the drive's progress in 1/65536 units
	Total     uint64  `json:"total"` // bytes, or 65536
	Fraction  float64 `json:"fraction"`
	ETA       float64 `json:"eta_seconds"` // -1 when unknown
	Rate      float64 `json:"bytes_per_second,omitempty"`
	Message   string  `json:"message,omitempty"`
}

// Options are the executor's injected dependencies; zero values mean the real system.
type Options struct {
	Log  *slog.Logger
	Now  func() time.Time
	Rand io.Reader // AES keys and sampling seeds
	// Progress is called from one goroutine per drive: it must be safe for concurrent use.
	Progress func(Progress)
	// Open opens a drive for commands (NVMe admin, SG_IO), logging every command.
	Open func(path string) (Commander, io.Closer, error)
	// OpenIO opens a drive for O_DIRECT data I/O.
	OpenIO func(path string, write bool) (blockIOCloser, error)
	// Reprobe re-reads a drive's usage (mounted, holders, boot device) just before it runs.
	Reprobe func(ctx context.Context, d DriveInfo) (DriveInfo, error)
	// TCGErase performs a TCG cryptographic erase (go-tcg-storage by default).
	TCGErase func(ctx context.Context, path, psid string) error
	// PSIDs by drive serial, for owned TCG drives.
	PSIDs            map[string]string
	BufferSize       int
	PollInterval     time.Duration
	ProgressInterval time.Duration
	// Tool is the sanitization tool and version put on the certificate.
	Tool string
}

type blockIOCloser interface {
	blockIO
	io.Closer
}

// Result is the outcome of one drive. A certificate is issued only for Status "sanitized".
type Result struct {
	Drive          DriveInfo    `json:"drive"`
	Level          Level        `json:"level"`
	Method         Method       `json:"method"`
	MethodDetails  string       `json:"method_details"`
	Status         string       `json:"status"` // sanitized, failed, interrupted
	Start          time.Time    `json:"start"`
	End            time.Time    `json:"end"`
	BytesWritten   uint64       `json:"bytes_written"`
	BytesPerSecond float64      `json:"bytes_per_second"`
	Verification   Verification `json:"verification"`
	Errors         []string     `json:"errors,omitempty"`
	// Attempts lists methods the drive rejected before Method succeeded.
	Attempts []string `json:"attempts,omitempty"`
	// CommandCompleted says the drive reported the purge command (format, sanitize, security
	// erase, TCG revert) as completed; Slate accepts a purge result only with it.
	CommandCompleted bool `json:"command_completed,omitempty"`
}

// Verification is what was checked after sanitization; it goes on the certificate.
type Verification struct {
	Method      string  `json:"method"`
	Passed      bool    `json:"passed"`
	BytesRead   uint64  `json:"bytes_read"`
	Extents     int     `json:"extents"`
	Subsections int     `json:"subsections,omitempty"`
	SamplePct   float64 `json:"sample_percent,omitempty"`
	Seed        uint64  `json:"seed,omitempty"`
	Mismatches  uint64  `json:"mismatched_blocks"`
	FirstBad    int64   `json:"first_bad_offset"`
	Details     string  `json:"details"`
}

const (
	StatusSanitized   = "sanitized"
	StatusFailed      = "failed"
	StatusInterrupted = "interrupted"
)

func (o *Options) defaults() {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Open == nil {
		o.Open = openLogged(o.Log)
	}
	if o.OpenIO == nil {
		o.OpenIO = func(path string, write bool) (blockIOCloser, error) { return openDirect(path, write) }
	}
	if o.Reprobe == nil {
		p := DefaultProber(o.Log)
		p.Open, p.TCG = nil, nil // usage only: no commands
		o.Reprobe = func(ctx context.Context, d DriveInfo) (DriveInfo, error) { return p.Probe(ctx, d.Name) }
	}
	if o.TCGErase == nil {
		o.TCGErase = tcgCryptoErase
	}
	if o.BufferSize <= 0 {
		o.BufferSize = 8 << 20
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Second
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = time.Second
	}
	if o.Tool == "" {
		o.Tool = "Slate wipe"
	}
}

// ErrNotAuthorized is returned when the authorization does not match the plan.
var ErrNotAuthorized = errors.New("wipe not authorized")

// Execute sanitizes every drive of the plan in parallel. It refuses to start without an
// Authorization for this machine and this exact plan, and refuses any drive that is mounted,
// held, or the device the agent runs from. A drive whose run was interrupted (ctx cancelled)
// gets Status "interrupted" and so never a certificate; the task starts over.
func Execute(ctx context.Context, auth Authorization, plan Plan, opts Options) ([]Result, error) {
	opts.defaults()
	if auth.TaskID == "" || auth.MachineID == "" || auth.PlanDigest == "" || auth.ConfirmedBy == "" {
		return nil, fmt.Errorf("%w: the authorization needs a task id, machine id, plan digest and the confirming user", ErrNotAuthorized)
	}
	if auth.MachineID != plan.MachineID {
		return nil, fmt.Errorf("%w: authorization is for machine %q, plan is for %q", ErrNotAuthorized, auth.MachineID, plan.MachineID)
	}
	if d := plan.Digest(); auth.PlanDigest != d {
		return nil, fmt.Errorf("%w: the confirmed plan digest %s differs from this plan's %s: show and confirm the plan again", ErrNotAuthorized, auth.PlanDigest, d)
	}
	if err := plan.Policy.Validate(); err != nil {
		return nil, err
	}
	if !plan.Runnable() {
		return nil, fmt.Errorf("plan for machine %s has blocked drives or none: resolve them (see each drive's remedy) and plan again", plan.MachineID)
	}
	log := opts.Log.With("machine", auth.MachineID, "task", auth.TaskID)
	log.Info("wipe starting", "drives", len(plan.Drives), "plan", auth.PlanDigest, "confirmed_by", auth.ConfirmedBy)
	results := make([]Result, len(plan.Drives))
	var wg sync.WaitGroup
	for i, dp := range plan.Drives {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := runDrive(ctx, auth, plan.Policy, dp, opts, log.With("device", dp.Drive.Path))
			results[i] = r
		}()
	}
	wg.Wait()
	return results, nil
}

// driveRun carries one drive's state through its phases.
type driveRun struct {
	ctx    context.Context
	auth   Authorization
	pol    Policy
	dp     DrivePlan
	opts   Options
	log    *slog.Logger
	res    *Result
	phase  string
	start  time.Time
	last   time.Time
	method Method
}

func runDrive(ctx context.Context, auth Authorization, pol Policy, dp DrivePlan, opts Options, log *slog.Logger) Result {
	res := Result{Drive: dp.Drive, Start: opts.Now().UTC(), Status: StatusFailed}
	r := &driveRun{ctx: ctx, auth: auth, pol: pol, dp: dp, opts: opts, log: log, res: &res}
	err := r.run()
	res.End = opts.Now().UTC()
	if secs := res.End.Sub(res.Start).Seconds(); secs > 0 {
		res.BytesPerSecond = float64(res.Drive.SizeBytes) / secs
	}
	switch {
	case err == nil && res.Verification.Passed:
		res.Status = StatusSanitized
	case ctx.Err() != nil:
		res.Status = StatusInterrupted
		res.Errors = append(res.Errors, fmt.Sprintf("interrupted: %v (the wipe must start again; no certificate)", ctx.Err()))
	case err != nil:
		res.Errors = append(res.Errors, err.Error())
	default:
		res.Errors = append(res.Errors, "verification failed: "+res.Verification.Details)
	}
	phase := "done"
	if res.Status != StatusSanitized {
		phase = "failed"
	}
	r.report(phase, 1, 1, true, res.Status)
	log.Info("wipe finished", "status", res.Status, "method", res.Method, "errors", res.Errors)
	return res
}

func (r *driveRun) report(phase string, done, total uint64, force bool, msg string) {
	if r.opts.Progress == nil {
		return
	}
	now := r.opts.Now()
	if phase != r.phase {
		r.phase, r.start = phase, now
		force = true
	}
	if !force && now.Sub(r.last) < r.opts.ProgressInterval {
		return
	}
	r.last = now
	p := Progress{MachineID: r.auth.MachineID, TaskID: r.auth.TaskID, Drive: r.dp.Drive.Path, Phase: phase,
		Method: r.method, Done: done, Total: total, ETA: -1, Message: msg}
	if total > 0 {
		p.Fraction = float64(done) / float64(total)
	}
	if el := now.Sub(r.start).Seconds(); el > 0 && done > 0 && done <= total {
		p.Rate = float64(done) / el
		p.ETA = float64(total-done) / p.Rate
	}
	r.opts.Progress(p)
}

func (r *driveRun) bytesProgress(phase string) progressFn {
	return func(done, total uint64) { r.report(phase, done, total, done == total, "") }
}

func (r *driveRun) run() error {
	d := r.dp.Drive
	cur, err := r.opts.Reprobe(r.ctx, d)
	if err != nil {
		return fmt.Errorf("re-check %s before wiping: %w", d.Path, err)
	}
	if cur.Mounted || cur.BootDevice || len(cur.InUse) > 0 {
		return fmt.Errorf("refusing to wipe %s: mounted at %v, in use by %v, boot/agent device %v", d.Path, cur.MountPoints, cur.InUse, cur.BootDevice)
	}
	if cur.SizeBytes != d.SizeBytes {
		return fmt.Errorf("refusing to wipe %s: its size changed since the plan (%d → %d bytes); plan again", d.Path, d.SizeBytes, cur.SizeBytes)
	}
	if d.SizeBytes == 0 || d.LogicalBlockSize == 0 {
		return fmt.Errorf("%s: size or block size unknown", d.Path)
	}
	methods := append([]Method{r.dp.Method}, r.dp.Fallbacks...)
	for i, m := range methods {
		r.method = m
		r.res.Method, r.res.Level, r.res.MethodDetails = m, methodTable[m].level, methodTable[m].desc
		if methodTable[m].level.rank() < r.dp.MinLevel.rank() {
			return fmt.Errorf("%s would only reach %s, policy requires %s", m, methodTable[m].level, r.dp.MinLevel)
		}
		var err error
		if m == MethodOverwrite {
			err = r.overwriteAndVerify()
		} else {
			err = r.purgeAndVerify(m)
		}
		if err == nil {
			return nil
		}
		if r.ctx.Err() != nil || !isUnsupported(err) || i == len(methods)-1 {
			return err
		}
		r.log.Warn("drive rejected the method as unsupported; trying the next one", "method", m, "err", err, "next", methods[i+1])
		r.res.Attempts = append(r.res.Attempts, fmt.Sprintf("%s: %v", m, err))
	}
	return errors.New("no method left")
}

func (r *driveRun) seed() uint64 {
	var b [8]byte
	_, _ = io.ReadFull(r.opts.Rand, b[:])
	return binary.LittleEndian.Uint64(b[:])
}

func (r *driveRun) overwriteAndVerify() error {
	d := r.dp.Drive
	var f filler
	switch r.pol.Pattern {
	case PatternAESCTR:
		key := make([]byte, 32)
		if _, err := io.ReadFull(r.opts.Rand, key); err != nil {
			return fmt.Errorf("aes key: %w", err)
		}
		af, err := newAESFiller(key, r.seed())
		if err != nil {
			return err
		}
		f = af
	case PatternFixed:
		f = byteFiller(r.pol.FixedByte)
	default:
		f = byteFiller(0)
	}
	r.res.MethodDetails = methodTable[MethodOverwrite].desc + "; pattern: " + f.name() + "; 1 pass"
	dev, err := r.opts.OpenIO(d.Path, true)
	if err != nil {
		return err
	}
	defer dev.Close()
	r.log.Info("overwrite starting", "bytes", d.SizeBytes, "pattern", f.name(), "buffer", r.opts.BufferSize)
	if err := overwrite(r.ctx, dev, d.SizeBytes, r.opts.BufferSize, f, r.bytesProgress("overwrite")); err != nil {
		return err
	}
	r.res.BytesWritten = d.SizeBytes
	if fl, ok := dev.(*os.File); ok {
		if err := fl.Sync(); err != nil {
			return fmt.Errorf("flush %s: %w", d.Path, err)
		}
	}
	var ext []Extent
	v := Verification{}
	if r.pol.Verify == VerifySample {
		v.Seed = r.seed()
		v.Subsections, v.SamplePct = r.pol.SampleSubsections, r.pol.SamplePercent
		ext, err = SamplePlan(d.SizeBytes, d.LogicalBlockSize, v.Subsections, v.SamplePct, v.Seed)
		if err != nil {
			return err
		}
		v.Method = fmt.Sprintf("NIST SP 800-88 sampling: %d subsections, two non-overlapping pseudorandom samples of %.1f%% each, first and last block; seed %d", v.Subsections, v.SamplePct, v.Seed)
	} else {
		ext = []Extent{{0, d.SizeBytes}}
		v.Method = "full read-back of every block, compared with the written pattern"
	}
	vr, err := verifyExtents(r.ctx, dev, ext, d.LogicalBlockSize, r.opts.BufferSize, checker{want: f}, r.bytesProgress("verify"))
	if err != nil {
		return err
	}
	r.fillVerification(&v, vr)
	return nil
}

func (r *driveRun) fillVerification(v *Verification, vr verifyResult) {
	v.BytesRead, v.Extents, v.Mismatches, v.FirstBad = vr.BytesRead, vr.Extents, vr.Mismatches, vr.FirstBad
	v.Passed = vr.Mismatches == 0 && vr.BytesRead > 0
	if v.Passed {
		v.Details = fmt.Sprintf("%d bytes in %d extents read back, all as expected", vr.BytesRead, vr.Extents)
	} else {
		v.Details = fmt.Sprintf("%d blocks differ from what was expected, first at byte %d", vr.Mismatches, vr.FirstBad)
	}
	r.res.Verification = *v
}

func (r *driveRun) purgeAndVerify(m Method) error {
	d := r.dp.Drive
	info := methodTable[m]
	v := Verification{Seed: r.seed(), Subsections: r.pol.SampleSubsections, SamplePct: r.pol.SamplePercent}
	ext, err := SamplePlan(d.SizeBytes, d.LogicalBlockSize, v.Subsections, v.SamplePct, v.Seed)
	if err != nil {
		return err
	}
	var before cryptoSample
	if info.crypto {
		dev, err := r.opts.OpenIO(d.Path, false)
		if err != nil {
			return err
		}
		r.report("sample-before", 0, 1, true, "")
		before, err = takeCryptoSample(r.ctx, dev, ext, d.LogicalBlockSize, r.opts.BufferSize)
		dev.Close()
		if err != nil {
			return fmt.Errorf("sample %s before cryptographic erase: %w", d.Path, err)
		}
	}
	if err := r.purge(m); err != nil {
		return err
	}
	r.res.CommandCompleted = true
	dev, err := r.opts.OpenIO(d.Path, false)
	if err != nil {
		return err
	}
	defer dev.Close()
	var check func([]byte, uint64) bool
	if info.crypto {
		v.Method = fmt.Sprintf("cryptographic erase check: %d sampled blocks (NIST sampling, %d subsections, 2×%.1f%%, seed %d) read before and after; none may read as before (%d held data before)",
			len(before.Offsets), v.Subsections, v.SamplePct, v.Seed, len(before.Hashes))
		check = func(b []byte, off uint64) bool {
			h, had := before.Hashes[off]
			return !had || sha256Sum(b) != h
		}
	} else {
		v.Method = fmt.Sprintf("NIST sampling after purge: %d subsections, two non-overlapping pseudorandom samples of %.1f%% each, first and last block, seed %d; every block must read as one repeated byte (erased)",
			v.Subsections, v.SamplePct, v.Seed)
		check = func(b []byte, _ uint64) bool { return uniform(b) }
	}
	vr, err := verifyExtents(r.ctx, dev, ext, d.LogicalBlockSize, r.opts.BufferSize, checker{perBlock: check}, r.bytesProgress("verify"))
	if err != nil {
		return err
	}
	r.fillVerification(&v, vr)
	return nil
}
