package wipe

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Level is the NIST SP 800-88 sanitization level.
type Level string

const (
	LevelClear Level = "Clear"
	LevelPurge Level = "Purge"
)

func (l Level) rank() int {
	switch l {
	case LevelPurge:
		return 2
	case LevelClear:
		return 1
	}
	return 0
}

// VerifyMode is how a Clear overwrite is verified.
type VerifyMode string

const (
	VerifyFull   VerifyMode = "full"
	VerifySample VerifyMode = "sample"
)

// Pattern is what an overwrite writes.
type Pattern string

const (
	PatternZero   Pattern = "zero"
	PatternFixed  Pattern = "fixed"
	PatternAESCTR Pattern = "aes-ctr"
)

// Method is one sanitization technique.
type Method string

const (
	MethodNVMeSanitizeCrypto    Method = "nvme-sanitize-crypto-erase"
	MethodNVMeSanitizeBlock     Method = "nvme-sanitize-block-erase"
	MethodNVMeSanitizeOverwrite Method = "nvme-sanitize-overwrite"
	MethodNVMeFormatCrypto      Method = "nvme-format-crypto-erase"
	MethodNVMeFormatUserData    Method = "nvme-format-user-data-erase"
	MethodATASanitizeCrypto     Method = "ata-sanitize-crypto-scramble"
	MethodATASanitizeBlock      Method = "ata-sanitize-block-erase"
	MethodATASanitizeOverwrite  Method = "ata-sanitize-overwrite"
	MethodATASecurityEnhanced   Method = "ata-security-erase-enhanced"
	MethodATASecurityErase      Method = "ata-security-erase"
	MethodSCSISanitizeCrypto    Method = "scsi-sanitize-crypto-erase"
	MethodSCSISanitizeBlock     Method = "scsi-sanitize-block-erase"
	MethodSCSISanitizeOverwrite Method = "scsi-sanitize-overwrite"
	MethodTCGCryptoErase        Method = "tcg-crypto-erase"
	MethodOverwrite             Method = "overwrite"
)

// methodInfo: level reached, whether it is cryptographic (verified by before/after sampling),
// and the NIST description put on the certificate.
var methodTable = map[Method]struct {
	level  Level
	crypto bool
	desc   string
}{
	MethodNVMeSanitizeCrypto:    {LevelPurge, true, "NVMe Sanitize, Crypto Erase action (SANACT=100b)"},
	MethodNVMeSanitizeBlock:     {LevelPurge, false, "NVMe Sanitize, Block Erase action (SANACT=010b)"},
	MethodNVMeSanitizeOverwrite: {LevelPurge, false, "NVMe Sanitize, Overwrite action (SANACT=011b), 1 pass"},
	MethodNVMeFormatCrypto:      {LevelPurge, true, "NVMe Format NVM, Secure Erase Setting 010b (cryptographic erase)"},
	MethodNVMeFormatUserData:    {LevelPurge, false, "NVMe Format NVM, Secure Erase Setting 001b (user data erase)"},
	MethodATASanitizeCrypto:     {LevelPurge, true, "ATA SANITIZE DEVICE, CRYPTO SCRAMBLE EXT"},
	MethodATASanitizeBlock:      {LevelPurge, false, "ATA SANITIZE DEVICE, BLOCK ERASE EXT"},
	MethodATASanitizeOverwrite:  {LevelPurge, false, "ATA SANITIZE DEVICE, OVERWRITE EXT, 1 pass of zeros"},
	MethodATASecurityEnhanced:   {LevelPurge, false, "ATA SECURITY ERASE UNIT, enhanced mode"},
	MethodATASecurityErase:      {LevelPurge, false, "ATA SECURITY ERASE UNIT, normal mode"},
	MethodSCSISanitizeCrypto:    {LevelPurge, true, "SCSI SANITIZE, CRYPTOGRAPHIC ERASE service action"},
	MethodSCSISanitizeBlock:     {LevelPurge, false, "SCSI SANITIZE, BLOCK ERASE service action"},
	MethodSCSISanitizeOverwrite: {LevelPurge, false, "SCSI SANITIZE, OVERWRITE service action, 1 pass of zeros"},
	MethodTCGCryptoErase:        {LevelPurge, true, "TCG Opal Revert of the Admin SP (media encryption keys regenerated)"},
	MethodOverwrite:             {LevelClear, false, "Overwrite of every user-addressable block from the host (O_DIRECT), then read-back verification"},
}

