package wipe

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// MaxHostBytesPerSecond is the fastest a host can plausibly write or read a drive: 32 GB/s,
// the raw rate of a PCIe 6.0 x4 link and more than twice the ~14 GB/s sequential rate of the
// fastest PCIe 5.0 NVMe drives on sale (2025). An overwrite or a verification read claiming
// more than this did not happen as reported. The lab's 64 MiB virtual disks take well over
// the 4 ms this allows for a write plus a full read-back.
const MaxHostBytesPerSecond = 32e9

// CheckResult compares an agent's wipe result with the confirmed plan, which Slate computed:
// a drive the plan does not name, a drive whose identity (serial, WWN, size) differs, a
// technique the plan did not choose, a level other than the technique's, a purge command the
// drive did not report as completed, a failed or missing verification, or a run shorter than
// the bytes it claims to have moved allow (MaxHostBytesPerSecond) are problems. Any problem
// makes the whole result suspicious: no certificate may be issued from it.
//
// missing lists the planned drives the result does not report on (not sanitized, but not a
// lie either: the run may have been cut short).
func CheckResult(plan Plan, tr TaskResult) (problems, missing []string) {
	byPath := map[string]DrivePlan{}
	for _, d := range plan.Drives {
		byPath[d.Drive.Path] = d
	}
	if tr.MachineID != plan.MachineID {
		problems = append(problems, fmt.Sprintf("the result is for machine %q, the plan for %q", tr.MachineID, plan.MachineID))
	}
	seen := map[string]bool{}
	for _, r := range tr.Results {
		name := fmt.Sprintf("%s (serial %q)", r.Drive.Path, r.Drive.Serial)
		dp, ok := byPath[r.Drive.Path]
		if !ok {
			problems = append(problems, name+": not a drive of the confirmed plan")
			continue
		}
		if seen[r.Drive.Path] {
			problems = append(problems, name+": reported twice")
			continue
		}
		seen[r.Drive.Path] = true
		pd := dp.Drive
		if r.Drive.Serial != pd.Serial || r.Drive.WWN != pd.WWN || r.Drive.SizeBytes != pd.SizeBytes {
			problems = append(problems, fmt.Sprintf("%s: identity differs from the plan (serial %q, WWN %q, %d bytes; planned serial %q, WWN %q, %d bytes)",
				name, r.Drive.Serial, r.Drive.WWN, r.Drive.SizeBytes, pd.Serial, pd.WWN, pd.SizeBytes))
			continue
		}
		if r.Status != StatusSanitized {
			continue // not certified anyway; its errors go on the report
		}
		if r.Method != dp.Method && !slices.Contains(dp.Fallbacks, r.Method) {
			problems = append(problems, fmt.Sprintf("%s: sanitized by %q, which the plan did not choose (%s, fallbacks %v)", name, r.Method, dp.Method, dp.Fallbacks))
			continue
		}
		info := methodTable[r.Method]
		if r.Level != info.level || info.level.rank() < dp.MinLevel.rank() {
			problems = append(problems, fmt.Sprintf("%s: claims level %q for %s, which reaches %s (plan requires %s)", name, r.Level, r.Method, info.level, dp.MinLevel))
			continue
		}
		if !r.Verification.Passed || r.Verification.BytesRead == 0 {
			problems = append(problems, name+": reported sanitized without a passed verification")
			continue
		}
		if r.Method == MethodOverwrite {
			if r.BytesWritten < pd.SizeBytes {
				problems = append(problems, fmt.Sprintf("%s: an overwrite of %d bytes does not cover the drive's %d bytes", name, r.BytesWritten, pd.SizeBytes))
				continue
			}
		} else if !r.CommandCompleted {
			problems = append(problems, fmt.Sprintf("%s: the drive did not report the %s command as completed", name, r.Method))
			continue
		}
		if p := implausibleTiming(r); p != "" {
			problems = append(problems, name+": "+p)
		}
	}
	for _, d := range plan.Drives {
		if !seen[d.Drive.Path] {
			missing = append(missing, fmt.Sprintf("%s (serial %q): no result reported", d.Drive.Path, d.Drive.Serial))
		}
	}
	return problems, missing
}

// implausibleTiming says why a run's times cannot be true ("" if they can): the bytes the
// host wrote and read back need at least (written+read)/MaxHostBytesPerSecond. A purge
// command runs inside the drive and may be fast, but its verification still reads from the host.
func implausibleTiming(r Result) string {
	if r.Start.IsZero() || r.End.IsZero() || r.End.Before(r.Start) {
		return fmt.Sprintf("start %s and end %s are not a run", r.Start.Format(time.RFC3339Nano), r.End.Format(time.RFC3339Nano))
	}
	moved := float64(r.BytesWritten) + float64(r.Verification.BytesRead)
	took := r.End.Sub(r.Start)
	need := time.Duration(moved / MaxHostBytesPerSecond * float64(time.Second))
	if took < need {
		return fmt.Sprintf("%s for %d bytes written and %d read back in %s: physically impossible (at most %.0f GB/s; it needs at least %s)",
			r.Method, r.BytesWritten, r.Verification.BytesRead, took, MaxHostBytesPerSecond/1e9, need)
	}
	return ""
}

// Level is the NIST SP 800-88 level the method reaches; ok is false for a method Slate does
// not know (a forged or future result).
func (m Method) Level() (level Level, ok bool) {
	info, ok := methodTable[m]
	return info.level, ok
}

// Crypto says whether the method is a cryptographic erase, whose verification compares
// sampled blocks before and after rather than reading back a pattern.
func (m Method) Crypto() bool { return methodTable[m].crypto }

// Certifiable says whether one drive's result deserves a certificate of sanitization: a
// completed run whose method reaches the level it claims and whose verification read the
// drive back and passed. The issuer (slate/wipe/cert) refuses every result this refuses. It
// lives here, beside execution, so the executor's tests prove that no failed, interrupted or
// lying run is certifiable without the agent linking the signing and PDF code.
func Certifiable(res Result) error {
	if res.Status != StatusSanitized || !res.Verification.Passed {
		return fmt.Errorf("no certificate for %s: status %q, verification passed=%v (%s)", res.Drive.Path, res.Status, res.Verification.Passed, strings.Join(res.Errors, "; "))
	}
	if res.Level != LevelClear && res.Level != LevelPurge {
		return fmt.Errorf("no certificate for %s: level %q is neither Clear nor Purge", res.Drive.Path, res.Level)
	}
	if lvl, ok := res.Method.Level(); !ok || lvl != res.Level {
		return fmt.Errorf("no certificate for %s: method %q does not reach %s", res.Drive.Path, res.Method, res.Level)
	}
	if res.Verification.Mismatches != 0 || res.Verification.BytesRead == 0 {
		return fmt.Errorf("no certificate for %s: verification did not pass (%d mismatches, %d bytes read)", res.Drive.Path, res.Verification.Mismatches, res.Verification.BytesRead)
	}
	if res.End.Before(res.Start) || res.Start.IsZero() {
		return fmt.Errorf("no certificate for %s: run ends before it starts", res.Drive.Path)
	}
	return nil
}
