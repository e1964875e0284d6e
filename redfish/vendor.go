package redfish

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
)

// Vendor is a BMC family's quirks, as hooks the operations call at the points where BMCs
// differ. Profiles embed Generic and override only what their BMC does differently, so no
// operation carries `if vendor == …`.
type Vendor interface {
	// Name is the profile's name as stored with the BMC ("generic", "dell", "hpe", …).
	Name() string
	// PickSystem and PickManager choose among the members of Systems and Managers.
	PickSystem(members []string) string
	PickManager(members []string) string
	// BootPatches are the Boot objects to PATCH for a one-time override, tried in order: the
	// next is sent only when the BMC answers 400 to the previous one. current is the Boot
	// object as the BMC reports it now.
	BootPatches(o BootOverride, current BootSettings) []map[string]any
	// InsertMediaBodies are InsertMedia action bodies, tried in order on 400.
	InsertMediaBodies(image string) []map[string]any
	// MediaByPatch says virtual media is driven by PATCHing the VirtualMedia resource even
	// when an InsertMedia action is advertised.
	MediaByPatch() bool
	// BootEcho is how this BMC reports a one-time override it took (see SetBootOnce).
	BootEcho() BootEcho
	// TaskGone is called when a task being followed answers 404. It may follow the task some
	// other way; returning (nil, nil) means "no other way": the wait fails.
	TaskGone(ctx context.Context, g Getter, taskURI, managerURI string) (*TaskStatus, error)
}

// BootEcho is how a BMC reports a one-time boot override right after taking it.
type BootEcho int

const (
	// EchoOnce: the override reads back as set, Once (DSP2046). A Continuous read back is
	// accepted too (many BMCs do it), with a warning, and set Disabled after the boot.
	EchoOnce BootEcho = iota
	// EchoContinuous: the BMC reports and keeps it Continuous (sushy-tools, several real
	// BMCs): accepted, and set Disabled once the boot it was for has been observed.
	EchoContinuous
	// EchoCleared: the BMC takes the override but reports it Disabled/None at once, so the
	// read-back cannot tell taken from ignored: it is verified by its effect (the machine
	// network-boots, or lifecycle's boot timeout retries and then fails it).
	EchoCleared
)

// Getter reads a resource for a vendor hook (the hooks must not reach the wire any other way).
type Getter interface {
	GetJSON(ctx context.Context, uri string, v any) error
}

// TaskStatus is a task's (or a vendor job's) progress.
type TaskStatus struct {
	State   string // Redfish TaskState: New, Running, Completed, Exception, Killed, Cancelled, …
	Percent int
	Message string
}

// Done reports whether the task has finished, and whether it succeeded.
func (t TaskStatus) Done() (done, ok bool) {
	switch t.State {
	case "Completed":
		return true, true
	case "Exception", "Killed", "Cancelled", "Interrupted":
		return true, false
	}
	return false, false
}

// Generic is the DMTF-conformant BMC (OpenBMC, most recent firmware): the default profile.
type Generic struct{}

func (Generic) Name() string { return "generic" }

func (Generic) PickSystem(m []string) string  { return first(m) }
func (Generic) PickManager(m []string) string { return first(m) }

func (Generic) BootPatches(o BootOverride, _ BootSettings) []map[string]any {
	b := map[string]any{"BootSourceOverrideTarget": string(o.Target), "BootSourceOverrideEnabled": "Once"}
	if o.Mode != "" {
		b["BootSourceOverrideMode"] = string(o.Mode)
	}
	if o.URI != "" {
		b["HttpBootUri"] = o.URI
	}
	return []map[string]any{b}
}

func (Generic) InsertMediaBodies(image string) []map[string]any {
	return []map[string]any{
		{"Image": image, "Inserted": true, "WriteProtected": true, "TransferProtocolType": transferProtocol(image)},
		{"Image": image, "Inserted": true, "WriteProtected": true},
	}
}

func (Generic) MediaByPatch() bool { return false }

func (Generic) BootEcho() BootEcho { return EchoOnce }

func (Generic) TaskGone(context.Context, Getter, string, string) (*TaskStatus, error) {
	return nil, nil
}

// OpenBMC behaves as the generic profile; the name is kept so an operator can say what it is.
type OpenBMC struct{ Generic }

func (OpenBMC) Name() string { return "openbmc" }

// Dell iDRAC: fixed ids, and firmware tasks that vanish into the iDRAC job queue.
type Dell struct{ Generic }

func (Dell) Name() string                  { return "dell" }
func (Dell) PickSystem(m []string) string  { return prefer(m, "System.Embedded.1") }
func (Dell) PickManager(m []string) string { return prefer(m, "iDRAC.Embedded.1") }

// TaskGone follows the iDRAC job of the same id (JID_…) once the Redfish task is deleted.
func (Dell) TaskGone(ctx context.Context, g Getter, taskURI, managerURI string) (*TaskStatus, error) {
	id := path.Base(taskURI)
	if !strings.HasPrefix(id, "JID_") || managerURI == "" {
		return nil, nil
	}
	var job struct {
		JobState        string
		PercentComplete int
		Message         string
	}
	if err := g.GetJSON(ctx, managerURI+"/Jobs/"+id, &job); err != nil {
		return nil, err
	}
	state := map[string]string{"Completed": "Completed", "Failed": "Exception", "CompletedWithErrors": "Exception",
		"Running": "Running", "Scheduled": "Pending", "New": "New", "Downloading": "Running", "Downloaded": "Running"}[job.JobState]
	if state == "" {
		state = "Running"
	}
	return &TaskStatus{State: state, Percent: job.PercentComplete, Message: job.Message}, nil
}