// Policy is the sanitization policy, as data: the API and config can change it.
type Policy struct {
	// MinLevel is the lowest acceptable level per media type; a drive that cannot reach it is
	// blocked with a reason and remedy instead of being downgraded.
	MinLevel map[MediaType]Level `json:"min_level"`
	// Verify is the verification of an overwrite: full read-back or NIST sampling.
	Verify VerifyMode `json:"verify"`
	// Pattern of the overwrite; FixedByte is used with PatternFixed.
	Pattern   Pattern `json:"pattern"`
	FixedByte byte    `json:"fixed_byte,omitempty"`
	// Purge lists the purge methods in order of preference; methods not listed are not used.
	Purge []Method `json:"purge"`
	// PreferPurge: when Clear is enough but the drive can Purge, Purge anyway (NIST's advice
	// for flash, where an overwrite cannot reach spare blocks).
	PreferPurge bool `json:"prefer_purge"`
	// SampleSubsections is the number of NIST sampling subsections (at least 1000) and
	// SamplePercent the size of each of the two samples per subsection (at least 5).
	SampleSubsections int     `json:"sample_subsections"`
	SamplePercent     float64 `json:"sample_percent"`
}

// DefaultPolicy: Purge for flash (an overwrite does not reach over-provisioned blocks), Clear
// for magnetic and virtual disks, full read-back, zeros, cryptographic methods first.
func DefaultPolicy() Policy {
	return Policy{
		MinLevel: map[MediaType]Level{MediaNVMe: LevelPurge, MediaSSD: LevelPurge, MediaHDD: LevelClear,
			MediaRemovable: LevelClear, MediaVirtual: LevelClear},
		Verify:  VerifyFull,
		Pattern: PatternZero,
		Purge: []Method{MethodNVMeSanitizeCrypto, MethodNVMeSanitizeBlock, MethodNVMeFormatCrypto, MethodNVMeFormatUserData,
			MethodATASanitizeCrypto, MethodATASanitizeBlock, MethodATASecurityEnhanced, MethodATASanitizeOverwrite,
			MethodATASecurityErase, MethodSCSISanitizeCrypto, MethodSCSISanitizeBlock, MethodSCSISanitizeOverwrite,
			MethodTCGCryptoErase, MethodNVMeSanitizeOverwrite},
		PreferPurge:       true,
		SampleSubsections: 1000,
		SamplePercent:     5,
	}
}

// Validate rejects a policy that would not meet NIST's floor.
func (p Policy) Validate() error {
	switch p.Verify {
	case VerifyFull, VerifySample:
	default:
		return fmt.Errorf("policy: verify must be %q or %q, got %q", VerifyFull, VerifySample, p.Verify)
	}
	switch p.Pattern {
	case PatternZero, PatternFixed, PatternAESCTR:
	default:
		return fmt.Errorf("policy: pattern must be zero, fixed or aes-ctr, got %q", p.Pattern)
	}
	if p.SampleSubsections < 1000 {
		return fmt.Errorf("policy: sample_subsections %d is below NIST's 1000", p.SampleSubsections)
	}
	if p.SamplePercent < 5 || p.SamplePercent > 45 {
		return fmt.Errorf("policy: sample_percent %.1f must be 5-45 (two non-overlapping samples per subsection)", p.SamplePercent)
	}
	for m, l := range p.MinLevel {
		if l != LevelClear && l != LevelPurge {
			return fmt.Errorf("policy: min_level for %s must be Clear or Purge, got %q", m, l)
		}
	}
	for _, m := range p.Purge {
		if _, ok := methodTable[m]; !ok || m == MethodOverwrite {
			return fmt.Errorf("policy: unknown purge method %q", m)
		}
	}
	return nil
}

