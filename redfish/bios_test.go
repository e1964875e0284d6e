package redfish_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"slate/redfish"
	"slate/redfish/redfishtest"
)

var profile = redfish.BIOSProfile{Name: "plant-default", Version: "3", Attributes: map[string]any{
	"ProcHyperthreading": "Disabled",
	"PowerProfile":       "OsControl",
	"ProcCoreDisable":    2,
	"BootMode":           "Uefi", // already so
}}

func biosAttrs(t *testing.T, s *redfishtest.Server) map[string]any {
	t.Helper()
	return s.Get(s.SystemURI() + "/Bios")["Attributes"].(map[string]any)
}

func TestBIOSDiff(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	c := connect(t, s, nil)
	p := profile
	p.Attributes = map[string]any{"ProcHyperthreading": "Disabled", "BootMode": "Uefi", "SriovEnable": "Enabled"}
	d, err := c.DiffBIOS(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Changes) != 1 || d.Changes[0].Attribute != "ProcHyperthreading" || d.Changes[0].Current != "Enabled" {
		t.Fatalf("changes %+v", d.Changes)
	}
	if !slices.Equal(d.Unknown, []string{"SriovEnable"}) {
		t.Fatalf("unknown %v", d.Unknown)
	}
	// the mockup's settings object already holds someone else's staged changes
	if d.Pending["EmbeddedSata"] != "Ahci" {
		t.Fatalf("pending %v", d.Pending)
	}
}

func TestBIOSApplyResetVerify(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	c := connect(t, s, nil)
	ctx := context.Background()
	res, err := c.ApplyBIOS(ctx, profile)
	if err != nil {
		t.Fatal(err)
	}
	if res.State != redfish.BIOSApplied || len(res.Diff.Changes) != 3 {
		t.Fatalf("result %+v", res)
	}
	a := biosAttrs(t, s)
	if a["ProcHyperthreading"] != "Disabled" || a["PowerProfile"] != "OsControl" || a["ProcCoreDisable"] != float64(2) {
		t.Fatalf("attributes after reset %v", a)
	}
	patches := bodies(s, "PATCH", "/Bios/Settings")
	if len(patches) != 1 {
		t.Fatalf("want one PATCH of the settings object, got %v", patches)
	}
	if attrs := patches[0]["Attributes"].(map[string]any); len(attrs) != 3 {
		t.Fatalf("PATCH sent %v: only the diff belongs in it", attrs)
	}
	if len(bodies(s, "PATCH", s.SystemURI()+"/Bios")) != 0 {
		t.Fatal("Bios itself was patched although it has a settings object")
	}
	if len(s.Boots()) != 1 {
		t.Fatalf("boots %v: the profile needs exactly one reset", s.Boots())
	}
	// a second apply finds nothing to do and does not reset
	res, err = c.ApplyBIOS(ctx, profile)
	if err != nil || res.State != redfish.BIOSApplied || len(s.Boots()) != 1 {
		t.Fatalf("re-apply: %+v %v boots %v", res, err, s.Boots())
	}
}

