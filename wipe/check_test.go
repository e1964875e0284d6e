package wipe

import (
	"strings"
	"testing"
	"time"
)

// checkPlan is a plan as Slate would confirm it: a 64 MiB virtual disk overwritten (the lab's
// size), a 1 TB NVMe drive purged by Format NVM, a 1 TB hard disk overwritten.
func checkPlan(t *testing.T) Plan {
	t.Helper()
	drives := []DriveInfo{
		{Name: "vda", Path: "/dev/vda", Transport: TransportVirtio, Media: MediaVirtual, Serial: "", SizeBytes: 64 << 20, LogicalBlockSize: 512},
		{Name: "nvme0n1", Path: "/dev/nvme0n1", Transport: TransportNVMe, Media: MediaNVMe, Serial: "S6EXNX0T", WWN: "eui.0025388b", SizeBytes: 1e12,
			LogicalBlockSize: 512, NVMe: &NVMeInfo{Controller: NVMeController{FormatSupported: true}}},
		{Name: "sda", Path: "/dev/sda", Transport: TransportATA, Media: MediaHDD, Serial: "WD-WX12", SizeBytes: 1e12, LogicalBlockSize: 512, Rotational: true},
	}
	p, err := MakePlan("m-1", drives, DefaultPolicy(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if p.Drives[0].Method != MethodOverwrite || p.Drives[1].Method != MethodNVMeFormatUserData || p.Drives[2].Method != MethodOverwrite {
		t.Fatalf("test plan: %s, %s", p.Drives[0].Method, p.Drives[1].Method)
	}
	return p
}

// honest is what a real run of checkPlan reports: the 64 MiB overwrite and read-back in 90 ms
// (about 1.5 GB/s, as the lab's loop devices do), the format and a 10 % sampled read-back (100 GB) in 60 s.
func honest(p Plan) TaskResult {
	t0 := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
	v := p.Drives[0].Drive
	n := p.Drives[1].Drive
	h := p.Drives[2].Drive
	return TaskResult{MachineID: "m-1", PlanDigest: p.Digest(), Sanitized: true, Results: []Result{
		{Drive: v, Level: LevelClear, Method: MethodOverwrite, Status: StatusSanitized, Start: t0, End: t0.Add(90 * time.Millisecond),
			BytesWritten: v.SizeBytes, Verification: Verification{Passed: true, BytesRead: v.SizeBytes}},
		{Drive: n, Level: LevelPurge, Method: MethodNVMeFormatUserData, Status: StatusSanitized, Start: t0, End: t0.Add(60 * time.Second),
			CommandCompleted: true, Verification: Verification{Passed: true, BytesRead: n.SizeBytes / 10}},
		{Drive: h, Level: LevelClear, Method: MethodOverwrite, Status: StatusSanitized, Start: t0, End: t0.Add(3 * time.Hour),
			BytesWritten: h.SizeBytes, Verification: Verification{Passed: true, BytesRead: h.SizeBytes}},
	}}
}

// The agent's result is checked against the confirmed plan: the honest run passes (the lab's
// 64 MiB overwrite in 90 ms is plausible), and every lie the review tried, or a fault could
// produce, is named.
func TestCheckResultRefusesWhatThePlanDidNotOrder(t *testing.T) {
	p := checkPlan(t)
	if problems, missing := CheckResult(p, honest(p)); len(problems) > 0 || len(missing) > 0 {
		t.Fatalf("honest result refused: %v %v", problems, missing)
	}
	// The lab at the ceiling: 64 MiB written and read back in 5 ms is still possible (4.2 ms at 32 GB/s).
	fast := honest(p)
	fast.Results[0].End = fast.Results[0].Start.Add(5 * time.Millisecond)
	if problems, _ := CheckResult(p, fast); len(problems) > 0 {
		t.Fatalf("64 MiB in 5 ms refused: %v", problems)
	}
	invented := DriveInfo{Name: "sdz", Path: "/dev/sdz", Media: MediaHDD, Serial: "FAKE-1TB", SizeBytes: 1 << 40, LogicalBlockSize: 512}
	for _, c := range []struct {
		name, want string
		lie        func(*TaskResult)
	}{
		{"a drive the plan does not name", "not a drive of the confirmed plan", func(tr *TaskResult) {
			tr.Results = append(tr.Results, Result{Drive: invented, Level: LevelClear, Method: MethodOverwrite, Status: StatusSanitized,
				Start: tr.Results[0].Start, End: tr.Results[0].Start.Add(time.Second), BytesWritten: 1 << 40, Verification: Verification{Passed: true, BytesRead: 1 << 40}})
		}},
		{"another serial", "identity differs", func(tr *TaskResult) { tr.Results[1].Drive.Serial = "S6EXNX0X" }},
		{"another WWN", "identity differs", func(tr *TaskResult) { tr.Results[1].Drive.WWN = "eui.ffff" }},
		{"another size", "identity differs", func(tr *TaskResult) { tr.Results[0].Drive.SizeBytes = 1 << 40 }},
		{"a technique the plan did not choose", "which the plan did not choose", func(tr *TaskResult) {
			tr.Results[1].Method, tr.Results[1].Level = MethodNVMeSanitizeBlock, LevelPurge
		}},
		{"a level the technique does not reach", "claims level", func(tr *TaskResult) { tr.Results[0].Level = LevelPurge }},
		{"1 TB overwritten and read back in a second", "physically impossible", func(tr *TaskResult) {
			tr.Results[2].End = tr.Results[2].Start.Add(time.Second)
		}},
		{"1 TB overwritten and read back in a minute", "physically impossible", func(tr *TaskResult) {
			tr.Results[2].End = tr.Results[2].Start.Add(time.Minute) // 62.5 s at 32 GB/s
		}},
		{"64 MiB overwritten and read back in a millisecond", "physically impossible", func(tr *TaskResult) {
			tr.Results[0].End = tr.Results[0].Start.Add(time.Millisecond)
		}},
		{"an end before the start", "are not a run", func(tr *TaskResult) { tr.Results[0].End = tr.Results[0].Start.Add(-time.Second) }},
		{"an overwrite short of the drive", "does not cover", func(tr *TaskResult) { tr.Results[0].BytesWritten = 1 << 20 }},
		{"a purge the drive never completed", "did not report the", func(tr *TaskResult) { tr.Results[1].CommandCompleted = false }},
		{"no verification", "without a passed verification", func(tr *TaskResult) { tr.Results[0].Verification = Verification{} }},
		{"the same drive twice", "reported twice", func(tr *TaskResult) { tr.Results = append(tr.Results, tr.Results[0]) }},
		{"another machine", "is for machine", func(tr *TaskResult) { tr.MachineID = "m-2" }},
	} {
		tr := honest(p)
		c.lie(&tr)
		problems, _ := CheckResult(p, tr)
		if !strings.Contains(strings.Join(problems, "\n"), c.want) {
			t.Errorf("%s: problems %q, want one naming %q", c.name, problems, c.want)
		}
	}
	// A drive left out is not sanitized (missing), though not a lie.
	tr := honest(p)
	tr.Results = append(tr.Results[:1], tr.Results[2])
	if problems, missing := CheckResult(p, tr); len(problems) > 0 || len(missing) != 1 || !strings.Contains(missing[0], "/dev/nvme0n1") {
		t.Fatalf("left-out drive: problems %v, missing %v", problems, missing)
	}
}