// HPE iLO: ids "1"; the Boot PATCH must hold only Target and Enabled on some firmware, and
// iLO 4 rejects Inserted on InsertMedia.
type HPE struct{ Generic }

func (HPE) Name() string                  { return "hpe" }
func (HPE) PickSystem(m []string) string  { return prefer(m, "1") }
func (HPE) PickManager(m []string) string { return prefer(m, "1") }
func (h HPE) BootPatches(o BootOverride, cur BootSettings) []map[string]any {
	full := h.Generic.BootPatches(o, cur)
	minimal := map[string]any{"BootSourceOverrideTarget": string(o.Target), "BootSourceOverrideEnabled": "Once"}
	if len(full[0]) == len(minimal) {
		return full
	}
	return append(full, minimal)
}
func (HPE) InsertMediaBodies(image string) []map[string]any {
	return []map[string]any{
		{"Image": image, "Inserted": true, "WriteProtected": true},
		{"Image": image, "WriteProtected": true}, // iLO 4
		{"Image": image},
	}
}

// Supermicro: ids "1"; an override PATCH without BootSourceOverrideMode resets the mode, so the
// mode is always sent (the current one when none was asked for); some models reject Inserted
// and WriteProtected on InsertMedia.
type Supermicro struct{ Generic }

func (Supermicro) Name() string                  { return "supermicro" }
func (Supermicro) PickSystem(m []string) string  { return prefer(m, "1") }
func (Supermicro) PickManager(m []string) string { return prefer(m, "1") }
func (s Supermicro) BootPatches(o BootOverride, cur BootSettings) []map[string]any {
	if o.Mode == "" {
		o.Mode = BootMode(cur.BootSourceOverrideMode)
	}
	if o.Mode == "" {
		o.Mode = ModeUEFI
	}
	return s.Generic.BootPatches(o, cur)
}
func (Supermicro) InsertMediaBodies(image string) []map[string]any {
	return []map[string]any{
		{"Image": image, "Inserted": true, "WriteProtected": true},
		{"Image": image, "TransferProtocolType": transferProtocol(image)},
		{"Image": image},
	}
}

// Lenovo XCC: ids "1"; virtual media is mounted by PATCHing the VirtualMedia resource.
type Lenovo struct{ Generic }

func (Lenovo) Name() string                  { return "lenovo" }
func (Lenovo) PickSystem(m []string) string  { return prefer(m, "1") }
func (Lenovo) PickManager(m []string) string { return prefer(m, "1") }
func (Lenovo) MediaByPatch() bool            { return true }

// Sushy is sushy-tools, the Redfish emulator OpenStack (Ironic, Metal3) runs in front of
// libvirt VMs, and BMCs like it: a one-time override reads back Continuous or, with some
// drivers, not at all once taken.
type Sushy struct{ Generic }

func (Sushy) Name() string       { return "sushy" }
func (Sushy) BootEcho() BootEcho { return EchoCleared }

// VendorByName returns the profile stored under name ("" or "auto" means detect at connect).
func VendorByName(name string) (Vendor, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", "auto":
		return nil, nil
	case "generic":
		return Generic{}, nil
	case "openbmc":
		return OpenBMC{}, nil
	case "dell", "idrac":
		return Dell{}, nil
	case "hpe", "ilo":
		return HPE{}, nil
	case "supermicro":
		return Supermicro{}, nil
	case "lenovo", "xcc":
		return Lenovo{}, nil
	case "sushy", "sushy-tools":
		return Sushy{}, nil
	}
	return nil, fmt.Errorf("unknown BMC vendor profile %q (known: generic, openbmc, dell, hpe, supermicro, lenovo, sushy, or auto)", name)
}

// detectVendor picks a profile from the service root's Vendor and Oem keys.
func detectVendor(root []byte) Vendor {
	var r struct {
		Vendor  string
		Product string
		Oem     map[string]json.RawMessage
	}
	_ = json.Unmarshal(root, &r)
	names := []string{strings.ToLower(r.Vendor), strings.ToLower(r.Product)}
	for k := range r.Oem {
		names = append(names, strings.ToLower(k))
	}
	for _, n := range names {
		switch {
		case strings.Contains(n, "dell"):
			return Dell{}
		case n == "hp" || strings.Contains(n, "hpe") || strings.Contains(n, "hewlett"):
			return HPE{}
		case strings.Contains(n, "supermicro"):
			return Supermicro{}
		case strings.Contains(n, "lenovo"):
			return Lenovo{}
		case strings.Contains(n, "openbmc"):
			return OpenBMC{}
		case strings.Contains(n, "sushy"):
			return Sushy{}
		}
	}
	return Generic{}
}

func first(m []string) string {
	if len(m) == 0 {
		return ""
	}
	return m[0]
}

// prefer picks the member whose id is want, else the first one.
func prefer(m []string, want string) string {
	if i := slices.IndexFunc(m, func(s string) bool { return path.Base(strings.TrimRight(s, "/")) == want }); i >= 0 {
		return m[i]
	}
	return first(m)
}

func transferProtocol(image string) string {
	if strings.HasPrefix(strings.ToLower(image), "https:") {
		return "HTTPS"
	}
	return "HTTP"
}