func TestBIOSStageAndVerifySeparately(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	c := connect(t, s, nil)
	ctx := context.Background()
	res, err := c.StageBIOS(ctx, profile)
	if err != nil || res.State != redfish.BIOSStaged {
		t.Fatalf("stage: %+v %v", res, err)
	}
	// before the reset nothing took: verify must say so, not "applied"
	v, err := c.VerifyBIOS(ctx, profile)
	if !errors.Is(err, redfish.ErrNotApplied) || v.State != redfish.BIOSFailed || len(v.Mismatched) != 3 {
		t.Fatalf("verify before reset: %+v %v", v, err)
	}
	if err := c.PowerCycle(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := c.VerifyBIOS(ctx, profile); err != nil || v.State != redfish.BIOSApplied {
		t.Fatalf("verify after reset: %+v %v", v, err)
	}
}

func TestBIOSUnknownAttributeChangesNothing(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	c := connect(t, s, nil)
	p := profile
	p.Attributes = map[string]any{"ProcHyperthreading": "Disabled", "NoSuchKnob": "On"}
	res, err := c.ApplyBIOS(context.Background(), p)
	requireBMCError(t, err, s.URL, "stage BIOS profile")
	if res.State != redfish.BIOSFailed || !slices.Equal(res.Diff.Unknown, []string{"NoSuchKnob"}) {
		t.Fatalf("result %+v", res)
	}
	if len(bodies(s, "PATCH", "/Bios/Settings")) != 0 || len(s.Boots()) != 0 {
		t.Fatal("a profile with unknown attributes was partly sent or the system reset")
	}
}

func TestBIOSRejectedValueIsNotApplied(t *testing.T) {
	s := rackmount(t, redfishtest.Options{BiosAllowable: map[string][]any{"PowerProfile": {"MaxPerf", "Balanced"}}})
	c := connect(t, s, nil)
	before := biosAttrs(t, s)
	res, err := c.ApplyBIOS(context.Background(), profile)
	e := requireBMCError(t, err, s.URL, "stage BIOS profile")
	if e.Status != 400 || e.MessageID == "" {
		t.Fatalf("want the BMC's 400 with its message id, got %v", err)
	}
	if res.State == redfish.BIOSApplied || res.State == redfish.BIOSStaged {
		t.Fatalf("rejected profile reported %s", res.State)
	}
	if pend := s.Get(s.SystemURI() + "/Bios/Settings")["Attributes"].(map[string]any); pend["ProcHyperthreading"] == "Disabled" {
		t.Fatal("part of a rejected PATCH was staged")
	}
	after := biosAttrs(t, s)
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("attribute %s changed from %v to %v", k, v, after[k])
		}
	}
}

func TestBIOSAttributeRefusedAtPOSTIsReported(t *testing.T) {
	s := rackmount(t, redfishtest.Options{BiosRefuse: []string{"PowerProfile"}})
	c := connect(t, s, nil)
	res, err := c.ApplyBIOS(context.Background(), profile)
	requireBMCError(t, err, s.URL, "verify BIOS profile")
	if !errors.Is(err, redfish.ErrNotApplied) || res.State != redfish.BIOSFailed {
		t.Fatalf("half-applied profile: state %s err %v", res.State, err)
	}
	if len(res.Mismatched) != 1 || res.Mismatched[0].Attribute != "PowerProfile" {
		t.Fatalf("mismatched %+v", res.Mismatched)
	}
}

func TestBIOSWithoutSettingsObjectPatchesBios(t *testing.T) {
	s := rackmount(t, redfishtest.Options{BiosNoSettingsObject: true})
	c := connect(t, s, nil)
	res, err := c.StageBIOS(context.Background(), profile)
	if err != nil || res.State != redfish.BIOSStaged {
		t.Fatalf("%+v %v", res, err)
	}
	if len(bodies(s, "PATCH", s.SystemURI()+"/Bios")) != 1 {
		t.Fatal("Bios itself not patched")
	}
}

func TestBIOSResetDefaults(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	c := connect(t, s, nil)
	ctx := context.Background()
	if _, err := c.ApplyBIOS(ctx, profile); err != nil {
		t.Fatal(err)
	}
	if err := c.ResetBIOSDefaults(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.PowerCycle(ctx); err != nil {
		t.Fatal(err)
	}
	// the settings object still holds the profile (it applies after defaults on this model);
	// what matters here is that the action reached the BMC
	if len(bodies(s, "POST", "Bios.ResetBios")) != 1 {
		t.Fatal("ResetBios not posted")
	}
}

// Where the settings object lists its apply times, the PATCH asks for OnReset explicitly.
func TestBIOSApplyTimeOnReset(t *testing.T) {
	s := rackmount(t, redfishtest.Options{Vendor: redfishtest.Dell})
	c := connect(t, s, nil)
	res, err := c.ApplyBIOS(context.Background(), profile)
	if err != nil || res.State != redfish.BIOSApplied {
		t.Fatalf("%+v %v", res, err)
	}
	p := bodies(s, "PATCH", "/Bios/Settings")
	if len(p) != 1 {
		t.Fatalf("patches %v", p)
	}
	at, _ := p[0]["@Redfish.SettingsApplyTime"].(map[string]any)
	if at["ApplyTime"] != "OnReset" {
		t.Fatalf("apply time %v", p[0])
	}
}
