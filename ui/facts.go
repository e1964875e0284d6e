package ui

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"slate/agent/agentproto"
)

// factsView is a machine's newest hardware facts as a technician reads them: a few lines
// per part, not the agent's JSON (which stays one click away for whoever needs a field the
// summary leaves out).
type factsView struct {
	CollectedAt time.Time
	System      string // vendor product · serial
	BIOS        string
	CPU         string
	Memory      string
	Firmware    string // uefi · secure boot enabled
	TPM         string
	Disks       []factsDisk
	NICs        []factsNIC
	Errors      []string
	// Raw is the document, indented, for the <details> toggle.
	Raw string
}

type factsDisk struct{ Name, Model, Serial, Size, Kind string }

type factsNIC struct {
	Name, MAC, Speed, Addresses string
	Link                        bool
}

// summarizeFacts reads a facts document. A document that is not JSON yields nil (the page
// says it cannot be read); one of another shape still shows what decoded, and its raw text.
func summarizeFacts(raw string) (*factsView, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	var anyDoc any
	if err := json.Unmarshal([]byte(raw), &anyDoc); err != nil {
		return nil, fmt.Errorf("facts document is not JSON: %w", err)
	}
	pretty, _ := json.MarshalIndent(anyDoc, "", "  ")
	v := &factsView{Raw: string(pretty)}
	var f agentproto.Facts
	if err := json.Unmarshal([]byte(raw), &f); err != nil {
		// Kept as raw only: a field of an unexpected type must not hide the whole document.
		v.Errors = append(v.Errors, "the summary could not read this document ("+err.Error()+"): see the raw facts")
		return v, nil
	}
	v.CollectedAt = f.CollectedAt
	v.System = joinNonEmpty(" · ", joinNonEmpty(" ", f.System.Vendor, f.System.Product), serialText(f.System.Serial))
	v.BIOS = joinNonEmpty(" ", f.BIOS.Vendor, f.BIOS.Version, parenthesized(f.BIOS.Date))
	cpu := joinNonEmpty(" ", f.CPU.Model)
	var counts []string
	if f.CPU.Sockets > 0 {
		counts = append(counts, plural(f.CPU.Sockets, "socket"))
	}
	if f.CPU.Cores > 0 {
		counts = append(counts, plural(f.CPU.Cores, "core"))
	}
	if f.CPU.Threads > 0 {
		counts = append(counts, plural(f.CPU.Threads, "thread"))
	}
	v.CPU = joinNonEmpty(" · ", cpu, strings.Join(counts, ", "))
	if f.Memory.TotalBytes > 0 {
		v.Memory = humanBytes(f.Memory.TotalBytes)
		if n := len(f.Memory.DIMMs); n > 0 {
			v.Memory += " in " + plural(n, "DIMM")
		}
	}
	switch f.Firmware.Mode {
	case "uefi":
		v.Firmware = "UEFI"
		if f.Firmware.SecureBoot != "" {
			v.Firmware += " · Secure Boot " + f.Firmware.SecureBoot
		}
	case "bios":
		v.Firmware = "BIOS (legacy)"
	default:
		v.Firmware = f.Firmware.Mode
	}
	switch {
	case f.TPM.Present && f.TPM.Version != "":
		v.TPM = "TPM " + f.TPM.Version
	case f.TPM.Present:
		v.TPM = "present (version unknown)"
	default:
		v.TPM = "none found"
	}
	for _, d := range f.Disks {
		kind := d.Transport
		if d.Rotational {
			kind = joinNonEmpty(" ", kind, "HDD")
		}
		if d.Removable {
			kind = joinNonEmpty(" ", kind, "removable")
		}
		v.Disks = append(v.Disks, factsDisk{Name: d.Name, Model: d.Model, Serial: d.Serial, Size: humanBytes(d.SizeBytes), Kind: kind})
	}
	for _, n := range f.NICs {
		speed := ""
		if n.SpeedMbps > 0 {
			speed = fmt.Sprintf("%d Mbit/s", n.SpeedMbps)
		}
		v.NICs = append(v.NICs, factsNIC{Name: n.Name, MAC: n.MAC, Speed: speed, Link: n.Link, Addresses: strings.Join(n.Addresses, ", ")})
	}
	v.Errors = append(v.Errors, f.Errors...)
	return v, nil
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

func serialText(s string) string {
	if s == "" {
		return ""
	}
	return "serial " + s
}

func parenthesized(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}