// DrivePlan is what will be done to one drive.
type DrivePlan struct {
	Drive    DriveInfo `json:"drive"`
	MinLevel Level     `json:"min_level"`
	Level    Level     `json:"level"`
	Method   Method    `json:"method"`
	// Fallbacks are tried, in order, if the drive rejects Method as unsupported; all reach at
	// least MinLevel.
	Fallbacks   []Method `json:"fallbacks,omitempty"`
	Description string   `json:"description"`
	// Verification: "full read-back", "NIST sampling", "uniform-content sampling" (purge by
	// erase), "before/after sampling" (cryptographic erase).
	Verification string   `json:"verification"`
	Pattern      Pattern  `json:"pattern,omitempty"`
	Blocked      bool     `json:"blocked"`
	Reason       string   `json:"reason,omitempty"`
	Remedy       string   `json:"remedy,omitempty"`
	Warnings     []string `json:"warnings,omitempty"`
	// Discrepancy says how the drive differs from what inspection saw (Slate fills it when it
	// checks the agent's probe against the machine's facts): shown to the technician, and a
	// pre-approved (automatic) wipe refuses a plan with any.
	Discrepancy string `json:"discrepancy,omitempty"`
}

// Plan is shown to the technician and confirmed (by its Digest) before anything runs.
type Plan struct {
	MachineID string      `json:"machine_id"`
	CreatedAt time.Time   `json:"created_at"`
	Policy    Policy      `json:"policy"`
	Drives    []DrivePlan `json:"drives"`
	// Discrepancies are differences between the plan and inspection that belong to no
	// planned drive (an inspected disk the plan leaves out, a machine never inspected).
	Discrepancies []string `json:"discrepancies,omitempty"`
}

// AllDiscrepancies lists every difference from inspection, per drive and for the plan.
func (p Plan) AllDiscrepancies() []string {
	out := append([]string(nil), p.Discrepancies...)
	for _, d := range p.Drives {
		if d.Discrepancy != "" {
			out = append(out, fmt.Sprintf("%s (serial %q): %s", d.Drive.Path, d.Drive.Serial, d.Discrepancy))
		}
	}
	return out
}

