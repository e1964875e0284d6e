package ui

import (
	"net/url"
	"strings"
)

// flash is a banner above a page. Field names the form input it is about (that input gets
// aria-describedby pointing at the banner), "" when none.
type flash struct{ Kind, Text, Field string }

// Banners after a redirect are named by a code in the query (?ok=machine-enrolled,
// ?err=reason-required), never carried as text: a link cannot make Slate show words it
// did not write. Unknown codes show nothing; a refusal is always red, whatever the
// parameter it came in. This is the one table of those codes.
func flashFor(code string) (flash, bool) {
	switch code {
	// Successes.
	case "machine-enrolled":
		return flash{"ok", "Machine enrolled.", ""}, true
	case "machine-adopted":
		return flash{"ok", "Machine adopted: it runs an unmanaged system, and Slate leaves its power alone. Inspect it in a maintenance window, or set a desired release and move it to provisioning.", ""}, true
	case "systems-enrolled":
		return flash{"ok", "Every system behind the BMC was enrolled, one machine each.", ""}, true
	case "machine-moved":
		return flash{"ok", "Machine moved: its new state is shown below.", ""}, true
	case "decommission-started":
		return flash{"ok", "The machine is being decommissioned: Slate will probe its drives and show the wipe plan here.", ""}, true
	case "wipe-confirmed":
		return flash{"ok", "Wipe confirmed: erasing every drive. Progress is shown below.", ""}, true
	case "release-set":
		return flash{"ok", "Desired release set: Slate installs it when the machine is ready.", ""}, true
	case "release-created":
		return flash{"ok", "Draft release created.", ""}, true
	case "release-changed":
		return flash{"ok", "Release state changed.", ""}, true
	case "release-deleted":
		return flash{"ok", "Draft release deleted.", ""}, true
	case "image-uploaded":
		return flash{"ok", "Disk image uploaded into Slate's registry: it is filled in below for a new draft release.", ""}, true
	case "user-added":
		return flash{"ok", "User added.", ""}, true
	case "user-disabled":
		return flash{"ok", "User disabled: it cannot log in, and its sessions and tokens were revoked.", ""}, true
	case "user-unlocked":
		return flash{"ok", "User unlocked: they can log in again.", ""}, true
	case "user-enabled":
		return flash{"ok", "User enabled.", ""}, true
	case "user-deleted":
		return flash{"ok", "User deleted. The audit log keeps its history.", ""}, true
	case "user-password-set":
		return flash{"ok", "Password set; the user's sessions and tokens were revoked.", ""}, true
	case "user-tokens-revoked":
		return flash{"ok", "All of the user's sessions and tokens were revoked.", ""}, true
	case "password-changed":
		return flash{"ok", "Your password was changed; your other sessions and tokens were revoked.", ""}, true
	case "my-tokens-revoked":
		return flash{"ok", "All your other sessions and tokens were revoked.", ""}, true
	case "boot-expected":
		return flash{"ok", "Network boot expected (until the time shown below): power the machine on now.", ""}, true
	case "media-inserted":
		return flash{"ok", "Deploy ISO inserted into the virtual CD (shown below).", ""}, true
	case "media-booted":
		return flash{"ok", "Deploy ISO inserted and the machine is booting from it once: its deploy environment gets its agent token and reports here.", ""}, true
	case "media-ejected":
		return flash{"ok", "Virtual CD ejected.", ""}, true
	case "identity-unchanged":
		return flash{"ok", "Identity unchanged.", ""}, true
	case "identity-corrected":
		return flash{"ok", "Identity corrected. A machine that failed on an identity mismatch: retry it to inspect it again.", ""}, true
	case "bmc-changed":
		return flash{"ok", "BMC changed: Slate reached it with the new settings and uses them from now on.", ""}, true
	case "bmc-unchanged":
		return flash{"ok", "Nothing to change: the BMC answers with the stored settings and presents the pinned certificate.", ""}, true
	case "bmc-repinned":
		return flash{"ok", "BMC certificate re-pinned: Slate holds the BMC to the new fingerprint from now on.", ""}, true
	case "bmc-changed-retry":
		return flash{"ok", "BMC changed. The machine is still failed: once its cause is fixed, retry it below.", ""}, true
	case "bmc-repinned-retry":
		return flash{"ok", "BMC certificate re-pinned. The machine is still failed: once its cause is fixed, retry it below.", ""}, true
	case "filter-saved":
		return flash{"ok", "Filter saved: it is listed above the machines.", ""}, true
	case "filter-deleted":
		return flash{"ok", "Saved filter deleted.", ""}, true
	// Refusals and partial failures.
	case "systems-enrolled-power-on-failed":
		return flash{"warn", "Every system behind the BMC was enrolled, but some could not be powered on: see the audit log (bmc.boot-once) and each machine's page.", ""}, true
	case "enrolled-left-running":
		return flash{"warn", "Enrolled, but not powered on: the machine is running, so Slate left it alone (no boot set, not restarted). Slate powers it into inspection by itself once it is off: shut it down in a maintenance window, or adopt it as it runs.", ""}, true
	case "enrolled-power-on-failed":
		return flash{"warn", "Enrolled, but powering the machine on through its BMC failed: the reason is shown below.", ""}, true
	case "reason-required":
		return flash{"error", "Nothing changed: give a reason (it goes in the audit log).", "reason"}, true
	case "decommission-name-mismatch":
		return flash{"error", "Not decommissioned: type the machine's name exactly as shown.", "confirm_name"}, true
	case "release-not-approved":
		return flash{"error", "Not set: choose an approved release.", "release"}, true
	case "session-expired":
		return flash{"error", "Your session expired (idle too long, ended, or signed out elsewhere): log in again.", ""}, true
	}
	return flash{}, false
}

// withFlash appends the code to a local path: ?ok= for successes, ?err= for the rest.
// TestFlashCodesInSourceAreInTheTable checks every code used with it is in the table.
func withFlash(path, code string) string {
	key := "err"
	if f, _ := flashFor(code); f.Kind == "ok" {
		key = "ok"
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + key + "=" + url.QueryEscape(code)
}

// flashFromQuery reads ?ok= or ?err= codes. The code decides the colour: ?ok=reason-required
// still renders red.
func flashFromQuery(q url.Values) *flash {
	for _, k := range []string{"err", "ok"} {
		if f, ok := flashFor(q.Get(k)); ok {
			return &f
		}
	}
	return nil
}