// Digest identifies the plan's exact content; the Authorization must carry it, so what runs
// is what was confirmed.
func (p Plan) Digest() string {
	b, _ := json.Marshal(p) // plain structs: cannot fail
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Runnable tells whether every drive can be sanitized as planned.
func (p Plan) Runnable() bool {
	for _, d := range p.Drives {
		if d.Blocked {
			return false
		}
	}
	return len(p.Drives) > 0
}

// MakePlan chooses a method per drive from the probe and the policy.
func MakePlan(machineID string, drives []DriveInfo, policy Policy, now time.Time) (Plan, error) {
	if err := policy.Validate(); err != nil {
		return Plan{}, err
	}
	if machineID == "" {
		return Plan{}, fmt.Errorf("plan: machine id is empty")
	}
	p := Plan{MachineID: machineID, CreatedAt: now.UTC(), Policy: policy}
	for _, d := range drives {
		p.Drives = append(p.Drives, planDrive(d, policy))
	}
	return p, nil
}

func planDrive(d DriveInfo, pol Policy) DrivePlan {
	min, ok := pol.MinLevel[d.Media]
	if !ok {
		min = LevelPurge
	}
	dp := DrivePlan{Drive: d, MinLevel: min}
	if d.Mounted || d.BootDevice || len(d.InUse) > 0 {
		dp.Blocked = true
		dp.Reason = fmt.Sprintf("%s is in use (mounted at %v, in use by %v, boot/agent device %v)", d.Path, d.MountPoints, d.InUse, d.BootDevice)
		dp.Remedy = "unmount it, or boot the machine into Slate's deploy environment, which runs from RAM"
		return dp
	}
	avail := availablePurges(d)
	var purges []Method
	for _, m := range pol.Purge {
		if avail[m] {
			purges = append(purges, m)
		}
	}
	if d.ATA != nil && d.ATA.SecurityFrozen && d.ATA.SecuritySupported {
		dp.Warnings = append(dp.Warnings, "ATA security is frozen by the BIOS: security erase cannot run until the drive is unfrozen (suspend/resume the machine, e.g. `rtcwake -m mem -s 5`, or hot-unplug and replug the drive's power)")
	}
	if d.ATA != nil && d.ATA.SecurityLocked {
		dp.Warnings = append(dp.Warnings, "ATA security is locked: security erase needs the current user/master password")
	}
	if d.ATA != nil && d.ATA.HPAEnabled {
		dp.Warnings = append(dp.Warnings, "a Host Protected Area is set: a host overwrite cannot reach the hidden sectors; remove it (`hdparm -N p<native max>`) or use a drive-level purge")
	}
	if d.TCG != nil && d.TCG.Locked {
		dp.Warnings = append(dp.Warnings, "TCG locking range is locked: an overwrite cannot reach the locked range")
	}
	usePurge := len(purges) > 0 && (min == LevelPurge || pol.PreferPurge)
	switch {
	case usePurge:
		dp.Method, dp.Fallbacks = purges[0], purges[1:]
		if min == LevelClear {
			dp.Fallbacks = append(dp.Fallbacks, MethodOverwrite)
		}
	case min == LevelPurge:
		dp.Blocked = true
		dp.Reason = fmt.Sprintf("policy requires Purge for %s media and %s offers no purge method Slate can use", d.Media, d.Path)
		dp.Remedy = "physically destroy the drive (NIST Destroy), or lower the policy's minimum for this media type to Clear after review"
		if d.ATA != nil && d.ATA.SecurityFrozen && (d.ATA.SecuritySupported) {
			dp.Reason = fmt.Sprintf("%s supports ATA security erase but is frozen by the BIOS", d.Path)
			dp.Remedy = "unfreeze the drive: suspend and resume the machine (`rtcwake -m mem -s 5` in the deploy environment), or hot-unplug and replug the drive's power/SATA cable, then probe and plan again"
		}
		return dp
	default:
		dp.Method = MethodOverwrite
	}
	info := methodTable[dp.Method]
	dp.Level = info.level
	dp.Description = info.desc
	switch {
	case dp.Method == MethodOverwrite:
		dp.Pattern = pol.Pattern
		dp.Verification = map[VerifyMode]string{VerifyFull: "full read-back", VerifySample: "NIST sampling"}[pol.Verify]
	case info.crypto:
		dp.Verification = "before/after sampling"
	default:
		dp.Verification = "uniform-content sampling"
	}
	return dp
}

// availablePurges lists the purge methods a drive reports it supports.
func availablePurges(d DriveInfo) map[Method]bool {
	m := map[Method]bool{}
	if n := d.NVMe; n != nil {
		c := n.Controller
		m[MethodNVMeSanitizeCrypto] = c.SanitizeCrypto
		m[MethodNVMeSanitizeBlock] = c.SanitizeBlock
		m[MethodNVMeSanitizeOverwrite] = c.SanitizeOverwrite
		m[MethodNVMeFormatCrypto] = c.FormatSupported && c.CryptoFormat
		m[MethodNVMeFormatUserData] = c.FormatSupported
	}
	if a := d.ATA; a != nil {
		m[MethodATASanitizeCrypto] = a.SanitizeCrypto
		m[MethodATASanitizeBlock] = a.SanitizeBlock
		m[MethodATASanitizeOverwrite] = a.SanitizeOverwrite
		secOK := a.SecuritySupported && !a.SecurityFrozen && !a.SecurityLocked && !a.SecurityCountExp && !a.SecurityEnabled
		m[MethodATASecurityEnhanced] = secOK && a.EnhancedErase
		m[MethodATASecurityErase] = secOK
	}
	if s := d.SCSI; s != nil {
		m[MethodSCSISanitizeCrypto] = s.SanitizeCrypto
		m[MethodSCSISanitizeBlock] = s.SanitizeBlock
		m[MethodSCSISanitizeOverwrite] = s.SanitizeOverwrite
	}
	if t := d.TCG; t != nil {
		m[MethodTCGCryptoErase] = t.Opal && t.MediaEncryption && !t.LockingEnabled
	}
	return m
}
